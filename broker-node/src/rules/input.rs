//! What rules run on: published messages and the node's device events, as EMQX names
//! their fields.

use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// The `$events/…` topics a rule may select from (`FROM "$events/<name>"`).
pub const EVENTS: &[&str] = &[
    "client_connected",
    "client_disconnected",
    "session_subscribed",
    "session_unsubscribed",
    "message_dropped",
];

/// One thing that happened on the node.
pub enum Input {
    /// A message a client (or the HTTP API) published.
    Message {
        /// Shares the published message's buffer (no copy per input).
        topic: bytestring::ByteString,
        payload: Bytes,
        qos: u8,
        retain: bool,
        clientid: String,
        username: Option<String>,
        peer: Option<SocketAddr>,
        at_ms: u64,
    },
    /// A device event: its name (`client_connected`, …) and its JSON payload.
    Event { name: String, payload: Value },
}

impl Input {
    /// Whether `source` (one `FROM` entry) selects this input.
    pub fn selected_by(&self, source: &str) -> bool {
        match self {
            Input::Message { topic, .. } => {
                !source.starts_with("$events/") && crate::mqtt::topic::matches(topic, source)
            }
            Input::Event { name, .. } => source
                .strip_prefix("$events/")
                .is_some_and(|event| event == name),
        }
    }

    /// The fields SQL sees.
    pub fn fields(&self) -> Map<String, Value> {
        match self {
            Input::Message {
                topic,
                payload,
                qos,
                retain,
                clientid,
                username,
                peer,
                at_ms,
            } => {
                let value = json!({
                    "id": format!("{at_ms:013x}{:08x}", crc(topic, payload)),
                    "event": "message.publish",
                    "topic": &**topic,
                    "payload": String::from_utf8_lossy(payload),
                    "qos": qos,
                    "flags": {"retain": retain, "dup": false},
                    "retain": retain,
                    "clientid": clientid,
                    "username": username,
                    "peerhost": peer.map(|p| p.ip().to_string()),
                    "timestamp": at_ms,
                    "publish_received_at": at_ms,
                    "node": node(),
                });
                into_map(value)
            }
            Input::Event { name, payload } => {
                let mut fields = match payload {
                    Value::Object(map) => map.clone(),
                    _ => Map::new(),
                };
                fields.insert("event".into(), Value::String(event_name(name)));
                fields.insert("node".into(), Value::String(node()));
                let timestamp = fields.get("timestamp").cloned().unwrap_or(Value::Null);
                match name.as_str() {
                    "client_connected" => {
                        fields.insert("connected_at".into(), timestamp);
                    }
                    "client_disconnected" => {
                        fields.insert("disconnected_at".into(), timestamp);
                    }
                    _ => {}
                }
                if let Some(Value::String(peer)) = fields.get("peername") {
                    if let Ok(addr) = peer.parse::<SocketAddr>() {
                        fields.insert("peerhost".into(), Value::String(addr.ip().to_string()));
                    }
                }
                fields
            }
        }
    }
}

/// `client_connected` → `client.connected`, as EMQX's `event` field.
fn event_name(name: &str) -> String {
    name.replacen('_', ".", 1)
}

/// The node's name (read once: every input carries it).
fn node() -> String {
    static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NODE.get_or_init(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| "skyport@127.0.0.1".to_owned())
    })
    .clone()
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn crc(topic: &str, payload: &[u8]) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish() as u32
}
