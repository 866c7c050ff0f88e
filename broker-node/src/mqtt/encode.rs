//! Encoding of MQTT packets in both directions.
//!
//! Lengths are computed by running the same writer against a byte counter,
//! so [`encoded_len`] always agrees with [`write()`].

use bytes::{BufMut, BytesMut};

use super::prop;
use super::{
    Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, Packet, Publish, PublishProperties, QoS,
    SubAck, Subscribe, UnsubAck, Unsubscribe, Version,
};

/// Appends the packet's wire form for `version` and returns the number of
/// bytes written.
///
/// `version` decides the form, also for CONNECT (whose `version` field is
/// ignored here). For v3.x properties and v5-only fields are dropped,
/// SUBACK/CONNACK codes are written as given, UNSUBACK has no reason codes,
/// DISCONNECT is `e0 00`, and AUTH is not allowed (debug assertion; nothing
/// is written). v5 acks, DISCONNECT and AUTH use their shortest forms. A
/// QoS 0 PUBLISH carries no packet identifier.
pub fn write(packet: &Packet, version: Version, buf: &mut BytesMut) -> usize {
    if is_v3_auth(packet, version) {
        return 0;
    }
    let body = body_len(packet, version);
    let total = 1 + varint_len(body) + body;
    buf.reserve(total);
    buf.put_u8(first_byte(packet));
    put_varint(buf, body);
    write_body(buf, packet, version);
    total
}

/// Size [`write()`] would produce for the packet, without writing it (used to
/// enforce a client's Maximum Packet Size before sending).
pub fn encoded_len(packet: &Packet, version: Version) -> usize {
    if is_v3_auth(packet, version) {
        return 0;
    }
    let body = body_len(packet, version);
    1 + varint_len(body) + body
}

/// Encodes just a PUBLISH property block, length prefix included (read back
/// with [`super::decode::decode_publish_properties`]).
pub fn write_publish_properties(p: &PublishProperties, buf: &mut BytesMut) {
    block(buf, p);
}

fn is_v3_auth(packet: &Packet, version: Version) -> bool {
    let bad = version != Version::V5 && matches!(packet, Packet::Auth(_));
    debug_assert!(!bad, "AUTH does not exist before MQTT 5");
    bad
}

/// Largest value a Variable Byte Integer can hold.
const MAX_VARINT: usize = 268_435_455;

// ---- sinks ------------------------------------------------------------------

/// Destination of encoded bytes: a buffer, or a counter for lengths.
trait Sink {
    fn byte(&mut self, v: u8);
    fn bytes(&mut self, v: &[u8]);
}

impl Sink for BytesMut {
    fn byte(&mut self, v: u8) {
        self.put_u8(v);
    }
    fn bytes(&mut self, v: &[u8]) {
        self.put_slice(v);
    }
}

/// Counts bytes instead of writing them.
struct Counter(usize);

impl Sink for Counter {
    fn byte(&mut self, _: u8) {
        self.0 += 1;
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0 += v.len();
    }
}

fn put_u16<S: Sink>(s: &mut S, v: u16) {
    s.bytes(&v.to_be_bytes());
}

fn put_u32<S: Sink>(s: &mut S, v: u32) {
    s.bytes(&v.to_be_bytes());
}

fn put_varint<S: Sink>(s: &mut S, v: usize) {
    debug_assert!(
        v <= MAX_VARINT,
        "value too large for a variable byte integer"
    );
    let mut v = v.min(MAX_VARINT);
    loop {
        let mut byte = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            byte |= 0x80;
        }
        s.byte(byte);
        if v == 0 {
            break;
        }
    }
}

fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Two-byte length, then the data; data over 65,535 bytes is a caller bug
/// (debug assertion) and is truncated so the framing stays consistent.
fn put_binary<S: Sink>(s: &mut S, v: &[u8]) {
    debug_assert!(v.len() <= 0xffff, "string or binary data over 65,535 bytes");
    let v = v.get(..0xffff).unwrap_or(v);
    put_u16(s, v.len() as u16);
    s.bytes(v);
}

fn put_string<S: Sink>(s: &mut S, v: &str) {
    put_binary(s, v.as_bytes());
}

// ---- properties -------------------------------------------------------------

fn p_u8<S: Sink>(s: &mut S, id: u8, v: Option<u8>) {
    if let Some(v) = v {
        s.byte(id);
        s.byte(v);
    }
}

fn p_u16<S: Sink>(s: &mut S, id: u8, v: Option<u16>) {
    if let Some(v) = v {
        s.byte(id);
        put_u16(s, v);
    }
}

fn p_u32<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.byte(id);
        put_u32(s, v);
    }
}

fn p_varint<S: Sink>(s: &mut S, id: u8, v: Option<u32>) {
    if let Some(v) = v {
        s.byte(id);
        put_varint(s, v as usize);
    }
}

fn p_bin<S: Sink>(s: &mut S, id: u8, v: Option<&[u8]>) {
    if let Some(v) = v {
        s.byte(id);
        put_binary(s, v);
    }
}

fn p_str<S: Sink>(s: &mut S, id: u8, v: Option<&str>) {
    p_bin(s, id, v.map(str::as_bytes));
}

fn p_users<S: Sink>(s: &mut S, v: &[(String, String)]) {
    for (k, val) in v {
        s.byte(prop::USER_PROPERTY);
        put_string(s, k);
        put_string(s, val);
    }
}

/// Contents of a property block (without its length prefix).
trait Props {
    fn content<S: Sink>(&self, s: &mut S);
}

/// Writes a property block: its length, then its contents.
fn block<S: Sink, P: Props>(s: &mut S, p: &P) {
    let mut c = Counter(0);
    p.content(&mut c);
    put_varint(s, c.0);
    p.content(s);
}

impl Props for PublishProperties {
    fn content<S: Sink>(&self, s: &mut S) {
        p_u8(
            s,
            prop::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
        );
        p_u32(
            s,
            prop::MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
        );
        p_u16(s, prop::TOPIC_ALIAS, self.topic_alias);
        p_str(s, prop::RESPONSE_TOPIC, self.response_topic.as_deref());
        p_bin(s, prop::CORRELATION_DATA, self.correlation_data.as_deref());
        p_users(s, &self.user_properties);
        for id in &self.subscription_identifiers {
            p_varint(s, prop::SUBSCRIPTION_IDENTIFIER, Some(*id));
        }
        p_str(s, prop::CONTENT_TYPE, self.content_type.as_deref());
    }
}

/// Will properties: the delay interval plus publish-like properties.
struct WillProps<'a>(Option<u32>, &'a PublishProperties);

impl Props for WillProps<'_> {
    fn content<S: Sink>(&self, s: &mut S) {
        p_u32(s, prop::WILL_DELAY_INTERVAL, self.0);
        self.1.content(s);
    }
}

impl Props for ConnectProperties {
    fn content<S: Sink>(&self, s: &mut S) {
        p_u32(
            s,
            prop::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        p_u16(s, prop::RECEIVE_MAXIMUM, self.receive_maximum);
        p_u32(s, prop::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        p_u16(s, prop::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        p_u8(
            s,
            prop::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        p_u8(
            s,
            prop::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        p_users(s, &self.user_properties);
        p_str(
            s,
            prop::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        p_bin(
            s,
            prop::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
    }
}

impl Props for ConnAckProperties {
    fn content<S: Sink>(&self, s: &mut S) {
        p_u32(
            s,
            prop::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        p_u16(s, prop::RECEIVE_MAXIMUM, self.receive_maximum);
        p_u8(s, prop::MAXIMUM_QOS, self.maximum_qos);
        p_u8(s, prop::RETAIN_AVAILABLE, self.retain_available);
        p_u32(s, prop::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        p_str(
            s,
            prop::ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_deref(),
        );
        p_u16(s, prop::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        p_str(s, prop::REASON_STRING, self.reason_string.as_deref());
        p_users(s, &self.user_properties);
        p_u8(
            s,
            prop::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        p_u8(
            s,
            prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        p_u8(
            s,
            prop::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        p_u16(s, prop::SERVER_KEEP_ALIVE, self.server_keep_alive);
        p_str(
            s,
            prop::RESPONSE_INFORMATION,
            self.response_information.as_deref(),
        );
        p_str(s, prop::SERVER_REFERENCE, self.server_reference.as_deref());
        p_str(
            s,
            prop::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        p_bin(
            s,
            prop::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
    }
}

impl Props for AckProperties {
    fn content<S: Sink>(&self, s: &mut S) {
        p_str(s, prop::REASON_STRING, self.reason_string.as_deref());
        p_users(s, &self.user_properties);
    }
}

/// SUBSCRIBE properties.
struct SubscribeProps<'a>(Option<u32>, &'a [(String, String)]);

impl Props for SubscribeProps<'_> {
    fn content<S: Sink>(&self, s: &mut S) {
        p_varint(s, prop::SUBSCRIPTION_IDENTIFIER, self.0);
        p_users(s, self.1);
    }
}

impl Props for DisconnectProperties {
    fn content<S: Sink>(&self, s: &mut S) {
        p_u32(
            s,
            prop::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
        );
        p_str(s, prop::REASON_STRING, self.reason_string.as_deref());
        p_users(s, &self.user_properties);
        p_str(s, prop::SERVER_REFERENCE, self.server_reference.as_deref());
    }
}

impl Props for AuthProperties {
    fn content<S: Sink>(&self, s: &mut S) {
        p_str(
            s,
            prop::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        p_bin(
            s,
            prop::AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        p_str(s, prop::REASON_STRING, self.reason_string.as_deref());
        p_users(s, &self.user_properties);
    }
}

// ---- packets ----------------------------------------------------------------

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => {
            0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain)
        }
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xa2,
        Packet::UnsubAck(_) => 0xb0,
        Packet::PingReq => 0xc0,
        Packet::PingResp => 0xd0,
        Packet::Disconnect(_) => 0xe0,
        Packet::Auth(_) => 0xf0,
    }
}

fn body_len(packet: &Packet, version: Version) -> usize {
    let mut c = Counter(0);
    write_body(&mut c, packet, version);
    c.0
}

fn write_body<S: Sink>(s: &mut S, packet: &Packet, version: Version) {
    let v5 = version == Version::V5;
    match packet {
        Packet::Connect(c) => connect(s, c, version),
        Packet::ConnAck(c) => connack(s, c, v5),
        Packet::Publish(p) => publish(s, p, v5),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack(s, a, v5)
        }
        Packet::Subscribe(sub) => subscribe(s, sub, v5),
        Packet::SubAck(a) => suback(s, a, v5),
        Packet::Unsubscribe(u) => unsubscribe(s, u, v5),
        Packet::UnsubAck(u) => unsuback(s, u, v5),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => disconnect(s, d, v5),
        Packet::Auth(a) => {
            if v5 {
                auth(s, a)
            }
        }
    }
}

fn connect<S: Sink>(s: &mut S, c: &Connect, version: Version) {
    let v5 = version == Version::V5;
    let (name, level): (&str, u8) = match version {
        Version::V3_1 => ("MQIsdp", 3),
        Version::V3_1_1 => ("MQTT", 4),
        Version::V5 => ("MQTT", 5),
    };
    put_string(s, name);
    s.byte(level);
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos as u8) << 3) | (u8::from(w.retain) << 5);
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    s.byte(flags);
    put_u16(s, c.keep_alive);
    if v5 {
        block(s, &c.properties);
    }
    put_string(s, &c.client_id);
    if let Some(w) = &c.will {
        if v5 {
            block(s, &WillProps(w.delay_interval, &w.properties));
        }
        put_string(s, &w.topic);
        put_binary(s, &w.payload);
    }
    if let Some(u) = &c.username {
        put_string(s, u);
    }
    if let Some(p) = &c.password {
        put_binary(s, p);
    }
}

fn connack<S: Sink>(s: &mut S, c: &ConnAck, v5: bool) {
    s.byte(u8::from(c.session_present));
    s.byte(c.code);
    if v5 {
        block(s, &c.properties);
    }
}

fn publish<S: Sink>(s: &mut S, p: &Publish, v5: bool) {
    put_string(s, &p.topic);
    if p.qos != QoS::AtMostOnce {
        put_u16(s, p.pkid);
    }
    if v5 {
        block(s, &p.properties);
    }
    s.bytes(&p.payload);
}

fn ack<S: Sink>(s: &mut S, a: &Ack, v5: bool) {
    put_u16(s, a.pkid);
    if v5 {
        let has_props = a.properties != AckProperties::default();
        if a.reason != 0 || has_props {
            s.byte(a.reason);
            if has_props {
                block(s, &a.properties);
            }
        }
    }
}

fn subscribe<S: Sink>(s: &mut S, sub: &Subscribe, v5: bool) {
    put_u16(s, sub.pkid);
    if v5 {
        block(
            s,
            &SubscribeProps(sub.subscription_identifier, &sub.user_properties),
        );
    }
    for (filter, o) in &sub.filters {
        put_string(s, filter);
        let mut byte = o.qos as u8;
        if v5 {
            byte |= u8::from(o.no_local) << 2
                | u8::from(o.retain_as_published) << 3
                | (o.retain_handling & 0x03) << 4;
        }
        s.byte(byte);
    }
}

fn suback<S: Sink>(s: &mut S, a: &SubAck, v5: bool) {
    put_u16(s, a.pkid);
    if v5 {
        block(s, &a.properties);
    }
    s.bytes(&a.reason_codes);
}

fn unsubscribe<S: Sink>(s: &mut S, u: &Unsubscribe, v5: bool) {
    put_u16(s, u.pkid);
    if v5 {
        block(s, &SubscribeProps(None, &u.user_properties));
    }
    for f in &u.filters {
        put_string(s, f);
    }
}

fn unsuback<S: Sink>(s: &mut S, u: &UnsubAck, v5: bool) {
    put_u16(s, u.pkid);
    if v5 {
        block(s, &u.properties);
        s.bytes(&u.reason_codes);
    }
}

fn disconnect<S: Sink>(s: &mut S, d: &Disconnect, v5: bool) {
    if v5 {
        let has_props = d.properties != DisconnectProperties::default();
        if d.reason != 0 || has_props {
            s.byte(d.reason);
            if has_props {
                block(s, &d.properties);
            }
        }
    }
}

fn auth<S: Sink>(s: &mut S, a: &Auth) {
    if a.reason != 0 || a.properties != AuthProperties::default() {
        s.byte(a.reason);
        block(s, &a.properties);
    }
}
