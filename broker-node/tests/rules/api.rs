//! The rules API itself: bad statements, actions and resources are refused with precise
//! errors and store nothing; the action catalogue; what a plan allows.

use reqwest::Method;
use serde_json::{json, Value};

use crate::common;
use crate::support::Node;

/// `POST path` with `body` must be refused with `status` and EMQX code `code`, its
/// message containing `says`.
async fn refused(node: &Node, path: &str, body: Value, status: u16, code: u32, says: &str) {
    let (got, e) = node.api(Method::POST, path, Some(body)).await;
    assert_eq!((got, e["code"].clone()), (status, json!(code)), "{e}");
    assert!(e["message"].as_str().unwrap().contains(says), "{e}");
}

#[tokio::test]
async fn bad_rules_and_resources_are_refused_and_nothing_is_stored() {
    let node = Node::start("bad").await;
    let rule = |rawsql: &str, actions: Value| json!({"rawsql": rawsql, "actions": actions});
    let republish = json!([{"name": "republish", "params": {"target_topic": "x"}}]);
    let rules = "/api/v4/rules";

    let cases = [
        (
            rule("SELECT a FROM \"t/#\" WHERE a >", republish.clone()),
            400,
            108,
            "line 1, column 30",
        ),
        (
            rule("SELECT nosuch(a) FROM \"t/#\"", republish.clone()),
            400,
            108,
            "unknown function nosuch",
        ),
        (
            rule("SELECT * FROM \"t/#/x\"", republish.clone()),
            400,
            108,
            "column 15",
        ),
        (
            rule(
                "SELECT * FROM \"t/#\"",
                json!([{"name": "data_to_kafka", "params": {}}]),
            ),
            400,
            108,
            "unknown action",
        ),
        (
            rule(
                "SELECT * FROM \"t/#\"",
                json!([{"name": "data_to_redis", "params": {"cmd": "SET a b"}}]),
            ),
            400,
            107,
            "missing $resource",
        ),
        (
            rule(
                "SELECT * FROM \"t/#\"",
                json!([{"name": "data_to_mysql", "params": {"$resource": "resource:nope", "sql": "INSERT INTO t(a) VALUES (${a})"}}]),
            ),
            400,
            105,
            "no resource",
        ),
        (
            rule("SELECT * FROM \"t/#\"", json!([])),
            400,
            107,
            "at least one action",
        ),
    ];
    for (body, status, code, says) in cases {
        refused(&node, rules, body, status, code, says).await;
    }

    // Services nobody listens on: refused at creation, for every kind of resource.
    let closed = common::free_addr().to_string();
    for (kind, config) in [
        ("backend_redis_single", json!({"server": closed})),
        (
            "backend_mysql",
            json!({"server": closed, "database": "test", "user": "root"}),
        ),
        ("bridge_rabbit", json!({"server": closed})),
        ("bridge_nats", json!({"server": closed})),
    ] {
        refused(
            &node,
            "/api/v4/resources",
            json!({"type": kind, "config": config}),
            400,
            108,
            "unreachable",
        )
        .await;
    }
    refused(
        &node,
        "/api/v4/resources",
        json!({"type": "backend_mongo", "config": {}}),
        400,
        108,
        "unknown resource type",
    )
    .await;

    let (_, rules) = node.api(Method::GET, "/api/v4/rules", None).await;
    assert_eq!(rules["data"], json!([]), "{rules}");
    let (_, resources) = node.api(Method::GET, "/api/v4/resources", None).await;
    assert_eq!(resources["data"], json!([]), "{resources}");

    let (status, catalogue) = node.api(Method::GET, "/api/v4/actions", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = catalogue["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "republish",
            "data_to_webserver",
            "data_to_redis",
            "data_to_pgsql",
            "data_to_mysql",
            "data_to_rabbit",
            "data_to_nats",
            "offline_msg_to_redis"
        ]
    );
}

#[tokio::test]
async fn the_serverless_plan_allows_webhook_and_republish_and_four_rules() {
    let node = Node::start_with_limits("plan", json!({"plan": "serverless"})).await;
    let problem = |answer: &reqwest::Response| {
        answer
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for kind in [
        "backend_redis_single",
        "backend_mysql",
        "bridge_rabbit",
        "bridge_nats",
    ] {
        let answer = node
            .broker
            .api(Method::POST, "/api/v4/resources")
            .json(&json!({"type": kind, "config": {"server": "127.0.0.1:1"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 409);
        assert_eq!(
            problem(&answer).as_deref(),
            Some("application/problem+json")
        );
        let e: Value = answer.json().await.unwrap();
        assert_eq!(e["code"], "plan_not_supported", "{e}");
        assert_eq!(e["status"], 409, "{e}");
        assert!(e["detail"].as_str().unwrap().contains(kind), "{e}");
    }
    let (status, e) = node
        .api(
            Method::POST,
            "/api/v4/rules",
            Some(json!({"rawsql": "SELECT * FROM \"plan/x\"", "actions": [{"name": "data_to_nats", "params": {"$resource": "resource:x", "subject": "s"}}]})),
        )
        .await;
    assert_eq!(
        (status, e["code"].clone()),
        (409, json!("plan_not_supported")),
        "{e}"
    );
    let rule = |n: usize| json!({"rawsql": format!("SELECT * FROM \"plan/{n}\""), "actions": [{"name": "republish", "params": {"target_topic": "x"}}]});
    for n in 0..4 {
        node.create("/api/v4/rules", rule(n)).await;
    }
    let (status, e) = node.api(Method::POST, "/api/v4/rules", Some(rule(4))).await;
    assert_eq!(
        (status, e["code"].clone()),
        (409, json!("plan_limit_reached")),
        "{e}"
    );
    assert!(e["detail"].as_str().unwrap().contains("4 rules"), "{e}");
    let (_, rules) = node.api(Method::GET, "/api/v4/rules", None).await;
    assert_eq!(rules["data"].as_array().unwrap().len(), 4);
}
