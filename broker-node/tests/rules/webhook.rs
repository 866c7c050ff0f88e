//! The webhook action against an HTTP receiver this test runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::{eventually, Node};

/// `(device path segment, x-token header, body)` of each request.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// An HTTP receiver on a free port taking `POST /hook/{device}`.
async fn receiver() -> (std::net::SocketAddr, Received, tokio::task::JoinHandle<()>) {
    let received: Received = Arc::default();
    let app = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook/{device}",
            axum::routing::post(
                move |axum::extract::Path(device): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: String| {
                    let received = received.clone();
                    async move {
                        let token = headers
                            .get("x-token")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        received.lock().unwrap().push((device, token, body));
                        "ok"
                    }
                },
            ),
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received, server)
}

#[tokio::test]
async fn webhook_gets_each_matched_message_rendered() {
    let (hook, received, server) = receiver().await;
    let node = Node::start("wh").await;
    let resource = node
        .create(
            "/api/v4/resources",
            json!({"type": "web_hook", "config": {"url": format!("http://{hook}/hook"), "headers": {"x-token": "s3"}, "token": "secret-token"}}),
        )
        .await;
    assert_eq!(
        resource["config"]["token"], "******",
        "secrets are never shown: {resource}"
    );
    let rule = node
        .rule(
            &format!(
                "SELECT payload.n AS n, clientid FROM \"{}/#\" WHERE payload.n >= 0",
                node.prefix
            ),
            "data_to_webserver",
            json!({"$resource": resource["id"], "path": "${clientid}", "body": "{\"n\": ${n}}"}),
        )
        .await;
    node.publish_numbers("x", "hook-dev", 0, 20).await;
    let got = eventually("20 webhook calls", || async {
        let got = received.lock().unwrap().clone();
        (got.len() >= 20).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 20, "exactly once per match");
    for (i, (device, token, body)) in got.iter().enumerate() {
        assert_eq!(device, "hook-dev");
        assert_eq!(token, "s3");
        assert_eq!(
            serde_json::from_str::<Value>(body).unwrap(),
            json!({"n": i}),
            "in order"
        );
    }
    let r = node.rule_view(&rule).await;
    assert_eq!(r["metrics"][0]["matched"], 20, "{r}");
    assert_eq!(r["actions"][0]["metrics"][0]["success"], 20, "{r}");
    server.abort();
}
