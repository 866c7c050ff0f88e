//! One MQTT session's state: subscriptions, the queue of messages waiting to be sent, the
//! messages in flight, and its record in the session store.
//!
//! A session is owned by exactly one task at a time — its client's connection while
//! connected, its parked task while not — so nothing here locks.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::message::{now_ms, Message};
use crate::engine::{Deliveries, Subscriber};
use crate::mqtt::{encode, Ack, AckProperties, Packet, Publish, QoS, SubscriptionOptions, Version};
use crate::store::Op;

/// One subscription of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// As the client wrote it (`$share/…` included).
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    /// v5 Subscription Identifier.
    pub identifier: Option<u32>,
}

impl Subscription {
    pub fn new(filter: String, options: SubscriptionOptions, identifier: Option<u32>) -> Self {
        Self {
            filter,
            qos: options.qos as u8,
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            retain_handling: options.retain_handling,
            identifier,
        }
    }

    /// The filter messages are matched against (the part after `$share/<group>/`).
    pub fn matching_filter(&self) -> &str {
        crate::mqtt::topic::parse_shared(&self.filter).map_or(self.filter.as_str(), |(_, f)| f)
    }

    pub fn is_shared(&self) -> bool {
        crate::mqtt::topic::parse_shared(&self.filter).is_some()
    }

    fn granted(&self) -> QoS {
        QoS::from_u8(self.qos).unwrap_or(QoS::AtMostOnce)
    }
}

/// A message waiting to be sent to the session's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub message: Message,
    /// QoS it is delivered with: min(publish QoS, granted QoS).
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    pub identifier: Option<u32>,
    /// Sent because of a new subscription (a retained message), which metering counts
    /// apart.
    pub retained_delivery: bool,
    /// Its row in the session store (persistent sessions, QoS > 0).
    pub position: Option<u64>,
}

/// A QoS 1/2 message sent and not yet fully acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflight {
    pub pkid: u16,
    pub queued: Queued,
    /// QoS 2: PUBREC received and PUBREL sent; only PUBCOMP is awaited.
    pub released: bool,
}

/// What the session's store record holds (its queue rows are separate).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionRecord {
    pub expiry: u32,
    /// When the client last disconnected (Unix ms); 0 while connected.
    pub disconnected_at: u64,
    pub subscriptions: Vec<Subscription>,
    /// Inbound-log sequence when each filter was subscribed: recovery after a crash only
    /// replays later messages to it.
    #[serde(default)]
    pub subscribed_at: HashMap<String, u64>,
}

/// How the current connection receives messages.
#[derive(Debug, Clone, Copy)]
pub struct Receiver {
    pub version: Version,
    /// How many QoS 1/2 messages may be in flight at once.
    pub window: usize,
    /// Largest packet the client accepts.
    pub max_packet_size: usize,
}

/// What happened to one delivery offered to the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    Queued,
    /// Not for this session (No Local, `$` rule, stale subscription, offline QoS 0).
    Skipped,
    /// The queue was full: the oldest message was dropped for it.
    DroppedOldest(Box<Message>),
}

/// One session.
pub struct Session {
    pub client_id: String,
    /// Seconds the session outlives its connection; 0 ends it at disconnect.
    pub expiry: u32,
    pub subscriptions: HashMap<u32, Subscription>,
    by_filter: HashMap<String, u32>,
    next_subscription: u32,
    pub subscribed_at: HashMap<String, u64>,
    pub queue: VecDeque<Queued>,
    pub inflight: VecDeque<Inflight>,
    /// QoS 2 packet ids received (PUBREC sent) and not yet released by the client; kept
    /// in the store for persistent sessions ([`Self::received_qos2`]).
    incoming_qos2: HashSet<u16>,
    next_pkid: u16,
    next_position: u64,
    /// The session's link to the engine, once it subscribes.
    pub subscriber: Option<Subscriber>,
    pub deliveries: Option<Deliveries>,
    /// Whether the session is kept in the store (expiry > 0 when last decided).
    stored: bool,
}

impl Session {
    pub fn new(client_id: String, expiry: u32) -> Self {
        Self {
            client_id,
            expiry,
            subscriptions: HashMap::new(),
            by_filter: HashMap::new(),
            next_subscription: 1,
            subscribed_at: HashMap::new(),
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            incoming_qos2: HashSet::new(),
            next_pkid: 1,
            next_position: 1,
            subscriber: None,
            deliveries: None,
            stored: false,
        }
    }

    pub fn persistent(&self) -> bool {
        self.expiry > 0
    }

    /// Rebuilds a session from its store record, queue rows and the QoS 2 packet ids it
    /// had received and not yet seen released.
    pub fn restore(
        client_id: String,
        record: SessionRecord,
        rows: Vec<(u64, Vec<u8>)>,
        incoming_qos2: Vec<u16>,
    ) -> Self {
        let mut session = Self::new(client_id, record.expiry);
        session.stored = true;
        session.incoming_qos2.extend(incoming_qos2);
        session.subscribed_at = record.subscribed_at;
        for subscription in record.subscriptions {
            let id = session.next_subscription;
            session.next_subscription += 1;
            session.by_filter.insert(subscription.filter.clone(), id);
            session.subscriptions.insert(id, subscription);
        }
        for (position, row) in rows {
            let Some((pkid, released, queued)) = decode_row(&row, position) else {
                continue;
            };
            session.next_position = session.next_position.max(position + 1);
            if pkid != 0 {
                session.inflight.push_back(Inflight {
                    pkid,
                    queued,
                    released,
                });
                session.next_pkid = pkid.wrapping_add(1).max(1);
            } else {
                session.queue.push_back(queued);
            }
        }
        session
    }

    /// The store record of the session as it is now.
    pub fn record(&self) -> SessionRecord {
        SessionRecord {
            expiry: self.expiry,
            disconnected_at: 0,
            subscriptions: self.subscriptions.values().cloned().collect(),
            subscribed_at: self.subscribed_at.clone(),
        }
    }

    /// Store operations that bring the session's record up to date (or remove it once the
    /// session is no longer persistent).
    pub fn sync_record(&mut self, disconnected_at: u64) -> Vec<Op> {
        if self.persistent() {
            self.stored = true;
            let mut record = self.record();
            record.disconnected_at = disconnected_at;
            vec![Op::PutSession {
                client_id: self.client_id.clone(),
                record: serde_json::to_vec(&record).unwrap_or_default(),
            }]
        } else if std::mem::take(&mut self.stored) {
            vec![Op::DeleteSession {
                client_id: self.client_id.clone(),
            }]
        } else {
            Vec::new()
        }
    }

    /// Removes the session from the store for good.
    pub fn delete_ops(&mut self) -> Vec<Op> {
        if std::mem::take(&mut self.stored) {
            vec![Op::DeleteSession {
                client_id: self.client_id.clone(),
            }]
        } else {
            Vec::new()
        }
    }

    /// Adds or replaces the subscription to `subscription.filter`; returns its engine id
    /// and whether it is new.
    pub fn subscribe(&mut self, subscription: Subscription) -> (u32, bool) {
        if let Some(&id) = self.by_filter.get(&subscription.filter) {
            self.subscriptions.insert(id, subscription);
            return (id, false);
        }
        let id = self.next_subscription;
        self.next_subscription += 1;
        self.by_filter.insert(subscription.filter.clone(), id);
        self.subscriptions.insert(id, subscription);
        (id, true)
    }

    /// Whether a QoS 2 PUBLISH with `pkid` was received and not yet released: the same
    /// message sent again, to acknowledge without delivering it twice [MQTT-4.3.3-10].
    pub fn holds_qos2(&self, pkid: u16) -> bool {
        self.incoming_qos2.contains(&pkid)
    }

    /// How many received QoS 2 messages await their PUBREL.
    pub fn unreleased_qos2(&self) -> usize {
        self.incoming_qos2.len()
    }

    /// A QoS 2 PUBLISH was received (PUBREC goes out once `ops` are committed).
    pub fn received_qos2(&mut self, pkid: u16, ops: &mut Vec<Op>) {
        if self.incoming_qos2.insert(pkid) && self.persistent() {
            ops.push(Op::PutIncoming {
                client_id: self.client_id.clone(),
                pkid,
            });
        }
    }

    /// PUBREL from the client; `false` for a packet id it never sent a PUBLISH with.
    pub fn released_qos2(&mut self, pkid: u16, ops: &mut Vec<Op>) -> bool {
        let known = self.incoming_qos2.remove(&pkid);
        if known && (self.stored || self.persistent()) {
            ops.push(Op::DeleteIncoming {
                client_id: self.client_id.clone(),
                pkid,
            });
        }
        known
    }

    /// Removes the subscription to `filter`, if there is one.
    pub fn unsubscribe(&mut self, filter: &str) -> Option<Subscription> {
        let id = self.by_filter.remove(filter)?;
        self.subscribed_at.remove(filter);
        self.subscriptions.remove(&id)
    }

    /// Offers a message the engine delivered for subscription `id`. Offline sessions do
    /// not keep QoS 0 messages.
    pub fn accept(
        &mut self,
        message: Message,
        id: u32,
        online: bool,
        limit: usize,
        ops: &mut Vec<Op>,
    ) -> Accepted {
        let Some(subscription) = self.subscriptions.get(&id) else {
            return Accepted::Skipped;
        };
        // [MQTT-4.7.2-1]: `$` topics are not matched by filters starting with a wildcard.
        if message.topic.starts_with('$') && subscription.matching_filter().starts_with(['+', '#'])
        {
            return Accepted::Skipped;
        }
        // [MQTT-3.8.3-3]: No Local.
        if subscription.no_local && message.origin == super::message::origin_of(&self.client_id) {
            return Accepted::Skipped;
        }
        let qos = message.qos.min(subscription.granted());
        if !online && qos == QoS::AtMostOnce {
            return Accepted::Skipped;
        }
        let queued = Queued {
            retain: subscription.retain_as_published && message.retain,
            message,
            qos,
            identifier: subscription.identifier,
            retained_delivery: false,
            position: None,
        };
        self.enqueue(queued, limit, ops)
    }

    /// Puts a message at the end of the queue, dropping the oldest queued one when the
    /// queue is at `limit`.
    pub fn enqueue(&mut self, mut queued: Queued, limit: usize, ops: &mut Vec<Op>) -> Accepted {
        let mut outcome = Accepted::Queued;
        if self.queue.len() >= limit.max(1) {
            if let Some(oldest) = self.queue.pop_front() {
                self.forget_row(oldest.position, ops);
                outcome = Accepted::DroppedOldest(Box::new(oldest.message));
            }
        }
        if self.persistent() && queued.qos != QoS::AtMostOnce {
            let position = self.next_position;
            self.next_position += 1;
            queued.position = Some(position);
            ops.push(Op::PutQueued {
                client_id: self.client_id.clone(),
                position,
                message: encode_row(0, false, &queued),
            });
            if let Some(seq) = queued.message.inbound {
                ops.push(Op::Taken {
                    seq,
                    client_id: self.client_id.clone(),
                });
            }
        }
        self.queue.push_back(queued);
        outcome
    }

    fn forget_row(&self, position: Option<u64>, ops: &mut Vec<Op>) {
        if let Some(position) = position {
            ops.push(Op::DeleteQueued {
                client_id: self.client_id.clone(),
                position,
            });
        }
    }

    fn next_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.iter().any(|i| i.pkid == pkid) {
                return pkid;
            }
        }
    }

    /// Writes to `out` the packets a newly attached connection must see first: every
    /// in-flight message again, in order — PUBLISH with DUP, or PUBREL where PUBREC came
    /// [MQTT-4.4.0-1].
    pub fn resend_inflight(&mut self, receiver: &Receiver, out: &mut BytesMut) -> Sent {
        let mut sent = Sent::default();
        let now = now_ms();
        for inflight in &self.inflight {
            let packet = if inflight.released {
                Packet::PubRel(ack(inflight.pkid))
            } else {
                let mut publish = publish_packet(&inflight.queued, inflight.pkid, now);
                publish.dup = true;
                sent.publishes += 1;
                if inflight.queued.retained_delivery {
                    sent.retained += 1;
                }
                Packet::Publish(publish)
            };
            sent.bytes += encode::write(&packet, receiver.version, out) as u64;
        }
        sent
    }

    /// Moves queued messages to the client while the window has room and `out` stays
    /// below `max_buffer` bytes.
    pub fn send_queued(
        &mut self,
        receiver: &Receiver,
        out: &mut BytesMut,
        max_buffer: usize,
        ops: &mut Vec<Op>,
    ) -> Sent {
        let mut sent = Sent::default();
        let now = now_ms();
        while out.len() < max_buffer {
            let Some(front) = self.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce && self.inflight.len() >= receiver.window {
                break;
            }
            let queued = self.queue.pop_front().expect("front exists");
            if queued.message.expired(now) {
                self.forget_row(queued.position, ops);
                continue;
            }
            let pkid = if queued.qos == QoS::AtMostOnce {
                0
            } else {
                self.next_pkid()
            };
            let packet = Packet::Publish(publish_packet(&queued, pkid, now));
            // [MQTT-3.1.2-25]: never more than the client's Maximum Packet Size; such a
            // message is dropped as if it had been delivered.
            if receiver.max_packet_size < usize::MAX
                && encode::encoded_len(&packet, receiver.version) > receiver.max_packet_size
            {
                self.forget_row(queued.position, ops);
                sent.too_large += 1;
                continue;
            }
            sent.bytes += encode::write(&packet, receiver.version, out) as u64;
            sent.publishes += 1;
            if queued.retained_delivery {
                sent.retained += 1;
            }
            if pkid != 0 {
                if let Some(position) = queued.position {
                    ops.push(Op::PutQueued {
                        client_id: self.client_id.clone(),
                        position,
                        message: encode_row(pkid, false, &queued),
                    });
                }
                self.inflight.push_back(Inflight {
                    pkid,
                    queued,
                    released: false,
                });
            }
        }
        sent
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) from the client: the message is done.
    pub fn complete(&mut self, pkid: u16, ops: &mut Vec<Op>) -> bool {
        let Some(at) = self.inflight.iter().position(|i| i.pkid == pkid) else {
            return false;
        };
        let done = self.inflight.remove(at).expect("position is valid");
        self.forget_row(done.queued.position, ops);
        true
    }

    /// PUBREC from the client: answer PUBREL, then wait for PUBCOMP.
    pub fn received(&mut self, pkid: u16, ops: &mut Vec<Op>) -> bool {
        let client_id = self.client_id.clone();
        let Some(inflight) = self.inflight.iter_mut().find(|i| i.pkid == pkid) else {
            return false;
        };
        if !inflight.released {
            inflight.released = true;
            if let Some(position) = inflight.queued.position {
                ops.push(Op::PutQueued {
                    client_id,
                    position,
                    message: encode_row(pkid, true, &inflight.queued),
                });
            }
        }
        true
    }

    /// Drops every queued and in-flight message (session ended).
    pub fn clear_messages(&mut self) {
        self.queue.clear();
        self.inflight.clear();
    }
}

/// What one call sent, for metering.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub publishes: u64,
    /// Of which retained messages sent for a new subscription.
    pub retained: u64,
    pub bytes: u64,
    /// Messages dropped because they exceed the client's Maximum Packet Size.
    pub too_large: u64,
}

impl std::ops::AddAssign for Sent {
    fn add_assign(&mut self, other: Self) {
        self.publishes += other.publishes;
        self.retained += other.retained;
        self.bytes += other.bytes;
        self.too_large += other.too_large;
    }
}

fn ack(pkid: u16) -> Ack {
    Ack {
        pkid,
        reason: 0,
        properties: AckProperties::default(),
    }
}

fn publish_packet(queued: &Queued, pkid: u16, now: u64) -> Publish {
    let mut properties = queued.message.outgoing_properties(now);
    if let Some(id) = queued.identifier {
        properties.subscription_identifiers = vec![id];
    }
    Publish {
        dup: false,
        qos: queued.qos,
        retain: queued.retain,
        topic: queued.message.topic.clone(),
        pkid,
        properties,
        payload: queued.message.payload.clone(),
    }
}

/// A queue row: packet id (0 while queued), released flag, delivery fields, message.
fn encode_row(pkid: u16, released: bool, queued: &Queued) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_u16(pkid);
    buf.put_u8(u8::from(released));
    buf.put_u8(queued.qos as u8);
    buf.put_u8(u8::from(queued.retain) | (u8::from(queued.retained_delivery) << 1));
    buf.put_u32(queued.identifier.unwrap_or(0));
    buf.put_slice(&queued.message.to_stored());
    buf.to_vec()
}

fn decode_row(row: &[u8], position: u64) -> Option<(u16, bool, Queued)> {
    let mut bytes = Bytes::copy_from_slice(row);
    if bytes.len() < 9 {
        return None;
    }
    let pkid = bytes.get_u16();
    let released = bytes.get_u8() != 0;
    let qos = QoS::from_u8(bytes.get_u8())?;
    let flags = bytes.get_u8();
    let identifier = Some(bytes.get_u32()).filter(|id| *id != 0);
    let message = Message::from_stored(&bytes)?;
    Some((
        pkid,
        released,
        Queued {
            message,
            qos,
            retain: flags & 1 != 0,
            identifier,
            retained_delivery: flags & 2 != 0,
            position: Some(position),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::PublishProperties;

    fn options(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }

    fn message(topic: &str, qos: QoS, origin: u64) -> Message {
        Message::published(
            topic.to_owned(),
            Bytes::from_static(b"m"),
            qos,
            false,
            PublishProperties::default(),
            origin,
        )
    }

    fn receiver() -> Receiver {
        Receiver {
            version: Version::V5,
            window: 2,
            max_packet_size: 1 << 20,
        }
    }

    /// [MQTT-3.8.4-8]: delivered QoS is min(publish QoS, granted QoS).
    #[test]
    fn delivered_qos_is_the_minimum() {
        let mut s = Session::new("c".into(), 0);
        let (id, _) = s.subscribe(Subscription::new(
            "a".into(),
            options(QoS::AtLeastOnce),
            None,
        ));
        let mut ops = Vec::new();
        for (published, expected) in [
            (QoS::AtMostOnce, QoS::AtMostOnce),
            (QoS::AtLeastOnce, QoS::AtLeastOnce),
            (QoS::ExactlyOnce, QoS::AtLeastOnce),
        ] {
            s.accept(message("a", published, 9), id, true, 10, &mut ops);
            assert_eq!(s.queue.pop_back().unwrap().qos, expected);
        }
    }

    /// [MQTT-3.8.3-3] No Local, and [MQTT-4.7.2-1] the `$` rule.
    #[test]
    fn no_local_and_dollar_topics_are_skipped() {
        let mut s = Session::new("c".into(), 0);
        let mut nl = options(QoS::AtMostOnce);
        nl.no_local = true;
        let (a, _) = s.subscribe(Subscription::new("a".into(), nl, None));
        let (all, _) = s.subscribe(Subscription::new(
            "#".into(),
            options(QoS::AtMostOnce),
            None,
        ));
        let own = super::super::message::origin_of("c");
        let mut ops = Vec::new();
        assert_eq!(
            s.accept(message("a", QoS::AtMostOnce, own), a, true, 10, &mut ops),
            Accepted::Skipped
        );
        assert_eq!(
            s.accept(message("a", QoS::AtMostOnce, 5), a, true, 10, &mut ops),
            Accepted::Queued
        );
        assert_eq!(
            s.accept(
                message("$events/x", QoS::AtMostOnce, 5),
                all,
                true,
                10,
                &mut ops
            ),
            Accepted::Skipped
        );
    }

    /// The window (Receive Maximum) bounds messages in flight [MQTT-3.3.4-9]; acks free it.
    #[test]
    fn window_limits_inflight_and_acks_release_it() {
        let mut s = Session::new("c".into(), 0);
        let (id, _) = s.subscribe(Subscription::new(
            "a".into(),
            options(QoS::AtLeastOnce),
            None,
        ));
        let mut ops = Vec::new();
        for _ in 0..5 {
            s.accept(message("a", QoS::AtLeastOnce, 9), id, true, 10, &mut ops);
        }
        let mut out = BytesMut::new();
        assert_eq!(
            s.send_queued(&receiver(), &mut out, 1 << 20, &mut ops)
                .publishes,
            2
        );
        assert!(s.complete(1, &mut ops));
        assert_eq!(
            s.send_queued(&receiver(), &mut out, 1 << 20, &mut ops)
                .publishes,
            1
        );
        assert_eq!(
            s.inflight.iter().map(|i| i.pkid).collect::<Vec<_>>(),
            [2, 3]
        );
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let mut s = Session::new("c".into(), 0);
        let (id, _) = s.subscribe(Subscription::new(
            "a".into(),
            options(QoS::AtLeastOnce),
            None,
        ));
        let mut ops = Vec::new();
        s.accept(message("a", QoS::AtLeastOnce, 1), id, false, 1, &mut ops);
        let outcome = s.accept(message("a", QoS::AtLeastOnce, 2), id, false, 1, &mut ops);
        assert!(matches!(outcome, Accepted::DroppedOldest(m) if m.origin == 1));
        assert_eq!(s.queue.len(), 1);
    }

    /// A persistent session's queue and in-flight messages come back from their rows.
    #[test]
    fn rows_restore_queue_and_inflight() {
        let mut s = Session::new("c".into(), 60);
        let (id, _) = s.subscribe(Subscription::new(
            "a".into(),
            options(QoS::ExactlyOnce),
            None,
        ));
        let mut ops = Vec::new();
        for _ in 0..3 {
            s.accept(message("a", QoS::ExactlyOnce, 1), id, true, 10, &mut ops);
        }
        let mut out = BytesMut::new();
        let window = Receiver {
            window: 2,
            ..receiver()
        };
        s.send_queued(&window, &mut out, 1 << 20, &mut ops);
        s.received(1, &mut ops);
        let mut rows = std::collections::BTreeMap::new();
        for op in ops {
            match op {
                Op::PutQueued {
                    position, message, ..
                } => {
                    rows.insert(position, message);
                }
                Op::DeleteQueued { position, .. } => {
                    rows.remove(&position);
                }
                _ => {}
            }
        }
        let restored = Session::restore(
            "c".into(),
            s.record(),
            rows.into_iter().collect(),
            Vec::new(),
        );
        assert_eq!(restored.inflight, s.inflight);
        assert_eq!(restored.queue, s.queue);
        assert_eq!(restored.subscriptions.len(), 1);
    }
}
