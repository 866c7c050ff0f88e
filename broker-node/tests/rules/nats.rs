//! NATS: core publishes on a rendered subject (read by a subscription), and JetStream
//! publishes, acknowledged by a stream of the test's own, through an outage.

use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::json;

use crate::common::unique;
use crate::support::{eventually, Node, Outage, Relay};

const NATS: &str = "127.0.0.1:4222";

async fn client() -> async_nats::Client {
    async_nats::connect(NATS)
        .await
        .expect("NATS (with JetStream) at 127.0.0.1:4222 is needed by this test")
}

#[tokio::test]
async fn nats_gets_rendered_subjects_and_jetstream_keeps_order_through_an_outage() {
    // Subjects and the stream are this test's own (the server is shared).
    let root = unique("skyport_test").replace('-', "_");
    let nats = client().await;
    let mut relay = Relay::start(NATS).await;
    let mut node = Node::start("nats").await;
    let resource = node
        .create(
            "/api/v4/resources",
            json!({"type": "bridge_nats", "config": {"server": relay.addr.to_string(), "token": ""}}),
        )
        .await;
    let resource = resource["id"].as_str().unwrap().to_owned();
    let prefix = node.prefix.clone();

    // Core NATS: a subscriber sees each output once, on its rendered subject.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut subscription = nats.subscribe(format!("{root}.core.>")).await.unwrap();
    nats.flush().await.unwrap();
    let reader = tokio::spawn({
        let received = received.clone();
        async move {
            while let Some(message) = subscription.next().await {
                received.lock().unwrap().push(format!(
                    "{} {}",
                    message.subject,
                    String::from_utf8_lossy(&message.payload)
                ));
            }
        }
    });
    let core = node
        .rule(
            &format!("SELECT payload.n AS n, payload.temp AS temp, clientid FROM \"{prefix}/core\" WHERE payload.n < 10"),
            "data_to_nats",
            json!({"$resource": resource, "subject": format!("{root}.core.${{clientid}}"), "payload_tmpl": "${n}/${temp}"}),
        )
        .await;
    node.publish_numbers("core", "core-dev", 0, 15).await;
    let got = eventually("10 core messages", || async {
        let got = received.lock().unwrap().clone();
        (got.len() >= 10).then_some(got)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        *received.lock().unwrap(),
        (0..10)
            .map(|n| format!("{root}.core.core-dev {n}/{n}"))
            .collect::<Vec<_>>(),
        "exactly once, in order: {got:#?}"
    );
    let r = node.matched(&core, 10).await;
    assert_eq!(r["metrics"][0]["no_result"], 5, "{r}");
    assert_eq!(r["actions"][0]["metrics"][0]["success"], 10, "{r}");
    reader.abort();

    // JetStream: every message acknowledged by the stream; an outage loses nothing.
    let context = jetstream::new(nats.clone());
    let stream_name = root.to_uppercase();
    context
        .create_stream(jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{root}.js.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let rule = node
        .rule(
            &format!("SELECT payload.n AS n, clientid FROM \"{prefix}/a\""),
            "data_to_nats",
            json!({"$resource": resource, "subject": format!("{root}.js.${{clientid}}"), "payload_tmpl": "${n}", "jetstream": true}),
        )
        .await;
    let stored = || async {
        let stream = context.get_stream(&stream_name).await.unwrap();
        let mut stream = stream;
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let m = stream.get_raw_message(seq).await.unwrap();
            out.push(format!(
                "{} {}",
                m.subject,
                String::from_utf8_lossy(&m.payload)
            ));
        }
        out
    };
    let root_ref = &root;
    Outage {
        resource: &resource,
        rule: &rule,
        client_id: "js-dev",
        restart: false,
    }
    .run(
        &mut node,
        &mut relay,
        |n| format!("{root_ref}.js.js-dev {n}"),
        stored,
    )
    .await;
    context.delete_stream(&stream_name).await.unwrap();
}
