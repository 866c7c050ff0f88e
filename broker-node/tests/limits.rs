//! Tier limits on a real node with mosquitto clients: the session quota counts connected
//! and offline persistent sessions, and the publish rate paces clients without losing
//! their messages.

mod common;

use common::{open_security, publish, unique, Broker, Subscriber};
use serde_json::json;

#[tokio::test]
async fn the_session_quota_refuses_newcomers_but_not_returning_sessions() {
    let broker = Broker::start_with(
        &["tcp"],
        open_security(),
        Some(json!({"max_sessions": 2, "max_tps": 1000})),
    )
    .await;
    let target = broker.mqtt("tcp");
    let topic = unique("quota/topic");
    // Two sessions: a connected subscriber, and a persistent one gone offline.
    let online = Subscriber::start(&target, "mqttv311", 1, &topic, &["-i", "online"]).await;
    let persistent = Subscriber::start(
        &target,
        "mqttv311",
        1,
        &unique("quota/other"),
        &["-i", "persistent", "-c", "-W", "1"],
    )
    .await;
    persistent.finish_any().await;

    for (version, refusal) in [
        ("mqttv311", "broker unavailable"),
        ("mqttv5", "quota exceeded"),
    ] {
        let (status, output) = publish(
            &target,
            version,
            1,
            &topic,
            "x",
            &["-i", &unique("newcomer")],
        )
        .await;
        assert!(!status.success(), "{version}: a third session was admitted");
        assert!(
            output.to_lowercase().contains(refusal),
            "{version}: expected {refusal:?}: {output}"
        );
    }
    // The offline session's owner comes back; it publishes to the online subscriber.
    let (status, output) = publish(
        &target,
        "mqttv311",
        1,
        &topic,
        "welcome-back",
        &["-i", "persistent", "-c"],
    )
    .await;
    assert!(
        status.success(),
        "the returning session was refused: {output}"
    );
    let output = online.finish().await;
    assert!(output.iter().any(|l| l == "welcome-back"), "{output:#?}");
}

#[tokio::test]
async fn the_publish_rate_paces_clients_without_losing_messages() {
    let broker = Broker::start_with(
        &["tcp"],
        open_security(),
        Some(json!({"max_sessions": 100, "max_tps": 20})),
    )
    .await;
    let target = broker.mqtt("tcp");
    let topic = unique("paced/topic");
    let count = 60;
    let sub = Subscriber::start(&target, "mqttv311", 1, &topic, &["-C", &count.to_string()]).await;
    // 60 QoS 1 messages in one connection, three times the rate: all arrive, in order.
    let lines: String = (0..count).map(|i| format!("m{i}\n")).collect();
    let mut child = tokio::process::Command::new("mosquitto_pub")
        .args(target.args("mqttv311"))
        .args(["-t", &topic, "-q", "1", "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).await.unwrap();
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
    let output = sub.finish().await;
    let received: Vec<&String> = output.iter().filter(|l| l.starts_with('m')).collect();
    let expected: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    assert_eq!(received, expected.iter().collect::<Vec<_>>());
}
