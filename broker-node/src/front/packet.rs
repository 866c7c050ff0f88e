//! Just enough MQTT packet parsing and encoding for the front to authorise traffic:
//! the fields of CONNECT, PUBLISH and SUBSCRIBE it decides on, and the small packets
//! it answers with itself (CONNACK refusals, PUBACK/PUBREC/PUBCOMP, SUBACK).
//!
//! Packets are whole (fixed header included), as the pump frames them. MQTT 3.1 and
//! 3.1.1 share the wire format of everything after CONNECT; MQTT 5 adds properties.

use super::proxy::Version;

/// Control packet types (the fixed header's high nibble).
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const PUBACK: u8 = 4;
    pub const PUBREC: u8 = 5;
    pub const PUBREL: u8 = 6;
    pub const PUBCOMP: u8 = 7;
    pub const SUBSCRIBE: u8 = 8;
    pub const SUBACK: u8 = 9;
    pub const UNSUBSCRIBE: u8 = 10;
    pub const UNSUBACK: u8 = 11;
    pub const DISCONNECT: u8 = 14;
}

/// Reason codes the front sends.
pub mod reason {
    /// MQTT 3.1.1 CONNACK: bad user name or password.
    pub const V3_BAD_CREDENTIALS: u8 = 0x04;
    /// MQTT 3.1.1 CONNACK: not authorized.
    pub const V3_NOT_AUTHORIZED: u8 = 0x05;
    /// MQTT 3.1.1 CONNACK: server unavailable.
    pub const V3_SERVER_UNAVAILABLE: u8 = 0x03;
    /// MQTT 3.1.1 CONNACK: identifier rejected.
    pub const V3_IDENTIFIER_REJECTED: u8 = 0x02;
    /// MQTT 5 CONNACK: client identifier not valid.
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    /// MQTT 3.1.1 SUBACK: failure.
    pub const V3_SUBACK_FAILURE: u8 = 0x80;
    pub const BAD_CREDENTIALS: u8 = 0x86;
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// MQTT 5 SUBACK: topic filter invalid.
    pub const TOPIC_FILTER_INVALID: u8 = 0x8f;
    /// MQTT 5 DISCONNECT: topic name invalid.
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    pub const BANNED: u8 = 0x8a;
    pub const QUOTA_EXCEEDED: u8 = 0x97;
}

/// The packet type of a whole packet.
pub fn packet_kind(packet: &[u8]) -> u8 {
    packet[0] >> 4
}

/// Offset of the variable header: just past the fixed header.
pub fn body_start(packet: &[u8]) -> Option<usize> {
    packet
        .get(1..)?
        .iter()
        .take(4)
        .position(|b| b & 0x80 == 0)
        .map(|i| i + 2)
}

/// A variable byte integer at the start of `buf`: (value, bytes used).
pub fn varint(buf: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

pub fn encode_varint(mut value: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            break;
        }
    }
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// A length-prefixed field at `at`: (bytes, offset just past it).
fn field_at(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = usize::from(u16_at(buf, at)?);
    let bytes = buf.get(at + 2..at + 2 + len)?;
    Some((bytes, at + 2 + len))
}

/// A v5 property block at `at`: (properties, offset just past them).
fn properties_at(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (len, used) = varint(buf.get(at..)?)?;
    let props = buf.get(at + used..at + used + len)?;
    Some((props, at + used + len))
}

/// Finds property `id` in a v5 property block; returns its value bytes.
pub fn find_property(props: &[u8], id: u8) -> Option<&[u8]> {
    let mut i = 0;
    while i < props.len() {
        let this = props[i];
        i += 1;
        let len = match this {
            // Byte.
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1,
            // Two-byte integer.
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            // Four-byte integer.
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            // UTF-8 string or binary data.
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => {
                2 + usize::from(u16_at(props, i)?)
            }
            // User property: a string pair.
            0x26 => {
                let first = 2 + usize::from(u16_at(props, i)?);
                first + 2 + usize::from(u16_at(props, i + first)?)
            }
            // Subscription identifier: a variable byte integer.
            0x0b => varint(props.get(i..)?)?.1,
            _ => return None,
        };
        if this == id {
            return props.get(i..i + len);
        }
        i += len;
    }
    None
}

/// The fields of a CONNECT that authentication and authorization look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFields {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub will_topic: Option<String>,
    pub keep_alive: u16,
    /// Clean session (3.1.1) / clean start (5).
    pub clean_start: bool,
}

impl ConnectFields {
    /// Parses a CONNECT as the client sent it (3.1, 3.1.1 or 5).
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let body = packet.get(body_start(packet)?..)?;
        let (_, at) = field_at(body, 0)?; // protocol name
        let level = *body.get(at)?;
        let flags = *body.get(at + 1)?;
        let keep_alive = u16_at(body, at + 2)?;
        let mut at = at + 4; // level, flags, keep alive
        if level == 5 {
            at = properties_at(body, at)?.1;
        }
        let (client_id, next) = field_at(body, at)?;
        at = next;
        let mut will_topic = None;
        if flags & 0x04 != 0 {
            if level == 5 {
                at = properties_at(body, at)?.1;
            }
            let (topic, next) = field_at(body, at)?;
            will_topic = Some(String::from_utf8_lossy(topic).into_owned());
            at = field_at(body, next)?.1; // will payload
        }
        let mut username = None;
        if flags & 0x80 != 0 {
            let (name, next) = field_at(body, at)?;
            username = Some(String::from_utf8_lossy(name).into_owned());
            at = next;
        }
        let mut password = None;
        if flags & 0x40 != 0 {
            password = Some(field_at(body, at)?.0.to_vec());
        }
        Some(Self {
            client_id: String::from_utf8_lossy(client_id).into_owned(),
            username,
            password,
            will_topic,
            keep_alive,
            clean_start: flags & 0x02 != 0,
        })
    }
}

/// The same CONNECT without its will (flags cleared, will properties, topic and payload
/// removed).
pub fn without_will(packet: &[u8]) -> Option<Vec<u8>> {
    let start = body_start(packet)?;
    let body = packet.get(start..)?;
    let (_, at) = field_at(body, 0)?;
    let level = *body.get(at)?;
    let flags_at = at + 1;
    let flags = *body.get(flags_at)?;
    if flags & 0x04 == 0 {
        return Some(packet.to_vec());
    }
    let mut will_start = at + 4;
    if level == 5 {
        will_start = properties_at(body, will_start)?.1;
    }
    will_start = field_at(body, will_start)?.1; // client id
    let mut will_end = will_start;
    if level == 5 {
        will_end = properties_at(body, will_end)?.1;
    }
    will_end = field_at(body, will_end)?.1; // topic
    will_end = field_at(body, will_end)?.1; // payload
    let mut new_body = body[..will_start].to_vec();
    new_body[flags_at] = flags & !0x3c;
    new_body.extend_from_slice(&body[will_end..]);
    let mut out = vec![packet[0]];
    encode_varint(new_body.len(), &mut out);
    out.extend(new_body);
    Some(out)
}

/// The parts of a client's PUBLISH the front authorises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub qos: u8,
    /// Empty when a v5 client uses a topic alias alone.
    pub topic: &'a [u8],
    pub pkid: Option<u16>,
    /// The v5 topic alias property, if any.
    pub topic_alias: Option<u16>,
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    pub fn parse(packet: &'a [u8], version: Version) -> Option<Self> {
        let qos = (packet[0] >> 1) & 0x03;
        let start = body_start(packet)?;
        let (topic, mut at) = field_at(packet, start)?;
        let mut pkid = None;
        if qos > 0 {
            pkid = Some(u16_at(packet, at)?);
            at += 2;
        }
        let mut topic_alias = None;
        if version == Version::V5 {
            let (props, end) = properties_at(packet, at)?;
            topic_alias = find_property(props, 0x23).and_then(|v| u16_at(v, 0));
            at = end;
        }
        Some(Self {
            qos,
            topic,
            pkid,
            topic_alias,
            payload: packet.get(at..)?,
        })
    }
}

/// A SUBSCRIBE: its packet id and each filter with where its entry sits in the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub pkid: u16,
    /// Offset where the payload (the filter list) starts.
    payload_start: usize,
    /// Each filter and the byte range of its entry (length, filter, options byte).
    pub filters: Vec<(String, std::ops::Range<usize>)>,
}

impl Subscribe {
    pub fn parse(packet: &[u8], version: Version) -> Option<Self> {
        let start = body_start(packet)?;
        let pkid = u16_at(packet, start)?;
        let mut at = start + 2;
        if version == Version::V5 {
            at = properties_at(packet, at)?.1;
        }
        let payload_start = at;
        let mut filters = Vec::new();
        while at < packet.len() {
            let (filter, next) = field_at(packet, at)?;
            packet.get(next)?; // options byte
            filters.push((String::from_utf8_lossy(filter).into_owned(), at..next + 1));
            at = next + 1;
        }
        (!filters.is_empty()).then_some(Self {
            pkid,
            payload_start,
            filters,
        })
    }

    /// The same SUBSCRIBE with only the entries whose `keep` flag is set.
    pub fn retain_entries(&self, packet: &[u8], keep: &[bool]) -> Vec<u8> {
        self.rewrite_entries(packet, keep, |_| None)
    }

    /// The same SUBSCRIBE with only the kept entries, each filter renamed by `rename`
    /// when it says so.
    pub fn rewrite_entries(
        &self,
        packet: &[u8],
        keep: &[bool],
        rename: impl Fn(&str) -> Option<String>,
    ) -> Vec<u8> {
        let start = body_start(packet).unwrap_or(2);
        let mut body = packet[start..self.payload_start].to_vec();
        for ((filter, range), keep) in self.filters.iter().zip(keep) {
            if !*keep {
                continue;
            }
            match rename(filter) {
                Some(renamed) => {
                    body.extend((renamed.len() as u16).to_be_bytes());
                    body.extend_from_slice(renamed.as_bytes());
                    body.push(packet[range.end - 1]); // options byte
                }
                None => body.extend_from_slice(&packet[range.clone()]),
            }
        }
        let mut out = vec![packet[0]];
        encode_varint(body.len(), &mut out);
        out.extend(body);
        out
    }
}

/// An UNSUBSCRIBE's filters, and the packet with them renamed by `rename` where it says
/// so (`None` when nothing is renamed); `None` for a malformed packet.
pub fn rename_unsubscribe(
    packet: &[u8],
    version: Version,
    rename: impl Fn(&str) -> Option<String>,
) -> Option<(Option<Vec<u8>>, Vec<String>)> {
    let start = body_start(packet)?;
    let mut at = start + 2;
    if version == Version::V5 {
        at = properties_at(packet, at)?.1;
    }
    let mut body = packet[start..at].to_vec();
    let mut renamed_any = false;
    let mut filters = Vec::new();
    while at < packet.len() {
        let (filter, next) = field_at(packet, at)?;
        let filter = String::from_utf8_lossy(filter).into_owned();
        let name = match rename(&filter) {
            Some(renamed) => {
                renamed_any = true;
                renamed
            }
            None => filter.clone(),
        };
        body.extend((name.len() as u16).to_be_bytes());
        body.extend_from_slice(name.as_bytes());
        filters.push(filter);
        at = next;
    }
    let mut out = vec![packet[0]];
    encode_varint(body.len(), &mut out);
    out.extend(body);
    Some((renamed_any.then_some(out), filters))
}

/// The same PUBLISH with its topic replaced by `topic`.
pub fn with_topic(packet: &[u8], topic: &str) -> Option<Vec<u8>> {
    let start = body_start(packet)?;
    let (_, rest) = field_at(packet, start)?;
    let mut body = Vec::with_capacity(packet.len() + topic.len());
    body.extend((topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&packet[rest..]);
    let mut out = vec![packet[0]];
    encode_varint(body.len(), &mut out);
    out.extend(body);
    Some(out)
}

/// The topic of a PUBLISH.
pub fn publish_topic(packet: &[u8]) -> Option<&[u8]> {
    Some(field_at(packet, body_start(packet)?)?.0)
}

/// Rewrites an engine SUBACK so it answers every filter the client asked for: the
/// engine saw only the allowed ones (`codes[i]` is `None`); refused ones get their code.
pub fn splice_suback(packet: &[u8], version: Version, codes: &[Option<u8>]) -> Option<Vec<u8>> {
    let start = body_start(packet)?;
    let mut at = start + 2;
    if version == Version::V5 {
        at = properties_at(packet, at)?.1;
    }
    let mut engine_codes = packet.get(at..)?.iter();
    let mut body = packet[start..at].to_vec();
    for code in codes {
        body.push(match code {
            None => *engine_codes.next()?,
            Some(refused) => *refused,
        });
    }
    let mut out = vec![packet[0]];
    encode_varint(body.len(), &mut out);
    out.extend(body);
    Some(out)
}

/// A SUBSCRIBE (`filters` with their QoS) or, without QoS, an UNSUBSCRIBE that the node
/// sends in a client's name.
pub fn subscription_request(
    pkid: u16,
    version: Version,
    filters: &[(&str, Option<u8>)],
) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.push(0); // no properties
    }
    let mut first = 0xa2; // UNSUBSCRIBE
    for (filter, qos) in filters {
        body.extend((filter.len() as u16).to_be_bytes());
        body.extend(filter.as_bytes());
        if let Some(qos) = qos {
            first = 0x82; // SUBSCRIBE
            body.push(*qos);
        }
    }
    let mut out = vec![first];
    encode_varint(body.len(), &mut out);
    out.extend(body);
    out
}

/// A PUBLISH of the node's own to a client.
pub fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    pkid: Option<u16>,
    version: Version,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 6);
    body.extend((topic.len() as u16).to_be_bytes());
    body.extend(topic.as_bytes());
    if let Some(pkid) = pkid.filter(|_| qos > 0) {
        body.extend(pkid.to_be_bytes());
    }
    if version == Version::V5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(payload);
    let mut out = vec![0x30 | (qos.min(2) << 1) | u8::from(retain)];
    encode_varint(body.len(), &mut out);
    out.extend(body);
    out
}

/// The reason codes of a SUBACK or UNSUBACK (none in an MQTT 3.1.1 UNSUBACK).
pub fn ack_codes(packet: &[u8], version: Version) -> Option<Vec<u8>> {
    let mut at = body_start(packet)? + 2;
    if version == Version::V5 {
        at = properties_at(packet, at)?.1;
    }
    Some(packet.get(at..)?.to_vec())
}

/// A SUBACK refusing every filter, each with its code.
pub fn suback_refusing(pkid: u16, version: Version, codes: &[u8]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(codes);
    let mut out = vec![0x90];
    encode_varint(body.len(), &mut out);
    out.extend(body);
    out
}

/// An acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) for `pkid`; v5 carries `reason`.
pub fn ack(packet_kind: u8, pkid: u16, version: Version, reason: u8) -> Vec<u8> {
    let [hi, lo] = pkid.to_be_bytes();
    // PUBREL's fixed header carries the flags 0b0010 (MQTT 3.6.1).
    let first = (packet_kind << 4) | if packet_kind == kind::PUBREL { 0x02 } else { 0 };
    if version == Version::V5 && reason != 0 {
        vec![first, 3, hi, lo, reason]
    } else {
        vec![first, 2, hi, lo]
    }
}

/// The packet id of a PUBREL (or any packet whose variable header starts with one).
pub fn pkid_of(packet: &[u8]) -> Option<u16> {
    u16_at(packet, body_start(packet)?)
}

/// A CONNACK refusing the connection.
pub fn connack_refusal(version: Version, reason: u8) -> Vec<u8> {
    match version {
        Version::V5 => vec![0x20, 3, 0, reason, 0],
        Version::V3_1 | Version::V3_1_1 => vec![0x20, 2, 0, reason],
    }
}

/// A v5 DISCONNECT with `reason`.
pub fn disconnect(reason: u8) -> Vec<u8> {
    vec![0xe0, 2, reason, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_requests_round_trip() {
        for version in [Version::V3_1_1, Version::V5] {
            let sub = subscription_request(0xfffe, version, &[("a/+", Some(1)), ("b", Some(2))]);
            let parsed = Subscribe::parse(&sub, version).unwrap();
            assert_eq!(parsed.pkid, 0xfffe);
            let filters: Vec<&str> = parsed.filters.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(filters, ["a/+", "b"]);
            let unsub = subscription_request(7, version, &[("a/+", None)]);
            let (_, names) = rename_unsubscribe(&unsub, version, |_| None).unwrap();
            assert_eq!(names, ["a/+"]);
            let suback = suback_refusing(7, version, &[0x80, 0x80]);
            assert_eq!(ack_codes(&suback, version).unwrap(), [0x80, 0x80]);
        }
    }

    fn with_header(first: u8, body: Vec<u8>) -> Vec<u8> {
        let mut out = vec![first];
        encode_varint(body.len(), &mut out);
        out.extend(body);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn connect_fields_v3_with_will_user_and_password() {
        let mut body = string("MQTT");
        body.extend([4, 0b1100_0110, 0, 60]);
        body.extend(string("dev-1"));
        body.extend(string("will/t"));
        body.extend(string("bye"));
        body.extend(string("alice"));
        body.extend(string("s3cret"));
        let fields = ConnectFields::parse(&with_header(0x10, body)).unwrap();
        assert_eq!(fields.client_id, "dev-1");
        assert_eq!(fields.will_topic.as_deref(), Some("will/t"));
        assert_eq!(fields.username.as_deref(), Some("alice"));
        assert_eq!(fields.password.as_deref(), Some(&b"s3cret"[..]));
    }

    #[test]
    fn will_is_removed() {
        let mut body = string("MQTT");
        body.extend([5, 0b1010_1110, 0, 60, 0]);
        body.extend(string("dev-3"));
        body.extend([0]); // will properties
        body.extend(string("w"));
        body.extend(string("x"));
        body.extend(string("carol"));
        let stripped = without_will(&with_header(0x10, body)).unwrap();
        let fields = ConnectFields::parse(&stripped).unwrap();
        assert_eq!(fields.will_topic, None);
        assert_eq!(fields.username.as_deref(), Some("carol"));
        assert_eq!(fields.client_id, "dev-3");
        let mut expected = string("MQTT");
        expected.extend([5, 0b1000_0010, 0, 60, 0]);
        expected.extend(string("dev-3"));
        expected.extend(string("carol"));
        assert_eq!(stripped, with_header(0x10, expected));
    }

    #[test]
    fn connect_fields_v5_skip_properties() {
        let mut body = string("MQTT");
        body.extend([5, 0b1000_0110, 0, 60]);
        body.extend([5, 0x11, 0, 0, 0, 10]); // session expiry
        body.extend(string("dev-2"));
        body.extend([2, 0x01, 1]); // will properties: payload format
        body.extend(string("w"));
        body.extend(string("x"));
        body.extend(string("bob"));
        let fields = ConnectFields::parse(&with_header(0x10, body)).unwrap();
        assert_eq!(fields.client_id, "dev-2");
        assert_eq!(fields.will_topic.as_deref(), Some("w"));
        assert_eq!(fields.username.as_deref(), Some("bob"));
        assert_eq!(fields.password, None);
    }

    #[test]
    fn publish_fields() {
        let mut body = string("a/b");
        body.extend([0, 7]);
        body.extend(b"payload");
        let packet = with_header(0x32, body);
        let publish = Publish::parse(&packet, Version::V3_1_1).unwrap();
        assert_eq!(
            (publish.qos, publish.topic, publish.pkid),
            (1, &b"a/b"[..], Some(7))
        );

        let mut body = string("");
        body.extend([3, 0x23, 0, 9]); // topic alias 9
        body.extend(b"p");
        let packet = with_header(0x30, body);
        let publish = Publish::parse(&packet, Version::V5).unwrap();
        assert_eq!((publish.topic, publish.topic_alias), (&b""[..], Some(9)));
    }

    #[test]
    fn subscribe_filter_and_suback_splice() {
        for version in [Version::V3_1_1, Version::V5] {
            let mut body = vec![0, 42];
            if version == Version::V5 {
                body.push(0);
            }
            for filter in ["ok/1", "no/2", "ok/3"] {
                body.extend(string(filter));
                body.push(1);
            }
            let packet = with_header(0x82, body);
            let sub = Subscribe::parse(&packet, version).unwrap();
            assert_eq!(sub.pkid, 42);
            let names: Vec<_> = sub.filters.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(names, ["ok/1", "no/2", "ok/3"]);
            let keep = [true, false, true];
            let trimmed = sub.retain_entries(&packet, &keep);
            let again = Subscribe::parse(&trimmed, version).unwrap();
            let names: Vec<_> = again.filters.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(names, ["ok/1", "ok/3"]);

            let engine = suback_refusing(42, version, &[1, 1]);
            let spliced = splice_suback(&engine, version, &[None, Some(0x87), None]).unwrap();
            assert_eq!(spliced, {
                let mut expected = suback_refusing(42, version, &[1, 1, 1]);
                let n = expected.len();
                expected[n - 2] = 0x87;
                expected
            });
        }
    }

    #[test]
    fn acks() {
        assert_eq!(
            ack(kind::PUBACK, 0x0102, Version::V3_1_1, 0x87),
            [0x40, 2, 1, 2]
        );
        assert_eq!(
            ack(kind::PUBACK, 0x0102, Version::V5, 0x87),
            [0x40, 3, 1, 2, 0x87]
        );
        assert_eq!(pkid_of(&[0x62, 2, 0, 5]), Some(5));
        assert_eq!(ack(kind::PUBREL, 5, Version::V3_1_1, 0), [0x62, 2, 0, 5]);
    }
}
