//! The web console: served by `skyport` itself from assets in the binary, small enough
//! for its budget, and driven in Debian's Chromium (Playwright through playwright-core,
//! `tests/browser/console.mjs`) against a real control plane with real brokers.
//!
//! `tests/setup-browser.sh` (run by `tests/run.sh`) installs Chromium and playwright-core.
//! `SKYPORT_CONSOLE_SCREENSHOTS=docs/console` also refreshes the README's screenshots.

use std::path::Path;
use std::process::Command;

use rcgen::{CertificateParams, KeyPair};
use reqwest::StatusCode;
use skyport_tests::console::{add_member, create_user};
use skyport_tests::{workspace_root, Backend, ControlPlane};

const PASSWORD: &str = "correct horse battery";

/// The last lines of every broker log under `data_dir`, to explain a failure.
fn broker_logs(data_dir: Option<&Path>) -> String {
    let Some(dir) = data_dir else {
        return String::new();
    };
    let mut logs = String::new();
    for entry in std::fs::read_dir(dir.join("deployments"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("broker.log")) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            logs.push_str(&format!("--- {}:\n{tail}\n", entry.path().display()));
        }
    }
    logs
}

fn node(script: &Path, envs: &[(&str, String)], data_dir: Option<&Path>) {
    let out = Command::new("node")
        .arg(script)
        .current_dir(workspace_root().join("tests/browser"))
        .envs(envs.iter().map(|(k, v)| (*k, v)))
        .output()
        .expect("running node (tests/setup-browser.sh installs what the browser tests need)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}\nbroker logs:\n{}",
        script.display(),
        out.status,
        broker_logs(data_dir)
    );
}

#[test]
fn console_fits_its_size_budget() {
    node(
        &workspace_root().join("tests/browser/bundle-size.mjs"),
        &[],
        None,
    );
}

#[tokio::test]
async fn skyport_serves_the_console_from_its_binary() {
    let cp = ControlPlane::start_with(Backend::Sqlite, &[]);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let index = http.get(format!("{}/", cp.base_url)).send().await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    let csp = index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = index.text().await.unwrap();
    assert!(html.contains("/console/app.js"), "{html}");
    for (asset, file) in [
        ("app.js", "app.js"),
        ("mqtt.js", "mqtt.js"),
        ("style.css", "style.css"),
    ] {
        let resp = http
            .get(format!("{}/console/{asset}", cp.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        let served = resp.bytes().await.unwrap();
        let on_disk =
            std::fs::read(workspace_root().join("control-plane/console").join(file)).unwrap();
        assert_eq!(
            served.as_ref(),
            on_disk.as_slice(),
            "{asset} is the committed file"
        );
    }
    let missing = http
        .get(format!("{}/console/nope.js", cp.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn console_in_chromium() {
    let cp = ControlPlane::start_with(Backend::Sqlite, &[]);
    let (project, _) = cp.api.project_with_key("acme").await;
    create_user(&cp.api, "ada@example.com", PASSWORD).await;
    create_user(&cp.api, "vic@example.com", PASSWORD).await;
    add_member(&cp.api, &project, "ada@example.com", "owner").await;
    add_member(&cp.api, &project, "vic@example.com", "viewer").await;

    let work = tempfile::Builder::new()
        .prefix("skyport-console-")
        .tempdir()
        .unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["mqtt.example.com".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let other_key = KeyPair::generate().unwrap();
    let cert_file = work.path().join("cert.pem");
    let other_key_file = work.path().join("other-key.pem");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&other_key_file, other_key.serialize_pem()).unwrap();

    let mut envs = vec![
        ("SKYPORT_URL", cp.base_url.clone()),
        ("PROJECT_ID", project.clone()),
        ("OWNER_EMAIL", "ada@example.com".to_owned()),
        ("VIEWER_EMAIL", "vic@example.com".to_owned()),
        ("PASSWORD", PASSWORD.to_owned()),
        ("TLS_CERT_FILE", cert_file.display().to_string()),
        ("TLS_OTHER_KEY_FILE", other_key_file.display().to_string()),
        ("WORK_DIR", work.path().display().to_string()),
    ];
    if let Ok(dir) = std::env::var("SKYPORT_CONSOLE_SCREENSHOTS") {
        let dir = workspace_root().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        envs.push(("SCREENSHOT_DIR", dir.display().to_string()));
    }
    node(
        &workspace_root().join("tests/browser/console.mjs"),
        &envs,
        Some(cp.data_dir.path()),
    );
}
