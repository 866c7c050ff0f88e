//! `POST /api/v4/mqtt/publish` and `/mqtt/publish_batch` on a real node: mosquitto
//! subscribers get the messages at the asked QoS; bad requests get EMQX's codes.

mod common;

use common::{unique, Broker, Subscriber};
use reqwest::Method;
use serde_json::{json, Value};

async fn post(broker: &Broker, path: &str, body: Value) -> (u16, Value) {
    let response = broker
        .api(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn http_publishes_reach_mqtt_subscribers() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let base = unique("http/pub");
    for qos in [0u8, 1, 2] {
        let topic = format!("{base}/q{qos}");
        let sub = Subscriber::start(&target, "mqttv5", qos, &topic, &[]).await;
        let (status, body) = post(
            &broker,
            "/api/v4/mqtt/publish",
            json!({"topic": topic, "payload": format!("plain-{qos}"), "qos": qos}),
        )
        .await;
        assert_eq!((status, &body), (200, &json!({"code": 0})));
        let output = sub.finish().await;
        assert!(output.contains(&format!("plain-{qos}")), "{output:#?}");
        assert!(
            output
                .iter()
                .any(|l| l.contains(&format!("received PUBLISH (d0, q{qos}, r0"))),
            "delivered at QoS {qos}: {output:#?}"
        );
    }

    // Several topics at once, base64 payload, retained.
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let (status, _) = post(
        &broker,
        "/api/v4/mqtt/publish",
        json!({"topics": format!("{a},{b}"), "payload": "aGVsbG8=", "encoding": "base64",
               "qos": 1, "retain": true}),
    )
    .await;
    assert_eq!(status, 200);
    for topic in [&a, &b] {
        let sub = Subscriber::start(&target, "mqttv311", 1, topic, &[]).await;
        assert!(sub.finish().await.contains(&"hello".to_owned()), "{topic}");
    }

    // A batch: each message judged alone.
    let c = format!("{base}/c");
    let sub = Subscriber::start(&target, "mqttv311", 1, &c, &["-C", "2"]).await;
    let (status, body) = post(
        &broker,
        "/api/v4/mqtt/publish_batch",
        json!([
            {"topic": c, "payload": "one", "qos": 1},
            {"topic": "bad/#", "payload": "x"},
            {"payload": "no topic"},
            {"topic": c, "payload": "two", "qos": 2},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!(0), json!(115), json!(107), json!(0)],
        "{body}"
    );
    let output = sub.finish().await;
    let one = output.iter().position(|l| l == "one");
    let two = output.iter().position(|l| l == "two");
    assert!(one.is_some() && one < two, "in order: {output:#?}");

    // The node's counters: 3 + 2 (two topics) + 2 (the batch's valid ones) published over
    // HTTP, none from MQTT clients.
    let response = broker
        .api(Method::GET, "/api/v4/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let metrics = &body["data"][0]["metrics"];
    assert_eq!(metrics["messages.publish.http"], 7, "{body}");
    assert_eq!(metrics["messages.received"], 0, "{body}");
    let text = reqwest::get(format!("http://{}/metrics", broker.addrs.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l == "skyport_broker_messages_publish_http_total 7"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_publish_requests_get_emqx_codes() {
    let broker = Broker::start(&["tcp"]).await;
    for (body, code) in [
        (json!({"payload": "x"}), 107),
        (json!({"topic": "a/+", "payload": "x"}), 115),
        (json!({"topic": "", "payload": "x"}), 107),
        (json!({"topic": "a", "payload": "x", "qos": 3}), 108),
        (
            json!({"topic": "a", "payload": "x", "encoding": "hex"}),
            108,
        ),
        (
            json!({"topic": "a", "payload": "%%%", "encoding": "base64"}),
            108,
        ),
    ] {
        let (status, reply) = post(&broker, "/api/v4/mqtt/publish", body.clone()).await;
        assert_eq!(
            (status, reply["code"].as_u64()),
            (400, Some(code)),
            "{body}: {reply}"
        );
    }
    let (status, reply) = post(&broker, "/api/v4/mqtt/publish_batch", json!({"topic": "a"})).await;
    assert_eq!(status, 400, "{reply}");
    let unauthenticated = reqwest::Client::new()
        .post(format!("http://{}/api/v4/mqtt/publish", broker.addrs.api))
        .json(&json!({"topic": "a", "payload": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
