//! The committed `openapi/broker.json` is what `skyport-broker openapi` prints.

use std::process::Command;

const BROKER_BIN: &str = env!("CARGO_BIN_EXE_skyport-broker");

#[test]
fn committed_openapi_document_is_current() {
    let output = Command::new(BROKER_BIN).arg("openapi").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/broker.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == committed,
        "openapi/broker.json is out of date; regenerate it with\n    \
         cargo run --bin skyport-broker -- openapi > openapi/broker.json"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/auth_username",
        "/auth_username/{username}",
        "/auth_clientid",
        "/auth_clientid/{clientid}",
        "/acl",
        "/acl/$all/topic/{topic}",
        "/banned",
        "/banned/{as}/{who}",
        "/rules",
        "/rules/{id}",
        "/resources",
        "/resources/{id}",
        "/actions",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
}

#[test]
fn config_is_still_required_without_a_subcommand() {
    let output = Command::new(BROKER_BIN)
        .env_remove("SKYPORT_BROKER_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--config"));
}
