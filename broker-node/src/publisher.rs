//! Publishing on behalf of the deployment API (`POST /api/v4/mqtt/publish`, `…/publish_batch`).
//!
//! The node keeps one MQTT 3.1.1 connection of its own to the engine's loopback listener
//! and publishes through it with the asked QoS, waiting for the engine's acknowledgement
//! of each message (PUBACK for QoS 1, PUBREC/PUBCOMP for QoS 2) before it answers. The
//! messages never cross the front, so they are not counted as client PUBLISHes: each
//! one counts once as an HTTP-published message (product §5), and its deliveries are
//! counted by the subscribers' connections as usual.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::front::packet::{self, kind};
use crate::front::pump::frame_len;
use crate::metering::Meter;

/// How long the engine may take to acknowledge one message.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the engine has not started yet")]
    NotReady,
    #[error("the engine is unreachable: {0}")]
    Engine(#[from] std::io::Error),
    #[error("the engine did not acknowledge the message in time")]
    Timeout,
    #[error("the engine refused the connection (CONNACK code {0})")]
    Refused(u8),
    #[error("unexpected packet {0:#04x} from the engine")]
    Protocol(u8),
}

/// The node's own publishing connection to the engine. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    /// The engine's MQTT 3.1.1 listener, known once the engine has started.
    engine: Arc<std::sync::OnceLock<SocketAddr>>,
    meter: Arc<Meter>,
    conn: Arc<Mutex<Option<Connection>>>,
}

struct Connection {
    stream: TcpStream,
    buf: BytesMut,
    next_pkid: u16,
}

impl Publisher {
    /// A publisher that works once [`Publisher::attach`] has named the engine.
    pub fn new(meter: Arc<Meter>) -> Self {
        Self {
            engine: Arc::default(),
            meter,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// `engine` is the engine's MQTT 3.1.1 listener.
    pub fn attach(&self, engine: SocketAddr) {
        let _ = self.engine.set(engine);
    }

    /// Ends the engine's session of `client_id` (its subscriptions and queued messages):
    /// connects in its name with a clean session, then disconnects. Any connection the
    /// client still has is taken over, so close that first.
    pub async fn end_session(&self, client_id: &str) -> Result<(), PublishError> {
        let engine = *self.engine.get().ok_or(PublishError::NotReady)?;
        let ended = async {
            let mut conn = Connection::open_as(engine, client_id, true).await?;
            conn.stream.write_all(&[0xe0, 0x00]).await?;
            conn.stream.shutdown().await?;
            Ok::<_, PublishError>(())
        };
        tokio::time::timeout(ACK_TIMEOUT, ended)
            .await
            .map_err(|_| PublishError::Timeout)?
    }

    /// Takes the messages the engine queued for `client_id`'s offline session, in order:
    /// resumes the session in its name, acknowledges every message it delivers until it
    /// has been quiet for `quiet`, then disconnects (the session stays).
    pub async fn drain_session(
        &self,
        client_id: &str,
        quiet: Duration,
    ) -> Result<Vec<Message>, PublishError> {
        let engine = *self.engine.get().ok_or(PublishError::NotReady)?;
        let mut conn = Connection::open_as(engine, client_id, false).await?;
        let mut messages = Vec::new();
        while let Ok(packet) = tokio::time::timeout(quiet, conn.read_packet()).await {
            let packet = packet?;
            match packet::packet_kind(&packet) {
                kind::PUBLISH => {
                    let (message, pkid) =
                        parse_v4_publish(&packet).ok_or(PublishError::Protocol(packet[0]))?;
                    let version = crate::front::proxy::Version::V3_1_1;
                    match (message.qos, pkid) {
                        (1, Some(pkid)) => {
                            conn.stream
                                .write_all(&packet::ack(kind::PUBACK, pkid, version, 0))
                                .await?
                        }
                        (2, Some(pkid)) => {
                            conn.stream
                                .write_all(&packet::ack(kind::PUBREC, pkid, version, 0))
                                .await?
                        }
                        _ => {}
                    }
                    messages.push(message);
                }
                kind::PUBREL => {
                    if let Some(pkid) = packet::pkid_of(&packet) {
                        let version = crate::front::proxy::Version::V3_1_1;
                        conn.stream
                            .write_all(&packet::ack(kind::PUBCOMP, pkid, version, 0))
                            .await?;
                    }
                }
                _ => {}
            }
        }
        conn.stream.write_all(&[0xe0, 0x00]).await?;
        let _ = conn.stream.shutdown().await;
        Ok(messages)
    }

    /// Re-creates `client_id`'s persistent session in the engine with `filters` (engine
    /// spelling) and leaves it offline, so the engine queues what arrives for it.
    pub async fn restore_session(
        &self,
        client_id: &str,
        filters: &[(String, u8)],
    ) -> Result<(), PublishError> {
        let engine = *self.engine.get().ok_or(PublishError::NotReady)?;
        let restored = async {
            let mut conn = Connection::open_as(engine, client_id, false).await?;
            if !filters.is_empty() {
                let entries: Vec<(&str, Option<u8>)> = filters
                    .iter()
                    .map(|(f, q)| (f.as_str(), Some(*q)))
                    .collect();
                let version = crate::front::proxy::Version::V3_1_1;
                conn.stream
                    .write_all(&packet::subscription_request(1, version, &entries))
                    .await?;
                conn.expect(kind::SUBACK, 1).await?;
            }
            conn.stream.write_all(&[0xe0, 0x00]).await?;
            let _ = conn.stream.shutdown().await;
            Ok::<_, PublishError>(())
        };
        tokio::time::timeout(ACK_TIMEOUT, restored)
            .await
            .map_err(|_| PublishError::Timeout)?
    }

    /// Publishes `message` and waits for the engine to take it; counts it on success as
    /// an HTTP-published message.
    pub async fn publish(&self, message: &Message) -> Result<(), PublishError> {
        self.publish_counted(message, true).await
    }

    /// Publishes a message of the node's own (an event): not counted as HTTP-published
    /// (its deliveries count at the subscribers' connections).
    pub async fn publish_uncounted(&self, message: &Message) -> Result<(), PublishError> {
        self.publish_counted(message, false).await
    }

    async fn publish_counted(&self, message: &Message, count: bool) -> Result<(), PublishError> {
        let mut conn = self.conn.lock().await;
        // One retry on a fresh connection: the old one may have been closed by the engine.
        for attempt in 0..2 {
            if conn.is_none() {
                let engine = *self.engine.get().ok_or(PublishError::NotReady)?;
                *conn = Some(Connection::open(engine).await?);
            }
            let open = conn.as_mut().expect("opened above");
            match tokio::time::timeout(ACK_TIMEOUT, open.publish(message)).await {
                Ok(Ok(())) => {
                    if count {
                        self.meter.http_published(1);
                    }
                    return Ok(());
                }
                Ok(Err(PublishError::Engine(err))) if attempt == 0 => {
                    tracing::debug!(error = %err, "publishing connection lost; reconnecting");
                    *conn = None;
                }
                Ok(Err(err)) => {
                    *conn = None;
                    return Err(err);
                }
                Err(_) => {
                    *conn = None;
                    return Err(PublishError::Timeout);
                }
            }
        }
        unreachable!("the second attempt returns")
    }
}

impl Connection {
    async fn open(engine: SocketAddr) -> Result<Self, PublishError> {
        let client_id = format!("skyport-internal-http-{}", std::process::id());
        Self::open_as(engine, &client_id, true).await
    }

    /// Connects to the engine as `client_id`. A clean session also ends any session the
    /// engine kept for that client id; otherwise that session resumes.
    async fn open_as(
        engine: SocketAddr,
        client_id: &str,
        clean: bool,
    ) -> Result<Self, PublishError> {
        let mut stream = TcpStream::connect(engine).await?;
        stream.set_nodelay(true)?;
        let mut body = Vec::new();
        put_str(&mut body, b"MQTT");
        // Level 4, the longest keep-alive (the engine refuses 0).
        body.extend([4, if clean { 0b10 } else { 0 }, 0xff, 0xff]);
        put_str(&mut body, client_id.as_bytes());
        stream.write_all(&with_header(0x10, &body)).await?;
        let mut conn = Self {
            stream,
            buf: BytesMut::with_capacity(1024),
            next_pkid: 0,
        };
        let connack = tokio::time::timeout(ACK_TIMEOUT, conn.read_packet())
            .await
            .map_err(|_| PublishError::Timeout)??;
        match connack.as_slice() {
            [0x20, 2, _, 0] => Ok(conn),
            [0x20, 2, _, code] => Err(PublishError::Refused(*code)),
            other => Err(PublishError::Protocol(other[0])),
        }
    }

    async fn publish(&mut self, message: &Message) -> Result<(), PublishError> {
        let mut body = Vec::with_capacity(message.topic.len() + message.payload.len() + 4);
        put_str(&mut body, message.topic.as_bytes());
        let pkid = (message.qos > 0).then(|| self.pkid());
        if let Some(pkid) = pkid {
            body.extend(pkid.to_be_bytes());
        }
        body.extend_from_slice(&message.payload);
        let first = 0x30 | (message.qos.min(2) << 1) | u8::from(message.retain);
        self.stream.write_all(&with_header(first, &body)).await?;
        let Some(pkid) = pkid else {
            return Ok(());
        };
        let version = crate::front::proxy::Version::V3_1_1;
        if message.qos == 1 {
            return self.expect(kind::PUBACK, pkid).await;
        }
        self.expect(kind::PUBREC, pkid).await?;
        let pubrel = packet::ack(kind::PUBREL, pkid, version, 0);
        self.stream.write_all(&pubrel).await?;
        self.expect(kind::PUBCOMP, pkid).await
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    /// Reads packets until the acknowledgement `ack` for `pkid`; anything else is skipped.
    async fn expect(&mut self, ack: u8, pkid: u16) -> Result<(), PublishError> {
        loop {
            let packet = self.read_packet().await?;
            let got = packet::packet_kind(&packet);
            if got == ack && packet::pkid_of(&packet) == Some(pkid) {
                return Ok(());
            }
            if got == kind::DISCONNECT {
                return Err(PublishError::Protocol(packet[0]));
            }
        }
    }

    async fn read_packet(&mut self) -> Result<Vec<u8>, PublishError> {
        loop {
            if let Some(len) = frame_len(&self.buf)? {
                return Ok(self.buf.split_to(len).to_vec());
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(PublishError::Engine(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
    }
}

/// An MQTT 3.1.1 PUBLISH from the engine as a message, with its packet id.
fn parse_v4_publish(raw: &[u8]) -> Option<(Message, Option<u16>)> {
    let publish = packet::Publish::parse(raw, crate::front::proxy::Version::V3_1_1)?;
    let message = Message {
        topic: String::from_utf8(publish.topic.to_vec()).ok()?,
        payload: publish.payload.to_vec(),
        qos: publish.qos,
        retain: raw[0] & 0x01 == 1,
    };
    Some((message, publish.pkid))
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend((s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn with_header(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    packet::encode_varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}
