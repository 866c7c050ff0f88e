//! Device event topics: `$events/client_connected`, `$events/client_disconnected`,
//! `$events/session_subscribed`, `$events/session_unsubscribed` and
//! `$events/message_dropped`, with EMQX's JSON field names (`clientid`, `username`,
//! `peername`, `proto_ver`, `reason`, `topic`, `qos`, `timestamp` in ms).
//!
//! Events are published at QoS 0 by the node itself, in order, by one task. Clients may
//! subscribe to them (subject to the ACL) but never publish under [`PUBLIC`]; filters
//! starting with a wildcard never match them [MQTT-4.7.2-1].

use serde_json::json;
use tokio::sync::mpsc;

use super::message::Message;
use super::Broker;
use crate::mqtt::Version;
use crate::security::ClientInfo;

/// The prefix of event topics.
pub const PUBLIC: &str = "$events/";
/// Events waiting to be published; beyond this, new ones are dropped (and logged).
const QUEUE: usize = 10_000;

/// The sender of events. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<(String, serde_json::Value)>,
}

/// Publishes queued events until every sender is gone.
pub async fn publish_all(broker: Broker, mut rx: mpsc::Receiver<(String, serde_json::Value)>) {
    while let Some((event, payload)) = rx.recv().await {
        broker.rules.on_event(&event, &payload);
        broker.publish_internal(format!("{PUBLIC}{event}"), payload.to_string().into());
    }
}

impl Events {
    /// The sender and the queue [`publish_all`] drains.
    pub fn channel() -> (Self, mpsc::Receiver<(String, serde_json::Value)>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (Self { queue }, rx)
    }

    fn send(&self, event: &str, payload: serde_json::Value) {
        if self.queue.try_send((event.to_owned(), payload)).is_err() {
            tracing::warn!(%event, "event queue full; event dropped");
        }
    }

    pub fn connected(&self, client: &ClientInfo, version: Version, keep_alive: u16) {
        self.send(
            "client_connected",
            json!({
                "clientid": client.client_id,
                "username": client.username,
                "peername": client.peer.to_string(),
                "proto_ver": proto_ver(version),
                "keepalive": keep_alive,
                "timestamp": now_ms(),
            }),
        );
    }

    pub fn disconnected(&self, client: &ClientInfo, version: Version, reason: &str) {
        self.send(
            "client_disconnected",
            json!({
                "clientid": client.client_id,
                "username": client.username,
                "peername": client.peer.to_string(),
                "proto_ver": proto_ver(version),
                "reason": reason,
                "timestamp": now_ms(),
            }),
        );
    }

    pub fn subscribed(&self, client: &ClientInfo, topic: &str, qos: u8) {
        self.send(
            "session_subscribed",
            json!({
                "clientid": client.client_id,
                "username": client.username,
                "peername": client.peer.to_string(),
                "topic": topic,
                "qos": qos,
                "timestamp": now_ms(),
            }),
        );
    }

    pub fn unsubscribed(&self, client: &ClientInfo, topic: &str) {
        self.send(
            "session_unsubscribed",
            json!({
                "clientid": client.client_id,
                "username": client.username,
                "peername": client.peer.to_string(),
                "topic": topic,
                "timestamp": now_ms(),
            }),
        );
    }
}

impl Events {
    /// A message for `client_id`'s offline session was dropped: its queue was full.
    pub fn message_dropped(&self, client_id: &str, message: &Message) {
        if message.topic.starts_with(PUBLIC) {
            // Announcing a dropped event could drop another one.
            return;
        }
        self.send(
            "message_dropped",
            json!({
                "clientid": client_id,
                "topic": &*message.topic,
                "qos": message.qos as u8,
                "reason": "queue_full",
                "timestamp": now_ms(),
            }),
        );
    }
}

fn proto_ver(version: Version) -> u8 {
    match version {
        Version::V3_1 => 3,
        Version::V3_1_1 => 4,
        Version::V5 => 5,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
