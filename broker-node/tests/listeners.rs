//! The real `skyport-broker` binary serving real mosquitto clients on each
//! listener kind, for every MQTT version and QoS level.

mod common;

use std::time::Duration;

use common::{exchange, publish, unique, Broker, Pki, Subscriber, Target, TempDir, WsBridge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ALL_VERSIONS: [&str; 3] = ["mqttv31", "mqttv311", "mqttv5"];
const QOS: [u8; 3] = [0, 1, 2];

#[tokio::test(flavor = "multi_thread")]
async fn tcp_serves_every_version_and_qos() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    for version in ALL_VERSIONS {
        for qos in QOS {
            exchange(&target, version, qos).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_serves_every_version_and_qos() {
    let broker = Broker::start(&["tls"]).await;
    let target = broker.mqtt("tls");
    for version in ALL_VERSIONS {
        for qos in QOS {
            exchange(&target, version, qos).await;
        }
    }
    // By IP address too: the certificate carries 127.0.0.1 as a SAN.
    let by_ip = Target {
        host: "127.0.0.1".to_owned(),
        ..target
    };
    exchange(&by_ip, "mqttv311", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_client_that_does_not_trust_the_ca_is_refused() {
    let broker = Broker::start(&["tls"]).await;
    let other_dir = TempDir::new();
    let other = Pki::generate(other_dir.path(), "other");
    let untrusting = Target {
        ca_file: Some(other.ca_file.clone()),
        ..broker.mqtt("tls")
    };
    let (status, stderr) = publish(&untrusting, "mqttv311", 1, "skyport/untrusted", "x", &[]).await;
    assert!(!status.success(), "publish with an untrusted CA succeeded");
    assert!(
        stderr.to_lowercase().contains("certificate")
            || stderr.contains("TLS")
            || stderr.contains("tls"),
        "unexpected mosquitto_pub error: {stderr}"
    );
    // The listener keeps serving clients that do trust it.
    exchange(&broker.mqtt("tls"), "mqttv311", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ws_serves_every_version_and_qos() {
    let broker = Broker::start(&["ws"]).await;
    let bridge = WsBridge::start(broker.addrs.ws.unwrap(), None).await;
    for version in ALL_VERSIONS {
        for qos in QOS {
            exchange(&bridge.target(), version, qos).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wss_serves_every_version_and_qos() {
    let broker = Broker::start(&["wss"]).await;
    let bridge = WsBridge::start(broker.addrs.wss.unwrap(), Some(broker.pki.ca_file.clone())).await;
    for version in ALL_VERSIONS {
        for qos in QOS {
            exchange(&bridge.target(), version, qos).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_on_different_listeners_and_versions_see_each_other() {
    let broker = Broker::start(&["tcp", "tls", "ws"]).await;
    let bridge = WsBridge::start(broker.addrs.ws.unwrap(), None).await;
    let topic = unique("skyport/cross");
    let payload = unique("cross");
    let v5_over_ws = Subscriber::start(&bridge.target(), "mqttv5", 1, &topic, &[]).await;
    let v31_over_tls = Subscriber::start(&broker.mqtt("tls"), "mqttv31", 2, &topic, &[]).await;
    let (status, stderr) = publish(&broker.mqtt("tcp"), "mqttv311", 2, &topic, &payload, &[]).await;
    assert!(status.success(), "{stderr}");
    for output in [v5_over_ws.finish().await, v31_over_tls.finish().await] {
        assert!(output.contains(&payload), "{output:#?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retained_messages_reach_later_subscribers() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    for version in ["mqttv311", "mqttv5"] {
        let topic = unique("skyport/retained");
        let payload = unique("kept");
        let (status, stderr) = publish(&target, version, 1, &topic, &payload, &["-r"]).await;
        assert!(status.success(), "{stderr}");
        let output = Subscriber::start(&target, version, 1, &topic, &[])
            .await
            .finish()
            .await;
        assert!(output.contains(&payload), "{version}: {output:#?}");
        assert!(
            output
                .iter()
                .any(|l| l.contains("received PUBLISH (d0, q1, r1,")),
            "{version}: not flagged retained: {output:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn will_is_published_when_a_client_vanishes() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    for version in ["mqttv311", "mqttv5"] {
        let will_topic = unique("skyport/will");
        let watcher = Subscriber::start(&target, version, 1, &will_topic, &[]).await;
        let idle_topic = unique("skyport/idle");
        let will = [
            "--will-topic",
            will_topic.as_str(),
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ];
        let dying = Subscriber::start(&target, version, 0, &idle_topic, &will).await;
        drop(dying); // SIGKILL: no DISCONNECT is sent, so the will must fire.
        let output = watcher.finish().await;
        assert!(
            output.contains(&"gone".to_owned()),
            "{version}: {output:#?}"
        );
    }
}

/// A raw CONNECT, built by hand because no client sends these on request.
fn connect_packet(name: &[u8], level: u8, keep_alive: u16) -> Vec<u8> {
    let mut body = (name.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, 0b10]);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    // A client id per protocol level: the engine may still be ending the previous
    // connection of a test, and a same-id takeover racing that is not what is tested.
    body.extend_from_slice(b"\0\x08raw-tst");
    body.push(b'0' + level);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

async fn connack_for(broker: &Broker, connect: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(broker.addrs.tcp.unwrap()).await.unwrap();
    stream.write_all(connect).await.unwrap();
    let mut connack = vec![0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut connack))
        .await
        .expect("no CONNACK")
        .expect("connection closed without CONNACK");
    connack
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_keep_alive_is_accepted() {
    let broker = Broker::start(&["tcp"]).await;
    // rumqttd alone refuses keep-alive 0 by closing; the front rewrites it.
    for (name, level) in [(&b"MQIsdp"[..], 3), (b"MQTT", 4), (b"MQTT", 5)] {
        let connack = connack_for(&broker, &connect_packet(name, level, 0)).await;
        assert_eq!(connack[0], 0x20, "level {level}: {connack:02x?}");
        assert_eq!(connack[3], 0x00, "level {level}: refused {connack:02x?}");
    }
}

/// A clean-session CONNECT with client id `id`.
fn connect_with_id(level: u8, id: &str) -> Vec<u8> {
    let mut body = 4u16.to_be_bytes().to_vec();
    body.extend_from_slice(b"MQTT");
    body.extend_from_slice(&[level, 0b10, 0, 60]);
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend((id.len() as u16).to_be_bytes());
    body.extend(id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

/// [MQTT-3.1.3-5]: a server may accept any UTF-8 client id. The node's sessions are
/// its own (the engine never sees client ids), so ids with `/ + # $` are plain ids, and
/// reusing one (which once took the engine down) is an ordinary takeover.
#[tokio::test(flavor = "multi_thread")]
async fn any_utf8_client_id_is_accepted() {
    let broker = Broker::start(&["tcp"]).await;
    for id in ["dev/1", "dev+1", "dev#1", "$dev1", "dév 1"] {
        for _ in 0..2 {
            let v3 = connack_for(&broker, &connect_with_id(4, id)).await;
            assert_eq!(v3, [0x20, 0x02, 0x00, 0x00], "{id}: accepted");
            let v5 = connack_for(&broker, &connect_with_id(5, id)).await;
            assert_eq!((v5[0], v5[3]), (0x20, 0x00), "{id}: accepted");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_protocol_level_gets_unacceptable_version() {
    let broker = Broker::start(&["tcp"]).await;
    let connack = connack_for(&broker, &connect_packet(b"MQTT", 6, 60)).await;
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x01]);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_handshake_rules() {
    let broker = Broker::start(&["ws", "wss"]).await;
    let ws = broker.addrs.ws.unwrap();
    let (_, chosen) = common::ws_connect(ws, None, "/mqtt").await.unwrap();
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    let (_, chosen) = common::ws_connect(
        broker.addrs.wss.unwrap(),
        Some(&broker.pki.ca_file),
        "/mqtt",
    )
    .await
    .unwrap();
    assert_eq!(chosen.as_deref(), Some("mqtt"));
    match common::ws_connect(ws, None, "/other").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected 404 on /other, got {:?}", other.map(|(_, p)| p)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_endpoint_answers() {
    let broker = Broker::start(&["tcp"]).await;
    let response = reqwest::get(format!("http://{}/healthz", broker.addrs.api))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_subscription_gives_each_message_to_one_member() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let topic = unique("skyport/shared");
    let filter = format!("$share/workers/{topic}");
    let members = [
        Subscriber::start(&target, "mqttv5", 1, &filter, &[]).await,
        Subscriber::start(&target, "mqttv311", 1, &filter, &[]).await,
    ];
    // Each member exits after one message; enough are sent for both to get one.
    let payloads: Vec<String> = (0..4).map(|_| unique("shared")).collect();
    for payload in &payloads {
        let (status, stderr) = publish(&target, "mqttv5", 1, &topic, payload, &[]).await;
        assert!(status.success(), "{stderr}");
    }
    let mut got = Vec::new();
    for member in members {
        let output = member.finish().await;
        got.extend(output.into_iter().filter(|l| payloads.contains(l)));
    }
    got.sort();
    got.dedup();
    assert_eq!(
        got.len(),
        2,
        "each member should get a different message: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_session_keeps_qos1_messages_while_offline() {
    let broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    for (version, session) in [("mqttv311", &["-c"][..]), ("mqttv5", &["-c", "-x", "600"])] {
        let topic = unique("skyport/offline");
        let id = unique("persistent");
        let mut args = vec!["-i", id.as_str()];
        args.extend_from_slice(session);
        // -E: leave with a clean DISCONNECT right after the SUBACK.
        let mut subscribe_only = args.clone();
        subscribe_only.push("-E");
        Subscriber::start(&target, version, 1, &topic, &subscribe_only)
            .await
            .finish()
            .await;
        let payload = unique("queued");
        let (status, stderr) = publish(&target, version, 1, &topic, &payload, &[]).await;
        assert!(status.success(), "{stderr}");
        // The same client id resumes its session and gets the message queued meanwhile.
        let output = resume(&target, version, &args).await;
        assert!(output.contains(&payload), "{version}: {output:#?}");
    }
}

/// Reconnects a persistent client and collects one message.
async fn resume(target: &Target, version: &str, args: &[&str]) -> Vec<String> {
    // mosquitto_sub needs a topic; a fresh one proves the old subscription was kept.
    // The queued message may arrive before the SUBACK, so wait for the exit only.
    let unused = unique("skyport/unused");
    Subscriber::spawn(target, version, 1, &unused, args)
        .finish()
        .await
}

/// Reads one whole packet (bounded), or `None` when the connection closed.
async fn next_packet(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut header))
        .await
        .expect("no answer")
        .ok()?;
    assert!(header[1] < 0x80, "short packets only");
    let mut body = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut body).await.ok()?;
    let mut packet = header.to_vec();
    packet.extend(body);
    Some(packet)
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_topic_filters_and_names_are_refused_per_the_spec() {
    use skyport_broker::mqtt::{encode, Packet, QoS, Subscribe, SubscriptionOptions, Version};
    let subscription_request = |pkid: u16, version: Version, filters: &[(&str, Option<u8>)]| {
        let subscribe = Subscribe {
            pkid,
            filters: filters
                .iter()
                .map(|(filter, qos)| {
                    let options = SubscriptionOptions {
                        qos: QoS::from_u8(qos.unwrap_or(0)).unwrap(),
                        no_local: false,
                        retain_as_published: false,
                        retain_handling: 0,
                    };
                    ((*filter).to_owned(), options)
                })
                .collect(),
            subscription_identifier: None,
            user_properties: Vec::new(),
        };
        let mut buf = bytes::BytesMut::new();
        encode::write(&Packet::Subscribe(subscribe), version, &mut buf);
        buf.to_vec()
    };
    let broker = Broker::start(&["tcp"]).await;
    for (level, version, invalid) in [(4, Version::V3_1_1, 0x80), (5, Version::V5, 0x8f)] {
        let mut stream = TcpStream::connect(broker.addrs.tcp.unwrap()).await.unwrap();
        stream
            .write_all(&connect_with_id(level, &format!("filters-{level}")))
            .await
            .unwrap();
        let connack = next_packet(&mut stream).await.unwrap();
        assert_eq!(connack[0], 0x20);
        // One valid and one malformed filter: each gets its own answer.
        let subscribe =
            subscription_request(9, version, &[("ok/+/x", Some(1)), ("bad/#/x", Some(1))]);
        stream.write_all(&subscribe).await.unwrap();
        let suback = next_packet(&mut stream).await.unwrap();
        let codes = &suback[suback.len() - 2..];
        assert_eq!(codes, [0x01, invalid], "level {level}: {suback:02x?}");
        // Only malformed filters: refused without reaching the engine.
        let subscribe = subscription_request(10, version, &[("+a/b", Some(0))]);
        stream.write_all(&subscribe).await.unwrap();
        let suback = next_packet(&mut stream).await.unwrap();
        assert_eq!(
            suback.last(),
            Some(&invalid),
            "level {level}: {suback:02x?}"
        );

        // A PUBLISH to a topic name with a wildcard is a protocol violation: closed.
        let mut publish = vec![0x30];
        let topic = b"a/+/b";
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend(topic);
        if level == 5 {
            body.push(0); // no properties
        }
        body.extend(b"x");
        publish.push(body.len() as u8);
        publish.extend(body);
        stream.write_all(&publish).await.unwrap();
        match next_packet(&mut stream).await {
            None => assert_eq!(level, 4, "v3.1.1 closes without a word"),
            Some(disconnect) => {
                assert_eq!(level, 5);
                assert_eq!(disconnect[0], 0xe0, "{disconnect:02x?}");
                assert_eq!(disconnect[2], 0x90, "topic name invalid: {disconnect:02x?}");
                assert!(next_packet(&mut stream).await.is_none(), "then closed");
            }
        }
    }
}
