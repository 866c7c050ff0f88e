//! Server-side decoding of client-to-server MQTT packets.
//!
//! Every length read from the wire is checked against the bytes actually
//! present before anything is sliced or allocated; the decoder never panics.

use bytes::{Buf, Bytes, BytesMut};

use super::prop;
use super::topic::valid_topic_name;
use super::{
    Ack, AckProperties, Auth, AuthProperties, ByteString, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, Packet, Publish, PublishProperties, QoS, Subscribe, SubscriptionOptions,
    Unsubscribe, Version, Will,
};

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes do not form a valid packet (reason code 0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well-formed but violates the protocol (reason code 0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The packet exceeds the maximum packet size (reason code 0x95).
    #[error("packet of at least {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Size of the packet, fixed header included (a lower bound when
        /// the remaining length is still incomplete).
        size: usize,
        /// The maximum that was allowed.
        max: usize,
    },
    /// CONNECT names a known protocol with an unsupported level (0x84).
    #[error("unsupported protocol level {level}")]
    UnsupportedVersion {
        /// The protocol level byte received.
        level: u8,
    },
    /// A packet type only a server may send (CONNACK, SUBACK, UNSUBACK,
    /// PINGRESP) arrived from a client (0x82).
    #[error("packet type {0} may only be sent by a server")]
    ServerOnlyPacket(u8),
    /// A PUBLISH or will topic name contains wildcards or is empty (0x90).
    #[error("topic name invalid")]
    TopicNameInvalid,
}

impl DecodeError {
    /// MQTT 5 reason code to put in a CONNACK or DISCONNECT for this error.
    pub fn reason_code(&self) -> u8 {
        use super::reason;
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_) | DecodeError::ServerOnlyPacket(_) => reason::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::UnsupportedVersion { .. } => reason::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicNameInvalid => reason::TOPIC_NAME_INVALID,
        }
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

use DecodeError::{Malformed, Protocol};

const EOF: DecodeError = Malformed("packet ends before its fields do");

/// Parses the fixed header at the start of `buf`.
///
/// Returns `(header length, remaining length)` once the remaining length is
/// complete. Fails with `TooLarge` as soon as the size is known (or, while
/// the remaining length is still incomplete, as soon as it must exceed
/// `max`), and with `Malformed` for a remaining length over 4 bytes or not in
/// its shortest form [MQTT-1.5.5-1].
fn fixed_header(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>> {
    let mut value: usize = 0;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            if i > 0 {
                // More length bytes follow; the shortest possible packet is
                // the one whose next length byte is the final byte 0x01.
                let min = 2 + i + value + (1usize << (7 * i));
                if min > max {
                    return Err(DecodeError::TooLarge { size: min, max });
                }
            }
            return Ok(None);
        };
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(Malformed("remaining length not in shortest form"));
            }
            let total = 2 + i + value;
            if total > max {
                return Err(DecodeError::TooLarge { size: total, max });
            }
            return Ok(Some((2 + i, value)));
        }
    }
    Err(Malformed("remaining length longer than 4 bytes"))
}

/// Length of the next whole packet in `buf` (fixed header included) if it
/// is complete.
///
/// Errors on a remaining length over 4 bytes, and with `TooLarge` for a
/// packet above `max_packet_size` as soon as the fixed header is readable,
/// before the body arrives.
pub fn frame_len(buf: &[u8], max_packet_size: usize) -> Result<Option<usize>> {
    match fixed_header(buf, max_packet_size)? {
        Some((header, remaining)) if buf.len() >= header + remaining => {
            Ok(Some(header + remaining))
        }
        _ => Ok(None),
    }
}

/// Removes the next whole packet from `buf`, returning its first byte and its
/// body; `None` (nothing consumed) when the packet is incomplete.
fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<(u8, Bytes)>> {
    let Some((header, remaining)) = fixed_header(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < header + remaining {
        return Ok(None);
    }
    let mut frame = buf.split_to(header + remaining).freeze();
    let first = frame.get_u8();
    frame.advance(header - 1);
    Ok(Some((first, frame)))
}

/// Reads the first packet of a connection, which must be CONNECT; determines
/// the version.
///
/// `Ok(None)` when `buf` holds only part of the packet (nothing consumed).
/// Any other first packet is a protocol error [MQTT-3.1.0-1], reported as soon
/// as its first byte is present.
pub fn read_connect(buf: &mut BytesMut, max_packet_size: usize) -> Result<Option<Connect>> {
    if let Some(&first) = buf.first() {
        if first >> 4 != 1 {
            return Err(Protocol("first packet is not CONNECT"));
        }
        if first & 0x0f != 0 {
            return Err(Malformed("invalid fixed header flags"));
        }
    }
    let Some((_, mut body)) = take_frame(buf, max_packet_size)? else {
        return Ok(None);
    };
    connect(&mut body).map(Some)
}

/// Reads one whole client-to-server packet; `Ok(None)` when `buf` holds only
/// part of one (nothing consumed).
///
/// A second CONNECT is decoded normally (with the version it names); the
/// session layer rejects it.
pub fn read(
    buf: &mut BytesMut,
    version: Version,
    max_packet_size: usize,
) -> Result<Option<Packet>> {
    let Some((first, mut body)) = take_frame(buf, max_packet_size)? else {
        return Ok(None);
    };
    packet(first, &mut body, version).map(Some)
}

/// Decodes a length-prefixed MQTT 5 PUBLISH property block from the front of
/// `buf` (as written by [`super::encode::write_publish_properties`]).
///
/// Several subscription identifiers are accepted.
pub fn decode_publish_properties(buf: &mut Bytes) -> Result<PublishProperties> {
    let mut props = PublishProperties::default();
    properties(buf, true, |id, p| publish_property(&mut props, id, p))?;
    Ok(props)
}

fn packet(first: u8, b: &mut Bytes, version: Version) -> Result<Packet> {
    let kind = first >> 4;
    let flags = first & 0x0f;
    match kind {
        0 => return Err(Malformed("reserved packet type 0")),
        2 | 9 | 11 | 13 => return Err(DecodeError::ServerOnlyPacket(kind)),
        15 if version != Version::V5 => return Err(Malformed("AUTH before MQTT 5")),
        _ => {}
    }
    // [MQTT-2.2.2-1], [MQTT-2.2.2-2]
    let expected = match kind {
        3 => flags,
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(Malformed("invalid fixed header flags"));
    }
    let p = match kind {
        1 => Packet::Connect(Box::new(connect(b)?)),
        3 => Packet::Publish(publish(flags, b, version)?),
        4 => Packet::PubAck(ack(b, version)?),
        5 => Packet::PubRec(ack(b, version)?),
        6 => Packet::PubRel(ack(b, version)?),
        7 => Packet::PubComp(ack(b, version)?),
        8 => Packet::Subscribe(subscribe(b, version)?),
        10 => Packet::Unsubscribe(unsubscribe(b, version)?),
        12 => {
            end(b)?;
            Packet::PingReq
        }
        14 => Packet::Disconnect(disconnect(b, version)?),
        15 => Packet::Auth(auth(b)?),
        _ => return Err(Malformed("unknown packet type")),
    };
    Ok(p)
}

// ---- primitives -----------------------------------------------------------

fn read_u8(b: &mut Bytes) -> Result<u8> {
    if b.is_empty() {
        return Err(EOF);
    }
    Ok(b.get_u8())
}

fn read_u16(b: &mut Bytes) -> Result<u16> {
    if b.len() < 2 {
        return Err(EOF);
    }
    Ok(b.get_u16())
}

fn read_u32(b: &mut Bytes) -> Result<u32> {
    if b.len() < 4 {
        return Err(EOF);
    }
    Ok(b.get_u32())
}

/// Variable Byte Integer: at most 4 bytes, shortest form [MQTT-1.5.5-1].
fn read_varint(b: &mut Bytes) -> Result<u32> {
    let mut value = 0u32;
    for i in 0..4 {
        let byte = read_u8(b)?;
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(Malformed("variable byte integer not in shortest form"));
            }
            return Ok(value);
        }
    }
    Err(Malformed("variable byte integer longer than 4 bytes"))
}

fn read_binary(b: &mut Bytes) -> Result<Bytes> {
    let len = usize::from(read_u16(b)?);
    if b.len() < len {
        return Err(EOF);
    }
    Ok(b.split_to(len))
}

/// UTF-8 string: well-formed [MQTT-1.5.3-1] and without U+0000
/// [MQTT-1.5.3-2] (MQTT 5: [MQTT-1.5.4-1], [MQTT-1.5.4-2]).
fn read_string(b: &mut Bytes) -> Result<String> {
    read_shared_string(b).map(|s| String::from(&*s))
}

/// [`read_string`] without a copy: the string shares `b`'s buffer.
fn read_shared_string(b: &mut Bytes) -> Result<ByteString> {
    let s = ByteString::try_from(read_binary(b)?)
        .map_err(|_| Malformed("string is not valid UTF-8"))?;
    if s.contains('\0') {
        return Err(Malformed("string contains U+0000"));
    }
    Ok(s)
}

fn read_pair(b: &mut Bytes) -> Result<(String, String)> {
    Ok((read_string(b)?, read_string(b)?))
}

fn end(b: &Bytes) -> Result<()> {
    if b.is_empty() {
        Ok(())
    } else {
        Err(Malformed("unexpected bytes after the packet's fields"))
    }
}

/// Reads a property block: a length, then properties each handled by `f`,
/// which reads the value and rejects ids not allowed in the packet.
///
/// A property other than User Property (and, if `multi_sub_id`,
/// Subscription Identifier) appearing twice is a protocol error.
fn properties(
    b: &mut Bytes,
    multi_sub_id: bool,
    mut f: impl FnMut(u8, &mut Bytes) -> Result<()>,
) -> Result<()> {
    let len = read_varint(b)? as usize;
    if b.len() < len {
        return Err(Malformed("property length exceeds the packet"));
    }
    let mut p = b.split_to(len);
    let mut seen = 0u64;
    while !p.is_empty() {
        let id = read_varint(&mut p)?;
        let id = match u8::try_from(id) {
            Ok(id) if id < 64 => id,
            _ => return Err(Malformed("unknown property identifier")),
        };
        let repeatable =
            id == prop::USER_PROPERTY || (multi_sub_id && id == prop::SUBSCRIPTION_IDENTIFIER);
        if !repeatable {
            if seen & (1u64 << id) != 0 {
                return Err(Protocol("property included more than once"));
            }
            seen |= 1u64 << id;
        }
        f(id, &mut p)?;
    }
    Ok(())
}

const NOT_ALLOWED: DecodeError = Malformed("property not allowed in this packet");

fn zero_or_one(v: u8) -> Result<u8> {
    if v > 1 {
        return Err(Protocol("property value must be 0 or 1"));
    }
    Ok(v)
}

/// Handles the properties a PUBLISH (or will, minus the topic alias and
/// subscription identifier) can carry.
fn publish_property(props: &mut PublishProperties, id: u8, p: &mut Bytes) -> Result<()> {
    match id {
        prop::PAYLOAD_FORMAT_INDICATOR => props.payload_format_indicator = Some(read_u8(p)?),
        prop::MESSAGE_EXPIRY_INTERVAL => props.message_expiry_interval = Some(read_u32(p)?),
        prop::CONTENT_TYPE => props.content_type = Some(read_string(p)?),
        prop::RESPONSE_TOPIC => props.response_topic = Some(read_string(p)?),
        prop::CORRELATION_DATA => props.correlation_data = Some(read_binary(p)?),
        prop::USER_PROPERTY => props.user_properties.push(read_pair(p)?),
        prop::TOPIC_ALIAS => {
            let alias = read_u16(p)?;
            if alias == 0 {
                return Err(Protocol("topic alias 0"));
            }
            props.topic_alias = Some(alias);
        }
        prop::SUBSCRIPTION_IDENTIFIER => {
            let id = read_varint(p)?;
            if id == 0 {
                return Err(Protocol("subscription identifier 0"));
            }
            props.subscription_identifiers.push(id);
        }
        _ => return Err(NOT_ALLOWED),
    }
    Ok(())
}

fn ack_properties(b: &mut Bytes) -> Result<AckProperties> {
    let mut props = AckProperties::default();
    properties(b, false, |id, p| {
        match id {
            prop::REASON_STRING => props.reason_string = Some(read_string(p)?),
            prop::USER_PROPERTY => props.user_properties.push(read_pair(p)?),
            _ => return Err(NOT_ALLOWED),
        }
        Ok(())
    })?;
    Ok(props)
}

fn user_properties_only(b: &mut Bytes) -> Result<Vec<(String, String)>> {
    let mut users = Vec::new();
    properties(b, false, |id, p| {
        if id != prop::USER_PROPERTY {
            return Err(NOT_ALLOWED);
        }
        users.push(read_pair(p)?);
        Ok(())
    })?;
    Ok(users)
}

// ---- packets ----------------------------------------------------------------

fn connect(b: &mut Bytes) -> Result<Connect> {
    let name = read_binary(b)?;
    let level = read_u8(b)?;
    let version = match (&name[..], level) {
        (b"MQTT", 4) => Version::V3_1_1,
        (b"MQTT", 5) => Version::V5,
        (b"MQIsdp", 3) => Version::V3_1,
        (b"MQTT" | b"MQIsdp", level) => return Err(DecodeError::UnsupportedVersion { level }),
        _ => return Err(Malformed("unknown protocol name")),
    };
    let v5 = version == Version::V5;
    let flags = read_u8(b)?;
    if flags & 0x01 != 0 {
        return Err(Malformed("CONNECT reserved flag set")); // [MQTT-3.1.2-3]
    }
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
        return Err(Malformed("will QoS or retain without will flag"));
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(Malformed("will QoS 3"))?; // [MQTT-3.1.2-14]
    if !v5 && password_flag && !username_flag {
        return Err(Malformed("password without user name")); // [MQTT-3.1.2-22]
    }
    let keep_alive = read_u16(b)?;

    let mut props = ConnectProperties::default();
    if v5 {
        properties(b, false, |id, p| {
            match id {
                prop::SESSION_EXPIRY_INTERVAL => props.session_expiry_interval = Some(read_u32(p)?),
                prop::RECEIVE_MAXIMUM => {
                    let v = read_u16(p)?;
                    if v == 0 {
                        return Err(Protocol("receive maximum 0"));
                    }
                    props.receive_maximum = Some(v);
                }
                prop::MAXIMUM_PACKET_SIZE => {
                    let v = read_u32(p)?;
                    if v == 0 {
                        return Err(Protocol("maximum packet size 0"));
                    }
                    props.maximum_packet_size = Some(v);
                }
                prop::TOPIC_ALIAS_MAXIMUM => props.topic_alias_maximum = Some(read_u16(p)?),
                prop::REQUEST_RESPONSE_INFORMATION => {
                    props.request_response_information = Some(zero_or_one(read_u8(p)?)?)
                }
                prop::REQUEST_PROBLEM_INFORMATION => {
                    props.request_problem_information = Some(zero_or_one(read_u8(p)?)?)
                }
                prop::USER_PROPERTY => props.user_properties.push(read_pair(p)?),
                prop::AUTHENTICATION_METHOD => props.authentication_method = Some(read_string(p)?),
                prop::AUTHENTICATION_DATA => props.authentication_data = Some(read_binary(p)?),
                _ => return Err(NOT_ALLOWED),
            }
            Ok(())
        })?;
        if props.authentication_data.is_some() && props.authentication_method.is_none() {
            return Err(Protocol("authentication data without method"));
        }
    }

    let client_id = read_string(b)?;
    let will = if will_flag {
        let mut delay_interval = None;
        let mut wprops = PublishProperties::default();
        if v5 {
            properties(b, false, |id, p| match id {
                prop::WILL_DELAY_INTERVAL => {
                    delay_interval = Some(read_u32(p)?);
                    Ok(())
                }
                prop::TOPIC_ALIAS | prop::SUBSCRIPTION_IDENTIFIER => Err(NOT_ALLOWED),
                _ => publish_property(&mut wprops, id, p),
            })?;
        }
        let topic = read_string(b)?;
        if !valid_topic_name(&topic) {
            return Err(DecodeError::TopicNameInvalid);
        }
        let payload = read_binary(b)?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            delay_interval,
            properties: wprops,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(read_string(b)?)
    } else {
        None
    };
    let password = if password_flag {
        Some(read_binary(b)?)
    } else {
        None
    };
    end(b)?;
    Ok(Connect {
        version,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        username,
        password,
        will,
        properties: props,
    })
}

fn publish(flags: u8, b: &mut Bytes, version: Version) -> Result<Publish> {
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let qos = QoS::from_u8((flags >> 1) & 0x03).ok_or(Malformed("PUBLISH QoS 3"))?; // [MQTT-3.3.1-4]
    if dup && qos == QoS::AtMostOnce {
        return Err(Malformed("DUP set on QoS 0 PUBLISH")); // [MQTT-3.3.1-2]
    }
    let topic = read_shared_string(b)?;
    // [MQTT-3.3.2-2]; an empty topic is only allowed with a v5 topic alias,
    // which the session layer checks.
    if topic.contains(['+', '#']) || (topic.is_empty() && version != Version::V5) {
        return Err(DecodeError::TopicNameInvalid);
    }
    let pkid = if qos == QoS::AtMostOnce {
        0
    } else {
        let pkid = read_u16(b)?;
        if pkid == 0 {
            return Err(Protocol("packet identifier 0")); // [MQTT-2.2.1-3]
        }
        pkid
    };
    let mut props = PublishProperties::default();
    if version == Version::V5 {
        properties(b, false, |id, p| {
            if id == prop::SUBSCRIPTION_IDENTIFIER {
                return Err(Protocol("subscription identifier in client PUBLISH"));
            }
            publish_property(&mut props, id, p)
        })?;
    }
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        pkid,
        properties: props,
        payload: std::mem::take(b),
    })
}

fn ack(b: &mut Bytes, version: Version) -> Result<Ack> {
    let pkid = read_u16(b)?;
    let mut a = Ack {
        pkid,
        reason: 0,
        properties: AckProperties::default(),
    };
    if version == Version::V5 && !b.is_empty() {
        a.reason = read_u8(b)?;
        if !b.is_empty() {
            a.properties = ack_properties(b)?;
        }
    }
    end(b)?;
    Ok(a)
}

fn subscribe(b: &mut Bytes, version: Version) -> Result<Subscribe> {
    let v5 = version == Version::V5;
    let pkid = read_u16(b)?;
    if pkid == 0 {
        return Err(Protocol("packet identifier 0")); // [MQTT-2.3.1-1] / v5 [MQTT-2.2.1-3]
    }
    let mut subscription_identifier = None;
    let mut user_properties = Vec::new();
    if v5 {
        properties(b, false, |id, p| {
            match id {
                prop::SUBSCRIPTION_IDENTIFIER => {
                    let v = read_varint(p)?;
                    if v == 0 {
                        return Err(Protocol("subscription identifier 0"));
                    }
                    subscription_identifier = Some(v);
                }
                prop::USER_PROPERTY => user_properties.push(read_pair(p)?),
                _ => return Err(NOT_ALLOWED),
            }
            Ok(())
        })?;
    }
    let mut filters = Vec::new();
    while !b.is_empty() {
        let filter = read_string(b)?;
        let o = read_u8(b)?;
        let reserved = if v5 { 0xC0 } else { 0xFC };
        if o & reserved != 0 {
            // [MQTT-3.8.3-4] / v5 [MQTT-3.8.3-5]
            return Err(Malformed("subscription options reserved bits set"));
        }
        let qos = QoS::from_u8(o & 0x03).ok_or(Malformed("subscription QoS 3"))?;
        let retain_handling = (o >> 4) & 0x03;
        if retain_handling == 3 {
            return Err(Protocol("retain handling 3"));
        }
        let no_local = o & 0x04 != 0;
        if no_local && super::topic::parse_shared(&filter).is_some() {
            return Err(Protocol("no local on a shared subscription")); // v5 [MQTT-3.8.3-4]
        }
        filters.push((
            filter,
            SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: o & 0x08 != 0,
                retain_handling,
            },
        ));
    }
    if filters.is_empty() {
        return Err(Protocol("SUBSCRIBE without filters")); // [MQTT-3.8.3-3]
    }
    Ok(Subscribe {
        pkid,
        filters,
        subscription_identifier,
        user_properties,
    })
}

fn unsubscribe(b: &mut Bytes, version: Version) -> Result<Unsubscribe> {
    let pkid = read_u16(b)?;
    if pkid == 0 {
        return Err(Protocol("packet identifier 0")); // [MQTT-2.3.1-1] / v5 [MQTT-2.2.1-3]
    }
    let user_properties = if version == Version::V5 {
        user_properties_only(b)?
    } else {
        Vec::new()
    };
    let mut filters = Vec::new();
    while !b.is_empty() {
        filters.push(read_string(b)?);
    }
    if filters.is_empty() {
        return Err(Protocol("UNSUBSCRIBE without filters")); // [MQTT-3.10.3-2]
    }
    Ok(Unsubscribe {
        pkid,
        filters,
        user_properties,
    })
}

fn disconnect(b: &mut Bytes, version: Version) -> Result<Disconnect> {
    let mut d = Disconnect {
        reason: 0,
        properties: DisconnectProperties::default(),
    };
    if version == Version::V5 && !b.is_empty() {
        d.reason = read_u8(b)?;
        if !b.is_empty() {
            let props = &mut d.properties;
            properties(b, false, |id, p| {
                match id {
                    prop::SESSION_EXPIRY_INTERVAL => {
                        props.session_expiry_interval = Some(read_u32(p)?)
                    }
                    prop::REASON_STRING => props.reason_string = Some(read_string(p)?),
                    prop::USER_PROPERTY => props.user_properties.push(read_pair(p)?),
                    prop::SERVER_REFERENCE => props.server_reference = Some(read_string(p)?),
                    _ => return Err(NOT_ALLOWED),
                }
                Ok(())
            })?;
        }
    }
    end(b)?;
    Ok(d)
}

fn auth(b: &mut Bytes) -> Result<Auth> {
    let mut a = Auth {
        reason: 0,
        properties: AuthProperties::default(),
    };
    if !b.is_empty() {
        a.reason = read_u8(b)?;
        let props = &mut a.properties;
        properties(b, false, |id, p| {
            match id {
                prop::AUTHENTICATION_METHOD => props.authentication_method = Some(read_string(p)?),
                prop::AUTHENTICATION_DATA => props.authentication_data = Some(read_binary(p)?),
                prop::REASON_STRING => props.reason_string = Some(read_string(p)?),
                prop::USER_PROPERTY => props.user_properties.push(read_pair(p)?),
                _ => return Err(NOT_ALLOWED),
            }
            Ok(())
        })?;
        if props.authentication_data.is_some() && props.authentication_method.is_none() {
            return Err(Protocol("authentication data without method"));
        }
    }
    end(b)?;
    Ok(a)
}
