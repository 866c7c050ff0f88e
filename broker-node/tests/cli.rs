//! The process contract the control plane relies on: config errors exit 2,
//! bind failures exit 3, SIGTERM/SIGINT exit 0.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::{config_json, spawn_broker, wait_bounded, Addrs, Broker, Pki, TempDir};

/// Runs the broker on `config` and returns its exit code and stderr.
fn run_to_exit(dir: &Path, config: &Path) -> (Option<i32>, String) {
    let log = dir.join("broker.log");
    let mut child = spawn_broker(config, &log);
    let status = wait_bounded(&mut child);
    (status.code(), std::fs::read_to_string(log).unwrap())
}

fn write_config(dir: &TempDir, json: &str) -> std::path::PathBuf {
    let path = dir.path().join("broker.json");
    std::fs::write(&path, json).unwrap();
    path
}

#[test]
fn missing_config_file_exits_2() {
    let dir = TempDir::new();
    let (code, stderr) = run_to_exit(dir.path(), &dir.path().join("absent.json"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot read config file"), "{stderr}");
}

#[test]
fn invalid_json_exits_2_and_names_the_field() {
    let dir = TempDir::new();
    let config = write_config(
        &dir,
        r#"{"deployment_id": "d", "listeners": {"tcp": "not an address", "api": "127.0.0.1:1"}}"#,
    );
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid config file"), "{stderr}");
    assert!(stderr.contains("listeners.tcp"), "{stderr}");
}

#[test]
fn tls_listener_without_tls_section_exits_2() {
    let dir = TempDir::new();
    let config = write_config(&dir, &config_json(&Addrs::free(&["tls"]), false));
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(r#"tls listener is enabled but the config has no "tls" section"#),
        "{stderr}"
    );
}

#[test]
fn bad_pem_exits_2() {
    let dir = TempDir::new();
    Pki::generate(dir.path(), "tls");
    std::fs::write(dir.path().join("tls-server.pem"), "this is not PEM\n").unwrap();
    let config = write_config(&dir, &config_json(&Addrs::free(&["wss"]), true));
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("tls-server.pem holds no PEM certificate"),
        "{stderr}"
    );

    // A key that is not PEM either.
    Pki::generate(dir.path(), "tls");
    std::fs::write(dir.path().join("tls-server.key"), "garbage").unwrap();
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("tls-server.key holds no PEM private key"),
        "{stderr}"
    );
}

#[test]
fn busy_listener_port_exits_3_naming_listener_and_address() {
    let dir = TempDir::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut addrs = Addrs::free(&["tcp"]);
    addrs.ws = Some(taken.local_addr().unwrap());
    let config = write_config(&dir, &config_json(&addrs, false));
    let (code, stderr) = run_to_exit(dir.path(), &config);
    assert_eq!(code, Some(3), "{stderr}");
    let expected = format!(
        "cannot bind the ws listener on {}",
        taken.local_addr().unwrap()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sigint_exit_0() {
    for signal in ["-TERM", "-INT"] {
        let mut broker = Broker::start(&["tcp", "ws"]).await;
        let status = Command::new("kill")
            .args([signal, &broker.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = broker.wait_exit();
        assert_eq!(status.code(), Some(0), "{signal}: {}", broker.stderr());
        // The listeners are gone with the process.
        let tcp = broker.addrs.tcp.unwrap();
        assert!(
            std::net::TcpStream::connect(tcp).is_err(),
            "{tcp} still accepts"
        );
    }
}

#[test]
fn help_documents_the_flags() {
    let output = Command::new(common::BROKER_BIN)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "--config",
        "SKYPORT_BROKER_CONFIG",
        "--log-format",
        "SKYPORT_LOG_FORMAT",
        "json",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
}
