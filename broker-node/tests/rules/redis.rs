//! Redis: the command action (through an outage and a restart), the bounded buffer's
//! overflow, and offline messages.

use reqwest::Method;
use serde_json::json;

use crate::common::{publish, unique, Subscriber};
use crate::support::{eventually, Node, Outage, Relay};

const REDIS: &str = "127.0.0.1:6379";

/// A list key of this test's own in the machine's Redis, deleted afterwards.
struct List {
    conn: redis::aio::MultiplexedConnection,
    key: String,
}

impl List {
    async fn new(key: String) -> Self {
        let client = redis::Client::open(format!("redis://{REDIS}")).unwrap();
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis at 127.0.0.1:6379 is needed by this test");
        Self { conn, key }
    }

    async fn items(&self) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(&self.key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap()
    }

    async fn remove(self) {
        let _: () = redis::cmd("DEL")
            .arg(&self.key)
            .query_async(&mut self.conn.clone())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn redis_sink_survives_an_outage_and_a_restart_in_order() {
    let list = List::new(unique("skyport-test:rules")).await;
    let mut relay = Relay::start(REDIS).await;
    let mut node = Node::start("rd").await;
    let resource = node
        .resource(
            "backend_redis_single",
            json!({"server": relay.addr.to_string()}),
        )
        .await;
    let rule = node
        .rule(
            &format!("SELECT payload.n AS n, clientid FROM \"{}/#\"", node.prefix),
            "data_to_redis",
            json!({"$resource": resource, "cmd": format!("RPUSH {} ${{n}}:${{clientid}}", list.key)}),
        )
        .await;
    Outage {
        resource: &resource,
        rule: &rule,
        client_id: "redis-dev",
        restart: true,
    }
    .run(
        &mut node,
        &mut relay,
        |n| format!("{n}:redis-dev"),
        || list.items(),
    )
    .await;
    list.remove().await;
}

#[tokio::test]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let list = List::new(unique("skyport-test:overflow")).await;
    let mut relay = Relay::start(REDIS).await;
    let node = Node::start_with_limits("of", json!({"rule_buffer_messages": 5})).await;
    let resource = node
        .resource(
            "backend_redis_single",
            json!({"server": relay.addr.to_string()}),
        )
        .await;
    let rule = node
        .rule(
            &format!("SELECT payload.n AS n FROM \"{}/#\"", node.prefix),
            "data_to_redis",
            json!({"$resource": resource, "cmd": format!("RPUSH {} ${{n}}", list.key)}),
        )
        .await;
    relay.down().await;
    node.publish_numbers("a", "of-dev", 0, 12).await;
    let r = eventually("7 dropped", || async {
        let r = node.rule_view(&rule).await;
        (r["actions"][0]["metrics"][0]["dropped"] == 7).then_some(r)
    })
    .await;
    assert_eq!(r["actions"][0]["metrics"][0]["queued"], 5, "{r}");
    relay.up().await;
    eventually("the newest 5 delivered", || async {
        (list.items().await.len() >= 5).then_some(())
    })
    .await;
    assert_eq!(list.items().await, ["7", "8", "9", "10", "11"]);
    let metrics = node
        .broker
        .api(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("skyport_broker_actions_dropped_total 7"),
        "{metrics}"
    );
    list.remove().await;
}

#[tokio::test]
async fn offline_messages_wait_in_redis_until_the_device_subscribes() {
    let node = Node::start("offline").await;
    let resource = node
        .resource("backend_redis_single", json!({"server": REDIS}))
        .await;
    let prefix = &node.prefix;
    let device = unique("offline-dev");
    let params = json!({"$resource": resource, "ttl": 600});
    node.rule(
        &format!("SELECT * FROM \"{prefix}/#\""),
        "offline_msg_to_redis",
        params.clone(),
    )
    .await;
    node.rule(
        &format!("SELECT * FROM \"$events/session_subscribed\" WHERE clientid = '{device}'"),
        "offline_msg_to_redis",
        params,
    )
    .await;

    // The device is away; three QoS 1 messages and one QoS 0 message are published.
    let topic = format!("{prefix}/{device}/cmd");
    let list = List::new(format!("mqtt:offline:{topic}")).await;
    let target = node.broker.mqtt("tcp");
    for (qos, payload) in [(1, "one"), (0, "not kept"), (2, "two"), (1, "three")] {
        let (status, out) = publish(&target, "mqttv311", qos, &topic, payload, &[]).await;
        assert!(status.success(), "{out}");
    }
    eventually("3 messages staged in Redis", || async {
        (list.items().await.len() >= 3).then_some(())
    })
    .await;

    // [MQTT-4.6.0-6] the staged messages arrive in the order they were published.
    let sub = Subscriber::start(
        &target,
        "mqttv311",
        1,
        &format!("{prefix}/{device}/#"),
        &["-i", &device, "-C", "3"],
    )
    .await;
    let output = sub.finish().await;
    let payloads: Vec<&String> = output
        .iter()
        .filter(|l| ["one", "two", "three", "not kept"].contains(&l.as_str()))
        .collect();
    assert_eq!(payloads, ["one", "two", "three"], "{output:#?}");
    eventually("staged messages removed", || async {
        list.items().await.is_empty().then_some(())
    })
    .await;
    let _: () = redis::cmd("SREM")
        .arg("mqtt:offline:topics")
        .arg(&topic)
        .query_async(&mut list.conn.clone())
        .await
        .unwrap();
}
