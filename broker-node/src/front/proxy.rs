//! Reads a client's CONNECT, authenticates it, picks the engine listener for its protocol
//! version and relays packets both ways, metering them and passing the client's through
//! its [`Gate`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::gate::Gate;
use super::packet::{self, kind, reason, ConnectFields};
use super::pump::{self, ClientWriter, Direction, Observer};
use crate::engine::MAX_PACKET_SIZE;
use crate::security::{ClientInfo, ConnectVerdict, Security, Transport};

/// How long a new connection may take to send its CONNECT (as rumqttd's own limit).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// MQTT protocol versions, by CONNECT protocol level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1, protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1, level 4.
    V3_1_1,
    /// MQTT 5.0, level 5.
    V5,
}

/// Where the engine listens, per wire format.
#[derive(Clone)]
pub struct Upstreams {
    pub v4: SocketAddr,
    pub v5: SocketAddr,
    /// Counts every packet relayed (metering).
    pub meter: std::sync::Arc<crate::metering::Meter>,
    /// Decides who may connect, publish and subscribe.
    pub security: Security,
    /// Whether packets are counted; off only to measure what counting costs.
    pub counting: bool,
    /// Connected clients, for the deployment API.
    pub clients: super::clients::Clients,
    /// Device event topics.
    pub events: super::events::Events,
    /// Sessions' subscriptions, for the deployment API.
    pub subscriptions: super::clients::Subscriptions,
    /// The tier's session quota: connected plus offline persistent sessions.
    pub max_sessions: Option<u64>,
    /// The tier's publish rate: client PUBLISHes beyond it wait (TCP pushes back on the
    /// client), so none is lost.
    pub throttle: Option<std::sync::Arc<Throttle>>,
    /// Messages saved across a restart for sessions whose clients have not returned.
    pub pending: crate::sessions::Pending,
}

/// A token bucket of PUBLISHes per second for the whole node.
pub type Throttle = governor::DefaultDirectRateLimiter;

/// The throttle for `max_tps` messages per second (bursts up to one second's worth).
pub fn throttle(max_tps: u64) -> Option<std::sync::Arc<Throttle>> {
    let per_second = std::num::NonZeroU32::new(u32::try_from(max_tps).unwrap_or(u32::MAX))?;
    Some(std::sync::Arc::new(governor::RateLimiter::direct(
        governor::Quota::per_second(per_second),
    )))
}

/// Where a client connection came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The port of the listener it connected to.
    pub listener_port: u16,
}

/// Why a client connection ended before or while relaying.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no CONNECT or CONNACK within {0:?}")]
    ConnectTimeout(Duration),
    #[error("expected a packet starting {expected:#04x}, got {got:#04x}")]
    UnexpectedPacket { expected: u8, got: u8 },
    #[error("malformed CONNECT: {0}")]
    Malformed(&'static str),
    #[error("CONNECT of {0} bytes exceeds the packet size limit")]
    TooLarge(usize),
    #[error("connection refused: {0:?}")]
    Refused(ConnectVerdict),
    #[error("connection refused: the deployment's {0} sessions are in use")]
    QuotaExceeded(u64),
    #[error("connection refused: client id {0:?} contains one of `+ $ # /`")]
    InvalidClientId(String),
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol { name: String, level: u8 },
    #[error("engine listener {addr} unreachable: {source}")]
    Upstream {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves one client connection until either side closes.
pub async fn relay<S>(
    mut client: S,
    upstreams: Upstreams,
    peer: Peer,
) -> Result<Version, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connect =
        match tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut client, CONNECT)).await {
            Ok(packet) => packet?,
            Err(_) => return Err(ProxyError::ConnectTimeout(CONNECT_TIMEOUT)),
        };
    let session = super::session::from_connect(&connect, &upstreams.security.settings().sessions);
    let connect_len = connect.len() as u64;
    let parsed = match Connect::parse(&connect) {
        Ok(parsed) => parsed,
        Err(err) => {
            if let ProxyError::UnsupportedProtocol { .. } = err {
                // MQTT 3.1.1 §3.2.2.3: CONNACK 0x01, unacceptable protocol version.
                let _ = client.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
                let _ = client.shutdown().await;
            }
            return Err(err);
        }
    };
    let version = parsed.version;
    let fields = ConnectFields::parse(&connect).ok_or(ProxyError::Malformed("bad payload"))?;
    let info = ClientInfo {
        client_id: fields.client_id.clone(),
        username: fields.username.clone(),
        peer: peer.addr,
        transport: peer.transport,
        listener_port: peer.listener_port,
    };
    if !engine_accepts_client_id(&info.client_id) {
        let code = match version {
            Version::V5 => reason::CLIENT_ID_NOT_VALID,
            Version::V3_1 | Version::V3_1_1 => reason::V3_IDENTIFIER_REJECTED,
        };
        let refusal = packet::connack_refusal(version, code);
        refuse(&mut client, &upstreams.meter, connect_len, &refusal).await;
        return Err(ProxyError::InvalidClientId(info.client_id));
    }
    let security = &upstreams.security;
    let verdict = security
        .authenticate(&info, fields.password.as_deref())
        .await;
    if verdict != ConnectVerdict::Allow {
        let refusal = packet::connack_refusal(version, refusal_code(version, verdict));
        refuse(&mut client, &upstreams.meter, connect_len, &refusal).await;
        return Err(ProxyError::Refused(verdict));
    }
    if let Some(max) = upstreams.max_sessions {
        let now = std::time::Instant::now();
        if !upstreams.meter.admits(&info.client_id, max, now) {
            tracing::debug!(client_id = %info.client_id, max, "session quota reached");
            let code = match version {
                Version::V5 => reason::QUOTA_EXCEEDED,
                Version::V3_1 | Version::V3_1_1 => reason::V3_SERVER_UNAVAILABLE,
            };
            let refusal = packet::connack_refusal(version, code);
            refuse(&mut client, &upstreams.meter, connect_len, &refusal).await;
            return Err(ProxyError::QuotaExceeded(max));
        }
    }
    let mut connect = parsed.into_engine_bytes(&connect);
    if let Some(will) = &fields.will_topic {
        // The engine publishes the will itself, past the gate: judge it now.
        if !security
            .authorize(&info, crate::security::Action::Publish, will)
            .await
        {
            tracing::debug!(client_id = %info.client_id, topic = %will, "will denied; dropped");
            connect = packet::without_will(&connect).ok_or(ProxyError::Malformed("bad will"))?;
        }
    }
    // No keeper pass over this session while the client takes it back.
    let pass = upstreams.pending.pass(&info.client_id).await;
    let addr = match version {
        Version::V3_1 | Version::V3_1_1 => upstreams.v4,
        Version::V5 => upstreams.v5,
    };
    let mut upstream = TcpStream::connect(addr)
        .await
        .map_err(|source| ProxyError::Upstream { addr, source })?;
    upstream.set_nodelay(true)?;
    upstream.write_all(&connect).await?;
    // Hold the engine connection open until its CONNACK, even if the client
    // is already gone: rumqttd leaves a stale will handler behind when a
    // connection dies before its CONNACK is written, and a later CONNECT with
    // the same client id then breaks the whole engine listener.
    let connack =
        match tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut upstream, CONNACK)).await {
            Ok(packet) => packet?,
            Err(_) => return Err(ProxyError::ConnectTimeout(CONNECT_TIMEOUT)),
        };
    let meter = &upstreams.meter;
    meter.bytes_in(connect_len);
    meter.bytes_out(connack.len() as u64);
    client.write_all(&connack).await?;
    // TLS and WebSocket streams buffer writes until flushed.
    client.flush().await?;
    let counted = SessionGuard {
        session: session.filter(|_| super::session::connack_accepts(&connack)),
        meter,
    };
    if let Some((client_id, _)) = &counted.session {
        meter.session_connected(client_id);
    }
    let observer = Metered(upstreams.counting.then_some(&**meter));
    let mut registration = super::session::connack_accepts(&connack).then(|| {
        upstreams.clients.register(super::clients::Connected {
            client_id: info.client_id.clone(),
            username: info.username.clone(),
            peer: info.peer,
            transport: info.transport,
            version,
            keep_alive: fields.keep_alive,
            clean_start: fields.clean_start,
            connected_at: chrono::Utc::now(),
        })
    });
    let kicked = registration.as_ref().map(|r| r.kicked.clone());
    let mut commands = registration
        .as_mut()
        .and_then(super::clients::Registration::take_commands);
    let events = &upstreams.events;
    if registration.is_some() {
        if fields.clean_start {
            // A clean start discards whatever session the client had.
            upstreams.subscriptions.forget(&info.client_id);
        }
        events.connected(&info, version, fields.keep_alive);
    }
    let gate = Gate::new(
        security.clone(),
        info,
        version,
        upstreams.throttle.clone(),
        events.clone(),
        upstreams.subscriptions.clone(),
    );
    if registration.is_some() {
        // Saved across a restart: delivered before anything the engine queued since.
        let saved = upstreams.pending.take(&gate.client().client_id);
        if !fields.clean_start && !saved.is_empty() {
            let mut bytes = Vec::new();
            for message in &saved {
                let publish = gate.saved_delivery(message);
                if upstreams.counting {
                    meter.publish_out(message.retain);
                }
                meter.bytes_out(publish.len() as u64);
                bytes.extend(publish);
            }
            client.write_all(&bytes).await?;
            client.flush().await?;
        }
    }
    drop(pass);
    let (mut client_rx, client_tx) = tokio::io::split(client);
    let client_tx = ClientWriter::new(client_tx);
    let (mut engine_rx, mut engine_tx) = upstream.into_split();
    let pumps = async {
        tokio::try_join!(
            pump::inbound(
                &mut client_rx,
                &mut engine_tx,
                &client_tx,
                &observer,
                &gate,
                commands.as_mut(),
            ),
            pump::outbound(&mut engine_rx, &client_tx, &observer, |p| gate.outbound(p)),
        )
    };
    let kick = async {
        match &kicked {
            Some(kicked) => kicked.notified().await,
            None => std::future::pending().await,
        }
    };
    let mut reason = "closed";
    let outcome = tokio::select! {
        relayed = pumps => relayed.map(|_| ()),
        () = kick => {
            reason = "kicked";
            let shutting_down = upstreams.clients.shutting_down();
            tracing::info!(client_id = %gate.client().client_id, shutting_down, "disconnected by the node");
            if version == Version::V5 {
                // v5: DISCONNECT 0x8B server shutting down, or 0x98 administrative action.
                let code = if shutting_down { 0x8b } else { 0x98 };
                let _ = client_tx.send(&packet::disconnect(code)).await;
            }
            let _ = client_tx.shutdown().await;
            Ok(())
        }
    };
    if registration.is_some() {
        if reason != "kicked" && gate.said_goodbye() {
            reason = "normal";
        }
        events.disconnected(gate.client(), version, reason);
        if let Some((client_id, crate::metering::SessionEnd::AtDisconnect)) = &counted.session {
            upstreams.subscriptions.forget(client_id);
        }
    }
    // The session's bookkeeping first: once a client is out of the registry, its
    // session is already counted as offline (or gone).
    drop(counted);
    drop(registration);
    outcome?;
    Ok(version)
}

/// Whether the engine can hold a session for `client_id`. rumqttd's router drops a
/// connection whose id contains `+`, `$`, `#` or `/` without answering, and leaves a
/// stale will handler behind: the next CONNECT with that id then panics the engine's
/// listener thread and poisons it for every later client. Such ids are refused here,
/// with the protocol's "identifier rejected" code (MQTT lets a server refuse ids).
fn engine_accepts_client_id(client_id: &str) -> bool {
    !client_id.contains(['+', '$', '#', '/'])
}

/// Answers a CONNECT of `connect_len` bytes with `refusal` and closes, metering both.
async fn refuse<S: AsyncWrite + Unpin>(
    client: &mut S,
    meter: &crate::metering::Meter,
    connect_len: u64,
    refusal: &[u8],
) {
    meter.bytes_in(connect_len);
    meter.bytes_out(refusal.len() as u64);
    let _ = client.write_all(refusal).await;
    let _ = client.flush().await;
    let _ = client.shutdown().await;
}

/// The CONNACK code refusing a connection, by protocol version.
fn refusal_code(version: Version, verdict: ConnectVerdict) -> u8 {
    match (version, verdict) {
        (Version::V5, ConnectVerdict::BadCredentials) => reason::BAD_CREDENTIALS,
        (Version::V5, ConnectVerdict::Banned) => reason::BANNED,
        (Version::V5, _) => reason::NOT_AUTHORIZED,
        (_, ConnectVerdict::BadCredentials) => reason::V3_BAD_CREDENTIALS,
        (_, _) => reason::V3_NOT_AUTHORIZED,
    }
}

/// Meters every relayed packet by the rules of product §5 (unless counting is off).
struct Metered<'a>(Option<&'a crate::metering::Meter>);

impl Observer for Metered<'_> {
    fn packet(&self, direction: Direction, packet: &[u8]) {
        let Some(meter) = self.0 else {
            return;
        };
        let is_publish = packet::packet_kind(packet) == kind::PUBLISH;
        match direction {
            Direction::Inbound => {
                meter.bytes_in(packet.len() as u64);
                if is_publish {
                    meter.publish_in();
                }
            }
            Direction::Outbound => {
                meter.bytes_out(packet.len() as u64);
                if is_publish {
                    // RETAIN set on the way out means "sent because of a new subscription".
                    meter.publish_out(packet[0] & 0x01 != 0);
                }
            }
        }
    }
}

/// Moves a counted session to "disconnected" however the relay ends.
struct SessionGuard<'a> {
    session: Option<(String, crate::metering::SessionEnd)>,
    meter: &'a crate::metering::Meter,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if let Some((client_id, end)) = &self.session {
            self.meter
                .session_disconnected(client_id, *end, std::time::Instant::now());
        }
    }
}

const CONNECT: u8 = 0x10;
const CONNACK: u8 = 0x20;

/// Reads one whole MQTT packet (fixed header included) whose first byte must be `first`.
///
/// Reads exactly the packet's bytes, so whatever follows stays in the socket for the relay.
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    first: u8,
) -> Result<Vec<u8>, ProxyError> {
    let got = stream.read_u8().await?;
    if got != first {
        return Err(ProxyError::UnexpectedPacket {
            expected: first,
            got,
        });
    }
    let mut packet = vec![got];
    let mut remaining = 0usize;
    for i in 0..4 {
        let byte = stream.read_u8().await?;
        packet.push(byte);
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(ProxyError::Malformed(
                "remaining length longer than 4 bytes",
            ));
        }
    }
    if remaining > MAX_PACKET_SIZE {
        return Err(ProxyError::TooLarge(remaining));
    }
    let header_len = packet.len();
    packet.resize(header_len + remaining, 0);
    stream.read_exact(&mut packet[header_len..]).await?;
    Ok(packet)
}

/// What the front needs to know about a CONNECT.
#[derive(Debug)]
struct Connect {
    version: Version,
    /// Offset of the variable header (just past the fixed header).
    body_start: usize,
    /// Offset of the keep-alive field.
    keep_alive_at: usize,
}

impl Connect {
    fn parse(packet: &[u8]) -> Result<Self, ProxyError> {
        let body_start = packet[1..]
            .iter()
            .position(|b| b & 0x80 == 0)
            .map(|i| i + 2)
            .ok_or(ProxyError::Malformed("bad remaining length"))?;
        let body = &packet[body_start..];
        let name_len = usize::from(u16::from_be_bytes(
            body.get(..2)
                .ok_or(ProxyError::Malformed("truncated protocol name"))?
                .try_into()
                .expect("two bytes"),
        ));
        let name = body
            .get(2..2 + name_len)
            .ok_or(ProxyError::Malformed("truncated protocol name"))?;
        let level = *body
            .get(2 + name_len)
            .ok_or(ProxyError::Malformed("missing protocol level"))?;
        // Flags byte, then the two keep-alive bytes.
        let keep_alive_at = body_start + 2 + name_len + 2;
        if packet.len() < keep_alive_at + 2 {
            return Err(ProxyError::Malformed("truncated variable header"));
        }
        let version = match (name, level) {
            (b"MQIsdp", 3) => Version::V3_1,
            (b"MQTT", 4) => Version::V3_1_1,
            (b"MQTT", 5) => Version::V5,
            (b"MQIsdp" | b"MQTT", _) => {
                return Err(ProxyError::UnsupportedProtocol {
                    name: String::from_utf8_lossy(name).into_owned(),
                    level,
                })
            }
            _ => return Err(ProxyError::Malformed("unknown protocol name")),
        };
        Ok(Self {
            version,
            body_start,
            keep_alive_at,
        })
    }

    /// The CONNECT as the engine will accept it.
    ///
    /// rumqttd only parses MQTT 3.1.1 and 5.0 and refuses a keep-alive of 0, so
    /// the front closes those gaps: an MQTT 3.1 CONNECT is re-labelled as 3.1.1
    /// (the packets after CONNECT are the same on the wire), and a keep-alive
    /// of 0 ("never time out") becomes the largest one the protocol can express.
    fn into_engine_bytes(self, packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(packet.len());
        let mut body = match self.version {
            Version::V3_1 => {
                // Replace the 8-byte "\0\x06MQIsdp" + level 3 with "\0\x04MQTT" + level 4.
                let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4];
                body.extend_from_slice(&packet[self.body_start + 9..]);
                body
            }
            Version::V3_1_1 | Version::V5 => packet[self.body_start..].to_vec(),
        };
        let keep_alive_at = self.keep_alive_at
            - self.body_start
            - if self.version == Version::V3_1 { 2 } else { 0 };
        if body[keep_alive_at..keep_alive_at + 2] == [0, 0] {
            body[keep_alive_at..keep_alive_at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        }
        out.push(packet[0]);
        packet::encode_varint(body.len(), &mut out);
        out.extend(body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(name: &[u8], level: u8, keep_alive: u16, payload: &[u8]) -> Vec<u8> {
        let mut body = (name.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(name);
        body.push(level);
        body.push(0b10);
        body.extend_from_slice(&keep_alive.to_be_bytes());
        body.extend_from_slice(payload);
        let mut packet = vec![0x10];
        packet::encode_varint(body.len(), &mut packet);
        packet.extend(body);
        packet
    }

    #[test]
    fn detects_each_version() {
        for (name, level, version) in [
            (&b"MQIsdp"[..], 3, Version::V3_1),
            (b"MQTT", 4, Version::V3_1_1),
            (b"MQTT", 5, Version::V5),
        ] {
            let packet = connect(name, level, 60, b"\0\x01c");
            assert_eq!(Connect::parse(&packet).unwrap().version, version);
        }
    }

    #[test]
    fn mqtt_3_1_connect_becomes_3_1_1() {
        let packet = connect(b"MQIsdp", 3, 60, b"\0\x01c");
        let parsed = Connect::parse(&packet).unwrap();
        assert_eq!(
            parsed.into_engine_bytes(&packet),
            connect(b"MQTT", 4, 60, b"\0\x01c")
        );
    }

    #[test]
    fn zero_keep_alive_becomes_maximum() {
        let payload = vec![b'x'; 200]; // two-byte remaining length
        for (name, level, out_name, out_level) in [
            (&b"MQTT"[..], 5, &b"MQTT"[..], 5),
            (b"MQIsdp", 3, b"MQTT", 4),
        ] {
            let packet = connect(name, level, 0, &payload);
            let parsed = Connect::parse(&packet).unwrap();
            assert_eq!(
                parsed.into_engine_bytes(&packet),
                connect(out_name, out_level, u16::MAX, &payload)
            );
        }
    }

    #[test]
    fn unknown_level_is_unsupported() {
        let packet = connect(b"MQTT", 6, 60, b"");
        assert!(matches!(
            Connect::parse(&packet),
            Err(ProxyError::UnsupportedProtocol { level: 6, .. })
        ));
    }

    #[test]
    fn truncated_connect_is_malformed() {
        let packet = vec![0x10, 3, 0, 4, b'M'];
        assert!(matches!(
            Connect::parse(&packet),
            Err(ProxyError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn reads_packet_with_multi_byte_length() {
        let packet = connect(b"MQTT", 4, 60, &[b'y'; 300]);
        let mut stream = &packet[..];
        assert_eq!(read_packet(&mut stream, CONNECT).await.unwrap(), packet);
    }
}
