//! The web console: served by `skyport` itself from assets in the binary, small enough
//! for its budget, and driven in Debian's Chromium (Playwright through playwright-core,
//! `tests/browser/console.mjs`) against a real control plane with real brokers.
//!
//! `tests/setup-browser.sh` (run by `tests/run.sh`) installs Chromium and playwright-core.
//! `SKYPORT_CONSOLE_SCREENSHOTS=docs/console` also refreshes the README's screenshots.
//! The control plane reports usage every second and resolves custom domains with a DNS
//! server of this test on loopback, whose records the script asks for when its flow
//! needs them (`@harness dns-a …`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use rcgen::{CertificateParams, KeyPair};
use reqwest::StatusCode;
use skyport_tests::console::{add_member, create_user};
use skyport_tests::dns::DnsServer;
use skyport_tests::{binary, workspace_root, Backend, ControlPlane};

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

/// Runs a node script and fails with its output (and the brokers' logs) when it fails.
fn node(script: &Path, envs: &[(&str, String)], data_dir: Option<&Path>) {
    node_with_harness(script, envs, data_dir, |request| {
        panic!(
            "unexpected harness request from {}: {request}",
            script.display()
        )
    });
}

/// Like [`node`], answering the script's harness requests: a stdout line
/// `@harness <request>` is passed to `answer`, then `ok` goes to the script's stdin. It
/// lets the browser script change things only the test holds (the DNS server's records)
/// at the right moment of its flow.
fn node_with_harness(
    script: &Path,
    envs: &[(&str, String)],
    data_dir: Option<&Path>,
    mut answer: impl FnMut(&str),
) {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(workspace_root().join("tests/browser"))
        .envs(envs.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running node (tests/setup-browser.sh installs what the browser tests need)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped stdout"))
        .lines()
        .map_while(Result::ok)
    {
        if let Some(request) = line.strip_prefix("@harness ") {
            answer(request);
            writeln!(stdin, "ok").expect("answering the browser script");
        } else {
            println!("{line}");
            stdout.push_str(&line);
            stdout.push('\n');
        }
    }
    let status = child.wait().expect("waiting for node");
    let stderr = stderr.join().unwrap_or_default();
    eprintln!("{stderr}");
    assert!(
        status.success(),
        "{} failed ({status}):\n{stdout}\n{stderr}\nbroker logs:\n{}",
        script.display(),
        broker_logs(data_dir)
    );
}

/// The console's API clients are generated from the committed OpenAPI documents, and the
/// console calls the APIs only through them.
#[test]
fn console_api_clients_are_generated_from_the_openapi_documents() {
    let mut operations = Vec::new();
    for (spec, client) in [
        ("openapi/skyport.json", "control-plane/console/api.gen.js"),
        ("openapi/broker.json", "control-plane/console/broker.gen.js"),
    ] {
        let out = Command::new(binary("skyport"))
            .arg("console-client")
            .arg(workspace_root().join(spec))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let generated = String::from_utf8(out.stdout).unwrap();
        let committed = std::fs::read_to_string(workspace_root().join(client)).unwrap();
        assert!(
            generated == committed,
            "{client} is stale: regenerate it with \
             `cargo run --bin skyport -- console-client {spec} > {client}` and commit it"
        );
        operations.push(generated);
    }
    let [v1, broker] = [&operations[0], &operations[1]];

    // Every operation a page calls exists in its client, and only api.js talks HTTP.
    let dir = workspace_root().join("control-plane/console");
    let mut calls = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".js") || name.ends_with(".gen.js") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        if name != "api.js" {
            assert!(
                !source.contains("fetch("),
                "{name} calls fetch: requests go through the generated clients (api.js)"
            );
        }
        for (prefix, client) in [("v1.", v1), ("brokerApi(dep).", broker), ("api.", broker)] {
            for (at, _) in source.match_indices(prefix) {
                if source[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let operation: String = source[at + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric())
                    .collect();
                // Module names (`./api.js`, `api.gen.js`), not calls.
                if operation == "js" || operation == "gen" {
                    continue;
                }
                assert!(
                    client.contains(&format!("\n    {operation}: (")),
                    "{name} calls `{prefix}{operation}`, which its generated client lacks"
                );
                calls += 1;
            }
        }
    }
    assert!(
        calls > 40,
        "the pages call the APIs through the clients ({calls} calls)"
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
    // Every file of the console directory is served as committed.
    let dir = workspace_root().join("control-plane/console");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let resp = http
            .get(format!("{}/console/{name}", cp.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let served = resp.bytes().await.unwrap();
        let on_disk = std::fs::read(dir.join(&name)).unwrap();
        assert_eq!(
            served.as_ref(),
            on_disk.as_slice(),
            "{name} is the committed file"
        );
        if name.ends_with(".js") && name != "app.js" {
            assert!(
                html.contains(&format!("href=\"/console/{name}\"")),
                "index.html preloads {name}, so every module arrives in the first round trip"
            );
        }
    }
    let missing = http
        .get(format!("{}/console/nope.js", cp.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

// Multi-threaded: the DNS server's tasks answer the control plane while this thread
// waits on the browser script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium() {
    let dns = DnsServer::start().await;
    let dns_addr = dns.addr().to_string();
    // Usage reported every second, so the monitoring page has the traffic soon; custom
    // domains resolved by the test's DNS server.
    let cp = ControlPlane::start_with(
        Backend::Sqlite,
        &["--metering-interval", "1s", "--dns-server", &dns_addr],
    );
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
    let script = workspace_root().join("tests/browser/console.mjs");
    tokio::task::block_in_place(|| {
        node_with_harness(&script, &envs, Some(cp.data_dir.path()), |request| {
            // `dns-a NAME ADDRESS`: the DNS record the console told the user to create.
            let words: Vec<&str> = request.split_whitespace().collect();
            match words.as_slice() {
                ["dns-a", name, addr] => {
                    let addr: Ipv4Addr = addr.parse().expect("an IPv4 address");
                    dns.set_a(name, &[addr]);
                }
                _ => panic!("unknown harness request: {request}"),
            }
        })
    });
}
