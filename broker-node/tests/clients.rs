//! `/api/v4/clients` on a real node with mosquitto clients: listing with EMQX's filters,
//! disconnected persistent sessions, and kicking that ends a session.

mod common;

use common::{publish, unique, Broker, Subscriber};
use reqwest::Method;
use serde_json::Value;

async fn get(broker: &Broker, path: &str) -> (u16, Value) {
    let response = broker.api(Method::GET, path).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clientid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn clients_are_listed_filtered_and_kicked_with_their_sessions() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let (kept, ended) = (unique("kept"), unique("ended"));
    let topic = unique("offline/queue");

    // Two persistent subscribers, then both go offline.
    for id in [&kept, &ended] {
        let sub =
            Subscriber::start(&target, "mqttv311", 1, &topic, &["-i", id, "-c", "-W", "1"]).await;
        let (status, body) = get(&broker, &format!("/api/v4/clients?clientid={id}")).await;
        assert_eq!(status, 200);
        assert_eq!(body["data"][0]["conn_state"], "connected", "{body}");
        assert_eq!(body["data"][0]["proto_ver"], 4, "{body}");
        assert_eq!(body["data"][0]["clean_start"], false, "{body}");
        sub.finish_any().await;
    }
    // The node notices each disconnect as the connection closes.
    let mut expected = vec![kept.clone(), ended.clone()];
    expected.sort();
    let mut offline = Vec::new();
    for _ in 0..100 {
        let (_, body) = get(&broker, "/api/v4/clients?conn_state=disconnected").await;
        offline = ids(&body);
        offline.sort();
        if offline == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(offline, expected);
    let (_, body) = get(&broker, "/api/v4/clients?_like_clientid=kept&_limit=1").await;
    assert_eq!(ids(&body), std::slice::from_ref(&kept));
    assert_eq!(body["meta"]["count"], 1);
    let (status, body) = get(&broker, "/api/v4/clients?conn_state=sleeping").await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(108)));

    // Their subscriptions outlive the connections, as the sessions do.
    let (status, body) = get(&broker, &format!("/api/v4/subscriptions/{kept}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["topic"], topic.as_str(), "{body}");
    assert_eq!(body["data"][0]["qos"], 1, "{body}");
    let (_, body) = get(&broker, "/api/v4/subscriptions").await;
    assert_eq!(body["meta"]["count"], 2, "{body}");

    // A message for both while they are away; one session is ended through the API.
    let (status, output) = publish(&target, "mqttv311", 1, &topic, "while-away", &[]).await;
    assert!(status.success(), "{output}");
    let response = broker
        .api(Method::DELETE, &format!("/api/v4/clients/{ended}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) = get(&broker, &format!("/api/v4/clients/{ended}")).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(112)), "{body}");
    let (_, body) = get(&broker, &format!("/api/v4/subscriptions/{ended}")).await;
    assert_eq!(body["data"], serde_json::json!([]), "{body}");

    // The kept session delivers its queued message; the ended one has nothing left.
    let back = Subscriber::spawn(&target, "mqttv311", 1, &topic, &["-i", &kept, "-c"]);
    assert!(back.finish().await.contains(&"while-away".to_owned()));
    let gone = Subscriber::spawn(
        &target,
        "mqttv311",
        1,
        &unique("nothing"),
        &["-i", &ended, "-c", "-W", "2"],
    );
    let output = gone.finish_any().await;
    assert!(!output.iter().any(|l| l == "while-away"), "{output:#?}");

    let response = broker
        .api(Method::DELETE, "/api/v4/clients/nobody-here")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_expired_session_is_gone() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let (id, topic) = (unique("short"), unique("expiring/queue"));
    // MQTT 5 session expiry of 1 s.
    let sub = Subscriber::start(
        &target,
        "mqttv5",
        1,
        &topic,
        &["-i", &id, "-c", "-x", "1", "-W", "1"],
    )
    .await;
    sub.finish_any().await;
    let (status, output) = publish(&target, "mqttv311", 1, &topic, "too-late", &[]).await;
    assert!(status.success(), "{output}");
    // The node ends expired sessions within a few seconds; then the client is unknown.
    let mut gone = false;
    for _ in 0..100 {
        if get(&broker, &format!("/api/v4/clients/{id}")).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(gone, "the expired session is still listed");
    let back = Subscriber::spawn(
        &target,
        "mqttv5",
        1,
        &unique("nothing"),
        &["-i", &id, "-c", "-W", "2"],
    );
    let output = back.finish_any().await;
    assert!(!output.iter().any(|l| l == "too-late"), "{output:#?}");
}
