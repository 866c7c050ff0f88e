//! Unit tests: one per decoder rule (spec statement in the name or doc),
//! encoder forms, and round trips.

use bytes::{BufMut, BytesMut};

use super::decode::{decode_publish_properties, frame_len, read, read_connect, DecodeError};
use super::encode::{encoded_len, write, write_publish_properties};
use super::*;

use DecodeError::{Malformed, Protocol};

const MAX: usize = 1 << 20;
const ALL: [Version; 3] = [Version::V3_1, Version::V3_1_1, Version::V5];
const V3: [Version; 2] = [Version::V3_1, Version::V3_1_1];

// ---- helpers ----------------------------------------------------------------

/// A frame with the given first byte and body (remaining length computed).
fn frame(first: u8, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(first);
    let mut n = body.len();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        b.put_u8(byte);
        if n == 0 {
            break;
        }
    }
    b.put_slice(body);
    b
}

fn s(v: &str) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v.as_bytes());
    out
}

fn dec(first: u8, body: &[u8], v: Version) -> Result<Option<Packet>, DecodeError> {
    read(&mut frame(first, body), v, MAX)
}

fn dec_ok(first: u8, body: &[u8], v: Version) -> Packet {
    match dec(first, body, v) {
        Ok(Some(p)) => p,
        other => panic!("expected a packet, got {other:?}"),
    }
}

fn err(first: u8, body: &[u8], v: Version) -> DecodeError {
    match dec(first, body, v) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn enc(p: &Packet, v: Version) -> BytesMut {
    let mut b = BytesMut::new();
    let n = write(p, v, &mut b);
    assert_eq!(n, b.len());
    assert_eq!(n, encoded_len(p, v));
    b
}

/// CONNECT body: protocol name, level, flags, keep alive 60, then `rest`.
fn connect_body(name: &str, level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut b = s(name);
    b.push(level);
    b.push(flags);
    b.extend_from_slice(&[0, 60]);
    b.extend_from_slice(rest);
    b
}

/// v5 CONNECT with the given property block contents and client id "c".
fn v5_connect_props(props: &[u8]) -> Vec<u8> {
    let mut rest = vec![props.len() as u8];
    rest.extend_from_slice(props);
    rest.extend(s("c"));
    connect_body("MQTT", 5, 0x02, &rest)
}

fn connect_err(body: &[u8]) -> DecodeError {
    match read_connect(&mut frame(0x10, body), MAX) {
        Err(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn connect_ok(body: &[u8]) -> Connect {
    match read_connect(&mut frame(0x10, body), MAX) {
        Ok(Some(c)) => c,
        other => panic!("expected a CONNECT, got {other:?}"),
    }
}

fn users(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    }
}

/// Valid client-to-server packets for `v`; each decodes back to itself.
pub(super) fn client_samples(v: Version) -> Vec<Packet> {
    let v5 = v == Version::V5;
    let pp = if v5 {
        PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(3),
            response_topic: Some("resp/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00corr")),
            user_properties: users(&[("k", "v"), ("k", "v2")]),
            subscription_identifiers: vec![],
            content_type: Some("text/plain".into()),
        }
    } else {
        PublishProperties::default()
    };
    let ap = if v5 {
        AckProperties {
            reason_string: Some("why".into()),
            user_properties: users(&[("a", "b")]),
        }
    } else {
        AckProperties::default()
    };
    let mut will_props = pp.clone();
    will_props.topic_alias = None;
    let full_connect = Connect {
        version: v,
        clean_start: false,
        keep_alive: 30,
        client_id: "client-1".into(),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"p\x00ss")),
        will: Some(Will {
            topic: "will/t".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::ExactlyOnce,
            retain: true,
            delay_interval: v5.then_some(10),
            properties: will_props,
        }),
        properties: if v5 {
            ConnectProperties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(20),
                maximum_packet_size: Some(4096),
                topic_alias_maximum: Some(5),
                request_response_information: Some(1),
                request_problem_information: Some(0),
                user_properties: users(&[("x", "y")]),
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"data")),
            }
        } else {
            ConnectProperties::default()
        },
    };
    let min_connect = Connect {
        version: v,
        clean_start: true,
        keep_alive: 0,
        client_id: String::new(),
        username: None,
        password: None,
        will: None,
        properties: ConnectProperties::default(),
    };
    let ack = |pkid, reason, properties: &AckProperties| Ack {
        pkid,
        reason: if v5 { reason } else { 0 },
        properties: properties.clone(),
    };
    let none = AckProperties::default();
    let mut out = vec![
        Packet::Connect(Box::new(full_connect)),
        Packet::Connect(Box::new(min_connect)),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "a/b".into(),
            pkid: 0,
            properties: PublishProperties::default(),
            payload: Bytes::new(),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "a/b/c".into(),
            pkid: 7,
            properties: pp.clone(),
            payload: Bytes::from_static(b"hello"),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: "x".into(),
            pkid: 65535,
            properties: pp,
            payload: Bytes::from(vec![0xab; 300]),
        }),
        Packet::PubAck(ack(1, 0, &none)),
        Packet::PubAck(ack(2, reason::NO_MATCHING_SUBSCRIBERS, &none)),
        Packet::PubRec(ack(3, 0, &ap)),
        Packet::PubRec(ack(3, reason::QUOTA_EXCEEDED, &none)),
        Packet::PubRel(ack(4, 0, &none)),
        Packet::PubRel(ack(4, reason::PACKET_ID_NOT_FOUND, &ap)),
        Packet::PubComp(ack(5, 0, &none)),
        Packet::PubComp(ack(5, reason::PACKET_ID_NOT_FOUND, &ap)),
        Packet::Subscribe(Subscribe {
            pkid: 9,
            filters: vec![
                ("a/+".into(), opts(QoS::AtMostOnce)),
                (
                    "b/#".into(),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: v5,
                        retain_as_published: v5,
                        retain_handling: if v5 { 2 } else { 0 },
                    },
                ),
                ("$share/g/c".into(), opts(QoS::AtLeastOnce)),
            ],
            subscription_identifier: v5.then_some(268_435_455),
            user_properties: if v5 { users(&[("u", "p")]) } else { vec![] },
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 10,
            filters: vec!["a/+".into(), "b/#".into()],
            user_properties: if v5 { users(&[("u", "p")]) } else { vec![] },
        }),
        Packet::PingReq,
        Packet::Disconnect(Disconnect {
            reason: 0,
            properties: DisconnectProperties::default(),
        }),
    ];
    if v5 {
        out.extend([
            Packet::Disconnect(Disconnect {
                reason: reason::DISCONNECT_WITH_WILL,
                properties: DisconnectProperties::default(),
            }),
            Packet::Disconnect(Disconnect {
                reason: 0,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(0),
                    reason_string: Some("bye".into()),
                    user_properties: users(&[("a", "b")]),
                    server_reference: Some("other".into()),
                },
            }),
            Packet::Auth(Auth {
                reason: 0,
                properties: AuthProperties::default(),
            }),
            Packet::Auth(Auth {
                reason: 0x18,
                properties: AuthProperties {
                    authentication_method: Some("SCRAM".into()),
                    authentication_data: Some(Bytes::from_static(b"d")),
                    reason_string: Some("more".into()),
                    user_properties: users(&[("a", "b")]),
                },
            }),
            Packet::Auth(Auth {
                reason: 0x19,
                properties: AuthProperties::default(),
            }),
        ]);
    }
    out
}

/// Server-to-client packets for `v` (encoder coverage and mutation seeds).
pub(super) fn server_samples(v: Version) -> Vec<Packet> {
    let v5 = v == Version::V5;
    let mut pp = PublishProperties::default();
    if v5 {
        pp.subscription_identifiers = vec![1, 200, 268_435_455];
        pp.topic_alias = Some(1);
    }
    vec![
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            properties: if v5 {
                ConnAckProperties {
                    session_expiry_interval: Some(1),
                    receive_maximum: Some(2),
                    maximum_qos: Some(1),
                    retain_available: Some(0),
                    maximum_packet_size: Some(3),
                    assigned_client_identifier: Some("id".into()),
                    topic_alias_maximum: Some(4),
                    reason_string: Some("r".into()),
                    user_properties: users(&[("a", "b")]),
                    wildcard_subscription_available: Some(1),
                    subscription_identifiers_available: Some(1),
                    shared_subscription_available: Some(1),
                    server_keep_alive: Some(5),
                    response_information: Some("ri".into()),
                    server_reference: Some("sr".into()),
                    authentication_method: Some("m".into()),
                    authentication_data: Some(Bytes::from_static(b"d")),
                }
            } else {
                ConnAckProperties::default()
            },
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".into(),
            pkid: 1,
            properties: pp,
            payload: Bytes::from_static(b"p"),
        }),
        Packet::SubAck(SubAck {
            pkid: 1,
            reason_codes: vec![0, 1, 2, 0x80],
            properties: AckProperties::default(),
        }),
        Packet::UnsubAck(UnsubAck {
            pkid: 1,
            reason_codes: vec![0, 0x11],
            properties: AckProperties::default(),
        }),
        Packet::PingResp,
    ]
}

// ---- round trips ------------------------------------------------------------

/// Every client-to-server type decodes back to what was encoded, for every
/// version, via `read` and (for CONNECT) `read_connect`.
#[test]
fn round_trip_every_client_packet_every_version() {
    for v in ALL {
        for p in client_samples(v) {
            let bytes = enc(&p, v);
            let mut buf = bytes.clone();
            assert_eq!(read(&mut buf, v, MAX), Ok(Some(p.clone())), "{v:?} {p:?}");
            assert!(buf.is_empty());
            if let Packet::Connect(c) = &p {
                let mut buf = bytes.clone();
                assert_eq!(read_connect(&mut buf, MAX), Ok(Some((**c).clone())));
                assert!(buf.is_empty());
            }
        }
    }
}

/// Several packets in one buffer are read one at a time, and a partial
/// packet returns `None` without consuming anything.
#[test]
fn partial_and_pipelined_reads() {
    for v in ALL {
        let mut all = BytesMut::new();
        let samples = client_samples(v);
        for p in &samples {
            write(p, v, &mut all);
        }
        let full = all.clone().freeze();
        // Byte by byte.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in full.iter() {
            buf.put_u8(byte);
            let before = buf.len();
            match read(&mut buf, v, MAX).unwrap() {
                Some(p) => got.push(p),
                None => assert_eq!(buf.len(), before),
            }
        }
        assert_eq!(got, samples);
        // All at once.
        let mut got = Vec::new();
        while let Some(p) = read(&mut all, v, MAX).unwrap() {
            got.push(p);
        }
        assert_eq!(got, samples);
    }
}

#[test]
fn encoded_len_matches_write_for_all_samples() {
    for v in ALL {
        for p in client_samples(v).into_iter().chain(server_samples(v)) {
            let b = enc(&p, v);
            assert_eq!(frame_len(&b, MAX), Ok(Some(b.len())));
        }
    }
}

#[test]
fn publish_properties_block_round_trip_with_subscription_ids() {
    let p = PublishProperties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(5),
        topic_alias: Some(9),
        response_topic: Some("r".into()),
        correlation_data: Some(Bytes::from_static(b"c")),
        user_properties: users(&[("a", "1"), ("a", "2")]),
        subscription_identifiers: vec![1, 128, 16_384, 268_435_455],
        content_type: Some("ct".into()),
    };
    let mut buf = BytesMut::new();
    write_publish_properties(&p, &mut buf);
    buf.put_slice(b"tail");
    let mut b = buf.freeze();
    assert_eq!(decode_publish_properties(&mut b), Ok(p));
    assert_eq!(&b[..], b"tail");
    let mut empty = Bytes::from_static(&[0]);
    assert_eq!(
        decode_publish_properties(&mut empty),
        Ok(PublishProperties::default())
    );
}

// ---- encoder forms ----------------------------------------------------------

#[test]
fn encoder_known_bytes() {
    let connect = Packet::Connect(Box::new(Connect {
        version: Version::V3_1_1,
        clean_start: true,
        keep_alive: 60,
        client_id: "c".into(),
        username: None,
        password: None,
        will: None,
        properties: ConnectProperties::default(),
    }));
    assert_eq!(
        &enc(&connect, Version::V3_1_1)[..],
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    );
    assert_eq!(
        &enc(&connect, Version::V3_1)[..],
        b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c"
    );
    assert_eq!(
        &enc(&connect, Version::V5)[..],
        b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01c"
    );
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: "a".into(),
        pkid: 0x0102,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"x"),
    });
    assert_eq!(
        &enc(&publish, Version::V3_1_1)[..],
        b"\x33\x06\x00\x01a\x01\x02x"
    );
    assert_eq!(
        &enc(&publish, Version::V5)[..],
        b"\x33\x07\x00\x01a\x01\x02\x00x"
    );
    assert_eq!(&enc(&Packet::PingReq, Version::V5)[..], b"\xc0\x00");
    assert_eq!(&enc(&Packet::PingResp, Version::V3_1)[..], b"\xd0\x00");
}

/// v5 uses the shortest forms: PUBACK reason 0 without properties is 4
/// bytes, DISCONNECT reason 0 is `e0 00`, AUTH success is `f0 00`.
#[test]
fn encoder_shortest_v5_forms() {
    let ack = |reason| Ack {
        pkid: 1,
        reason,
        properties: AckProperties::default(),
    };
    assert_eq!(
        &enc(&Packet::PubAck(ack(0)), Version::V5)[..],
        b"\x40\x02\x00\x01"
    );
    assert_eq!(
        &enc(&Packet::PubRel(ack(0)), Version::V5)[..],
        b"\x62\x02\x00\x01"
    );
    assert_eq!(
        &enc(&Packet::PubRec(ack(0x10)), Version::V5)[..],
        b"\x50\x03\x00\x01\x10"
    );
    let d = |reason| {
        Packet::Disconnect(Disconnect {
            reason,
            properties: DisconnectProperties::default(),
        })
    };
    assert_eq!(&enc(&d(0), Version::V5)[..], b"\xe0\x00");
    assert_eq!(&enc(&d(0x8e), Version::V5)[..], b"\xe0\x01\x8e");
    let auth = Packet::Auth(Auth {
        reason: 0,
        properties: AuthProperties::default(),
    });
    assert_eq!(&enc(&auth, Version::V5)[..], b"\xf0\x00");
}

/// v3 drops properties and v5-only fields; DISCONNECT is always `e0 00`;
/// UNSUBACK has no reason codes; CONNACK/SUBACK codes are written as given.
#[test]
fn encoder_v3_drops_v5_fields() {
    for v in V3 {
        let d = Packet::Disconnect(Disconnect {
            reason: 0x8e,
            properties: DisconnectProperties {
                reason_string: Some("x".into()),
                ..Default::default()
            },
        });
        assert_eq!(&enc(&d, v)[..], b"\xe0\x00");
        let ua = Packet::UnsubAck(UnsubAck {
            pkid: 5,
            reason_codes: vec![0, 0x11],
            properties: AckProperties::default(),
        });
        assert_eq!(&enc(&ua, v)[..], b"\xb0\x02\x00\x05");
        let sa = Packet::SubAck(SubAck {
            pkid: 5,
            reason_codes: vec![1, reason::V3_SUBACK_FAILURE],
            properties: AckProperties {
                reason_string: Some("x".into()),
                ..Default::default()
            },
        });
        assert_eq!(&enc(&sa, v)[..], b"\x90\x04\x00\x05\x01\x80");
        let ca = Packet::ConnAck(ConnAck {
            session_present: false,
            code: reason::V3_NOT_AUTHORIZED,
            properties: ConnAckProperties {
                receive_maximum: Some(3),
                ..Default::default()
            },
        });
        assert_eq!(&enc(&ca, v)[..], b"\x20\x02\x00\x05");
        let pa = Packet::PubAck(Ack {
            pkid: 1,
            reason: 0x80,
            properties: AckProperties::default(),
        });
        assert_eq!(&enc(&pa, v)[..], b"\x40\x02\x00\x01");
        let sub = Packet::Subscribe(Subscribe {
            pkid: 1,
            filters: vec![(
                "a".into(),
                SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: 2,
                },
            )],
            subscription_identifier: Some(5),
            user_properties: users(&[("a", "b")]),
        });
        assert_eq!(&enc(&sub, v)[..], b"\x82\x06\x00\x01\x00\x01a\x01");
    }
}

/// A large PUBLISH gets a multi-byte remaining length.
#[test]
fn encoder_multibyte_remaining_length() {
    for len in [127usize, 128, 16_383, 16_384, 2_097_152] {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            pkid: 0,
            properties: PublishProperties::default(),
            payload: Bytes::from(vec![7u8; len]),
        });
        let b = enc(&p, Version::V3_1_1);
        let mut buf = b.clone();
        assert_eq!(read(&mut buf, Version::V3_1_1, usize::MAX), Ok(Some(p)));
        assert_eq!(frame_len(&b, b.len()), Ok(Some(b.len())));
        assert!(matches!(
            frame_len(&b, b.len() - 1),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}

// ---- fixed header -----------------------------------------------------------

/// [MQTT-2.2.2-1], [MQTT-2.2.2-2]: PUBREL, SUBSCRIBE and UNSUBSCRIBE need
/// flags 0b0010, every other non-PUBLISH type 0b0000.
#[test]
fn fixed_header_flags_mqtt_2_2_2_1_and_2() {
    for v in ALL {
        for first in [0x60, 0x80, 0xa0, 0x63, 0x8a, 0xa1] {
            assert!(matches!(
                err(first, &[0, 1, 0, 1, b'a', 0], v),
                Malformed(_)
            ));
        }
        for first in [0x12, 0x42, 0x51, 0x78, 0xc2, 0xe1] {
            assert!(matches!(err(first, &[0, 1], v), Malformed(_)), "{first:x}");
        }
    }
    assert!(matches!(err(0xf2, &[], Version::V5), Malformed(_)));
    assert!(matches!(
        read_connect(&mut frame(0x11, &[]), MAX),
        Err(Malformed(_))
    ));
}

/// [MQTT-3.3.1-4]: a PUBLISH must not have both QoS bits set.
#[test]
fn publish_qos_3_is_malformed_mqtt_3_3_1_4() {
    for v in ALL {
        assert!(matches!(err(0x36, b"\x00\x01a\x00\x01", v), Malformed(_)));
    }
}

/// [MQTT-3.3.1-2]: DUP must be 0 for QoS 0.
#[test]
fn publish_dup_with_qos_0_is_malformed_mqtt_3_3_1_2() {
    for v in ALL {
        assert!(matches!(err(0x38, b"\x00\x01a", v), Malformed(_)));
    }
}

/// Packet type 0 is reserved; type 15 (AUTH) does not exist before MQTT 5.
#[test]
fn reserved_packet_types_are_malformed() {
    for v in ALL {
        assert!(matches!(err(0x00, &[], v), Malformed(_)));
    }
    for v in V3 {
        assert!(matches!(err(0xf0, &[], v), Malformed(_)));
    }
}

/// CONNACK, SUBACK, UNSUBACK and PINGRESP are server-only: a protocol error.
#[test]
fn server_only_packets_are_rejected() {
    for v in ALL {
        for (first, body, kind) in [
            (0x20, &[0u8, 0][..], 2),
            (0x90, &[0, 1, 0][..], 9),
            (0xb0, &[0, 1][..], 11),
            (0xd0, &[][..], 13),
        ] {
            let e = err(first, body, v);
            assert_eq!(e, DecodeError::ServerOnlyPacket(kind));
            assert_eq!(e.reason_code(), reason::PROTOCOL_ERROR);
        }
    }
}

/// A second CONNECT is decoded normally; the session layer rejects it.
#[test]
fn second_connect_is_decoded() {
    for v in ALL {
        let c = &client_samples(v)[1];
        let mut b = enc(c, v);
        assert_eq!(read(&mut b, v, MAX), Ok(Some(c.clone())));
    }
}

/// MQTT 5 1.5.5 / 3.1.1 2.2.3: remaining length is at most 4 bytes.
#[test]
fn remaining_length_over_4_bytes_is_malformed() {
    let b = [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(matches!(frame_len(&b, usize::MAX), Err(Malformed(_))));
    for v in ALL {
        let mut buf = BytesMut::from(&b[..]);
        assert!(matches!(read(&mut buf, v, usize::MAX), Err(Malformed(_))));
    }
}

/// [MQTT-1.5.5-1] (v5): a variable byte integer uses the fewest bytes.
#[test]
fn non_minimal_varint_is_malformed_mqtt_1_5_5_1() {
    assert!(matches!(
        frame_len(&[0xc0, 0x80, 0x00], MAX),
        Err(Malformed(_))
    ));
    // Property length 0 written as 0x80 0x00 in a PUBLISH.
    assert!(matches!(
        err(0x30, b"\x00\x01a\x80\x00", Version::V5),
        Malformed(_)
    ));
}

/// A packet above the maximum is rejected as soon as its fixed header is
/// readable, before any of the body arrives.
#[test]
fn too_large_reported_before_the_body() {
    let b = [0x30, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(
        frame_len(&b, MAX),
        Err(DecodeError::TooLarge {
            size: 5 + 268_435_455,
            max: MAX
        })
    );
    for v in ALL {
        let mut buf = BytesMut::from(&b[..]);
        let e = read(&mut buf, v, MAX).unwrap_err();
        assert_eq!(e.reason_code(), reason::PACKET_TOO_LARGE);
        let mut buf = BytesMut::from(&[0x10, 0xff, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(
            read_connect(&mut buf, MAX),
            Err(DecodeError::TooLarge { .. })
        ));
    }
    // Exactly at the limit is fine, one over is not.
    assert_eq!(frame_len(&[0xc0, 0x00], 2), Ok(Some(2)));
    assert!(matches!(
        frame_len(&[0x30, 0x01], 2),
        Err(DecodeError::TooLarge { size: 3, max: 2 })
    ));
    // Still incomplete length bytes that already imply more than max.
    assert!(matches!(
        frame_len(&[0x30, 0xff, 0xff], 1000),
        Err(DecodeError::TooLarge { .. })
    ));
    // Incomplete but possibly small: wait.
    assert_eq!(frame_len(&[0x30, 0x80], 1000), Ok(None));
    assert_eq!(frame_len(&[0x30], 1000), Ok(None));
    assert_eq!(frame_len(&[], 1000), Ok(None));
    assert_eq!(frame_len(&[0x30, 0x05, 0, 1], 1000), Ok(None));
}

/// [MQTT-1.5.3-1] (v5 [MQTT-1.5.4-1]): strings must be well-formed UTF-8,
/// surrogates included.
#[test]
fn string_invalid_utf8_is_malformed_mqtt_1_5_3_1() {
    for v in ALL {
        assert!(matches!(err(0x30, b"\x00\x02\xc3\x28", v), Malformed(_)));
        assert!(matches!(
            err(0x30, b"\x00\x03\xed\xa0\x80", v),
            Malformed(_)
        ));
    }
}

/// [MQTT-1.5.3-2] (v5 [MQTT-1.5.4-2]): strings must not contain U+0000.
#[test]
fn string_with_nul_is_malformed_mqtt_1_5_3_2() {
    for v in ALL {
        let mut body = vec![0, 2];
        if v == Version::V5 {
            body.push(0);
        }
        body.extend(s("a\0"));
        assert!(matches!(err(0xa2, &body, v), Malformed(_)));
        assert!(matches!(err(0x30, b"\x00\x03a\x00b", v), Malformed(_)));
    }
    let mut rest = s("c\0");
    rest.insert(0, 0);
    assert!(matches!(
        connect_err(&connect_body("MQTT", 5, 2, &rest)),
        Malformed(_)
    ));
}

/// Every field must fit inside the remaining length.
#[test]
fn field_past_remaining_length_is_malformed() {
    for v in ALL {
        // Topic length 5 but only 1 byte follows.
        assert!(matches!(err(0x30, b"\x00\x05a", v), Malformed(_)));
        // Packet identifier cut short.
        assert!(matches!(err(0x40, b"\x00", v), Malformed(_)));
        assert!(matches!(err(0x82, b"\x00\x01\x00\x01a", v), Malformed(_)));
    }
    // v5 property length larger than what is left.
    assert!(matches!(
        err(0x30, b"\x00\x01a\x05\x01", Version::V5),
        Malformed(_)
    ));
    // A property value that runs past its block.
    assert!(matches!(
        err(0x30, b"\x00\x01a\x02\x02\x00\x00\x00\x00", Version::V5),
        Malformed(_)
    ));
}

/// Bytes left after the fields of a packet without payload are malformed.
#[test]
fn leftover_bytes_are_malformed() {
    for v in ALL {
        let mut c = enc(&client_samples(v)[0], v).to_vec();
        c.push(0);
        c[1] += 1;
        assert!(matches!(
            read_connect(&mut BytesMut::from(&c[..]), MAX),
            Err(Malformed(_))
        ));
        assert!(matches!(err(0xc0, &[0], v), Malformed(_)));
    }
    assert!(matches!(
        err(0x40, b"\x00\x01\x00\x00\x00", Version::V5),
        Malformed(_)
    ));
    assert!(matches!(
        err(0xe0, b"\x00\x00\x00", Version::V5),
        Malformed(_)
    ));
    assert!(matches!(
        err(0xf0, b"\x00\x00\x00", Version::V5),
        Malformed(_)
    ));
}

// ---- CONNECT ----------------------------------------------------------------

/// [MQTT-3.1.0-1]: the first packet must be CONNECT; reported on its first
/// byte.
#[test]
fn first_packet_must_be_connect_mqtt_3_1_0_1() {
    assert!(matches!(
        read_connect(&mut BytesMut::from(&[0x30][..]), MAX),
        Err(Protocol(_))
    ));
    assert_eq!(read_connect(&mut BytesMut::new(), MAX), Ok(None));
    let full = enc(&client_samples(Version::V5)[0], Version::V5);
    for cut in 1..full.len() {
        let mut b = BytesMut::from(&full[..cut]);
        assert_eq!(read_connect(&mut b, MAX), Ok(None));
        assert_eq!(b.len(), cut);
    }
}

/// Protocol name and level: "MQTT" 4/5, "MQIsdp" 3; a known name with
/// another level is UnsupportedVersion (0x84); an unknown name is malformed.
#[test]
fn connect_protocol_name_and_level() {
    let rest = s("c");
    assert_eq!(
        connect_ok(&connect_body("MQTT", 4, 2, &rest)).version,
        Version::V3_1_1
    );
    assert_eq!(
        connect_ok(&connect_body("MQIsdp", 3, 2, &rest)).version,
        Version::V3_1
    );
    let mut v5rest = vec![0];
    v5rest.extend(s("c"));
    assert_eq!(
        connect_ok(&connect_body("MQTT", 5, 2, &v5rest)).version,
        Version::V5
    );
    for (name, level) in [("MQTT", 3), ("MQTT", 6), ("MQIsdp", 4), ("MQTT", 0)] {
        let e = connect_err(&connect_body(name, level, 2, &rest));
        assert_eq!(e, DecodeError::UnsupportedVersion { level });
        assert_eq!(e.reason_code(), reason::UNSUPPORTED_PROTOCOL_VERSION);
    }
    for name in ["HTTP", "mqtt", "MQT", ""] {
        assert!(matches!(
            connect_err(&connect_body(name, 4, 2, &rest)),
            Malformed(_)
        ));
    }
}

/// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0.
#[test]
fn connect_reserved_flag_mqtt_3_1_2_3() {
    assert!(matches!(
        connect_err(&connect_body("MQTT", 4, 0x03, &s("c"))),
        Malformed(_)
    ));
}

/// [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]: without the will flag,
/// will QoS and will retain must be 0.
#[test]
fn connect_will_qos_retain_without_will_mqtt_3_1_2_11_13_15() {
    for flags in [0x08, 0x10, 0x18, 0x20, 0x28] {
        assert!(matches!(
            connect_err(&connect_body("MQTT", 4, flags, &s("c"))),
            Malformed(_)
        ));
    }
}

/// [MQTT-3.1.2-14]: will QoS 3 is invalid.
#[test]
fn connect_will_qos_3_mqtt_3_1_2_14() {
    let mut rest = s("c");
    rest.extend(s("w"));
    rest.extend(s("p"));
    assert!(connect_ok(&connect_body("MQTT", 4, 0x14, &rest))
        .will
        .is_some());
    assert!(matches!(
        connect_err(&connect_body("MQTT", 4, 0x1c, &rest)),
        Malformed(_)
    ));
}

/// A will topic with wildcards is rejected as Topic Name invalid.
#[test]
fn connect_will_topic_with_wildcard_is_invalid() {
    let mut rest = s("c");
    rest.extend(s("w/#"));
    rest.extend(s("p"));
    assert_eq!(
        connect_err(&connect_body("MQTT", 4, 0x04, &rest)),
        DecodeError::TopicNameInvalid
    );
}

/// [MQTT-3.1.2-22]: v3 password flag needs the user name flag; v5 allows it.
#[test]
fn connect_password_without_username_mqtt_3_1_2_22() {
    let mut rest = s("c");
    rest.extend(s("pw"));
    assert!(matches!(
        connect_err(&connect_body("MQTT", 4, 0x42, &rest)),
        Malformed(_)
    ));
    assert!(matches!(
        connect_err(&connect_body("MQIsdp", 3, 0x42, &rest)),
        Malformed(_)
    ));
    let mut v5 = vec![0];
    v5.extend(&rest);
    let c = connect_ok(&connect_body("MQTT", 5, 0x42, &v5));
    assert_eq!(c.password, Some(Bytes::from_static(b"pw")));
    assert_eq!(c.username, None);
}

/// The client identifier may be empty.
#[test]
fn connect_empty_client_id() {
    assert_eq!(
        connect_ok(&connect_body("MQTT", 4, 2, &s(""))).client_id,
        ""
    );
}

/// v5: a property other than User Property appearing twice is a protocol
/// error; User Property may repeat.
#[test]
fn v5_duplicate_property_is_protocol_error() {
    let dup = [0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2];
    assert!(matches!(connect_err(&v5_connect_props(&dup)), Protocol(_)));
    let users = [0x26, 0, 1, b'a', 0, 1, b'b', 0x26, 0, 1, b'a', 0, 1, b'c'];
    let c = connect_ok(&v5_connect_props(&users));
    assert_eq!(c.properties.user_properties.len(), 2);
    assert!(matches!(
        err(0x30, b"\x00\x01a\x06\x23\x00\x01\x23\x00\x02", Version::V5),
        Protocol(_)
    ));
}

/// v5: an unknown property id, or one not allowed in the packet, is
/// malformed.
#[test]
fn v5_unknown_or_disallowed_property_is_malformed() {
    // 0x04 is not a property; 0x23 (topic alias) is not a CONNECT property.
    assert!(matches!(
        connect_err(&v5_connect_props(&[0x04, 0])),
        Malformed(_)
    ));
    assert!(matches!(
        connect_err(&v5_connect_props(&[0x23, 0, 1])),
        Malformed(_)
    ));
    assert!(matches!(
        connect_err(&v5_connect_props(&[0x7f])),
        Malformed(_)
    ));
    // Will delay interval in a PUBLISH.
    assert!(matches!(
        err(0x30, b"\x00\x01a\x05\x18\x00\x00\x00\x01", Version::V5),
        Malformed(_)
    ));
    // Session expiry in PUBACK.
    assert!(matches!(
        err(0x40, b"\x00\x01\x00\x05\x11\x00\x00\x00\x01", Version::V5),
        Malformed(_)
    ));
    // Will delay in DISCONNECT.
    assert!(matches!(
        err(0xe0, b"\x00\x05\x18\x00\x00\x00\x01", Version::V5),
        Malformed(_)
    ));
}

/// v5 3.1.2.11.3: Receive Maximum 0 is a protocol error.
#[test]
fn v5_receive_maximum_0_is_protocol_error() {
    assert!(matches!(
        connect_err(&v5_connect_props(&[0x21, 0, 0])),
        Protocol(_)
    ));
}

/// v5 3.1.2.11.4: Maximum Packet Size 0 is a protocol error.
#[test]
fn v5_maximum_packet_size_0_is_protocol_error() {
    assert!(matches!(
        connect_err(&v5_connect_props(&[0x27, 0, 0, 0, 0])),
        Protocol(_)
    ));
}

/// v5 3.1.2.11.6/7: Request Response/Problem Information must be 0 or 1.
#[test]
fn v5_request_information_not_0_or_1_is_protocol_error() {
    for id in [0x17, 0x19] {
        assert!(connect_ok(&v5_connect_props(&[id, 1])).properties != ConnectProperties::default());
        assert!(matches!(
            connect_err(&v5_connect_props(&[id, 2])),
            Protocol(_)
        ));
    }
}

/// v5 3.1.2.11.10: Authentication Data without a method is a protocol error.
#[test]
fn v5_authentication_data_without_method_is_protocol_error() {
    assert!(matches!(
        connect_err(&v5_connect_props(&[0x16, 0, 1, b'x'])),
        Protocol(_)
    ));
    assert!(matches!(
        err(0xf0, b"\x18\x04\x16\x00\x01x", Version::V5),
        Protocol(_)
    ));
}

/// v5 will properties are decoded; a topic alias among them is malformed.
#[test]
fn v5_will_properties() {
    let will_props = [0x18, 0, 0, 0, 9, 0x01, 1, 0x03, 0, 1, b't'];
    let mut rest = vec![0];
    rest.extend(s("c"));
    rest.push(will_props.len() as u8);
    rest.extend(will_props);
    rest.extend(s("w"));
    rest.extend(s("p"));
    let c = connect_ok(&connect_body("MQTT", 5, 0x06, &rest));
    let w = c.will.unwrap();
    assert_eq!(w.delay_interval, Some(9));
    assert_eq!(w.properties.payload_format_indicator, Some(1));
    assert_eq!(w.properties.content_type.as_deref(), Some("t"));

    let mut rest = vec![0];
    rest.extend(s("c"));
    rest.extend([3, 0x23, 0, 1]);
    rest.extend(s("w"));
    rest.extend(s("p"));
    assert!(matches!(
        connect_err(&connect_body("MQTT", 5, 0x06, &rest)),
        Malformed(_)
    ));
}

// ---- PUBLISH ----------------------------------------------------------------

/// [MQTT-3.3.2-2]: the topic name must not contain wildcards (0x90).
#[test]
fn publish_topic_with_wildcard_mqtt_3_3_2_2() {
    for v in ALL {
        for t in ["a/+", "#", "a/#/b", "+"] {
            let mut body = s(t);
            if v == Version::V5 {
                body.push(0);
            }
            let e = err(0x30, &body, v);
            assert_eq!(e, DecodeError::TopicNameInvalid);
            assert_eq!(e.reason_code(), reason::TOPIC_NAME_INVALID);
        }
    }
}

/// [MQTT-4.7.3-1]: v3 topic names are non-empty; v5 allows an empty topic
/// (with a topic alias, which the session layer checks).
#[test]
fn publish_empty_topic_mqtt_4_7_3_1() {
    for v in V3 {
        assert_eq!(err(0x30, b"\x00\x00", v), DecodeError::TopicNameInvalid);
    }
    let p = dec_ok(0x30, b"\x00\x00\x03\x23\x00\x01", Version::V5);
    assert!(matches!(p, Packet::Publish(p) if p.topic.is_empty()));
}

/// [MQTT-2.2.1-3] (v5) / [MQTT-2.3.1-1] (3.1.1): QoS > 0 needs a non-zero
/// packet identifier.
#[test]
fn publish_qos_gt_0_pkid_0_mqtt_2_2_1_3() {
    for v in ALL {
        let body: &[u8] = if v == Version::V5 {
            b"\x00\x01a\x00\x00\x00"
        } else {
            b"\x00\x01a\x00\x00"
        };
        assert!(matches!(err(0x32, body, v), Protocol(_)));
        assert!(matches!(err(0x34, body, v), Protocol(_)));
    }
}

/// v5 3.3.4: a client PUBLISH must not carry a Subscription Identifier.
#[test]
fn v5_publish_subscription_identifier_from_client_is_protocol_error() {
    assert!(matches!(
        err(0x30, b"\x00\x01a\x02\x0b\x01", Version::V5),
        Protocol(_)
    ));
}

/// v5 3.3.2.3.4: Topic Alias 0 is a protocol error.
#[test]
fn v5_publish_topic_alias_0_is_protocol_error() {
    assert!(matches!(
        err(0x30, b"\x00\x01a\x03\x23\x00\x00", Version::V5),
        Protocol(_)
    ));
}

/// The payload is everything after the variable header, zero-copy.
#[test]
fn publish_payload_is_rest_of_packet() {
    let mut buf = frame(0x30, b"\x00\x01a\x00payload");
    let before = buf.as_ptr();
    let Some(Packet::Publish(p)) = read(&mut buf, Version::V5, MAX).unwrap() else {
        panic!()
    };
    assert_eq!(&p.payload[..], b"payload");
    assert_eq!(p.payload.as_ptr(), before.wrapping_add(6));
}

// ---- acks -------------------------------------------------------------------

/// v3 PUBACK/PUBREC/PUBREL/PUBCOMP have a remaining length of exactly 2.
#[test]
fn v3_acks_remaining_length_is_2() {
    for v in V3 {
        for first in [0x40, 0x50, 0x62, 0x70] {
            assert!(matches!(
                dec_ok(first, &[0, 1], v),
                Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)
            ));
            assert!(matches!(err(first, &[0, 1, 0], v), Malformed(_)));
            assert!(matches!(err(first, &[0], v), Malformed(_)));
            assert!(matches!(err(first, &[], v), Malformed(_)));
        }
    }
}

/// v5 acks: length 2 (reason 0), 3 (reason only) or more (reason +
/// properties).
#[test]
fn v5_ack_forms() {
    let v = Version::V5;
    let expect = |reason, properties| Ack {
        pkid: 1,
        reason,
        properties,
    };
    assert_eq!(
        dec_ok(0x40, &[0, 1], v),
        Packet::PubAck(expect(0, Default::default()))
    );
    assert_eq!(
        dec_ok(0x50, &[0, 1, 0x10], v),
        Packet::PubRec(expect(0x10, Default::default()))
    );
    assert_eq!(
        dec_ok(0x62, &[0, 1, 0x92, 0], v),
        Packet::PubRel(expect(0x92, Default::default()))
    );
    assert_eq!(
        dec_ok(0x70, &[0, 1, 0, 4, 0x1f, 0, 1, b'r'], v),
        Packet::PubComp(expect(
            0,
            AckProperties {
                reason_string: Some("r".into()),
                user_properties: vec![]
            }
        ))
    );
    assert!(matches!(err(0x40, &[0], v), Malformed(_)));
}

// ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------

fn sub_body(v: Version, pkid: u16, props: &[u8], filters: &[(&str, u8)]) -> Vec<u8> {
    let mut b = pkid.to_be_bytes().to_vec();
    if v == Version::V5 {
        b.push(props.len() as u8);
        b.extend_from_slice(props);
    }
    for (f, o) in filters {
        b.extend(s(f));
        b.push(*o);
    }
    b
}

/// [MQTT-2.3.1-1] / v5 [MQTT-2.2.1-3]: SUBSCRIBE packet identifier 0.
#[test]
fn subscribe_pkid_0_is_protocol_error() {
    for v in ALL {
        assert!(matches!(
            err(0x82, &sub_body(v, 0, &[], &[("a", 0)]), v),
            Protocol(_)
        ));
    }
}

/// [MQTT-3.8.3-3]: SUBSCRIBE carries at least one filter.
#[test]
fn subscribe_without_filters_mqtt_3_8_3_3() {
    for v in ALL {
        assert!(matches!(
            err(0x82, &sub_body(v, 1, &[], &[]), v),
            Protocol(_)
        ));
    }
}

/// [MQTT-3.8.3-4] (3.1.1: bits 2-7) / v5 [MQTT-3.8.3-5] (bits 6-7):
/// reserved subscription option bits must be 0.
#[test]
fn subscribe_reserved_option_bits_mqtt_3_8_3_4_v5_3_8_3_5() {
    for v in V3 {
        for o in [0x04, 0x08, 0x40, 0x80] {
            assert!(matches!(
                err(0x82, &sub_body(v, 1, &[], &[("a", o)]), v),
                Malformed(_)
            ));
        }
    }
    let v = Version::V5;
    for o in [0x40, 0x80] {
        assert!(matches!(
            err(0x82, &sub_body(v, 1, &[], &[("a", o)]), v),
            Malformed(_)
        ));
    }
    let p = dec_ok(0x82, &sub_body(v, 1, &[], &[("a", 0x2e)]), v);
    let Packet::Subscribe(sub) = p else { panic!() };
    assert_eq!(
        sub.filters[0].1,
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2
        }
    );
}

/// Subscription QoS 3 is malformed.
#[test]
fn subscribe_qos_3_is_malformed() {
    for v in ALL {
        assert!(matches!(
            err(0x82, &sub_body(v, 1, &[], &[("a", 3)]), v),
            Malformed(_)
        ));
    }
}

/// v5 3.8.3.1: Retain Handling 3 is a protocol error.
#[test]
fn v5_subscribe_retain_handling_3_is_protocol_error() {
    let v = Version::V5;
    assert!(matches!(
        err(0x82, &sub_body(v, 1, &[], &[("a", 0x30)]), v),
        Protocol(_)
    ));
}

/// v5 3.8.2.1.2: Subscription Identifier 0 is a protocol error, as is a
/// second one.
#[test]
fn v5_subscribe_subscription_identifier_0_is_protocol_error() {
    let v = Version::V5;
    assert!(matches!(
        err(0x82, &sub_body(v, 1, &[0x0b, 0], &[("a", 0)]), v),
        Protocol(_)
    ));
    assert!(matches!(
        err(0x82, &sub_body(v, 1, &[0x0b, 1, 0x0b, 2], &[("a", 0)]), v),
        Protocol(_)
    ));
    let Packet::Subscribe(sub) = dec_ok(0x82, &sub_body(v, 1, &[0x0b, 0x80, 0x01], &[("a", 0)]), v)
    else {
        panic!()
    };
    assert_eq!(sub.subscription_identifier, Some(128));
}

/// v5 [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
#[test]
fn v5_subscribe_no_local_on_shared_mqtt_3_8_3_4() {
    let v = Version::V5;
    assert!(matches!(
        err(0x82, &sub_body(v, 1, &[], &[("$share/g/a", 0x04)]), v),
        Protocol(_)
    ));
}

/// An empty filter is kept for the session layer to refuse per filter.
#[test]
fn subscribe_empty_filter_is_kept() {
    for v in ALL {
        let Packet::Subscribe(sub) = dec_ok(0x82, &sub_body(v, 1, &[], &[("", 1), ("a", 0)]), v)
        else {
            panic!()
        };
        assert_eq!(sub.filters[0].0, "");
        assert_eq!(sub.filters.len(), 2);
    }
}

/// [MQTT-2.3.1-1] / v5 [MQTT-2.2.1-3]: UNSUBSCRIBE packet identifier 0.
#[test]
fn unsubscribe_pkid_0_is_protocol_error() {
    for v in ALL {
        let mut b = vec![0, 0];
        if v == Version::V5 {
            b.push(0);
        }
        b.extend(s("a"));
        assert!(matches!(err(0xa2, &b, v), Protocol(_)));
    }
}

/// [MQTT-3.10.3-2]: UNSUBSCRIBE carries at least one filter.
#[test]
fn unsubscribe_without_filters_mqtt_3_10_3_2() {
    for v in ALL {
        let b: &[u8] = if v == Version::V5 {
            &[0, 1, 0]
        } else {
            &[0, 1]
        };
        assert!(matches!(err(0xa2, b, v), Protocol(_)));
    }
}

// ---- PINGREQ / DISCONNECT / AUTH ---------------------------------------------

/// PINGREQ has a remaining length of 0.
#[test]
fn pingreq_remaining_length_0() {
    for v in ALL {
        assert_eq!(dec_ok(0xc0, &[], v), Packet::PingReq);
        assert!(matches!(err(0xc0, &[0], v), Malformed(_)));
    }
}

/// v3 DISCONNECT has a remaining length of 0.
#[test]
fn v3_disconnect_remaining_length_0() {
    for v in V3 {
        assert!(matches!(dec_ok(0xe0, &[], v), Packet::Disconnect(_)));
        assert!(matches!(err(0xe0, &[0], v), Malformed(_)));
    }
}

/// v5 DISCONNECT: length 0 (reason 0), 1 (reason only) or reason +
/// properties.
#[test]
fn v5_disconnect_forms() {
    let v = Version::V5;
    let d = |reason, properties| Packet::Disconnect(Disconnect { reason, properties });
    assert_eq!(dec_ok(0xe0, &[], v), d(0, Default::default()));
    assert_eq!(dec_ok(0xe0, &[4], v), d(4, Default::default()));
    assert_eq!(dec_ok(0xe0, &[4, 0], v), d(4, Default::default()));
    assert_eq!(
        dec_ok(0xe0, &[0, 5, 0x11, 0, 0, 0, 7], v),
        d(
            0,
            DisconnectProperties {
                session_expiry_interval: Some(7),
                ..Default::default()
            }
        )
    );
}

/// v5 AUTH: length 0 (success) or reason + properties.
#[test]
fn v5_auth_forms() {
    let v = Version::V5;
    assert_eq!(
        dec_ok(0xf0, &[], v),
        Packet::Auth(Auth {
            reason: 0,
            properties: Default::default()
        })
    );
    assert!(matches!(err(0xf0, &[0x18], v), Malformed(_)));
    let Packet::Auth(a) = dec_ok(0xf0, b"\x18\x04\x15\x00\x01m", v) else {
        panic!()
    };
    assert_eq!(a.reason, 0x18);
    assert_eq!(a.properties.authentication_method.as_deref(), Some("m"));
}

#[test]
fn reason_codes_of_errors() {
    assert_eq!(Malformed("x").reason_code(), 0x81);
    assert_eq!(Protocol("x").reason_code(), 0x82);
    assert_eq!(
        DecodeError::TooLarge { size: 2, max: 1 }.reason_code(),
        0x95
    );
    assert_eq!(
        DecodeError::UnsupportedVersion { level: 9 }.reason_code(),
        0x84
    );
    assert_eq!(DecodeError::ServerOnlyPacket(2).reason_code(), 0x82);
    assert_eq!(DecodeError::TopicNameInvalid.reason_code(), 0x90);
}

#[test]
fn qos_from_u8() {
    assert_eq!(QoS::from_u8(0), Some(QoS::AtMostOnce));
    assert_eq!(QoS::from_u8(1), Some(QoS::AtLeastOnce));
    assert_eq!(QoS::from_u8(2), Some(QoS::ExactlyOnce));
    assert_eq!(QoS::from_u8(3), None);
}
