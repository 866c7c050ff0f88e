//! Persistent sessions survive a planned restart of the node: mosquitto clients with a
//! persistent session (MQTT 3.1.1 `-c`, MQTT 5 with a session expiry) subscribe and go
//! away, messages are published, the node restarts (SIGTERM, same data directory), more
//! messages are published, and the clients come back to every message, in order.

mod common;

use common::{publish, unique, Broker, Subscriber};
use reqwest::Method;

/// The payloads a `mosquitto_sub -d` printed (its other lines start with "Client" or
/// "Subscribed").
fn payloads(output: &[String]) -> Vec<String> {
    output
        .iter()
        .filter(|line| !line.starts_with("Client ") && !line.starts_with("Subscribed "))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_messages_and_subscriptions_survive_a_restart() {
    let mut broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let base = unique("persist");
    let sessions = [
        ("mqttv311", format!("{base}-v3"), vec!["-c"]),
        ("mqttv5", format!("{base}-v5"), vec!["-c", "-x", "3600"]),
    ];
    // Subscribe with a persistent session, then leave.
    for (version, client, flags) in &sessions {
        let topic = format!("{base}/{version}/#");
        let mut extra = vec!["-i", client.as_str(), "-E"];
        extra.extend(flags.iter().copied());
        Subscriber::start(&target, version, 2, &topic, &extra)
            .await
            .finish()
            .await;
    }
    for (version, _, _) in &sessions {
        for (n, qos) in [(1, 1), (2, 2), (3, 1)] {
            let (status, output) = publish(
                &target,
                version,
                qos,
                &format!("{base}/{version}/t"),
                &format!("before-{n}"),
                &[],
            )
            .await;
            assert!(status.success(), "{output}");
        }
    }
    let pid = broker.pid();

    broker.restart().await;
    assert_ne!(broker.pid(), pid, "a new process");
    assert!(
        broker.stderr().contains("persistent sessions restored"),
        "{}",
        broker.stderr()
    );
    // The sessions are there while their clients are away, with their subscriptions.
    for (version, client, _) in &sessions {
        let listed: serde_json::Value = broker
            .api(Method::GET, &format!("/api/v4/subscriptions/{client}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            listed["data"][0]["topic"],
            format!("{base}/{version}/#"),
            "{listed}"
        );
    }
    // Published while the clients are still away, after the restart.
    for (version, _, _) in &sessions {
        let (status, output) = publish(
            &target,
            version,
            1,
            &format!("{base}/{version}/t"),
            "after-4",
            &[],
        )
        .await;
        assert!(status.success(), "{output}");
    }

    for (version, client, flags) in &sessions {
        let topic = format!("{base}/{version}/#");
        let mut extra = vec!["-i", client.as_str(), "-C", "4"];
        extra.extend(flags.iter().copied());
        // Saved messages may all arrive before the SUBACK: do not wait for it.
        let output = Subscriber::spawn(&target, version, 2, &topic, &extra)
            .finish()
            .await;
        // mosquitto_sub prints a QoS 2 message once its PUBREL arrives, so the printed
        // order may differ; the PUBLISHes themselves must come in order [MQTT-4.6.0-6].
        let mut got = payloads(&output);
        got.sort();
        assert_eq!(
            got,
            ["after-4", "before-1", "before-2", "before-3"],
            "{version}: {output:#?}"
        );
        let sizes: Vec<&str> = output
            .iter()
            .filter(|l| l.contains("received PUBLISH"))
            .filter_map(|l| l.split("... (").nth(1))
            .collect();
        assert_eq!(
            sizes,
            ["8 bytes))", "8 bytes))", "8 bytes))", "7 bytes))"],
            "{version}: {output:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_offline_queue_drops_the_oldest_counts_and_announces_it() {
    let mut security = common::open_security();
    security["sessions"] = serde_json::json!({"max_queued_messages": 3});
    let broker = Broker::start_with_security(&["tcp"], security).await;
    let target = broker.mqtt("tcp");
    let base = unique("queue");
    let client = format!("{base}-device");
    let topic = format!("{base}/cmd");
    let watcher = Subscriber::start(
        &target,
        "mqttv5",
        0,
        "$events/message_dropped",
        &["-C", "2", "-W", "30"],
    )
    .await;
    Subscriber::start(
        &target,
        "mqttv311",
        1,
        &format!("{base}/#"),
        &["-i", &client, "-c", "-E"],
    )
    .await
    .finish()
    .await;
    for n in 1..=5 {
        let (status, output) = publish(&target, "mqttv311", 1, &topic, &format!("m{n}"), &[]).await;
        assert!(status.success(), "{output}");
    }

    // The keeper takes the queue within seconds: two dropped, counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body: serde_json::Value = broker
            .api(Method::GET, "/api/v4/metrics")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["data"][0]["metrics"]["messages.dropped"] == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never dropped 2: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let events: Vec<serde_json::Value> = payloads(&watcher.finish().await)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(event["clientid"], client.as_str());
        assert_eq!(event["topic"], topic.as_str());
        assert_eq!(event["reason"], "queue_full");
        assert!(event["timestamp"].is_i64());
    }

    // The newest three wait for the client, in order.
    let output = Subscriber::spawn(
        &target,
        "mqttv311",
        1,
        &format!("{base}/#"),
        &["-i", &client, "-c", "-C", "3"],
    )
    .finish()
    .await;
    assert_eq!(payloads(&output), ["m3", "m4", "m5"], "{output:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployment_sets_how_long_v3_sessions_last() {
    let mut security = common::open_security();
    security["sessions"] = serde_json::json!({"session_expiry_secs": 1});
    let broker = Broker::start_with_security(&["tcp"], security).await;
    let target = broker.mqtt("tcp");
    let client = unique("short-lived");
    Subscriber::start(
        &target,
        "mqttv311",
        1,
        "short/#",
        &["-i", &client, "-c", "-E"],
    )
    .await
    .finish()
    .await;
    let status = |client: String| {
        let request = broker.api(Method::GET, &format!("/api/v4/clients/{client}"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Held while offline, then ended by the node one second on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while status(client.clone()).await != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let subscriptions: serde_json::Value = broker
        .api(Method::GET, &format!("/api/v4/subscriptions/{client}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        subscriptions["data"],
        serde_json::json!([]),
        "{subscriptions}"
    );
}

/// Reads one whole packet from `stream` into (first byte, body).
async fn read_packet(stream: &mut tokio::net::TcpStream) -> (u8, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let read = async {
        let first = stream.read_u8().await?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let byte = stream.read_u8().await?;
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        stream.read_exact(&mut body).await?;
        std::io::Result::Ok((first, body))
    };
    tokio::time::timeout(std::time::Duration::from_secs(15), read)
        .await
        .expect("a packet from the broker")
        .expect("the connection stays open")
}

/// An MQTT 5 connection of a persistent session (Clean Start 0, Session Expiry 300 s)
/// over raw packets; returns the stream and CONNACK's Session Present flag.
async fn connect_v5_persistent(
    addr: std::net::SocketAddr,
    client_id: &str,
) -> (tokio::net::TcpStream, bool) {
    use skyport_broker::mqtt::{encode, Connect, ConnectProperties, Packet, Version};
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = bytes::BytesMut::new();
    encode::write(
        &Packet::Connect(Box::new(Connect {
            version: Version::V5,
            clean_start: false,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            username: None,
            password: None,
            will: None,
            properties: ConnectProperties {
                session_expiry_interval: Some(300),
                ..Default::default()
            },
        })),
        Version::V5,
        &mut buf,
    );
    stream.write_all(&buf).await.unwrap();
    let (first, body) = read_packet(&mut stream).await;
    assert_eq!(
        (first, body[1]),
        (0x20, 0),
        "a successful CONNACK: {body:02x?}"
    );
    (stream, body[0] & 1 == 1)
}

/// Writes one MQTT 5 packet.
async fn send(stream: &mut tokio::net::TcpStream, packet: skyport_broker::mqtt::Packet) {
    use tokio::io::AsyncWriteExt;
    let mut buf = bytes::BytesMut::new();
    skyport_broker::mqtt::encode::write(&packet, skyport_broker::mqtt::Version::V5, &mut buf);
    stream.write_all(&buf).await.unwrap();
}

/// An acknowledgement's (first byte, packet id, reason code); a v5 ack without a reason
/// code means success.
fn ack_fields((first, body): (u8, Vec<u8>)) -> (u8, u16, u8) {
    (
        first,
        u16::from_be_bytes([body[0], body[1]]),
        body.get(2).copied().unwrap_or(0),
    )
}

/// Exactly once across a crash: a QoS 2 message acknowledged with PUBREC and not yet
/// released is delivered once, and the same PUBLISH sent again after the node was killed
/// and restarted is acknowledged without being delivered a second time
/// [MQTT-4.3.3-10] (the receiver must not cause duplicate delivery until it has sent
/// PUBCOMP); its PUBREL then completes with success, not "packet identifier not found"
/// [MQTT-4.3.3-11], since the session state includes it [MQTT-4.1.0-1].
#[tokio::test(flavor = "multi_thread")]
async fn a_received_qos2_packet_id_survives_a_crash() {
    use skyport_broker::mqtt::{
        Ack, AckProperties, Bytes, Packet, Publish, PublishProperties, QoS,
    };
    let mut broker = Broker::start(&["tcp"]).await;
    let target = broker.mqtt("tcp");
    let addr = broker.addrs.tcp.unwrap();
    let topic = unique("exactly-once");
    let subscriber = unique("sub");
    // A persistent subscriber, away while the publisher sends. It subscribes at QoS 1:
    // libmosquitto hands a QoS 2 message over only at its PUBREL, which would let the
    // later QoS 1 message overtake it in the output.
    Subscriber::start(
        &target,
        "mqttv5",
        1,
        &topic,
        &["-i", &subscriber, "-c", "-x", "300", "-E"],
    )
    .await
    .finish()
    .await;

    let publisher = unique("pub");
    let (mut stream, present) = connect_v5_persistent(addr, &publisher).await;
    assert!(!present);
    let qos2_publish = |dup| {
        Packet::Publish(Publish {
            dup,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: topic.as_str().into(),
            pkid: 7,
            properties: PublishProperties::default(),
            payload: Bytes::from_static(b"once"),
        })
    };
    send(&mut stream, qos2_publish(false)).await;
    assert_eq!(
        ack_fields(read_packet(&mut stream).await),
        (0x50, 7, 0),
        "PUBREC"
    );

    broker.crash_and_restart().await;
    drop(stream);
    let (mut stream, present) = connect_v5_persistent(addr, &publisher).await;
    assert!(present, "the publisher's session survived the crash");
    send(&mut stream, qos2_publish(true)).await;
    assert_eq!(
        ack_fields(read_packet(&mut stream).await),
        (0x50, 7, 0),
        "PUBREC again"
    );
    send(
        &mut stream,
        Packet::PubRel(Ack {
            pkid: 7,
            reason: 0,
            properties: AckProperties::default(),
        }),
    )
    .await;
    assert_eq!(
        ack_fields(read_packet(&mut stream).await),
        (0x70, 7, 0),
        "PUBCOMP"
    );
    // A later message marks the end: anything delivered twice would come before it.
    let (status, output) = publish(&target, "mqttv5", 1, &topic, "after", &[]).await;
    assert!(status.success(), "{output}");

    let output = Subscriber::spawn(
        &target,
        "mqttv5",
        1,
        &topic,
        &["-i", &subscriber, "-c", "-x", "300", "-C", "2"],
    )
    .finish()
    .await;
    assert_eq!(payloads(&output), ["once", "after"], "{output:#?}");
}
