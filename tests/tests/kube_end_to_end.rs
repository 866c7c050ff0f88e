//! The real `skyport` binary with `--orchestrator kubernetes` against the fake API server
//! (through KUBECONFIG), with a fake kubelet running each pod as a real `skyport-broker`
//! and a fake load balancer; Mosquitto's own clients talk MQTT through the endpoints, and
//! the broker pod reports their usage to the control plane with its node token.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skyport_tests::api::sum_points as sum;
use skyport_tests::mqtt::{mosquitto_exchange, Target};
use skyport_tests::on_kube::OnKube;
use skyport_tests::process;

const NS: &str = "skyport-e2e";

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_provisioned_through_kubernetes_carries_mqtt_traffic() {
    let on_kube = OnKube::start(NS, &["--metering-interval", "1s"]).await;
    let OnKube {
        cp, kubelet, fake, ..
    } = &on_kube;
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("on-k8s", "dedicated").await;
    let d = api.wait_status(&id, "running").await;

    let host = d["endpoints"]["host"].as_str().unwrap().to_owned();
    assert!(
        host.starts_with("127.") && host != "127.0.0.1",
        "the load balancer's address: {host}"
    );
    assert_eq!(
        d["endpoints"]["mqtt"],
        format!("mqtt://{host}:1883"),
        "the Service's port"
    );
    assert_eq!(d["endpoints"]["api"], format!("http://{host}:8081"));
    let base = format!("skyport-{id}");
    let sts = fake
        .object("statefulsets", NS, &base)
        .expect("the StatefulSet");
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        "skyport/skyport-broker:e2e"
    );
    assert_eq!(kubelet.pids().len(), 1, "one broker pod");

    // On Kubernetes the control plane takes the applied revision from the rolled-out
    // StatefulSet, before the kubelet has refreshed the mounted Secret: wait for the
    // broker itself to report the current revision (anonymous clients let in).
    let generation = d["generation"].as_i64().unwrap();
    let readyz = format!("{}/readyz", d["endpoints"]["api"].as_str().unwrap());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut reported = serde_json::Value::Null;
    for _ in 0..300 {
        if let Ok(reply) = http.get(&readyz).send().await {
            reported = reply.json().await.unwrap_or_default();
            if reported["revision"].as_i64() >= Some(generation) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        reported["revision"].as_i64() >= Some(generation),
        "the broker never reported revision {generation}: {reported}"
    );

    let tcp = Target::from_url(d["endpoints"]["mqtt"].as_str().unwrap(), None);
    for version in ["mqttv311", "mqttv5"] {
        let got = mosquitto_exchange(&tcp, version, 1, "k8s/hello", version);
        assert_eq!(
            got.received.as_deref(),
            Some(version),
            "{}",
            got.subscriber_stderr
        );
    }

    // Metering: the pod's broker reports that traffic with the node token from its
    // security Secret; the config (a ConfigMap) only names the token's file.
    let config = fake
        .object("configmaps", NS, &format!("{base}-config"))
        .expect("the config");
    let config: Value =
        serde_json::from_str(config["data"]["config.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["metering"]["token_file"],
        "/etc/skyport/security/node-token"
    );
    assert!(config["metering"].get("token").is_none(), "{config}");
    let security = fake
        .object("secrets", NS, &format!("{base}-security"))
        .expect("the security Secret");
    assert!(
        security["data"]["node-token"].is_string(),
        "the node token is kept in the security Secret"
    );
    let to = (chrono::Utc::now() + chrono::Duration::minutes(2)).format("%Y-%m-%dT%H:%M:00Z");
    let mut usage = Value::Null;
    for _ in 0..300 {
        let m = api
            .get(&format!("/deployments/{id}/metrics?step=1m&to={to}"))
            .await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.text);
        usage = m.body;
        // Each exchange: at least one publish in, exactly one delivery out.
        if sum(&usage, "messages_in") >= 2 && sum(&usage, "messages_out") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(sum(&usage, "messages_in") >= 2, "{usage}");
    assert!(sum(&usage, "messages_out") >= 2, "{usage}");
    assert!(
        sum(&usage, "bytes_in") > 0 && sum(&usage, "bytes_out") > 0,
        "{usage}"
    );

    // Stop: scaled to zero, the pod's broker ends, the volume stays.
    let pid = kubelet.pids()[0];
    let stop = api
        .post(&format!("/deployments/{id}/stop"), json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.text);
    api.wait_status(&id, "stopped").await;
    assert_eq!(
        fake.object("statefulsets", NS, &base).unwrap()["spec"]["replicas"],
        0
    );
    eventually("the broker pod is gone", || kubelet.pids().is_empty()).await;
    assert!(!process::is_alive(pid));
    let claim = format!("data-{base}-0");
    let claim_uid: Value = fake
        .object("persistentvolumeclaims", NS, &claim)
        .expect("the volume is kept")["metadata"]["uid"]
        .clone();
    assert_eq!(
        mosquitto_exchange(&tcp, "mqttv311", 0, "k8s/stopped", "x").received,
        None
    );

    // Start: same endpoints, same volume, traffic flows again.
    let start = api
        .post(&format!("/deployments/{id}/start"), json!({}))
        .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let again = api.wait_status(&id, "running").await;
    assert_eq!(again["endpoints"], d["endpoints"]);
    assert_eq!(
        fake.object("persistentvolumeclaims", NS, &claim).unwrap()["metadata"]["uid"],
        claim_uid
    );
    let got = mosquitto_exchange(&tcp, "mqttv5", 2, "k8s/back", "back");
    assert_eq!(
        got.received.as_deref(),
        Some("back"),
        "{}",
        got.subscriber_stderr
    );

    // Delete: every object goes (finalizer released, owner references cascade).
    let del = api
        .call(reqwest::Method::DELETE, &format!("/deployments/{id}"), None)
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    api.wait_gone(&id).await;
    // Only the control plane's own leader Lease is left.
    let left: Vec<Value> = fake
        .all_objects(NS)
        .into_iter()
        .filter(|o| o["kind"] != "Lease")
        .collect();
    assert!(left.is_empty(), "{left:#?}");
    eventually("the broker pod is gone", || kubelet.pids().is_empty()).await;

    drop(on_kube);
}
