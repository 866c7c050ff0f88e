//! Application messages as the broker carries them: through the routing engine (an
//! envelope around the payload) and in the session store.
//!
//! The engine only sees a topic and opaque bytes. The envelope in front of the payload
//! carries what MQTT needs and the engine must not touch: the publish QoS (delivered QoS
//! is `min(publish QoS, granted QoS)`), the RETAIN flag as published (Retain As
//! Published), the publisher's identity (No Local), the v5 properties, the message's
//! expiry and, for durable messages, its place in the inbound log.

use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::mqtt::{decode, encode, ByteString, PublishProperties, QoS};

const MAGIC: u8 = 0xA5;
const FLAG_RETAIN: u8 = 0b100;
const FLAG_PROPERTIES: u8 = 0b1000;
const FLAG_INBOUND: u8 = 0b1_0000;
const FLAG_EXPIRES: u8 = 0b10_0000;

/// One application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic as clients see it, shared by every copy of the message (and with the
    /// buffer it arrived in).
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    /// RETAIN as published.
    pub retain: bool,
    /// v5 publish properties (without topic alias and subscription identifiers).
    pub properties: Option<Box<PublishProperties>>,
    /// Who published it: [`origin_of`] the publisher's client id (0 for the node itself).
    pub origin: u64,
    /// Its sequence in the inbound log, when it was logged for persistent sessions.
    pub inbound: Option<u64>,
    /// When it expires (Unix ms), from the v5 Message Expiry Interval.
    pub expires_at: Option<u64>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The origin number of a client id (No Local, and which ingress link keeps its order).
pub fn origin_of(client_id: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    client_id.hash(&mut hasher);
    hasher.finish() | 1
}

impl Message {
    /// A message as a client published it.
    pub fn published(
        topic: impl Into<ByteString>,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        mut properties: PublishProperties,
        origin: u64,
    ) -> Self {
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expires_at = properties
            .message_expiry_interval
            .map(|secs| now_ms() + u64::from(secs) * 1000);
        let properties = (properties != PublishProperties::default()).then(|| Box::new(properties));
        Self {
            topic: topic.into(),
            payload,
            qos,
            retain,
            properties,
            origin,
            inbound: None,
            expires_at,
        }
    }

    /// Whether its Message Expiry Interval has passed at `now` (Unix ms).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The properties to send with it at `now`: the expiry interval counts down
    /// [MQTT-3.3.2-6].
    pub fn outgoing_properties(&self, now: u64) -> PublishProperties {
        let mut properties = self.properties.as_deref().cloned().unwrap_or_default();
        if let Some(at) = self.expires_at {
            properties.message_expiry_interval = Some((at.saturating_sub(now) / 1000) as u32);
        }
        properties
    }

    /// The envelope: what the engine carries as the payload.
    pub fn envelope(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.payload.len() + 32);
        self.write_envelope(&mut buf);
        buf.freeze()
    }

    fn write_envelope(&self, buf: &mut BytesMut) {
        let mut flags = self.qos as u8;
        if self.retain {
            flags |= FLAG_RETAIN;
        }
        if self.properties.is_some() {
            flags |= FLAG_PROPERTIES;
        }
        if self.inbound.is_some() {
            flags |= FLAG_INBOUND;
        }
        if self.expires_at.is_some() {
            flags |= FLAG_EXPIRES;
        }
        buf.put_u8(MAGIC);
        buf.put_u8(flags);
        buf.put_u64(self.origin);
        if let Some(seq) = self.inbound {
            buf.put_u64(seq);
        }
        if let Some(at) = self.expires_at {
            buf.put_u64(at);
        }
        if let Some(properties) = &self.properties {
            encode::write_publish_properties(properties, buf);
        }
        buf.put_slice(&self.payload);
    }

    /// Reads back an envelope delivered on `topic` (the client-side topic).
    pub fn from_envelope(topic: ByteString, mut envelope: Bytes) -> Option<Self> {
        if envelope.len() < 10 || envelope[0] != MAGIC {
            return None;
        }
        envelope.advance(1);
        let flags = envelope.get_u8();
        let qos = QoS::from_u8(flags & 0b11)?;
        let origin = envelope.get_u64();
        let inbound = if flags & FLAG_INBOUND != 0 {
            (envelope.len() >= 8).then(|| envelope.get_u64())
        } else {
            None
        };
        let expires_at = if flags & FLAG_EXPIRES != 0 {
            (envelope.len() >= 8).then(|| envelope.get_u64())
        } else {
            None
        };
        let properties = if flags & FLAG_PROPERTIES != 0 {
            Some(Box::new(
                decode::decode_publish_properties(&mut envelope).ok()?,
            ))
        } else {
            None
        };
        Some(Self {
            topic,
            payload: envelope,
            qos,
            retain: flags & FLAG_RETAIN != 0,
            properties,
            origin,
            inbound,
            expires_at,
        })
    }

    /// The stored form: topic, then envelope.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut buf = BytesMut::with_capacity(self.topic.len() + self.payload.len() + 34);
        buf.put_u16(self.topic.len() as u16);
        buf.put_slice(self.topic.as_bytes());
        self.write_envelope(&mut buf);
        buf.to_vec()
    }

    /// Reads back [`Self::to_stored`].
    pub fn from_stored(stored: &[u8]) -> Option<Self> {
        let mut bytes = Bytes::copy_from_slice(stored);
        if bytes.len() < 2 {
            return None;
        }
        let len = usize::from(bytes.get_u16());
        if bytes.len() < len {
            return None;
        }
        let topic = ByteString::try_from(bytes.split_to(len)).ok()?;
        Self::from_envelope(topic, bytes)
    }
}

/// Marks engine topics and filters that clients cannot name directly.
const ESCAPE: char = '\u{1}';

/// The engine's name for a topic. The engine refuses filters starting with `$` and never
/// matches such topics, so `$…` (and anything already starting with the escape) gets an
/// escape character in front; the node applies the `$` rule itself [MQTT-4.7.2-1].
pub fn engine_topic(topic: &ByteString) -> Bytes {
    if topic.starts_with(['$', ESCAPE]) {
        escaped(topic)
    } else {
        topic.as_bytes().clone()
    }
}

fn escaped(topic: &str) -> Bytes {
    let mut escaped = String::with_capacity(topic.len() + 1);
    escaped.push(ESCAPE);
    escaped.push_str(topic);
    Bytes::from(escaped)
}

/// The client-side name of an engine topic (sharing its buffer).
pub fn public_topic(engine: &Bytes) -> Option<ByteString> {
    let start = usize::from(engine.first() == Some(&(ESCAPE as u8)));
    ByteString::try_from(engine.slice(start..)).ok()
}

/// The engine's name for a filter: escaped like [`engine_topic`].
fn engine_filter_path(filter: &str) -> String {
    if filter.starts_with(['$', ESCAPE]) {
        format!("{ESCAPE}{filter}")
    } else {
        filter.to_owned()
    }
}

/// The engine's name for a client's filter (shared ones included). The engine keys shared
/// groups by group name alone, so the group is made unique per filter.
pub fn engine_filter(filter: &str) -> String {
    match crate::mqtt::topic::parse_shared(filter) {
        Some((group, inner)) => {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            inner.hash(&mut hasher);
            let inner = engine_filter_path(inner);
            format!("$share/{group}~{:x}/{inner}", hasher.finish())
        }
        None => engine_filter_path(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message::published(
            "a/b",
            Bytes::from_static(b"hello"),
            QoS::AtLeastOnce,
            true,
            PublishProperties {
                content_type: Some("text/plain".into()),
                user_properties: vec![("k".into(), "v".into())],
                message_expiry_interval: Some(60),
                ..Default::default()
            },
            origin_of("c1"),
        )
    }

    #[test]
    fn envelope_round_trips() {
        let mut m = message();
        m.inbound = Some(42);
        let back = Message::from_envelope("a/b".into(), m.envelope()).unwrap();
        assert_eq!(back, m);
        let plain = Message::published(
            "t",
            Bytes::new(),
            QoS::AtMostOnce,
            false,
            PublishProperties::default(),
            0,
        );
        assert_eq!(
            Message::from_envelope("t".into(), plain.envelope()).unwrap(),
            plain
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let m = message();
        assert_eq!(Message::from_stored(&m.to_stored()).unwrap(), m);
        assert!(Message::from_stored(&[0, 9, b'x']).is_none());
    }

    #[test]
    fn dollar_topics_are_escaped_for_the_engine() {
        let topic = |t: &'static str| ByteString::from_static(t);
        assert_eq!(&engine_topic(&topic("a/b"))[..], b"a/b");
        assert_eq!(
            &engine_topic(&topic("$events/x"))[..],
            "\u{1}$events/x".as_bytes()
        );
        assert_eq!(
            public_topic(&Bytes::from_static("\u{1}$events/x".as_bytes())).unwrap(),
            "$events/x"
        );
        // A client cannot reach escaped names by using the escape itself.
        assert_eq!(
            &engine_topic(&topic("\u{1}$events/x"))[..],
            "\u{1}\u{1}$events/x".as_bytes()
        );
        assert_eq!(engine_filter("$events/#"), "\u{1}$events/#");
        assert_eq!(engine_filter("a/+"), "a/+");
        assert!(engine_filter("$share/g/a/+").starts_with("$share/g~"));
        assert!(engine_filter("$share/g/a/+").ends_with("/a/+"));
    }
}
