//! One client connection, from CONNECT to close: the node's MQTT protocol handling.
//!
//! The connection's task owns its session while connected. One loop serves, without
//! blocking any of them on another: the socket's input (decoded packet by packet), its
//! output (a buffer drained as the client reads, bounded so a slow client's messages wait
//! in its session queue instead), the session's engine link, the session's control inbox
//! (takeover, kick, API commands) and the keep-alive timer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::handshake::{self, Accepted, HandshakeError, RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM};
use super::message::{now_ms, origin_of, Message};
use super::parked::{self, PendingWill};
use super::registry::{Command, Connected};
use super::session::{Queued, Receiver, Sent, Session, Subscription};
use super::{Broker, Claim, Control};
use crate::metering::SessionEnd;
use crate::mqtt::{
    decode, encode, reason, Ack, AckProperties, Disconnect, DisconnectProperties, Packet, QoS,
    SubAck, SubscriptionOptions, UnsubAck, Version,
};
use crate::security::{Action, ClientInfo, Transport};
use crate::store::Op;

/// Bytes waiting for the client beyond which no more messages are taken from the queue.
const MAX_OUTPUT: usize = 256 * 1024;

/// Where a client connection came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The port of the listener it connected to.
    pub listener_port: u16,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves one client connection until it closes.
pub async fn serve<S>(stream: S, broker: Broker, peer: Peer) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut input = BytesMut::new();
    // Each phase is boxed: a task's future is as large as its largest state, and idle
    // connections would otherwise keep the space of futures they run once (the
    // handshake's authentication, a read batch's authorization) resident for good.
    let accepted = Box::pin(handshake::handshake(
        &mut reader,
        &mut writer,
        &mut input,
        &broker,
        &peer,
    ))
    .await?;
    Box::pin(connected(reader, writer, input, broker, accepted)).await
}

/// How the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// DISCONNECT with reason 0x00 (no will) or 0x04 (with will).
    Goodbye { will: bool },
    /// Closed, timed out or broke the protocol: the will goes out.
    Abnormal(&'static str),
    /// The deployment API ended the session.
    Ended,
    /// The node is stopping.
    Shutdown,
}

struct Connection {
    broker: Broker,
    info: ClientInfo,
    version: Version,
    receiver: Receiver,
    session: Box<Session>,
    will: Option<crate::mqtt::Will>,
    aliases: HashMap<u16, crate::mqtt::ByteString>,
    origin: u64,
    out: BytesMut,
    /// Messages of the current read batch, for the engine.
    routed: Vec<(bytes::Bytes, bytes::Bytes)>,
    /// Whether the session expiry was 0 at CONNECT (DISCONNECT may not raise it then).
    started_without_expiry: bool,
}

async fn connected<R, W>(
    mut reader: R,
    mut writer: W,
    mut input: BytesMut,
    broker: Broker,
    accepted: Accepted,
) -> Result<(), ConnectionError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let client_id = accepted.info.client_id.clone();
    let version = accepted.connect.version;
    let (previous, claim) = Box::pin(broker.claim(&client_id)).await;
    let clean = accepted.connect.clean_start;
    let (mut session, present) = match previous {
        Some(session) if !clean => (session, true),
        Some(old) => {
            discard(&broker, old);
            (Box::new(Session::new(client_id.clone(), 0)), false)
        }
        None => (Box::new(Session::new(client_id.clone(), 0)), false),
    };
    broker.set_expiry(&mut session, accepted.expiry);
    let registration = broker.clients.register(
        Connected {
            client_id: client_id.clone(),
            username: accepted.info.username.clone(),
            peer: accepted.info.peer,
            transport: accepted.info.transport,
            version,
            keep_alive: accepted.connect.keep_alive,
            clean_start: clean,
            connected_at: chrono::Utc::now(),
        },
        claim.sender.clone(),
    );
    broker.meter.session_connected(&client_id);
    broker
        .events
        .connected(&accepted.info, version, accepted.connect.keep_alive);
    let mut conn = Connection {
        broker: broker.clone(),
        info: accepted.info.clone(),
        version,
        receiver: Receiver {
            version,
            window: accepted.window,
            max_packet_size: accepted.max_packet_size,
        },
        session,
        will: accepted.connect.will.clone(),
        aliases: HashMap::new(),
        origin: origin_of(&client_id),
        out: BytesMut::new(),
        routed: Vec::new(),
        started_without_expiry: accepted.expiry == 0,
    };
    let connack = handshake::connack(&accepted, present);
    let len = encode::write(&connack, version, &mut conn.out);
    broker.meter.bytes_out(len as u64);
    let ops = conn.session.sync_record(0);
    broker.store.write(ops);
    if let Err(e) = parked::attach_engine(&broker, &mut conn.session) {
        tracing::error!(%client_id, error = %e, "cannot link a resumed session to the engine");
    }
    let sent = conn.session.resend_inflight(&conn.receiver, &mut conn.out);
    conn.count_sent(sent);
    conn.pump();

    let keep_alive = Duration::from_millis(u64::from(accepted.connect.keep_alive) * 1500);
    // What the CONNECT carried is no longer needed (its byte slices would pin the read
    // buffer they came from).
    drop(accepted);
    let mut read_size = MIN_READ;
    let mut last_input = Instant::now();
    let keep_alive_timer = tokio::time::sleep(keep_alive.max(Duration::from_secs(1)));
    tokio::pin!(keep_alive_timer);
    let mut batch = Vec::new();
    let mut unflushed = false;
    let end = loop {
        tokio::select! {
            written = drain(&mut writer, &mut conn.out), if !conn.out.is_empty() || unflushed => {
                match written {
                    Ok(()) => {
                        unflushed = false;
                        conn.pump();
                    }
                    Err(_) => break End::Abnormal("closed"),
                }
            }
            read = read_some(&mut reader, &mut input, read_size) => {
                match read {
                    Ok(0) | Err(_) => break End::Abnormal("closed"),
                    Ok(n) => {
                        // Reads grow while clients send a lot, and shrink while they idle.
                        read_size = if n >= read_size {
                            (read_size * 2).min(MAX_READ)
                        } else {
                            (read_size / 2).max(MIN_READ)
                        };
                        last_input = Instant::now();
                        unflushed = true;
                        if let Some(end) = Box::pin(conn.packets(&mut input)).await {
                            break end;
                        }
                    }
                }
            }
            alive = parked::next_deliveries(&mut conn.session, &mut batch) => {
                if !alive {
                    conn.session.deliveries = None;
                    continue;
                }
                let ops = parked::take_deliveries(&broker, &mut conn.session, &mut batch, true);
                broker.store.write(ops);
                conn.pump();
                unflushed = true;
            }
            control = claim.control.recv_async() => {
                let control = control.ok();
                unflushed = true;
                match control {
                    Some(Control::Takeover { reply }) => {
                        conn.disconnect(reason::SESSION_TAKEN_OVER);
                        let _ = tokio::time::timeout(Duration::from_secs(1), drain(&mut writer, &mut conn.out)).await;
                        let _ = writer.shutdown().await;
                        Box::pin(conn.finish_taken_over(registration, reply)).await;
                        return Ok(());
                    }
                    Some(Control::Kick) => {
                        conn.disconnect(reason::ADMINISTRATIVE_ACTION);
                        break End::Abnormal("kicked");
                    }
                    Some(Control::End) | None => {
                        conn.disconnect(reason::ADMINISTRATIVE_ACTION);
                        break End::Ended;
                    }
                    Some(Control::Shutdown) => {
                        conn.disconnect(reason::SERVER_SHUTTING_DOWN);
                        break End::Shutdown;
                    }
                    Some(Control::Command(command)) => conn.command(*command),
                }
            }
            () = &mut keep_alive_timer, if !keep_alive.is_zero() => {
                let due = last_input + keep_alive;
                if Instant::now() >= due {
                    // [MQTT-3.1.2-24]: one and a half keep-alive periods of silence.
                    conn.disconnect(reason::KEEP_ALIVE_TIMEOUT);
                    break End::Abnormal("keepalive_timeout");
                }
                keep_alive_timer.as_mut().reset(due);
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain(&mut writer, &mut conn.out)).await;
    let _ = writer.shutdown().await;
    drop(registration);
    Box::pin(conn.finish(end, claim)).await;
    Ok(())
}

/// Writes all of `out` and flushes (TLS and WebSocket streams hold writes until then).
async fn drain<W: AsyncWrite + Unpin>(writer: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    while !out.is_empty() {
        if writer.write_buf(out).await? == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
    }
    writer.flush().await
}

/// Smallest and largest read buffer (an idle connection holds the smallest).
const MIN_READ: usize = 256;
const MAX_READ: usize = 64 * 1024;

/// Reads what the client sent: up to `size` bytes, or the rest of a partly received
/// packet.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    input: &mut BytesMut,
    size: usize,
) -> std::io::Result<usize> {
    let wanted = decode::frame_len(input, super::MAX_PACKET_SIZE)
        .ok()
        .flatten()
        .map_or(size, |len| len.saturating_sub(input.len()).max(size));
    if input.capacity() - input.len() < wanted {
        input.reserve(wanted);
    }
    reader.read_buf(input).await
}

/// Ends a session the new connection does not take (clean start).
fn discard(broker: &Broker, mut old: Box<Session>) {
    if old.persistent() {
        broker.count_persistent(-1);
    }
    old.clear_messages();
    let ops = old.delete_ops();
    broker.store.write(ops);
    broker.subscriptions.forget(&old.client_id);
}

fn ack(pkid: u16, reason: u8) -> Ack {
    Ack {
        pkid,
        reason,
        properties: AckProperties::default(),
    }
}

impl Connection {
    fn v5(&self) -> bool {
        self.version == Version::V5
    }

    fn write(&mut self, packet: &Packet) {
        let len = encode::write(packet, self.version, &mut self.out);
        self.broker.meter.bytes_out(len as u64);
    }

    /// Sends DISCONNECT with `reason` (v5 only; v3 just closes).
    fn disconnect(&mut self, reason: u8) {
        if self.v5() {
            self.write(&Packet::Disconnect(Disconnect {
                reason,
                properties: DisconnectProperties::default(),
            }));
        }
    }

    fn count_sent(&self, sent: Sent) {
        let meter = &self.broker.meter;
        meter.bytes_out(sent.bytes);
        if self.broker.counting {
            meter.publishes_out(false, sent.publishes - sent.retained);
            meter.publishes_out(true, sent.retained);
        }
        if sent.too_large > 0 {
            meter.dropped(sent.too_large);
        }
    }

    /// Moves queued messages to the output while the window and the buffer allow.
    fn pump(&mut self) {
        if self.session.queue.is_empty() || self.out.len() >= MAX_OUTPUT {
            return;
        }
        let mut ops = Vec::new();
        let sent = self
            .session
            .send_queued(&self.receiver, &mut self.out, MAX_OUTPUT, &mut ops);
        self.count_sent(sent);
        self.broker.store.write(ops);
    }

    /// Handles every whole packet in `input`; `Some` when the connection must end.
    async fn packets(&mut self, input: &mut BytesMut) -> Option<End> {
        let mut ops = Vec::new();
        self.routed.clear();
        let mut acks = Vec::new();
        let mut end = None;
        loop {
            let before = input.len();
            let packet = match decode::read(input, self.version, super::MAX_PACKET_SIZE) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(client_id = %self.info.client_id, error = %e, "protocol violation; closing");
                    self.broker.meter.bytes_in(before as u64);
                    input.clear();
                    self.disconnect(e.reason_code());
                    end = Some(End::Abnormal("protocol_error"));
                    break;
                }
            };
            self.broker.meter.bytes_in((before - input.len()) as u64);
            if let Some(e) = self.packet(packet, &mut ops, &mut acks).await {
                end = Some(e);
                break;
            }
        }
        // The batch's messages reach the engine together, in order.
        if !self.routed.is_empty() {
            let routed = std::mem::take(&mut self.routed);
            if let Err(e) = self.broker.engine.publish_all(self.origin, routed) {
                tracing::error!(error = %e, "cannot route messages");
            }
            // Let the subscribers' tasks take what was just routed before reading more.
            tokio::task::yield_now().await;
        }
        // QoS 1/2 messages are acknowledged once the inbound log holds them.
        self.broker.commit(ops).await;
        for packet in acks {
            self.write(&packet);
        }
        if input.is_empty() {
            // Let the next read allocate what it needs (a small buffer while idle).
            *input = BytesMut::new();
        }
        self.pump();
        end
    }

    async fn packet(
        &mut self,
        packet: Packet,
        ops: &mut Vec<Op>,
        acks: &mut Vec<Packet>,
    ) -> Option<End> {
        match packet {
            Packet::Publish(publish) => return self.publish(publish, ops, acks).await,
            Packet::PubAck(a) | Packet::PubComp(a) => {
                self.session.complete(a.pkid, ops);
            }
            Packet::PubRec(a) => {
                let known = self.session.received(a.pkid, ops);
                let code = if known || !self.v5() {
                    0
                } else {
                    reason::PACKET_ID_NOT_FOUND
                };
                if a.reason < 0x80 {
                    self.write(&Packet::PubRel(ack(a.pkid, code)));
                } else {
                    // A refused QoS 2 delivery ends with the PUBREC.
                    self.session.complete(a.pkid, ops);
                }
            }
            Packet::PubRel(a) => {
                let known = self.session.released_qos2(a.pkid, ops);
                let code = if known || !self.v5() {
                    0
                } else {
                    reason::PACKET_ID_NOT_FOUND
                };
                acks.push(Packet::PubComp(ack(a.pkid, code)));
            }
            Packet::Subscribe(subscribe) => return self.subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => {
                let mut codes = Vec::with_capacity(unsubscribe.filters.len());
                for filter in &unsubscribe.filters {
                    codes.push(if self.unsubscribe_one(filter) {
                        reason::SUCCESS
                    } else {
                        reason::NO_SUBSCRIPTION_EXISTED
                    });
                }
                self.sync_record();
                self.write(&Packet::UnsubAck(UnsubAck {
                    pkid: unsubscribe.pkid,
                    reason_codes: codes,
                    properties: AckProperties::default(),
                }));
            }
            Packet::PingReq => self.write(&Packet::PingResp),
            Packet::Disconnect(disconnect) => {
                if let Some(expiry) = disconnect.properties.session_expiry_interval {
                    if self.started_without_expiry && expiry > 0 {
                        // [MQTT-3.14.2-2]: a session that had none cannot get one now.
                        self.disconnect(reason::PROTOCOL_ERROR);
                        return Some(End::Abnormal("protocol_error"));
                    }
                    let cap = u32::try_from(
                        self.broker
                            .security
                            .settings()
                            .sessions
                            .max_session_expiry_secs,
                    )
                    .unwrap_or(u32::MAX);
                    self.broker.set_expiry(&mut self.session, expiry.min(cap));
                }
                return Some(End::Goodbye {
                    will: disconnect.reason == reason::DISCONNECT_WITH_WILL,
                });
            }
            Packet::Connect(_) => {
                // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
                self.disconnect(reason::PROTOCOL_ERROR);
                return Some(End::Abnormal("protocol_error"));
            }
            Packet::Auth(_) => {
                // No authentication method was agreed at CONNECT [MQTT-4.12.0-?].
                self.disconnect(reason::PROTOCOL_ERROR);
                return Some(End::Abnormal("protocol_error"));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.disconnect(reason::PROTOCOL_ERROR);
                return Some(End::Abnormal("protocol_error"));
            }
        }
        None
    }

    async fn publish(
        &mut self,
        publish: crate::mqtt::Publish,
        ops: &mut Vec<Op>,
        acks: &mut Vec<Packet>,
    ) -> Option<End> {
        if self.broker.counting {
            self.broker.meter.publish_in();
        }
        let topic = match (self.v5(), publish.properties.topic_alias) {
            (true, Some(alias)) if alias == 0 || alias > TOPIC_ALIAS_MAXIMUM => {
                self.disconnect(reason::TOPIC_ALIAS_INVALID);
                return Some(End::Abnormal("protocol_error"));
            }
            (true, Some(alias)) if publish.topic.is_empty() => match self.aliases.get(&alias) {
                Some(topic) => topic.clone(),
                None => {
                    self.disconnect(reason::PROTOCOL_ERROR);
                    return Some(End::Abnormal("protocol_error"));
                }
            },
            (true, Some(alias)) => {
                self.aliases.insert(alias, publish.topic.clone());
                publish.topic.clone()
            }
            _ => publish.topic.clone(),
        };
        if topic.is_empty() {
            // [MQTT-4.7.3-1]: topic names are at least one character long.
            self.disconnect(reason::TOPIC_NAME_INVALID);
            return Some(End::Abnormal("protocol_error"));
        }
        let pkid = publish.pkid;
        if publish.qos == QoS::ExactlyOnce {
            if self.session.holds_qos2(pkid) {
                // A resent QoS 2 PUBLISH whose PUBREL is still to come: acknowledge it
                // again, deliver it once [MQTT-4.3.3-?].
                acks.push(Packet::PubRec(ack(pkid, 0)));
                return None;
            }
            if self.session.unreleased_qos2() >= usize::from(RECEIVE_MAXIMUM) {
                self.disconnect(reason::RECEIVE_MAXIMUM_EXCEEDED);
                return Some(End::Abnormal("protocol_error"));
            }
        }
        let allowed = !topic.starts_with('$')
            && self
                .broker
                .security
                .authorize(&self.info, Action::Publish, &topic)
                .await;
        if !allowed {
            tracing::debug!(client_id = %self.info.client_id, %topic, "publish denied");
            if self
                .broker
                .security
                .settings()
                .authorization
                .disconnect_on_deny
            {
                self.disconnect(reason::NOT_AUTHORIZED);
                return Some(End::Abnormal("not_authorized"));
            }
            let code = if self.v5() { reason::NOT_AUTHORIZED } else { 0 };
            match publish.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => acks.push(Packet::PubAck(ack(pkid, code))),
                QoS::ExactlyOnce => {
                    if !self.v5() {
                        self.session.received_qos2(pkid, ops);
                    }
                    acks.push(Packet::PubRec(ack(pkid, code)));
                }
            }
            return None;
        }
        if let Some(throttle) = &self.broker.throttle {
            // Over the tier's rate, wait: the client's further packets stay unread.
            throttle.until_ready().await;
        }
        let message = Message::published(
            topic,
            publish.payload,
            publish.qos,
            publish.retain,
            publish.properties,
            self.origin,
        );
        self.broker.rules.on_publish(
            &message,
            &self.info.client_id,
            self.info.username.as_deref(),
            Some(self.info.peer),
        );
        let routed = self.broker.prepare(message, ops);
        self.routed.push(routed);
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => acks.push(Packet::PubAck(ack(pkid, 0))),
            QoS::ExactlyOnce => {
                self.session.received_qos2(pkid, ops);
                acks.push(Packet::PubRec(ack(pkid, 0)));
            }
        }
        None
    }

    async fn subscribe(&mut self, subscribe: crate::mqtt::Subscribe) -> Option<End> {
        let refused_code = if self.v5() {
            reason::NOT_AUTHORIZED
        } else {
            reason::V3_SUBACK_FAILURE
        };
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for (filter, options) in &subscribe.filters {
            if !crate::mqtt::topic::valid_filter(filter) {
                codes.push(if self.v5() {
                    reason::TOPIC_FILTER_INVALID
                } else {
                    reason::V3_SUBACK_FAILURE
                });
                continue;
            }
            let shared = crate::mqtt::topic::parse_shared(filter);
            if shared.is_some() && options.no_local && self.v5() {
                // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                self.disconnect(reason::PROTOCOL_ERROR);
                return Some(End::Abnormal("protocol_error"));
            }
            let judged = shared.map_or(filter.as_str(), |(_, f)| f);
            if !self
                .broker
                .security
                .authorize(&self.info, Action::Subscribe, judged)
                .await
            {
                tracing::debug!(client_id = %self.info.client_id, %filter, "subscribe denied");
                codes.push(refused_code);
                continue;
            }
            match self.subscribe_one(filter, *options, subscribe.subscription_identifier) {
                Some(new) => {
                    codes.push(options.qos as u8);
                    retained.push((filter.clone(), *options, new));
                }
                // The engine has no room for another subscriber: the tier is full.
                None => codes.push(self.quota_code()),
            }
        }
        self.sync_record();
        self.write(&Packet::SubAck(SubAck {
            pkid: subscribe.pkid,
            reason_codes: codes,
            properties: AckProperties::default(),
        }));
        for (filter, options, new) in retained {
            self.send_retained(&filter, options, subscribe.subscription_identifier, new);
        }
        None
    }

    /// Adds one subscription (already allowed); returns whether it is new.
    fn subscribe_one(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
    ) -> Option<bool> {
        let subscription = Subscription::new(filter.to_owned(), options, identifier);
        let (id, new) = self.session.subscribe(subscription);
        if new {
            let linked = match self.session.subscriber.as_mut() {
                Some(subscriber) => {
                    subscriber.subscribe(&super::message::engine_filter(filter), id)
                }
                None => parked::attach_engine(&self.broker, &mut self.session),
            };
            if let Err(e) = linked {
                tracing::warn!(client_id = %self.info.client_id, error = %e, "subscription refused by the engine");
                self.session.unsubscribe(filter);
                return None;
            }
            self.session
                .subscribed_at
                .insert(filter.to_owned(), self.broker.inbound_position());
        }
        let qos = options.qos as u8;
        self.broker.events.subscribed(&self.info, filter, qos);
        self.broker
            .subscriptions
            .subscribed(&self.info.client_id, filter, qos);
        Some(new)
    }

    /// The SUBACK code of a subscription the engine had no room for.
    fn quota_code(&self) -> u8 {
        if self.v5() {
            reason::QUOTA_EXCEEDED
        } else {
            reason::V3_SUBACK_FAILURE
        }
    }

    fn unsubscribe_one(&mut self, filter: &str) -> bool {
        if self.session.unsubscribe(filter).is_none() {
            return false;
        }
        if let Some(subscriber) = self.session.subscriber.as_mut() {
            let _ = subscriber.unsubscribe(&super::message::engine_filter(filter));
            // The engine takes the link out of every shared group on any unsubscribe:
            // put it back in the groups of the shared subscriptions that remain.
            for (id, remaining) in &self.session.subscriptions {
                if remaining.is_shared() {
                    let _ = subscriber
                        .subscribe(&super::message::engine_filter(&remaining.filter), *id);
                }
            }
        }
        self.broker.events.unsubscribed(&self.info, filter);
        self.broker
            .subscriptions
            .unsubscribed(&self.info.client_id, filter);
        true
    }

    /// Queues the retained messages a new subscription gets [MQTT-3.3.1-9, -10]: per its
    /// Retain Handling (0 always, 1 only when new, 2 never), never for shared ones.
    fn send_retained(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        identifier: Option<u32>,
        new: bool,
    ) {
        let wanted = match options.retain_handling {
            0 => true,
            1 => new,
            _ => false,
        };
        if !wanted || crate::mqtt::topic::parse_shared(filter).is_some() {
            return;
        }
        let limit = self.broker.security.settings().sessions.max_queued_messages;
        let mut ops = Vec::new();
        for message in self.broker.retained_matching(filter) {
            let qos = message.qos.min(options.qos);
            self.session.enqueue(
                Queued {
                    message,
                    qos,
                    retain: true,
                    identifier,
                    retained_delivery: true,
                    position: None,
                },
                limit,
                &mut ops,
            );
        }
        self.broker.store.write(ops);
    }

    fn sync_record(&mut self) {
        let ops = self.session.sync_record(0);
        self.broker.store.write(ops);
    }

    /// Subscribes or unsubscribes in the client's name (deployment API; the ACL does not
    /// apply: the deployment's owner asked).
    fn command(&mut self, command: Command) {
        match command {
            Command::Subscribe { filters, reply } => {
                let mut codes = Vec::with_capacity(filters.len());
                for (filter, qos) in filters {
                    if !crate::mqtt::topic::valid_filter(&filter) {
                        codes.push(if self.v5() {
                            reason::TOPIC_FILTER_INVALID
                        } else {
                            reason::V3_SUBACK_FAILURE
                        });
                        continue;
                    }
                    let options = SubscriptionOptions {
                        qos: QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce),
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: 0,
                    };
                    match self.subscribe_one(&filter, options, None) {
                        Some(new) => {
                            codes.push(options.qos as u8);
                            self.send_retained(&filter, options, None, new);
                        }
                        None => codes.push(self.quota_code()),
                    }
                }
                self.sync_record();
                self.pump();
                let _ = reply.send(codes);
            }
            Command::Unsubscribe { filters, reply } => {
                let mut codes = Vec::new();
                for filter in filters {
                    let existed = self.unsubscribe_one(&filter);
                    if self.v5() {
                        codes.push(if existed {
                            reason::SUCCESS
                        } else {
                            reason::NO_SUBSCRIPTION_EXISTED
                        });
                    }
                }
                self.sync_record();
                let _ = reply.send(codes);
            }
            Command::Deliver {
                filter,
                messages,
                reply,
            } => {
                let _ = reply.send(self.deliver_stored(&filter, messages));
            }
        }
    }

    /// Queues `messages` as deliveries of the session's subscription to `filter`.
    fn deliver_stored(&mut self, filter: &str, messages: Vec<Message>) -> Vec<u8> {
        let Some((granted, identifier)) = self
            .session
            .subscriptions
            .values()
            .find(|s| s.filter == filter)
            .map(|s| (s.qos, s.identifier))
        else {
            return Vec::new();
        };
        let granted = QoS::from_u8(granted).unwrap_or(QoS::AtMostOnce);
        let limit = self.broker.security.settings().sessions.max_queued_messages;
        let mut ops = Vec::new();
        let mut codes = Vec::with_capacity(messages.len());
        for message in messages {
            let qos = message.qos.min(granted);
            self.session.enqueue(
                Queued {
                    message,
                    qos,
                    retain: false,
                    identifier,
                    retained_delivery: false,
                    position: None,
                },
                limit,
                &mut ops,
            );
            codes.push(0);
        }
        self.broker.store.write(ops);
        self.pump();
        codes
    }

    /// The session goes to the connection that took it over.
    async fn finish_taken_over(
        mut self,
        registration: super::registry::Registration,
        reply: tokio::sync::oneshot::Sender<Option<Box<Session>>>,
    ) {
        drop(registration);
        self.broker
            .events
            .disconnected(&self.info, self.version, "takeovered");
        // The will goes out unless it waits for a delay the new connection interrupts.
        if let Some(will) = self.will.take() {
            if will.delay_interval.unwrap_or(0) == 0 {
                parked::publish_will(&self.broker, self.will_message(will)).await;
            }
        }
        let end = if self.session.persistent() {
            SessionEnd::After(Duration::from_secs(u64::from(self.session.expiry)))
        } else {
            SessionEnd::AtDisconnect
        };
        self.broker.meter.session_disconnected(
            &self.info.client_id,
            end,
            std::time::Instant::now(),
        );
        let _ = reply.send(Some(self.session));
    }

    fn will_message(&self, will: crate::mqtt::Will) -> Message {
        Message::published(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            will.properties,
            self.origin,
        )
    }

    /// After the connection closed: the will, then the session parks or ends.
    async fn finish(mut self, end: End, claim: Claim) {
        let reason = match end {
            End::Goodbye { .. } => "normal",
            End::Abnormal(reason) => reason,
            End::Ended => "kicked",
            End::Shutdown => "server_shutdown",
        };
        self.broker
            .events
            .disconnected(&self.info, self.version, reason);
        let will = match end {
            End::Goodbye { will: false } | End::Shutdown => None,
            End::Goodbye { will: true } | End::Abnormal(_) | End::Ended => self.will.take(),
        };
        let client_id = self.info.client_id.clone();
        if end == End::Ended || !self.session.persistent() {
            self.broker.meter.session_disconnected(
                &client_id,
                SessionEnd::AtDisconnect,
                std::time::Instant::now(),
            );
            let will = will.map(|w| PendingWill {
                message: self.will_message(w),
                due: Instant::now(),
            });
            parked::end(&self.broker, self.session, claim, will).await;
            return;
        }
        let expiry = Duration::from_secs(u64::from(self.session.expiry));
        self.broker.meter.session_disconnected(
            &client_id,
            SessionEnd::After(expiry),
            std::time::Instant::now(),
        );
        let ops = self.session.sync_record(now_ms());
        self.broker.store.write(ops);
        let mut pending = None;
        if let Some(will) = will {
            let delay =
                Duration::from_secs(u64::from(will.delay_interval.unwrap_or(0))).min(expiry);
            let message = self.will_message(will);
            if delay.is_zero() {
                parked::publish_will(&self.broker, message).await;
            } else {
                pending = Some(PendingWill {
                    message,
                    due: Instant::now() + delay,
                });
            }
        }
        parked::park(self.broker.clone(), self.session, claim, pending, expiry);
    }
}
