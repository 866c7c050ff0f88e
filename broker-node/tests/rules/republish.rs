//! The republish action: the node's own subscribers get the transformed message; rules
//! survive a restart; disabling and deleting apply at once.

use reqwest::Method;
use serde_json::json;

use crate::common::{publish, Subscriber};
use crate::support::{eventually, Node};

/// Publishes each `(topic, payload, client id)` and returns what a subscriber to
/// `<prefix>/out/#` printed (`-v`: topic and payload) for the first message it got.
async fn through(node: &Node, qos: u8, messages: &[(String, &str, &str)]) -> Vec<String> {
    let target = node.broker.mqtt("tcp");
    let out = format!("{}/out/#", node.prefix);
    let sub = Subscriber::start(&target, "mqttv311", qos, &out, &["-v"]).await;
    for (topic, payload, client_id) in messages {
        let (status, text) =
            publish(&target, "mqttv5", qos, topic, payload, &["-i", client_id]).await;
        assert!(status.success(), "{text}");
    }
    sub.finish().await
}

#[tokio::test]
async fn republish_selects_and_transforms_and_survives_a_restart() {
    let mut node = Node::start("rp").await;
    let prefix = node.prefix.clone();
    let created = node
        .create(
            "/api/v4/rules",
            json!({
                "rawsql": format!(
                    "SELECT payload.temp AS t, upper(clientid) AS who, nth(2, split(topic, '/')) AS dev \
                     FROM \"{prefix}/+/temp\" WHERE payload.temp > 20 AND topic =~ '{prefix}/#'"
                ),
                "actions": [{"name": "republish", "params": {
                    "target_topic": format!("{prefix}/out/${{dev}}"),
                    "target_qos": 1,
                    "payload_tmpl": "${who} ${t}"
                }}],
                "description": "hot devices"
            }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["for"], json!([format!("{prefix}/+/temp")]));
    assert_eq!(created["enabled"], true);

    // The republished message reaches a subscriber as any publish would; the cold one
    // is not republished.
    let hot = through(
        &node,
        1,
        &[
            (format!("{prefix}/d1/temp"), r#"{"temp": 3}"#, "dev-a"),
            (format!("{prefix}/d2/temp"), r#"{"temp": 25}"#, "dev-b"),
        ],
    )
    .await;
    assert!(
        hot.iter()
            .any(|l| l == &format!("{prefix}/out/d2 DEV-B 25")),
        "{hot:#?}"
    );
    let metrics = eventually("metrics count the match", || async {
        let r = node.rule_view(&id).await;
        (r["actions"][0]["metrics"][0]["success"] == 1).then_some(r)
    })
    .await;
    assert_eq!(metrics["metrics"][0]["matched"], 1, "{metrics}");
    assert_eq!(metrics["metrics"][0]["no_result"], 1, "{metrics}");

    // Rules live in the node's store: a planned restart keeps them in force.
    node.broker.restart().await;
    let (_, list) = node.api(Method::GET, "/api/v4/rules", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let hot = through(
        &node,
        0,
        &[(format!("{prefix}/d3/temp"), r#"{"temp": 30}"#, "dev-c")],
    )
    .await;
    assert!(
        hot.iter()
            .any(|l| l == &format!("{prefix}/out/d3 DEV-C 30")),
        "{hot:#?}"
    );

    // Disabled: applied at once, nothing republished, the rule stays.
    let (status, changed) = node
        .api(
            Method::PUT,
            &format!("/api/v4/rules/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["data"]["enabled"], false);
    assert_eq!(
        changed["data"]["actions"][0]["id"], metrics["actions"][0]["id"],
        "unchanged actions keep their id"
    );
    let (status, _) = node
        .api(Method::DELETE, &format!("/api/v4/rules/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, gone) = node
        .api(Method::GET, &format!("/api/v4/rules/{id}"), None)
        .await;
    assert_eq!((status, gone["code"].clone()), (404, json!(105)));
}
