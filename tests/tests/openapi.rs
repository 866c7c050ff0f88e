//! The committed OpenAPI document matches the code, and the running server matches it.

use std::process::Command;

use skyport_tests::{binary, python, workspace_root, ControlPlane};

#[test]
fn committed_openapi_matches_the_code() {
    let out = Command::new(binary("skyport"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(workspace_root().join("openapi/skyport.json")).unwrap();
    assert!(
        generated == committed,
        "openapi/skyport.json is stale: regenerate it with \
         `cargo run --bin skyport -- openapi > openapi/skyport.json` and commit it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn served_openapi_is_the_committed_one() {
    let cp = ControlPlane::start();
    let served = cp.api.with_token("").get("/openapi.json").await;
    assert_eq!(served.status, 200);
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("openapi/skyport.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served.body, committed);
    assert_eq!(served.body["openapi"], "3.1.0");
}

/// Schemathesis (property-based API testing) against the running server, authenticated
/// as a project key and as the admin: no 5xx, every response conforms to the spec.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_errors_or_schema_violations() {
    // Without a rate limit: a budget spent on 429s would leave the endpoints untested.
    let cp = ControlPlane::start_with(skyport_tests::Backend::Sqlite, &["--rate-limit", "off"]);
    let (_, api) = cp.api.project_with_key("fuzz").await;
    // A deployment for the property tests to find.
    api.create_deployment("seed", "serverless").await;
    for token in [api.token.as_str(), skyport_tests::ADMIN_TOKEN] {
        let out = Command::new(python::tool("schemathesis"))
            .args(["run", &format!("{}/api/v1/openapi.json", cp.base_url)])
            .args(["--url", &format!("{}/api/v1", cp.base_url)])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            ])
            // One worker: CPython 3.11's `ast.parse` (which Hypothesis calls to describe
            // its filters) fails with "AST constructor recursion depth mismatch" when
            // threads race on it.
            .args(["--max-examples", "30", "--seed", "1", "--workers", "1"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .env("SCHEMATHESIS_HOOKS", "")
            .env("NO_COLOR", "1")
            .current_dir(cp.data_dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("Unresolvable references"),
            "the spec has unresolvable references:\n{stdout}"
        );
        assert!(
            out.status.success(),
            "schemathesis found problems:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
