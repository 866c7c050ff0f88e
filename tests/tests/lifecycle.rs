//! A deployment's whole life through the real binaries: create → running → MQTT traffic
//! from real clients on every listener the plan exposes → stop → start → delete.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skyport_tests::mqtt::{mosquitto, mosquitto_exchange, paho_exchange, Target};
use skyport_tests::{process, ControlPlane};

async fn ca_file(api: &skyport_tests::Api, id: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let ca = api.get(&format!("/deployments/{id}/ca.pem")).await;
    assert_eq!(ca.status, StatusCode::OK);
    assert_eq!(ca.content_type, "application/x-pem-file");
    assert!(
        ca.text.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        ca.text
    );
    let path = dir.join(format!("{id}-ca.pem"));
    std::fs::write(&path, &ca.text).unwrap();
    path
}

fn url<'a>(deployment: &'a Value, key: &str) -> &'a str {
    deployment["endpoints"][key]
        .as_str()
        .unwrap_or_else(|| panic!("endpoint {key} missing in {deployment}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn dedicated_deployment_serves_every_listener_and_protocol_version() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("demo", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let ca = ca_file(&api, &id, cp.data_dir.path()).await;
    for key in ["mqtt", "mqtts", "ws", "wss", "api"] {
        let u = url(&d, key);
        let port: u16 = u
            .rsplit(':')
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(port, 0, "{key} has a real port");
        assert_ne!(port, 1883, "1883 belongs to the machine's Mosquitto");
    }
    assert_eq!(d["endpoints"]["host"], "127.0.0.1");

    let tcp = Target::from_url(url(&d, "mqtt"), None);
    let tls = Target::from_url(url(&d, "mqtts"), Some(&ca));
    for version in ["mqttv311", "mqttv5"] {
        for (name, target) in [("tcp", &tcp), ("tls", &tls)] {
            for qos in [0u8, 1, 2] {
                let payload = format!("{name}-{version}-q{qos}");
                let got =
                    mosquitto_exchange(target, version, qos, &format!("t/{payload}"), &payload);
                assert_eq!(
                    got.received.as_deref(),
                    Some(payload.as_str()),
                    "{name} {version} qos {qos}: {}",
                    got.subscriber_stderr
                );
            }
        }
    }
    let ws = Target::from_url(url(&d, "ws"), None);
    let wss = Target::from_url(url(&d, "wss"), Some(&ca));
    for version in ["mqttv311", "mqttv5"] {
        for (name, target) in [("ws", &ws), ("wss", &wss)] {
            let payload = format!("{name}-{version}");
            let got = paho_exchange(
                target,
                "websockets",
                version,
                1,
                &format!("w/{payload}"),
                &payload,
            );
            assert_eq!(got.as_deref(), Ok(payload.as_str()), "{name} {version}");
        }
    }

    // A TLS client that does not trust Skyport's CA is refused at the handshake.
    let untrusted = Target {
        cafile: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        ..tls.clone()
    };
    let got = mosquitto_exchange(&untrusted, "mqttv311", 0, "t/untrusted", "x");
    assert_eq!(got.received, None);

    // Stop: the broker process really ends, and clients are refused.
    let pids = cp.live_broker_pids();
    assert_eq!(pids.len(), 1, "one broker per deployment");
    let stop = api
        .post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.text);
    assert_eq!(stop.body["status"], "stopping");
    api.wait_status(&id, "stopped").await;
    assert!(!process::is_alive(pids[0]), "stop ends the broker process");
    assert!(cp.broker_processes().is_empty());
    let got = mosquitto_exchange(&tcp, "mqttv311", 0, "t/stopped", "x");
    assert_eq!(
        got.received, None,
        "a stopped deployment accepts no clients"
    );

    // Start again: same endpoints, traffic flows.
    let start = api
        .post(&format!("/deployments/{id}/start"), json!({}))
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    assert_eq!(start.body["status"], "starting");
    let again = api.wait_status(&id, "running").await;
    assert_eq!(
        again["endpoints"], d["endpoints"],
        "endpoints survive stop/start"
    );
    let got = mosquitto_exchange(&tls, "mqttv5", 1, "t/restarted", "back");
    assert_eq!(
        got.received.as_deref(),
        Some("back"),
        "{}",
        got.subscriber_stderr
    );

    // Delete: the broker ends and the deployment disappears.
    let pids = cp.live_broker_pids();
    let del = api
        .call(reqwest::Method::DELETE, &format!("/deployments/{id}"), None)
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert_eq!(del.body["status"], "deleting");
    api.wait_gone(&id).await;
    assert!(
        pids.iter().all(|pid| !process::is_alive(*pid)),
        "delete ends the broker"
    );
    assert!(cp.broker_processes().is_empty());
    assert!(
        !cp.data_dir.path().join("deployments").join(&id).exists(),
        "delete removes its files"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serverless_exposes_only_tls_listeners() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("edge", "serverless").await;
    let d = api.wait_status(&id, "running").await;
    assert_eq!(d["endpoints"]["mqtt"], Value::Null);
    assert_eq!(d["endpoints"]["ws"], Value::Null);
    let ca = ca_file(&api, &id, cp.data_dir.path()).await;
    let tls = Target::from_url(url(&d, "mqtts"), Some(&ca));
    let got = mosquitto_exchange(&tls, "mqttv311", 1, "s/1", "secure");
    assert_eq!(
        got.received.as_deref(),
        Some("secure"),
        "{}",
        got.subscriber_stderr
    );
    let wss = Target::from_url(url(&d, "wss"), Some(&ca));
    assert_eq!(
        paho_exchange(&wss, "websockets", "mqttv5", 1, "s/2", "wss").as_deref(),
        Ok("wss")
    );

    // The plain port the deployment owns is not listening.
    let config: Value = serde_json::from_slice(
        &std::fs::read(
            cp.data_dir
                .path()
                .join("deployments")
                .join(&id)
                .join("ports.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let plain = Target {
        host: "127.0.0.1".into(),
        port: config["tcp"].as_u64().unwrap() as u16,
        cafile: None,
        extra: Vec::new(),
    };
    assert_eq!(
        mosquitto_exchange(&plain, "mqttv311", 0, "s/3", "x").received,
        None
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_renames_and_changes_tier_with_a_rollout() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("one", "dedicated").await;
    let before = api.wait_status(&id, "running").await;

    let renamed = api
        .call(
            reqwest::Method::PATCH,
            &format!("/deployments/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "renamed");
    let after_rename = api.wait_status(&id, "running").await;
    assert_eq!(
        after_rename["generation"],
        before["generation"].as_i64().unwrap() + 1
    );

    let tier = api
        .call(
            reqwest::Method::PATCH,
            &format!("/deployments/{id}"),
            Some(json!({"tier": {"max_sessions": 50, "max_tps": 20}})),
        )
        .await;
    assert_eq!(tier.status, StatusCode::ACCEPTED, "{}", tier.text);
    assert_eq!(tier.body["status"], "updating");
    let d = api.wait_status(&id, "running").await;
    assert_eq!(d["tier"], json!({"max_sessions": 50, "max_tps": 20}));
    let config: Value = serde_json::from_slice(
        &std::fs::read(
            cp.data_dir
                .path()
                .join("deployments")
                .join(&id)
                .join("config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["limits"]["max_sessions"], 50,
        "the broker runs the new tier"
    );
    assert_eq!(
        cp.broker_processes().len(),
        1,
        "the old broker was replaced, not duplicated"
    );

    let list = api.get("/deployments").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["name"], "renamed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tier_change_restarts_the_broker_without_losing_persistent_sessions() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("sessions", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let target = Target::from_url(url(&d, "mqtt"), None);
    let mosquitto = |program: &str, args: &[&str]| mosquitto(&target, program, args);
    // A persistent session subscribes and leaves; two messages queue for it.
    mosquitto(
        "mosquitto_sub",
        &[
            "-i",
            "field-unit-7",
            "-c",
            "-q",
            "1",
            "-t",
            "fleet/7/#",
            "-E",
        ],
    );
    for payload in ["one", "two"] {
        mosquitto(
            "mosquitto_pub",
            &["-q", "1", "-t", "fleet/7/cmd", "-m", payload],
        );
    }
    let pids = cp.live_broker_pids();

    let tier = api
        .call(
            reqwest::Method::PATCH,
            &format!("/deployments/{id}"),
            Some(json!({"tier": {"max_sessions": 500, "max_tps": 200}})),
        )
        .await;
    assert_eq!(tier.status, StatusCode::ACCEPTED, "{}", tier.text);
    api.wait_status(&id, "running").await;
    assert_ne!(cp.live_broker_pids(), pids, "the broker was restarted");
    mosquitto(
        "mosquitto_pub",
        &["-q", "1", "-t", "fleet/7/cmd", "-m", "three"],
    );

    let received = mosquitto(
        "mosquitto_sub",
        &[
            "-i",
            "field-unit-7",
            "-c",
            "-q",
            "1",
            "-t",
            "fleet/7/#",
            "-C",
            "3",
            "-W",
            "20",
        ],
    );
    assert_eq!(
        received.lines().collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
}
