//! A deployment's persistent-session settings through the control plane: validated,
//! stored, and applied by the running broker (same pid), checked with mosquitto clients.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyport_tests::mqtt::{mosquitto, Target};
use skyport_tests::ControlPlane;

#[tokio::test(flavor = "multi_thread")]
async fn session_settings_are_checked_stored_and_applied_live() {
    let cp = ControlPlane::start();
    let (_, api) = cp.api.project_with_key("acme").await;
    let id = api.create_open_deployment("sessions", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let path = format!("/deployments/{id}/sessions");

    let defaults = api.get(&path).await;
    assert_eq!(
        defaults.body["apply_status"], "applied",
        "{}",
        defaults.text
    );
    // A document read can be written back as it is.
    let round_trip = api.put(&path, defaults.body.clone()).await;
    assert_eq!(round_trip.status, 200, "{}", round_trip.text);
    let defaults = api.get(&path).await;
    assert_eq!(
        spec(&defaults.body),
        json!({"session_expiry_secs": 7200, "max_session_expiry_secs": 7200, "max_queued_messages": 1000})
    );
    for (body, field) in [
        (
            json!({"session_expiry_secs": 604801, "max_session_expiry_secs": 60, "max_queued_messages": 5}),
            "session_expiry_secs",
        ),
        (
            json!({"session_expiry_secs": 60, "max_session_expiry_secs": 60, "max_queued_messages": 0}),
            "max_queued_messages",
        ),
    ] {
        let reply = api.put(&path, body).await;
        reply.assert_problem(422, "invalid_session_settings");
        assert_eq!(reply.body["field"], field);
    }
    api.put(&path, json!({"session_expiry_secs": 60}))
        .await
        .assert_problem(422, "missing_field");
    assert_eq!(api.get(&path).await.body, defaults.body, "nothing changed");

    let pids = cp.live_broker_pids();
    let set = api
        .put(
            &path,
            json!({"session_expiry_secs": 3600, "max_session_expiry_secs": 3600, "max_queued_messages": 2}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    api.wait_status(&id, "running").await;

    // The broker keeps the two newest messages of an offline session.
    let target = Target::from_url(d["endpoints"]["mqtt"].as_str().unwrap(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        // Repeated until the broker has reloaded the new limit (within a second or so).
        let client = format!("queue-{attempt}");
        mosquitto(
            &target,
            "mosquitto_sub",
            &["-i", &client, "-c", "-q", "1", "-t", "q/#", "-E"],
        );
        for payload in ["a", "b", "c", "d"] {
            mosquitto(
                &target,
                "mosquitto_pub",
                &["-q", "1", "-t", "q/x", "-m", payload],
            );
        }
        // Let the node take the queue (it does every 2 s).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let got = mosquitto(
            &target,
            "mosquitto_sub",
            &[
                "-i", &client, "-c", "-q", "1", "-t", "q/#", "-C", "2", "-W", "10",
            ],
        );
        if got.lines().collect::<Vec<_>>() == ["c", "d"] {
            break;
        }
        assert!(Instant::now() < deadline, "the limit never applied: {got}");
    }
    assert_eq!(cp.live_broker_pids(), pids, "applied without a restart");
}

/// The settings as read, without where they stand on their way to the broker.
fn spec(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        for key in ["revision", "applied", "apply_status"] {
            object.remove(key);
        }
    }
    body
}
