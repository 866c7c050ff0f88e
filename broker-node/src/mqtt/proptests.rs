//! Property tests: the decoder never panics on random or mutated input,
//! never returns a packet larger than the maximum, and rejects over-long
//! remaining lengths without waiting for the body.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;

use super::decode::{frame_len, read, read_connect, DecodeError};
use super::encode::{encoded_len, write};
use super::tests::{client_samples, server_samples};
use super::{Packet, Version};

const SMALL_MAX: usize = 1024;
const ALL: [Version; 3] = [Version::V3_1, Version::V3_1_1, Version::V5];

/// Reads packets from `bytes` until it stops; every packet must fit `max`.
fn drain(bytes: &[u8], v: Version, max: usize) {
    let mut buf = BytesMut::from(bytes);
    // Each successful read consumes at least two bytes.
    for _ in 0..=bytes.len() {
        match read(&mut buf, v, max) {
            Ok(Some(p)) => {
                // A CONNECT is measured in the version it names.
                let pv = match &p {
                    Packet::Connect(c) => c.version,
                    _ => v,
                };
                assert!(encoded_len(&p, pv) <= max, "{p:?}");
            }
            Ok(None) | Err(_) => return,
        }
    }
    panic!("read did not make progress");
}

fn connect_once(bytes: &[u8], max: usize) {
    let mut buf = BytesMut::from(bytes);
    if let Ok(Some(c)) = read_connect(&mut buf, max) {
        let v = c.version;
        assert!(encoded_len(&Packet::Connect(Box::new(c)), v) <= max);
    }
}

fn check_all(bytes: &[u8], max: usize) {
    connect_once(bytes, max);
    for v in ALL {
        drain(bytes, v, max);
    }
}

/// A frame with a correct remaining length around a random body, so random
/// bodies reach the per-packet decoders.
fn framed(first: u8, body: &[u8]) -> Vec<u8> {
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
    b.to_vec()
}

/// Every sample packet of every version, encoded for that version.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for v in ALL {
        for p in client_samples(v).into_iter().chain(server_samples(v)) {
            let mut b = BytesMut::new();
            write(&p, v, &mut b);
            out.push(b.to_vec());
        }
    }
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Set(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match *m {
        Mutation::Flip(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
        Mutation::Set(i, b) if len > 0 => bytes[i % len] = b,
        Mutation::Delete(i) if len > 0 => {
            bytes.remove(i % len);
        }
        Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// (a) Random bytes never panic and never yield a packet above max.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_all(&bytes, SMALL_MAX);
    }

    /// (a) Random bodies inside a well-formed fixed header.
    #[test]
    fn random_framed_bodies_never_panic(
        first in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        check_all(&framed(first, &body), SMALL_MAX);
        // The same body after a v5 CONNECT-like or PUBLISH-like prefix.
        let mut with_topic = vec![0, 1, b'a'];
        with_topic.extend_from_slice(&body);
        check_all(&framed(first & 0x0f | 0x30, &with_topic), SMALL_MAX);
    }

    /// (b) Mutated valid packets of every type and version never panic.
    #[test]
    fn mutated_packets_never_panic(
        seed in any::<prop::sample::Index>(),
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let seeds = seeds();
        let mut bytes = seed.get(&seeds).clone();
        for m in &muts {
            apply(&mut bytes, m);
        }
        check_all(&bytes, SMALL_MAX);
        check_all(&bytes, 1 << 20);
    }

    /// (c) Remaining lengths that put the packet above max are rejected from
    /// the fixed header alone; five length bytes are malformed.
    #[test]
    fn oversized_remaining_length_fails_without_body(
        first in 0x10u8..=0xff,
        remaining in (1usize << 20)..=268_435_455,
    ) {
        let mut h = vec![first];
        let mut n = remaining;
        loop {
            let mut byte = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                byte |= 0x80;
            }
            h.push(byte);
            if n == 0 {
                break;
            }
        }
        let is_too_large = matches!(frame_len(&h, 1 << 20), Err(DecodeError::TooLarge { .. }));
        prop_assert!(is_too_large);
        for v in ALL {
            let mut buf = BytesMut::from(&h[..]);
            prop_assert!(read(&mut buf, v, 1 << 20).is_err());
        }
        let mut five = h[..1].to_vec();
        five.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x7f]);
        let is_malformed = matches!(frame_len(&five, usize::MAX), Err(DecodeError::Malformed(_)));
        prop_assert!(is_malformed);
    }
}

/// (c) The two fixed examples from the brief, with a 1 MiB maximum.
#[test]
fn huge_remaining_lengths_fail_immediately() {
    let max = 1 << 20;
    for v in ALL {
        let mut a = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(
            read(&mut a, v, max),
            Err(DecodeError::Malformed(_))
        ));
        let mut b = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(
            read(&mut b, v, max),
            Err(DecodeError::TooLarge { .. })
        ));
    }
    let mut c = BytesMut::from(&[0x10, 0xff, 0xff, 0xff, 0x7f][..]);
    assert!(matches!(
        read_connect(&mut c, max),
        Err(DecodeError::TooLarge { .. })
    ));
}

// ---- generated round trips ----------------------------------------------------

mod round_trip {
    use bytes::BytesMut;
    use proptest::option;
    use proptest::prelude::*;

    use super::super::decode::{read, read_connect};
    use super::super::encode::{encoded_len, write};
    use super::super::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 é/_-]{0,12}"
    }

    fn topic() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}(/[a-z0-9]{0,5}){0,3}"
    }

    fn bin() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
    }

    fn user_props() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((text(), text()), 0..3)
    }

    fn qos() -> impl Strategy<Value = QoS> {
        (0u8..3).prop_map(|q| QoS::from_u8(q).unwrap_or(QoS::AtMostOnce))
    }

    fn publish_props() -> impl Strategy<Value = PublishProperties> {
        (
            option::of(0u8..2),
            option::of(any::<u32>()),
            option::of(1u16..),
            option::of(topic()),
            option::of(bin()),
            user_props(),
            option::of(text()),
        )
            .prop_map(|(pfi, exp, alias, rt, cd, up, ct)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: exp,
                topic_alias: alias,
                response_topic: rt,
                correlation_data: cd,
                user_properties: up,
                subscription_identifiers: vec![],
                content_type: ct,
            })
    }

    fn ack_props() -> impl Strategy<Value = AckProperties> {
        (option::of(text()), user_props()).prop_map(|(r, u)| AckProperties {
            reason_string: r,
            user_properties: u,
        })
    }

    fn publish() -> impl Strategy<Value = Packet> {
        (
            qos(),
            any::<bool>(),
            any::<bool>(),
            topic(),
            1u16..,
            publish_props(),
            bin(),
        )
            .prop_map(|(qos, dup, retain, topic, pkid, properties, payload)| {
                let q0 = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !q0,
                    qos,
                    retain,
                    topic: topic.into(),
                    pkid: if q0 { 0 } else { pkid },
                    properties,
                    payload,
                })
            })
    }

    fn connect() -> impl Strategy<Value = Packet> {
        let will = (
            topic(),
            bin(),
            qos(),
            any::<bool>(),
            option::of(any::<u32>()),
            publish_props(),
        )
            .prop_map(
                |(topic, payload, qos, retain, delay_interval, mut properties)| {
                    properties.topic_alias = None;
                    Will {
                        topic,
                        payload,
                        qos,
                        retain,
                        delay_interval,
                        properties,
                    }
                },
            );
        let props = (
            option::of(any::<u32>()),
            option::of(1u16..),
            option::of(1u32..),
            option::of(any::<u16>()),
            option::of(0u8..2),
            option::of(0u8..2),
            user_props(),
            option::of((text(), option::of(bin()))),
        )
            .prop_map(|(se, rm, mps, tam, rri, rpi, up, auth)| ConnectProperties {
                session_expiry_interval: se,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method: auth.as_ref().map(|a| a.0.clone()),
                authentication_data: auth.and_then(|a| a.1),
            });
        (
            any::<bool>(),
            any::<u16>(),
            text(),
            option::of(text()),
            option::of(bin()),
            option::of(will),
            props,
        )
            .prop_map(
                |(clean_start, keep_alive, client_id, username, password, will, properties)| {
                    Packet::Connect(Box::new(Connect {
                        version: Version::V5,
                        clean_start,
                        keep_alive,
                        client_id,
                        username,
                        password,
                        will,
                        properties,
                    }))
                },
            )
    }

    fn ack() -> impl Strategy<Value = Packet> {
        (0u8..4, any::<u16>(), any::<u8>(), ack_props()).prop_map(
            |(kind, pkid, reason, properties)| {
                let a = Ack {
                    pkid,
                    reason,
                    properties,
                };
                match kind {
                    0 => Packet::PubAck(a),
                    1 => Packet::PubRec(a),
                    2 => Packet::PubRel(a),
                    _ => Packet::PubComp(a),
                }
            },
        )
    }

    fn subscribe() -> impl Strategy<Value = Packet> {
        let opts = (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(|(qos, nl, rap, rh)| {
            SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        });
        (
            1u16..,
            proptest::collection::vec((topic(), opts), 1..4),
            option::of(1u32..=268_435_455),
            user_props(),
        )
            .prop_map(
                |(pkid, filters, subscription_identifier, user_properties)| {
                    Packet::Subscribe(Subscribe {
                        pkid,
                        filters,
                        subscription_identifier,
                        user_properties,
                    })
                },
            )
    }

    fn unsubscribe() -> impl Strategy<Value = Packet> {
        (
            1u16..,
            proptest::collection::vec(topic(), 1..4),
            user_props(),
        )
            .prop_map(|(pkid, filters, user_properties)| {
                Packet::Unsubscribe(Unsubscribe {
                    pkid,
                    filters,
                    user_properties,
                })
            })
    }

    fn disconnect() -> impl Strategy<Value = Packet> {
        (
            any::<u8>(),
            option::of(any::<u32>()),
            option::of(text()),
            user_props(),
            option::of(text()),
        )
            .prop_map(|(reason, se, rs, up, sr)| {
                Packet::Disconnect(Disconnect {
                    reason,
                    properties: DisconnectProperties {
                        session_expiry_interval: se,
                        reason_string: rs,
                        user_properties: up,
                        server_reference: sr,
                    },
                })
            })
    }

    fn auth() -> impl Strategy<Value = Packet> {
        (
            any::<u8>(),
            option::of((text(), option::of(bin()))),
            option::of(text()),
            user_props(),
        )
            .prop_map(|(reason, m, rs, up)| {
                Packet::Auth(Auth {
                    reason,
                    properties: AuthProperties {
                        authentication_method: m.as_ref().map(|m| m.0.clone()),
                        authentication_data: m.and_then(|m| m.1),
                        reason_string: rs,
                        user_properties: up,
                    },
                })
            })
    }

    fn client_packet() -> impl Strategy<Value = Packet> {
        prop_oneof![
            connect(),
            publish(),
            ack(),
            subscribe(),
            unsubscribe(),
            Just(Packet::PingReq),
            disconnect(),
            auth(),
        ]
    }

    /// What decoding the v3 encoding gives back: v5-only fields dropped.
    fn for_v3(p: Packet, v: Version) -> Packet {
        let strip_ack = |a: Ack| Ack {
            pkid: a.pkid,
            reason: 0,
            properties: AckProperties::default(),
        };
        match p {
            Packet::Connect(mut c) => {
                c.version = v;
                c.properties = ConnectProperties::default();
                if let Some(w) = &mut c.will {
                    w.delay_interval = None;
                    w.properties = PublishProperties::default();
                }
                if c.username.is_none() {
                    c.username = c.password.as_ref().map(|_| String::new());
                }
                Packet::Connect(c)
            }
            Packet::Publish(mut p) => {
                p.properties = PublishProperties::default();
                Packet::Publish(p)
            }
            Packet::PubAck(a) => Packet::PubAck(strip_ack(a)),
            Packet::PubRec(a) => Packet::PubRec(strip_ack(a)),
            Packet::PubRel(a) => Packet::PubRel(strip_ack(a)),
            Packet::PubComp(a) => Packet::PubComp(strip_ack(a)),
            Packet::Subscribe(mut s) => {
                s.subscription_identifier = None;
                s.user_properties.clear();
                for (_, o) in &mut s.filters {
                    *o = SubscriptionOptions {
                        qos: o.qos,
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: 0,
                    };
                }
                Packet::Subscribe(s)
            }
            Packet::Unsubscribe(mut u) => {
                u.user_properties.clear();
                Packet::Unsubscribe(u)
            }
            Packet::Disconnect(_) => Packet::Disconnect(Disconnect {
                reason: 0,
                properties: DisconnectProperties::default(),
            }),
            other => other,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// decode(encode(p)) == p for generated client packets in v5, and the
        /// v5-stripped p for v3.1 and v3.1.1.
        #[test]
        fn generated_client_packets_round_trip(p in client_packet()) {
            for v in [Version::V3_1, Version::V3_1_1, Version::V5] {
                if v != Version::V5 && matches!(p, Packet::Auth(_)) {
                    continue;
                }
                let expected = if v == Version::V5 {
                    match p.clone() {
                        Packet::Connect(mut c) => {
                            c.version = v;
                            Packet::Connect(c)
                        }
                        other => other,
                    }
                } else {
                    for_v3(p.clone(), v)
                };
                let mut buf = BytesMut::new();
                let n = write(&expected, v, &mut buf);
                prop_assert_eq!(n, encoded_len(&expected, v));
                prop_assert_eq!(n, buf.len());
                let bytes = buf.clone();
                prop_assert_eq!(read(&mut buf, v, usize::MAX), Ok(Some(expected.clone())));
                prop_assert!(buf.is_empty());
                if let Packet::Connect(c) = &expected {
                    let mut buf = bytes;
                    prop_assert_eq!(read_connect(&mut buf, usize::MAX), Ok(Some((**c).clone())));
                }
            }
        }
    }
}
