//! `POST /api/v4/mqtt/subscribe`, `/unsubscribe` and their batches on a real node:
//! mosquitto clients, connected for something else, start (and stop) receiving what the
//! API subscribed them to, without ever seeing the acknowledgement meant for the API.

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

async fn get(broker: &Broker, path: &str) -> Value {
    broker
        .api(Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_subscribes_and_unsubscribes_connected_clients() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let base = unique("api-sub");
    for version in ["mqttv311", "mqttv5"] {
        let client = format!("{base}-{version}");
        let idle = format!("{base}/{version}/idle");
        let command = format!("{base}/{version}/cmd");
        // Connected and subscribed to something that never gets messages.
        let sub = Subscriber::start(&target, version, 1, &idle, &["-i", &client]).await;
        let (status, body) = post(
            &broker,
            "/api/v4/mqtt/subscribe",
            json!({"clientid": client, "topic": command, "qos": 1}),
        )
        .await;
        assert_eq!((status, &body), (200, &json!({"code": 0})), "{version}");
        let listed = get(&broker, &format!("/api/v4/subscriptions/{client}")).await;
        let topics: Vec<&str> = listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["topic"].as_str().unwrap())
            .collect();
        assert!(topics.contains(&command.as_str()), "{listed}");

        let (status, _) = post(
            &broker,
            "/api/v4/mqtt/publish",
            json!({"topic": command, "payload": "from-the-api", "qos": 1}),
        )
        .await;
        assert_eq!(status, 200);
        let output = sub.finish().await;
        assert!(output.contains(&"from-the-api".to_owned()), "{output:#?}");
        assert_eq!(
            output
                .iter()
                .filter(|l| l.contains("received SUBACK"))
                .count(),
            1,
            "the client saw only its own SUBACK: {output:#?}"
        );
    }

    // Unsubscribed by the API: the next message it gets is the marker, not the command.
    let client = format!("{base}-unsub");
    let (marker, command) = (format!("{base}/marker"), format!("{base}/cmd2"));
    let sub = Subscriber::start(&target, "mqttv5", 1, &marker, &["-i", &client]).await;
    for (path, expected) in [
        ("/api/v4/mqtt/subscribe", 200),
        ("/api/v4/mqtt/unsubscribe", 200),
    ] {
        let (status, body) = post(
            &broker,
            path,
            json!({"clientid": client, "topic": command, "qos": 1}),
        )
        .await;
        assert_eq!(status, expected, "{path}: {body}");
    }
    for (topic, payload) in [(&command, "not-for-you"), (&marker, "marker")] {
        let (status, _) = post(
            &broker,
            "/api/v4/mqtt/publish",
            json!({"topic": topic, "payload": payload, "qos": 1}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let output = sub.finish().await;
    assert!(output.contains(&"marker".to_owned()), "{output:#?}");
    assert!(!output.contains(&"not-for-you".to_owned()), "{output:#?}");
}

#[tokio::test]
async fn bad_requests_and_offline_clients_get_emqx_codes() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let client = unique("api-sub-codes");
    let sub = Subscriber::start(&target, "mqttv311", 0, "codes/idle", &["-i", &client]).await;
    for (body, status, code) in [
        (json!({"clientid": "nobody-here", "topic": "a"}), 404, 112),
        (json!({"clientid": client, "topic": "a/#/b"}), 400, 115),
        (json!({"clientid": client}), 400, 107),
        (json!({"topic": "a"}), 400, 107),
        (
            json!({"clientid": client, "topic": "a", "qos": 3}),
            400,
            108,
        ),
    ] {
        let (got, answer) = post(&broker, "/api/v4/mqtt/subscribe", body.clone()).await;
        assert_eq!(
            (got, answer["code"].as_u64()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }

    // A batch judges each entry alone.
    let (status, body) = post(
        &broker,
        "/api/v4/mqtt/subscribe_batch",
        json!([
            {"clientid": client, "topic": "codes/one", "qos": 1},
            {"clientid": "nobody-here", "topic": "codes/two"},
            {"clientid": client, "topic": "bad/#/x"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [0, 112, 115], "{body}");
    assert_eq!(body["data"][0]["clientid"], client.as_str());
    let (status, body) = post(
        &broker,
        "/api/v4/mqtt/unsubscribe_batch",
        json!([{"clientid": client, "topic": "codes/one"}]),
    )
    .await;
    assert_eq!(
        (status, &body["data"][0]["code"]),
        (200, &json!(0)),
        "{body}"
    );
    let (status, body) = post(&broker, "/api/v4/mqtt/subscribe_batch", json!([])).await;
    assert_eq!((status, &body["code"]), (400, &json!(107)), "{body}");
    drop(sub);
}
