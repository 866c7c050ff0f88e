//! RabbitMQ: a rule's outputs published to an exchange, routed by a rendered routing
//! key into a queue this test reads, through an outage.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;

use crate::common::unique;
use crate::support::{Node, Outage, Relay};

const RABBIT: &str = "127.0.0.1:5672";

/// A consumer of an exclusive queue bound to `exchange` with `binding`; what it got,
/// oldest first, as `routing key payload`.
struct Queue {
    connection: Connection,
    exchange: String,
    received: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Queue {
    async fn bind(exchange: &str, binding: &str) -> Self {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let connection =
            Connection::connect(&format!("amqp://guest:guest@{RABBIT}/%2f"), properties)
                .await
                .expect("RabbitMQ at 127.0.0.1:5672 (guest/guest) is needed by this test");
        let channel = connection.create_channel().await.unwrap();
        // The action declares the same exchange; declaring it here first lets the queue
        // be bound before anything is published.
        channel
            .exchange_declare(
                exchange,
                ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = channel
            .queue_declare(
                "",
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.name().as_str(),
                exchange,
                binding,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.name().as_str(),
                "skyport-test",
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let task = tokio::spawn({
            let received = received.clone();
            async move {
                while let Some(Ok(delivery)) = consumer.next().await {
                    received.lock().unwrap().push(format!(
                        "{} {}",
                        delivery.routing_key,
                        String::from_utf8_lossy(&delivery.data)
                    ));
                }
            }
        });
        Self {
            connection,
            exchange: exchange.to_owned(),
            received,
            task,
        }
    }

    fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    async fn remove(self) {
        self.task.abort();
        let channel = self.connection.create_channel().await.unwrap();
        channel
            .exchange_delete(&self.exchange, ExchangeDeleteOptions::default())
            .await
            .unwrap();
        self.connection.close(200, "done").await.unwrap();
    }
}

#[tokio::test]
async fn rabbitmq_gets_routed_messages_in_order_through_an_outage() {
    let exchange = unique("skyport-test-rules");
    let queue = Queue::bind(&exchange, "devices.#").await;
    let mut relay = Relay::start(RABBIT).await;
    let mut node = Node::start("amqp").await;
    let resource = node
        .create(
            "/api/v4/resources",
            json!({"type": "bridge_rabbit", "config": {
                "server": relay.addr.to_string(), "username": "guest", "password": "guest"
            }}),
        )
        .await;
    assert_eq!(resource["config"]["password"], "******", "{resource}");
    let rule = node
        .rule(
            &format!(
                "SELECT payload.n AS n, lower(clientid) AS who FROM \"{}/#\" WHERE payload.n >= 0",
                node.prefix
            ),
            "data_to_rabbit",
            json!({
                "$resource": resource["id"],
                "exchange": exchange,
                "exchange_type": "topic",
                "routing_key": "devices.${who}",
                "payload_tmpl": "${n}:${who}"
            }),
        )
        .await;
    Outage {
        resource: resource["id"].as_str().unwrap(),
        rule: &rule,
        client_id: "Rabbit-Dev",
        restart: false,
    }
    .run(
        &mut node,
        &mut relay,
        |n| format!("devices.rabbit-dev {n}:rabbit-dev"),
        || async { queue.received() },
    )
    .await;
    queue.remove().await;
}

#[tokio::test]
async fn resource_secrets_are_sealed_at_rest_and_open_after_a_restart() {
    let mut node = Node::start("sealed").await;
    // A webhook's token and a RabbitMQ password.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = unique("tok-never-stored");
    node.resource(
        "web_hook",
        json!({"url": format!("http://{}/hook", listener.local_addr().unwrap()), "token": token}),
    )
    .await;
    let rabbit = node
        .resource(
            "bridge_rabbit",
            json!({"server": RABBIT, "username": "guest", "password": "guest"}),
        )
        .await;
    node.broker.restart().await;
    // RabbitMQ refuses a wrong password: alive after the restart means the stored
    // password was opened again.
    assert!(node.resource_alive(&rabbit).await);
    let (_, shown) = node
        .api(
            reqwest::Method::GET,
            &format!("/api/v4/resources/{rabbit}"),
            None,
        )
        .await;
    assert_eq!(shown["data"]["config"]["password"], "******", "{shown}");
    let stored = std::fs::read(node.broker.dir.path().join("rules.redb")).unwrap();
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains(&rabbit), "the resource is in the store");
    assert!(
        !stored.contains(r#""password":"guest""#),
        "the password is not stored in the clear"
    );
    assert!(
        !stored.contains(&token),
        "the token is not stored in the clear"
    );
    assert!(stored.contains("aes256gcm:"), "they are stored sealed");
}
