//! Robustness regressions: what an outside probe of the previous broker version sent,
//! replayed over real sockets against a real `skyport-broker` process. Each test names
//! the finding it guards against; raw bytes are used wherever no well-behaved client
//! could send them, and mosquitto clients show that the node still serves afterwards.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{exchange, open_security, publish, unique, Broker, Subscriber};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{json, Value};
use skyport_broker::mqtt::{
    encode, Ack, AckProperties, Auth, AuthProperties, Bytes, ConnAck, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, Packet, Publish, PublishProperties, QoS, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe, Version, Will,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a CONNACK may take to count as prompt.
const PROMPT: Duration = Duration::from_secs(15);
/// How long the server may take to close a connection it must close.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// CONNACK, which only a server sends (finding 1).
const CLIENT_CONNACK: &[u8] = &[0x20, 0x03, 0x00, 0x00, 0x00];
/// UNSUBACK, which only a server sends (finding 1).
const CLIENT_UNSUBACK: &[u8] = &[0xb0, 0x03, 0x00, 0x01, 0x00];

fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(48).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 48 {
        format!(" … ({} bytes)", bytes.len())
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(" "))
}

/// One packet from the server: its first byte and its body.
type Frame = (u8, Vec<u8>);

/// What one read of a server packet came to.
#[derive(Debug)]
enum Event {
    Packet(Frame),
    /// EOF or a reset: the server closed the connection.
    Closed,
    /// Nothing within the time given.
    Timeout,
}

/// A raw MQTT connection over TCP, with a framer for what the server sends.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(PROMPT, TcpStream::connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes`; a server that has already closed may refuse them, which is fine.
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// A whole packet from the buffer, if one is there.
    fn frame(&mut self) -> Option<Frame> {
        let mut len = 0usize;
        let mut shift = 0;
        let mut i = 1;
        loop {
            let byte = *self.buf.get(i)?;
            len |= usize::from(byte & 0x7f) << shift;
            i += 1;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            assert!(
                i <= 4,
                "server sent a malformed remaining length: {}",
                hex(&self.buf)
            );
        }
        if self.buf.len() < i + len {
            return None;
        }
        let first = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some((first, body))
    }

    async fn next(&mut self, within: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.frame() {
                return Event::Packet(frame);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Event::Timeout,
                Ok(Ok(0) | Err(_)) => return Event::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The packets the server sends before it closes the connection, which it must do
    /// within [`CLOSE_BOUND`].
    async fn expect_close(&mut self, what: &str) -> Vec<Frame> {
        let deadline = Instant::now() + CLOSE_BOUND;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Event::Closed => return seen,
                Event::Packet(frame) => seen.push(frame),
                Event::Timeout => panic!(
                    "{what}: connection still open after {CLOSE_BOUND:?}; the server sent {:?}",
                    frames_hex(&seen)
                ),
            }
        }
    }

    /// Sends `connect` and waits for a successful CONNACK.
    async fn connect(addr: SocketAddr, connect: &[u8], what: &str) -> Self {
        let mut raw = Self::open(addr).await;
        raw.send(connect).await;
        match raw.next(PROMPT).await {
            Event::Packet((0x20, body)) if body.len() >= 2 && body[1] == 0 => raw,
            other => panic!(
                "{what}: no successful CONNACK within {PROMPT:?} for CONNECT {}: {other:?}",
                hex(connect)
            ),
        }
    }
}

fn frames_hex(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|(first, body)| format!("{first:02x} [{}]", hex(body)))
        .collect()
}

/// Checks what a server sent before closing a connection for a protocol violation: for
/// MQTT 5 at most a refusing CONNACK (before a CONNACK only) or a DISCONNECT with a
/// reason code ≥ 0x80; for MQTT 3.1.1 nothing at all ([MQTT-3.1.4-1] forbids a CONNACK
/// for a CONNECT that does not conform; there is no server DISCONNECT).
fn assert_refusal_only(frames: &[Frame], v5: bool, connack_allowed: bool, what: &str) {
    for (first, body) in frames {
        let fine = v5
            && match first {
                0x20 => connack_allowed && body.get(1).is_some_and(|&code| code >= 0x80),
                0xe0 => body.first().is_some_and(|&code| code >= 0x80),
                _ => false,
            };
        assert!(
            fine,
            "{what}: server sent {:?} before closing; only a refusal is acceptable",
            frames_hex(frames)
        );
    }
}

fn encoded(packet: &Packet, version: Version) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    encode::write(packet, version, &mut buf);
    buf.to_vec()
}

/// A plain CONNECT (clean start, no credentials, no will) for `version`.
fn connect_packet(version: Version, client_id: &str) -> Vec<u8> {
    encoded(
        &Packet::Connect(Box::new(Connect {
            version,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            username: None,
            password: None,
            will: None,
            properties: ConnectProperties::default(),
        })),
        version,
    )
}

/// An MQTT 5 CONNECT (clean start, client id `a`) with `properties` as raw bytes.
fn v5_connect_with_properties(properties: &[u8]) -> Vec<u8> {
    let mut body = b"\0\x04MQTT\x05\x02\0\x3c".to_vec();
    body.push(u8::try_from(properties.len()).unwrap());
    body.extend_from_slice(properties);
    body.extend_from_slice(b"\0\x01a");
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend(body);
    packet
}

/// The node is the same process, logged no panic, and serves: MQTT 5 and 3.1.1 clients
/// get a CONNACK promptly (also with each of `client_ids`), and mosquitto clients
/// exchange a message over both versions.
async fn assert_serving(broker: &mut Broker, pid: u32, client_ids: &[&str]) {
    assert!(
        broker.is_running(),
        "the broker process exited: {}",
        broker.stderr()
    );
    assert_eq!(broker.pid(), pid, "the broker process was replaced");
    let addr = broker.addrs.tcp.unwrap();
    let fresh = unique("hostile-after");
    for id in client_ids.iter().copied().chain([fresh.as_str()]) {
        for version in [Version::V5, Version::V3_1_1] {
            let mut raw = Raw::connect(
                addr,
                &connect_packet(version, id),
                &format!("afterwards, {version:?} client {id:?}"),
            )
            .await;
            raw.send(&[0xe0, 0x00]).await;
        }
    }
    let target = broker.mqtt("tcp");
    exchange(&target, "mqttv5", 1).await;
    exchange(&target, "mqttv311", 1).await;
    let log = broker.stderr();
    assert!(
        !log.contains("panicked"),
        "the broker logged a panic: {log}"
    );
    assert!(broker.is_running(), "the broker process exited: {log}");
}

/// Finding 1: an MQTT 5 CONNECT followed by a packet only servers send (CONNACK
/// `20 03 00 00 00`, UNSUBACK `b0 03 00 01 00`), twice with one client id, broke the
/// node. The offending connection must be closed (at most after a DISCONNECT ≥ 0x80),
/// and afterwards MQTT 5 and 3.1.1 clients still get their CONNACK promptly, from the
/// same process.
#[tokio::test(flavor = "multi_thread")]
async fn server_only_packets_from_a_client_close_only_that_connection() {
    let mut broker = Broker::start(&["tcp"]).await;
    let pid = broker.pid();
    let addr = broker.addrs.tcp.unwrap();
    let client_id = unique("hostile-server-only");
    for packet in [CLIENT_CONNACK, CLIENT_UNSUBACK] {
        for round in 1..=2 {
            let what = format!("v5 CONNECT then {} (round {round})", hex(packet));
            let mut raw = Raw::connect(addr, &connect_packet(Version::V5, &client_id), &what).await;
            raw.send(packet).await;
            let frames = raw.expect_close(&what).await;
            assert_refusal_only(&frames, true, false, &what);
        }
    }
    assert_serving(&mut broker, pid, &[&client_id]).await;
}

/// Finding 2: the finding-1 pair (MQTT 5 CONNECT, then a CONNACK or UNSUBACK from the
/// client) with random client ids, repeated 2,000 times from one host, leaked: new
/// clients could no longer connect. Afterwards none of those clients may be listed by
/// `GET /api/v4/clients` or counted as connected, and pub/sub still works (the tier's
/// 1,000-session quota would refuse new clients if the sessions leaked).
#[tokio::test(flavor = "multi_thread")]
async fn repeated_server_only_packets_leak_nothing() {
    const TOTAL: usize = 2_000;
    const WORKERS: usize = 8;
    let mut broker = Broker::start(&["tcp"]).await;
    let pid = broker.pid();
    let addr = broker.addrs.tcp.unwrap();
    let prefix = unique("hostile-leak");
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let prefix = prefix.clone();
            tokio::spawn(async move {
                for i in (w..TOTAL).step_by(WORKERS) {
                    let id = format!("{prefix}-{i}-{:08x}", rand::random::<u32>());
                    let packet = if i % 2 == 0 {
                        CLIENT_CONNACK
                    } else {
                        CLIENT_UNSUBACK
                    };
                    let what = format!("attempt {i}: v5 CONNECT {id:?} then {}", hex(packet));
                    let mut raw =
                        Raw::connect(addr, &connect_packet(Version::V5, &id), &what).await;
                    raw.send(packet).await;
                    let frames = raw.expect_close(&what).await;
                    assert_refusal_only(&frames, true, false, &what);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }

    // Closing is the server's; give its bookkeeping a moment to catch up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (listed, connected) = loop {
        let clients: Value = broker
            .api(
                Method::GET,
                &format!("/api/v4/clients?_like_clientid={prefix}&_limit=10000"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let metrics: Value = broker
            .api(Method::GET, "/api/v4/metrics")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let listed = clients["meta"]["count"].as_u64().unwrap();
        let connected = metrics["data"][0]["metrics"]["sessions.connected"]
            .as_u64()
            .unwrap();
        if (listed == 0 && connected == 0) || Instant::now() > deadline {
            break (clients, connected);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        listed["meta"]["count"], 0,
        "closed clients still listed: {listed}"
    );
    assert_eq!(connected, 0, "closed clients still counted as connected");
    assert_serving(&mut broker, pid, &[]).await;
}

/// Finding 3: an MQTT 3.1.1 UNSUBSCRIBE with no topic filter (`a2 02 00 01` after a
/// valid CONNECT) must close that connection only (without an UNSUBACK,
/// [MQTT-3.10.3-2]); other connected clients keep working. The same for MQTT 5
/// (`a2 03 00 01 00`, at most a DISCONNECT ≥ 0x80 first).
#[tokio::test(flavor = "multi_thread")]
async fn empty_unsubscribe_closes_only_its_connection() {
    let mut broker = Broker::start(&["tcp"]).await;
    let pid = broker.pid();
    let addr = broker.addrs.tcp.unwrap();
    let target = broker.mqtt("tcp");
    for (version, empty_unsubscribe) in [
        (Version::V3_1_1, &[0xa2, 0x02, 0x00, 0x01][..]),
        (Version::V5, &[0xa2, 0x03, 0x00, 0x01, 0x00][..]),
    ] {
        // Bystanders, connected before: a mosquitto subscriber and a raw client.
        let topic = unique("hostile/unsub/bystander");
        let sub = Subscriber::start(&target, "mqttv311", 1, &topic, &[]).await;
        let mut bystander = Raw::connect(
            addr,
            &connect_packet(Version::V5, &unique("hostile-bystander")),
            "bystander",
        )
        .await;

        let what = format!("{version:?} UNSUBSCRIBE without filters");
        let mut raw = Raw::connect(
            addr,
            &connect_packet(version, &unique("hostile-unsub")),
            &what,
        )
        .await;
        raw.send(empty_unsubscribe).await;
        let frames = raw.expect_close(&what).await;
        assert_refusal_only(&frames, version == Version::V5, false, &what);

        let payload = unique("still-delivered");
        let (status, output) = publish(&target, "mqttv5", 1, &topic, &payload, &[]).await;
        assert!(status.success(), "mosquitto_pub failed: {output}");
        let received = sub.finish().await;
        assert!(
            received.contains(&payload),
            "{what}: the earlier subscriber missed a message: {received:#?}"
        );
        bystander.send(&[0xc0, 0x00]).await;
        match bystander.next(PROMPT).await {
            Event::Packet((0xd0, body)) if body.is_empty() => {}
            other => panic!("{what}: the bystander got {other:?} instead of a PINGRESP"),
        }
    }
    assert_serving(&mut broker, pid, &[]).await;
}

/// A protocol violation: what it is, whether it is MQTT 5, the CONNECT accepted first
/// (if any), and the violating bytes.
type ViolationCase = (String, bool, Option<Vec<u8>>, Vec<u8>);

/// Finding 4: protocol violations that must close the connection — a second CONNECT;
/// SUBSCRIBE with fixed-header flags `0` instead of `2`; a v3.1.1 CONNECT with the
/// reserved flag set or with a password but no user name; a v5 CONNECT with a
/// duplicated property, Receive Maximum 0 or Maximum Packet Size 0. MQTT 5 may get a
/// CONNACK or DISCONNECT with a code ≥ 0x80 first; a successful CONNACK followed by
/// serving, or an open connection, is the bug.
#[tokio::test(flavor = "multi_thread")]
async fn protocol_violations_close_the_connection() {
    let mut broker = Broker::start(&["tcp"]).await;
    let pid = broker.pid();
    let addr = broker.addrs.tcp.unwrap();

    let mut cases: Vec<ViolationCase> = Vec::new();
    for (version, v5) in [(Version::V3_1_1, false), (Version::V5, true)] {
        let connect = connect_packet(version, &unique("hostile-violation"));
        cases.push((
            format!("{version:?} second CONNECT"),
            v5,
            Some(connect.clone()),
            connect.clone(),
        ));
        let subscribe_flags_0 = if v5 {
            vec![0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x00]
        } else {
            vec![0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00]
        };
        cases.push((
            format!("{version:?} SUBSCRIBE with header flags 0"),
            v5,
            Some(connect),
            subscribe_flags_0,
        ));
    }
    cases.push((
        "v3.1.1 CONNECT with the reserved flag set".into(),
        false,
        None,
        b"\x10\x0d\0\x04MQTT\x04\x03\0\x3c\0\x01a".to_vec(),
    ));
    cases.push((
        "v3.1.1 CONNECT with a password but no user name".into(),
        false,
        None,
        b"\x10\x11\0\x04MQTT\x04\x42\0\x3c\0\x01a\0\x02pw".to_vec(),
    ));
    cases.push((
        "v5 CONNECT with Receive Maximum twice".into(),
        true,
        None,
        v5_connect_with_properties(&[0x21, 0x00, 0x0a, 0x21, 0x00, 0x0a]),
    ));
    cases.push((
        "v5 CONNECT with Session Expiry Interval twice".into(),
        true,
        None,
        v5_connect_with_properties(&[0x11, 0, 0, 0, 0x0a, 0x11, 0, 0, 0, 0x0a]),
    ));
    cases.push((
        "v5 CONNECT with Receive Maximum 0".into(),
        true,
        None,
        v5_connect_with_properties(&[0x21, 0x00, 0x00]),
    ));
    cases.push((
        "v5 CONNECT with Maximum Packet Size 0".into(),
        true,
        None,
        v5_connect_with_properties(&[0x27, 0x00, 0x00, 0x00, 0x00]),
    ));

    let mut failures = Vec::new();
    for (what, v5, connect, violation) in cases {
        let what = format!("{what} ({})", hex(&violation));
        let outcome = tokio::spawn(async move {
            let mut raw = match &connect {
                Some(connect) => Raw::connect(addr, connect, &what).await,
                None => Raw::open(addr).await,
            };
            raw.send(&violation).await;
            let frames = raw.expect_close(&what).await;
            assert_refusal_only(&frames, v5, connect.is_none(), &what);
        })
        .await;
        if let Err(e) = outcome {
            failures.push(e.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "violations not refused:\n{failures:#?}"
    );
    assert_serving(&mut broker, pid, &[]).await;
}

async fn node_metrics(broker: &Broker) -> Value {
    let body: Value = broker
        .api(Method::GET, "/api/v4/metrics")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"][0]["metrics"].clone()
}

async fn prometheus_value(broker: &Broker, metric: &str) -> Option<u64> {
    let text = reqwest::get(format!("http://{}/metrics", broker.addrs.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().find_map(|l| {
        l.strip_prefix(metric)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Finding 5a: `POST /api/v4/mqtt/publish` with a payload over 1 MiB answered 200. It
/// must answer an error (413, or 400 with a code) and publish nothing, plain or base64,
/// alone or in a batch.
#[tokio::test(flavor = "multi_thread")]
async fn http_publish_refuses_payloads_over_one_mebibyte() {
    use base64::Engine as _;
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let topic = unique("hostile/http/big");
    let sub = Subscriber::start(&target, "mqttv5", 1, &topic, &[]).await;

    let big = vec![b'x'; (1 << 20) + 1];
    let plain =
        json!({"topic": topic, "payload": String::from_utf8(big.clone()).unwrap(), "qos": 1});
    let base64 = json!({"topic": topic, "encoding": "base64", "qos": 1,
        "payload": base64::engine::general_purpose::STANDARD.encode(&big)});
    for (what, body) in [("plain", &plain), ("base64", &base64)] {
        let response = broker
            .api(Method::POST, "/api/v4/mqtt/publish")
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["code"].as_u64());
        assert!(
            status == 413 || (status == 400 && code.is_some_and(|c| c != 0)),
            "{what} payload of {} bytes: answered {status} {text}",
            big.len()
        );
    }
    let response = broker
        .api(Method::POST, "/api/v4/mqtt/publish_batch")
        .json(&json!([plain]))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status == 200 {
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_ne!(
            body["data"][0]["code"], 0,
            "batch with an oversized payload: {body}"
        );
    } else {
        assert!(
            status == 413 || status == 400,
            "batch with an oversized payload: {status} {text}"
        );
    }
    assert_eq!(
        node_metrics(&broker).await["messages.publish.http"],
        0,
        "oversized payloads counted as published"
    );

    // Nothing was published: the subscriber's first message is the marker.
    let marker = unique("marker");
    let (status, output) = publish(&target, "mqttv5", 1, &topic, &marker, &[]).await;
    assert!(status.success(), "{output}");
    let received = sub.finish().await;
    assert!(received.contains(&marker), "{received:#?}");
    assert!(
        !received.iter().any(|l| l.starts_with("xxxxxxxx")),
        "an oversized payload was delivered"
    );
}

/// Finding 5b: under a low `max_tps` (50), HTTP publishing was not paced like MQTT
/// publishing. Pacing itself is not asserted here (that would be a timing assertion);
/// this guards that a paced batch of 200 messages loses nothing: the subscriber gets
/// all 200, and the node's counters (`GET /api/v4/metrics` and Prometheus `/metrics`)
/// count exactly 200 HTTP publishes.
#[tokio::test(flavor = "multi_thread")]
async fn paced_http_publishes_all_arrive_and_are_counted() {
    const COUNT: usize = 200;
    let broker = Broker::start_with(
        &["tcp"],
        open_security(),
        Some(json!({"max_sessions": 1000, "max_tps": 50})),
    )
    .await;
    let target = broker.mqtt("tcp");
    let topic = unique("hostile/http/paced");
    let sub = Subscriber::start(
        &target,
        "mqttv5",
        1,
        &topic,
        &["-C", &COUNT.to_string(), "-W", "120"],
    )
    .await;
    let batch: Vec<Value> = (0..COUNT)
        .map(|i| json!({"topic": topic, "payload": format!("paced-{i}"), "qos": 1}))
        .collect();
    let response = tokio::time::timeout(
        Duration::from_secs(90),
        broker
            .api(Method::POST, "/api/v4/mqtt/publish_batch")
            .json(&batch)
            .send(),
    )
    .await
    .expect("publish_batch did not answer within 90 s")
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["data"].as_array().unwrap();
    assert_eq!(results.len(), COUNT, "{body}");
    assert!(results.iter().all(|r| r["code"] == 0), "{body}");

    let output = sub.finish().await;
    for i in 0..COUNT {
        let payload = format!("paced-{i}");
        assert_eq!(
            output.iter().filter(|l| **l == payload).count(),
            1,
            "{payload} not delivered exactly once"
        );
    }
    let metrics = node_metrics(&broker).await;
    assert_eq!(metrics["messages.publish.http"], COUNT, "{metrics}");
    assert!(
        metrics["messages.sent"].as_u64().unwrap() >= COUNT as u64,
        "{metrics}"
    );
    assert_eq!(
        prometheus_value(&broker, "skyport_broker_messages_publish_http_total").await,
        Some(COUNT as u64)
    );
}

/// Waits for the server to close a connection it must close after the connect timeout.
async fn assert_closed_by_server<S: tokio::io::AsyncRead + Unpin>(mut stream: S, what: &str) {
    let mut buf = [0u8; 256];
    let bound = Duration::from_secs(5);
    match tokio::time::timeout(bound, stream.read(&mut buf)).await {
        Err(_) => panic!("{what}: still open {bound:?} after going silent"),
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: server sent {} instead of closing", hex(&buf[..n])),
    }
}

/// Finding 6: connections that never send CONNECT were never closed. With
/// `limits.connect_timeout_ms` at 500, a silent TCP connection, a TLS connection silent
/// after its handshake (and one silent before it), and a WebSocket connection silent
/// after its upgrade (and one silent before it) are each closed by the server. The bound
/// is 5 s: well above 500 ms, and below the 10 s default a node ignoring the setting
/// would use.
#[tokio::test(flavor = "multi_thread")]
async fn silent_connections_are_closed_after_the_connect_timeout() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let broker = Broker::start_with(
        &["tcp", "tls", "ws"],
        open_security(),
        Some(json!({"max_sessions": 1000, "max_tps": 1000, "connect_timeout_ms": 500})),
    )
    .await;
    let addrs = broker.addrs.clone();
    let ca_file = broker.pki.ca_file.clone();

    let tcp = tokio::spawn(async move {
        let stream = TcpStream::connect(addrs.tcp.unwrap()).await.unwrap();
        assert_closed_by_server(stream, "silent TCP").await;
    });
    let tls_raw = tokio::spawn(async move {
        let stream = TcpStream::connect(addrs.tls.unwrap()).await.unwrap();
        assert_closed_by_server(stream, "TCP to the TLS listener, no handshake").await;
    });
    let ws_raw = tokio::spawn(async move {
        let stream = TcpStream::connect(addrs.ws.unwrap()).await.unwrap();
        assert_closed_by_server(stream, "TCP to the WebSocket listener, no upgrade").await;
    });
    let tls = tokio::spawn(async move {
        let stream = TcpStream::connect(addrs.tls.unwrap()).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(common::client_tls(&ca_file));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let stream = tokio::time::timeout(PROMPT, connector.connect(name, stream))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake");
        assert_closed_by_server(stream, "silent TLS after the handshake").await;
    });
    let ws = tokio::spawn(async move {
        let (mut ws, _) =
            tokio::time::timeout(PROMPT, common::ws_connect(addrs.ws.unwrap(), None, "/mqtt"))
                .await
                .expect("WebSocket upgrade timed out")
                .expect("WebSocket upgrade");
        let bound = Duration::from_secs(5);
        loop {
            match tokio::time::timeout(bound, ws.next()).await {
                Err(_) => panic!("silent WebSocket: still open {bound:?} after the upgrade"),
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(Some(Ok(other))) => {
                    panic!("silent WebSocket: server sent {other:?} instead of closing")
                }
            }
        }
    });
    let mut failures = Vec::new();
    for (what, task) in [
        ("tcp", tcp),
        ("tls before handshake", tls_raw),
        ("ws before upgrade", ws_raw),
        ("tls", tls),
        ("ws", ws),
    ] {
        if let Err(e) = task.await {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Valid packets of every type, both directions, as `version` writes them.
fn valid_packets(version: Version) -> Vec<Vec<u8>> {
    let v5 = version == Version::V5;
    let publish_properties = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(30),
        topic_alias: Some(1),
        response_topic: Some("fuzz/response".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![("k".into(), "v".into())],
        subscription_identifiers: Vec::new(),
        content_type: Some("text/plain".into()),
    };
    let ack = |pkid, reason| Ack {
        pkid,
        reason,
        properties: AckProperties {
            reason_string: (reason != 0).then(|| "why".into()),
            user_properties: Vec::new(),
        },
    };
    let options = |qos| SubscriptionOptions {
        qos,
        no_local: v5,
        retain_as_published: v5,
        retain_handling: if v5 { 1 } else { 0 },
    };
    let mut packets = vec![
        Packet::Connect(Box::new(Connect {
            version,
            clean_start: true,
            keep_alive: 30,
            client_id: "fuzz-inner".into(),
            username: Some("user".into()),
            password: Some(Bytes::from_static(b"secret")),
            will: Some(Will {
                topic: "fuzz/will".into(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: false,
                delay_interval: v5.then_some(5),
                properties: if v5 {
                    publish_properties.clone()
                } else {
                    PublishProperties::default()
                },
            }),
            properties: ConnectProperties {
                session_expiry_interval: Some(10),
                receive_maximum: Some(10),
                maximum_packet_size: Some(4096),
                topic_alias_maximum: Some(4),
                request_response_information: Some(1),
                request_problem_information: Some(1),
                user_properties: vec![("k".into(), "v".into())],
                authentication_method: None,
                authentication_data: None,
            },
        })),
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: 0,
            properties: Default::default(),
        }),
        Packet::PubAck(ack(1, 0)),
        Packet::PubRec(ack(2, 0x10)),
        Packet::PubRel(ack(3, 0)),
        Packet::PubComp(ack(4, 0)),
        Packet::Subscribe(Subscribe {
            pkid: 5,
            filters: vec![
                ("fuzz/#".into(), options(QoS::AtLeastOnce)),
                ("$share/g/fuzz/+".into(), options(QoS::ExactlyOnce)),
            ],
            subscription_identifier: v5.then_some(7),
            user_properties: Vec::new(),
        }),
        Packet::SubAck(SubAck {
            pkid: 5,
            reason_codes: vec![0, 1],
            properties: Default::default(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            pkid: 6,
            filters: vec!["fuzz/#".into(), "fuzz/+".into()],
            user_properties: Vec::new(),
        }),
        Packet::UnsubAck(UnsubAck {
            pkid: 6,
            reason_codes: vec![0],
            properties: Default::default(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect {
            reason: if v5 { 0x04 } else { 0 },
            properties: DisconnectProperties {
                session_expiry_interval: None,
                reason_string: v5.then(|| "bye".into()),
                user_properties: Vec::new(),
                server_reference: None,
            },
        }),
    ];
    for (qos, pkid) in [
        (QoS::AtMostOnce, 0),
        (QoS::AtLeastOnce, 7),
        (QoS::ExactlyOnce, 8),
    ] {
        packets.push(Packet::Publish(Publish {
            dup: false,
            qos,
            retain: qos == QoS::AtLeastOnce,
            topic: "fuzz/topic".into(),
            pkid,
            properties: if v5 {
                publish_properties.clone()
            } else {
                PublishProperties::default()
            },
            payload: Bytes::from_static(b"fuzz payload"),
        }));
    }
    if v5 {
        packets.push(Packet::Auth(Auth {
            reason: 0x18,
            properties: AuthProperties {
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"data")),
                reason_string: None,
                user_properties: Vec::new(),
            },
        }));
    }
    packets.iter().map(|p| encoded(p, version)).collect()
}

/// Fixed headers announcing a huge (or over-long) remaining length.
const HUGE: &[&[u8]] = &[
    &[0x30, 0xff, 0xff, 0xff, 0x7f],
    &[0x32, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, b'a'],
    &[0x82, 0xff, 0xff, 0xff, 0x7f],
    &[0x10, 0xff, 0xff, 0xff, 0x7f],
    &[0xe0, 0xff, 0xff, 0xff, 0x7f],
    &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
    &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01],
    &[0x30, 0x81, 0x80, 0x40],
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Flip(i, x) if len > 0 => bytes[i % len] ^= x.max(1),
            Mutation::Insert(i, b) => bytes.insert(i % (len + 1), b),
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Truncate(i) if len > 0 => bytes.truncate(i % len),
            _ => {}
        }
    }
    bytes
}

/// One fuzz case: the bytes, whether the CONNECT before them is MQTT 5, whether to send
/// them with no CONNECT at all, and whether they announce a huge packet.
#[derive(Debug, Clone)]
struct Case {
    bytes: Vec<u8>,
    v5: bool,
    before_connect: bool,
    huge: bool,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let valid: Vec<(bool, Vec<u8>)> = [Version::V3_1_1, Version::V5]
        .into_iter()
        .flat_map(|v| {
            valid_packets(v)
                .into_iter()
                .map(move |p| (v == Version::V5, p))
        })
        .collect();
    let mutation = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    let mutated = (
        prop::sample::select(valid),
        prop::collection::vec(mutation, 0..4),
    )
        .prop_map(|((v5, packet), mutations)| (v5, mutate(packet, &mutations), false));
    let random = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..96))
        .prop_map(|(v5, bytes)| (v5, bytes, false));
    let huge = (any::<bool>(), prop::sample::select(HUGE))
        .prop_map(|(v5, bytes)| (v5, bytes.to_vec(), true));
    (
        prop_oneof![6 => mutated, 2 => random, 1 => huge],
        prop::bool::weighted(0.15),
    )
        .prop_map(|((v5, bytes, huge), before_connect)| Case {
            bytes,
            v5,
            before_connect,
            huge,
        })
}

/// Sends one case on a fresh connection and reads what comes back, for a bounded time.
async fn drive(addr: SocketAddr, case: Case, client_id: String) {
    let version = if case.v5 {
        Version::V5
    } else {
        Version::V3_1_1
    };
    let mut raw = if case.before_connect {
        Raw::open(addr).await
    } else {
        Raw::connect(addr, &connect_packet(version, &client_id), "fuzz CONNECT").await
    };
    raw.send(&case.bytes).await;
    if case.huge && !case.before_connect {
        // Nobody may make the node wait for (or buffer) a 256 MiB packet.
        let what = format!("{version:?} {}", hex(&case.bytes));
        raw.expect_close(&what).await;
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match raw.next(left.min(Duration::from_millis(300))).await {
            Event::Packet(_) => {}
            Event::Closed | Event::Timeout => return,
        }
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Finding 7 (property test): random bytes, mutated valid packets of every type for
/// MQTT 3.1.1 and 5 (bits flipped, bytes inserted, deleted, truncated) and huge
/// remaining lengths such as `30 ff ff ff 7f`, each sent on a fresh connection (mostly
/// after a valid CONNECT), must not take the node down: after 300 cases it is the same
/// process and serves pub/sub normally; a huge remaining length closes the connection.
/// Set `HOSTILE_SEED` to replay a run.
#[tokio::test(flavor = "multi_thread")]
async fn random_and_mutated_packets_do_not_break_the_node() {
    const CASES: usize = 300;
    const CONCURRENCY: usize = 10;
    let seed: u64 = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("HOSTILE_SEED={seed}");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::with_cases(CASES as u32),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = case_strategy();
    let cases: Vec<Case> = (0..CASES)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();

    let mut broker = Broker::start(&["tcp"]).await;
    let pid = broker.pid();
    let addr = broker.addrs.tcp.unwrap();
    for (n, chunk) in cases.chunks(CONCURRENCY).enumerate() {
        let tasks: Vec<_> = chunk
            .iter()
            .cloned()
            .map(|case| tokio::spawn(drive(addr, case, unique("hostile-fuzz"))))
            .collect();
        let mut failures = Vec::new();
        for (task, case) in tasks.into_iter().zip(chunk) {
            if let Err(e) = task.await {
                failures.push(format!("{case:?} ({}): {e}", hex(&case.bytes)));
            }
        }
        let inputs = || {
            chunk
                .iter()
                .map(|c| format!("v5={} pre={} {}", c.v5, c.before_connect, hex(&c.bytes)))
                .collect::<Vec<_>>()
        };
        assert!(
            failures.is_empty(),
            "seed {seed}, chunk {n}: {failures:#?}\n{}",
            broker.stderr()
        );
        assert!(
            broker.is_running(),
            "seed {seed}: the broker exited during chunk {n}, inputs {:#?}: {}",
            inputs(),
            broker.stderr()
        );
        let mut probe = Raw::connect(
            addr,
            &connect_packet(Version::V5, &unique("hostile-probe")),
            &format!("seed {seed}: probe after chunk {n}, inputs {:#?}", inputs()),
        )
        .await;
        probe.send(&[0xe0, 0x00]).await;
    }
    assert_serving(&mut broker, pid, &["fuzz-inner"]).await;
}
