//! The control plane survives its own crash, and supervises brokers that crash.

use skyport_tests::mqtt::{mosquitto_exchange, Target};
use skyport_tests::{process, Backend, ControlPlane};

#[tokio::test(flavor = "multi_thread")]
async fn brokers_are_readopted_after_a_control_plane_crash() {
    let mut cp = ControlPlane::start_with(Backend::Sqlite, &[]);
    let (_, api) = cp.api.project_with_key("acme").await;
    let a = api.create_open_deployment("a", "dedicated").await;
    let b = api.create_open_deployment("b", "dedicated").await;
    let da = api.wait_status(&a, "running").await;
    api.wait_status(&b, "running").await;
    api.post(&format!("/deployments/{b}/stop"), serde_json::json!({}))
        .await;
    api.wait_status(&b, "stopped").await;
    let before = cp.broker_processes();
    assert_eq!(before.len(), 1);

    cp.restart();
    let api = api.with_token(&api.token).clone();
    let api = skyport_tests::Api::new(&cp.base_url, &api.token);
    let again = api.wait_status(&a, "running").await;
    assert_eq!(again["endpoints"], da["endpoints"]);
    api.wait_status(&b, "stopped").await;
    // A few reconcile passes later there is still exactly the same broker.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        cp.broker_processes(),
        before,
        "the running broker was re-adopted, not duplicated"
    );

    let tcp = Target::from_url(again["endpoints"]["mqtt"].as_str().unwrap(), None);
    let got = mosquitto_exchange(&tcp, "mqttv311", 1, "r/1", "still-here");
    assert_eq!(got.received.as_deref(), Some("still-here"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_broker_is_restarted() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("crashy", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let pids = cp.broker_processes();
    assert_eq!(pids.len(), 1);
    process::kill_and_wait(pids[0]);
    // The reconciler notices and starts a new broker on the same ports.
    let mut replaced = Vec::new();
    for _ in 0..300 {
        replaced = cp.broker_processes();
        if !replaced.is_empty() && replaced != pids {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(replaced.len(), 1, "one new broker");
    assert_ne!(replaced, pids);
    let again = api.wait_status(&id, "running").await;
    assert_eq!(again["endpoints"], d["endpoints"]);
    let tcp = Target::from_url(again["endpoints"]["mqtt"].as_str().unwrap(), None);
    assert_eq!(
        mosquitto_exchange(&tcp, "mqttv5", 1, "c/1", "up")
            .received
            .as_deref(),
        Some("up")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_backed_control_plane_runs_deployments() {
    let mut cp = ControlPlane::start_with(Backend::Postgres, &[]);
    let (_, api) = cp.api.project_with_key("pg").await;
    let id = api.create_open_deployment("pg-demo", "premium").await;
    api.wait_status(&id, "running").await;
    cp.restart();
    let api = skyport_tests::Api::new(&cp.base_url, &api.token);
    let d = api.wait_status(&id, "running").await;
    assert_eq!(d["tier"]["max_sessions"], 5000);
    assert_eq!(cp.broker_processes().len(), 1);
}
