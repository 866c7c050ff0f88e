//! A connection's first exchange: read CONNECT within the connect timeout, decide it
//! (protocol, client id, authentication, quota, will ACL), and build the CONNACK.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connection::Peer;
use super::Broker;
use crate::mqtt::decode::DecodeError;
use crate::mqtt::{decode, encode, reason, ConnAck, ConnAckProperties, Connect, Packet, Version};
use crate::security::{Action, ClientInfo, ConnectVerdict};

/// QoS 1/2 PUBLISHes a client may have unacknowledged towards the node (v5 Receive
/// Maximum in CONNACK).
pub const RECEIVE_MAXIMUM: u16 = 1024;
/// Topic aliases a v5 client may set up (Topic Alias Maximum in CONNACK).
pub const TOPIC_ALIAS_MAXIMUM: u16 = 64;
/// Most messages in flight towards one client.
const MAX_WINDOW: usize = 256;

/// Why a connection ended before its CONNACK.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no CONNECT within {0:?}")]
    Timeout(std::time::Duration),
    #[error("closed before CONNECT")]
    Closed,
    #[error("bad CONNECT: {0}")]
    Decode(#[from] DecodeError),
    #[error("refused with code {code:#04x}: {why}")]
    Refused { code: u8, why: &'static str },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An accepted CONNECT, ready for its CONNACK.
pub struct Accepted {
    pub connect: Connect,
    pub info: ClientInfo,
    /// The client id the node assigned (v5 CONNACK says so).
    pub assigned: bool,
    /// Seconds the session outlives the connection.
    pub expiry: u32,
    /// How many QoS 1/2 messages may be in flight towards the client.
    pub window: usize,
    pub max_packet_size: usize,
}

/// Reads and decides the CONNECT. Refusals are answered (and metered) here.
pub async fn handshake<R, W>(
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    broker: &Broker,
    peer: &Peer,
) -> Result<Accepted, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let timeout = broker.connect_timeout;
    let connect = match tokio::time::timeout(timeout, read_connect(reader, buf, broker)).await {
        Ok(connect) => connect,
        Err(_) => return Err(HandshakeError::Timeout(timeout)),
    };
    let mut connect = match connect {
        Ok(connect) => connect,
        Err(HandshakeError::Decode(DecodeError::UnsupportedVersion { level })) => {
            // [MQTT-3.1.2-2]: answer with "unacceptable protocol version" and close.
            let code = if level == 5 {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            } else {
                reason::V3_UNACCEPTABLE_PROTOCOL
            };
            let version = if level == 5 {
                Version::V5
            } else {
                Version::V3_1_1
            };
            refuse(writer, broker, version, code).await;
            return Err(HandshakeError::Refused {
                code,
                why: "unsupported protocol version",
            });
        }
        Err(e) => return Err(e),
    };
    let version = connect.version;
    let v5 = version == Version::V5;
    if v5 && connect.properties.authentication_method.is_some() {
        // Enhanced authentication is not offered: refuse with a reason, not silence.
        return Err(refused(
            writer,
            broker,
            version,
            reason::BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        )
        .await);
    }
    let mut assigned = false;
    if connect.client_id.is_empty() {
        if !connect.clean_start && !v5 {
            // [MQTT-3.1.3-8]: an empty id needs a clean session.
            return Err(refused(
                writer,
                broker,
                version,
                reason::V3_IDENTIFIER_REJECTED,
                "empty client id without clean session",
            )
            .await);
        }
        connect.client_id = format!("skyport-{:032x}", rand::random::<u128>());
        assigned = true;
    }
    let info = ClientInfo {
        client_id: connect.client_id.clone(),
        username: connect.username.clone(),
        peer: peer.addr,
        transport: peer.transport,
        listener_port: peer.listener_port,
    };
    let verdict = broker
        .security
        .authenticate(&info, connect.password.as_deref())
        .await;
    if verdict != ConnectVerdict::Allow {
        let code = match (v5, verdict) {
            (true, ConnectVerdict::BadCredentials) => reason::BAD_USERNAME_OR_PASSWORD,
            (true, ConnectVerdict::Banned) => reason::BANNED,
            (true, _) => reason::NOT_AUTHORIZED,
            (false, ConnectVerdict::BadCredentials) => reason::V3_BAD_CREDENTIALS,
            (false, _) => reason::V3_NOT_AUTHORIZED,
        };
        return Err(refused(writer, broker, version, code, "not authenticated").await);
    }
    if let Some(max) = broker.max_sessions {
        if !broker
            .meter
            .admits(&info.client_id, max, std::time::Instant::now())
        {
            let code = if v5 {
                reason::QUOTA_EXCEEDED
            } else {
                reason::V3_SERVER_UNAVAILABLE
            };
            return Err(refused(writer, broker, version, code, "session quota reached").await);
        }
    }
    if let Some(will) = &connect.will {
        // Only the node publishes under `$`; otherwise the ACL decides, now.
        if will.topic.starts_with('$')
            || !broker
                .security
                .authorize(&info, Action::Publish, &will.topic)
                .await
        {
            tracing::debug!(client_id = %info.client_id, topic = %will.topic, "will denied; dropped");
            connect.will = None;
        }
    }
    let settings = broker.security.settings().sessions;
    let cap = u32::try_from(settings.max_session_expiry_secs).unwrap_or(u32::MAX);
    let expiry = if v5 {
        connect
            .properties
            .session_expiry_interval
            .unwrap_or(0)
            .min(cap)
    } else if connect.clean_start {
        0
    } else {
        u32::try_from(settings.session_expiry_secs).unwrap_or(u32::MAX)
    };
    let window = if v5 {
        usize::from(connect.properties.receive_maximum.unwrap_or(u16::MAX)).min(MAX_WINDOW)
    } else {
        MAX_WINDOW
    };
    let max_packet_size = connect
        .properties
        .maximum_packet_size
        .map_or(usize::MAX, |m| m as usize);
    Ok(Accepted {
        connect,
        info,
        assigned,
        expiry,
        window,
        max_packet_size,
    })
}

/// The CONNACK accepting `accepted`, whose properties tell the truth about the node.
pub fn connack(accepted: &Accepted, session_present: bool) -> Packet {
    let connect = &accepted.connect;
    let mut properties = ConnAckProperties::default();
    if connect.version == Version::V5 {
        properties.receive_maximum = Some(RECEIVE_MAXIMUM);
        properties.maximum_packet_size = Some(super::MAX_PACKET_SIZE as u32);
        properties.topic_alias_maximum = Some(TOPIC_ALIAS_MAXIMUM);
        properties.retain_available = Some(1);
        properties.wildcard_subscription_available = Some(1);
        properties.subscription_identifiers_available = Some(1);
        properties.shared_subscription_available = Some(1);
        if accepted.assigned {
            properties.assigned_client_identifier = Some(connect.client_id.clone());
        }
        let asked = connect.properties.session_expiry_interval.unwrap_or(0);
        if asked != accepted.expiry {
            // [MQTT-3.2.2-?]: the server's own expiry, when it differs from the client's.
            properties.session_expiry_interval = Some(accepted.expiry);
        }
    }
    Packet::ConnAck(ConnAck {
        session_present,
        code: 0,
        properties,
    })
}

async fn read_connect<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    broker: &Broker,
) -> Result<Connect, HandshakeError> {
    loop {
        let before = buf.len();
        match decode::read_connect(buf, super::MAX_PACKET_SIZE) {
            Ok(Some(connect)) => {
                broker.meter.bytes_in((before - buf.len()) as u64);
                return Ok(connect);
            }
            Ok(None) => {}
            Err(e) => {
                broker.meter.bytes_in(before as u64);
                return Err(e.into());
            }
        }
        if buf.capacity() - buf.len() < 256 {
            buf.reserve(512);
        }
        if reader.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Closed);
        }
    }
}

async fn refused<W: AsyncWrite + Unpin>(
    writer: &mut W,
    broker: &Broker,
    version: Version,
    code: u8,
    why: &'static str,
) -> HandshakeError {
    refuse(writer, broker, version, code).await;
    HandshakeError::Refused { code, why }
}

/// Answers CONNECT with a refusing CONNACK and closes, metering it.
async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    broker: &Broker,
    version: Version,
    code: u8,
) {
    let mut out = BytesMut::new();
    let packet = Packet::ConnAck(ConnAck {
        session_present: false,
        code,
        properties: ConnAckProperties::default(),
    });
    let len = encode::write(&packet, version, &mut out);
    broker.meter.bytes_out(len as u64);
    let _ = writer.write_all(&out).await;
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
