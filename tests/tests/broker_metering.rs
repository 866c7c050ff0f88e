//! Metering end to end: real MQTT traffic through a real broker is counted by the broker,
//! reported to the control plane, and visible in the metrics API with exact totals.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use skyport_tests::api::sum_points as sum;
use skyport_tests::{Backend, ControlPlane};

#[tokio::test(flavor = "multi_thread")]
async fn broker_traffic_reaches_the_metrics_api_exactly() {
    let cp = ControlPlane::start_with(Backend::Sqlite, &["--metering-interval", "1s"]);
    let (_, api) = cp.api.project_with_key("metered").await;
    let id = api.create_open_deployment("m", "dedicated").await;
    let d = api.wait_status(&id, "running").await;
    let port = d["endpoints"]["mqtt"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();

    // One retained QoS 1 publish (1 message in), then a subscriber that receives it
    // because it subscribes (1 retained delivery). Nothing else is TPS-counted.
    let publish = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-r",
        ])
        .args(["-t", "meter/retained", "-m", "hello"])
        .status()
        .unwrap();
    assert!(publish.success());
    let sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
        .args(["-t", "meter/retained", "-C", "1", "-W", "20"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sub.stdout).trim(), "hello");

    let to = (chrono::Utc::now() + chrono::Duration::minutes(2)).format("%Y-%m-%dT%H:%M:00Z");
    let mut last = Value::Null;
    for _ in 0..300 {
        let m = api
            .get(&format!("/deployments/{id}/metrics?step=1m&to={to}"))
            .await;
        assert_eq!(m.status, 200, "{}", m.text);
        if sum(&m.body, "messages") >= 2 && sum(&m.body, "bytes_out") > 0 {
            last = m.body;
            break;
        }
        last = m.body;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sum(&last, "messages_in"), 1, "{last}");
    assert_eq!(
        sum(&last, "retained_out"),
        1,
        "the retained delivery: {last}"
    );
    assert_eq!(sum(&last, "messages_out"), 0, "{last}");
    assert_eq!(sum(&last, "messages"), 2, "{last}");
    assert!(sum(&last, "bytes_in") > 0 && sum(&last, "bytes_out") > 0);
}
