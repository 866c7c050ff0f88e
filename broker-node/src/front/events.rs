//! Device event topics: `$events/client_connected`, `$events/client_disconnected`,
//! `$events/session_subscribed` and `$events/session_unsubscribed`, with EMQX's JSON
//! field names (`clientid`, `username`, `peername`, `proto_ver`, `reason`, `topic`, `qos`,
//! `timestamp` in ms).
//!
//! rumqttd does not serve `$`-topics (a SUBSCRIBE to one is never answered), so events
//! travel through the engine under [`INTERNAL`], a prefix clients may not use: the gate
//! renames a client's `$events/…` filters to it and renames deliveries back. Events are
//! published at QoS 0 through the node's own engine connection, in order, by one task.

use serde_json::json;
use tokio::sync::mpsc;

use super::proxy::Version;
use crate::publisher::{Message, Publisher};
use crate::security::ClientInfo;

/// What clients subscribe to.
pub const PUBLIC: &str = "$events/";
/// What the engine carries; reserved (clients may neither publish nor subscribe to it).
pub const INTERNAL: &str = "skyport-internal-events/";
/// Events waiting to be published; beyond this, new ones are dropped (and logged).
const QUEUE: usize = 10_000;

/// The engine-side name of a client's `$events/…` filter, if it is one.
pub fn to_internal(filter: &str) -> Option<String> {
    filter
        .strip_prefix(PUBLIC)
        .map(|rest| format!("{INTERNAL}{rest}"))
}

/// The client-side name of an engine topic under [`INTERNAL`], if it is one.
pub fn to_public(topic: &[u8]) -> Option<String> {
    let rest = topic.strip_prefix(INTERNAL.as_bytes())?;
    Some(format!("{PUBLIC}{}", String::from_utf8_lossy(rest)))
}

/// Whether a client's topic or filter names the reserved prefix.
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with(INTERNAL) || topic.starts_with(PUBLIC)
}

/// The sender of events. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<(String, serde_json::Value)>,
}

impl Events {
    /// Starts the task that publishes events through `publisher`.
    pub fn start(publisher: Publisher) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, mut rx) = mpsc::channel::<(String, serde_json::Value)>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some((event, payload)) = rx.recv().await {
                let message = Message {
                    topic: format!("{INTERNAL}{event}"),
                    payload: payload.to_string().into_bytes(),
                    qos: 0,
                    retain: false,
                };
                if let Err(e) = publisher.publish_uncounted(&message).await {
                    tracing::warn!(%event, error = %e, "event not published");
                }
            }
        });
        (Self { queue }, task)
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
        if is_reserved(&message.topic) {
            // Announcing a dropped event could drop another one.
            return;
        }
        self.send(
            "message_dropped",
            json!({
                "clientid": client_id,
                "topic": message.topic,
                "qos": message.qos,
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
