//! Device event topics on a real node: `$events/...` JSON messages for connects,
//! disconnects, subscribes and unsubscribes, only for subscribers the ACL allows, never
//! leaking to `#` subscribers, and never publishable by clients.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{publish, unique, Broker, Subscriber, Target};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `mosquitto_sub -v` on `filter`, collecting (topic, JSON) until `done` holds.
async fn watch_until(
    target: &Target,
    filter: &str,
    start: impl std::future::Future<Output = ()>,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let mut child = tokio::process::Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(target.args("mqttv5"))
        .args(["-t", filter, "-v", "-d", "-W", "20"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("received SUBACK") {
            break;
        }
    }
    start.await;
    let mut seen = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((topic, body)) = line.split_once(' ') {
                if let Ok(value) = serde_json::from_str::<Value>(body) {
                    seen.push((topic.to_owned(), value));
                    if done(&seen) {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "events never complete: {seen:#?}");
    seen
}

fn has(seen: &[(String, Value)], topic: &str, client: &str) -> bool {
    seen.iter()
        .any(|(t, v)| t == topic && v["clientid"] == client)
}

#[tokio::test]
async fn lifecycle_events_reach_event_subscribers() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let device = unique("device");
    let topic = unique("device/data");
    let run = async {
        let sub = Subscriber::start(&target, "mqttv311", 1, &topic, &["-i", &device]).await;
        let (status, output) = publish(&target, "mqttv311", 1, &topic, "x", &[]).await;
        assert!(status.success(), "{output}");
        sub.finish().await;
    };
    let seen = watch_until(&target, "$events/#", run, |seen| {
        has(seen, "$events/client_disconnected", &device)
    })
    .await;
    assert!(has(&seen, "$events/client_connected", &device), "{seen:#?}");
    let subscribed = seen
        .iter()
        .find(|(t, v)| t == "$events/session_subscribed" && v["clientid"] == device.as_str())
        .expect("session_subscribed");
    assert_eq!(subscribed.1["topic"], topic.as_str());
    assert_eq!(subscribed.1["qos"], 1);
    let (_, gone) = seen
        .iter()
        .find(|(t, v)| t == "$events/client_disconnected" && v["clientid"] == device.as_str())
        .unwrap();
    assert_eq!(gone["reason"], "normal");
    assert_eq!(gone["proto_ver"], 4);
    assert!(gone["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn events_respect_the_acl_and_stay_out_of_wildcards() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let rule = json!({"login": "$all", "topic": "$events/#", "action": "sub", "access": "deny"});
    let response = broker
        .api(Method::POST, "/api/v4/acl")
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Refused by the ACL.
    let sub = Subscriber::spawn(&target, "mqttv5", 0, "$events/#", &[]);
    let output = sub.finish_any().await;
    assert!(
        output
            .iter()
            .any(|l| l.contains("Subscribed (mid: 1): 135")),
        "{output:#?}"
    );
    // A `#` subscriber sees the next ordinary message, not the events before it.
    let topic = unique("plain/topic");
    let all = Subscriber::start(&target, "mqttv311", 1, "#", &["-v"]).await;
    let churn = Subscriber::start(&target, "mqttv311", 0, &unique("other"), &["-W", "1"]).await;
    churn.finish_any().await;
    let (status, _) = publish(&target, "mqttv311", 1, &topic, "plain", &[]).await;
    assert!(status.success());
    let output = all.finish().await;
    let received: Vec<&String> = output
        .iter()
        .filter(|l| !l.starts_with("Client "))
        .collect();
    assert_eq!(received.len(), 2, "{output:#?}"); // "Subscribed" line and the message
    assert!(received[1].starts_with(&topic), "{output:#?}");
    // Clients cannot publish events.
    let (_, output) = publish(
        &target,
        "mqttv5",
        1,
        "$events/client_connected",
        "{}",
        &["-d"],
    )
    .await;
    assert!(output.contains("RC:135"), "{output}");
}
