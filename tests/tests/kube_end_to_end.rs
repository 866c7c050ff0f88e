//! The real `skyport` binary with `--orchestrator kubernetes` against the fake API server
//! (through KUBECONFIG), with a fake kubelet running each pod as a real `skyport-broker`
//! and a fake load balancer; Mosquitto's own clients talk MQTT through the endpoints.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use skyport_tests::fake_kube::kubelet::Kubelet;
use skyport_tests::fake_kube::FakeKube;
use skyport_tests::mqtt::{mosquitto_exchange, Target};
use skyport_tests::{binary, process, Backend, ControlPlane};

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
    let fake = FakeKube::start();
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig, NS);
    let kubelet = Kubelet::start(fake.client(NS), NS, binary("skyport-broker")).await;
    let cp = ControlPlane::start_with_env(
        Backend::Sqlite,
        &[
            "--orchestrator",
            "kubernetes",
            "--kube-namespace",
            NS,
            "--broker-image",
            "skyport/skyport-broker:e2e",
        ],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
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
    assert!(
        fake.all_objects(NS).is_empty(),
        "{:#?}",
        fake.all_objects(NS)
    );
    eventually("the broker pod is gone", || kubelet.pids().is_empty()).await;

    drop(cp);
    drop(kubelet);
}
