//! The MQTT engine: a whole rumqttd broker on loopback.
//!
//! This is the only module that names rumqttd types. rumqttd serves MQTT 3.1.1
//! and 5.0 on separate listeners, so the engine runs one internal listener of
//! each kind and the front layer connects every client to the right one.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// Largest MQTT packet the engine accepts (EMQX's default `max_packet_size`).
pub const MAX_PACKET_SIZE: usize = 1024 * 1024;

/// Why the engine could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reserve a loopback port for the engine: {0}")]
    Port(#[source] std::io::Error),
    #[error("cannot start the engine thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("engine listener {addr} not answering MQTT after {waited:?}: {last_error}")]
    NotReady {
        addr: SocketAddr,
        waited: Duration,
        last_error: String,
    },
    #[error("the engine stopped: {0}")]
    Stopped(String),
}

/// A running engine and where its internal listeners are.
pub struct Engine {
    v4: SocketAddr,
    v5: SocketAddr,
}

/// Resolves when the engine thread ends, which it should never do.
pub struct Stopped(oneshot::Receiver<String>);

impl Stopped {
    pub async fn wait(self) -> EngineError {
        let reason = self
            .0
            .await
            .unwrap_or_else(|_| "engine thread panicked".to_owned());
        EngineError::Stopped(reason)
    }
}

impl Engine {
    /// Starts rumqttd on its own thread; it owns its runtimes (`Broker::start` blocks).
    pub fn start() -> Result<(Self, Stopped), EngineError> {
        let v4 = free_loopback_port()?;
        let v5 = free_loopback_port()?;
        let config = broker_config(v4, v5);
        let (stopped_tx, stopped_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                let outcome = match Broker::new(config).start() {
                    Ok(()) => "all internal listeners exited".to_owned(),
                    Err(e) => e.to_string(),
                };
                let _ = stopped_tx.send(outcome);
            })
            .map_err(EngineError::Thread)?;
        Ok((Self { v4, v5 }, Stopped(stopped_rx)))
    }

    /// Internal listener for MQTT 3.1.1 clients (and 3.1 ones after the front rewrites CONNECT).
    pub fn v4_addr(&self) -> SocketAddr {
        self.v4
    }

    /// Internal listener for MQTT 5.0 clients.
    pub fn v5_addr(&self) -> SocketAddr {
        self.v5
    }

    /// Waits until both internal listeners complete an MQTT CONNECT/CONNACK exchange.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), EngineError> {
        wait_answers(self.v4, 4, timeout).await?;
        wait_answers(self.v5, 5, timeout).await
    }

    /// Probes both internal listeners forever; returns once one has stopped answering.
    ///
    /// rumqttd can break a listener for good: when a connection ends between
    /// CONNECT and CONNACK, a stale will handler stays behind, and the next
    /// CONNECT with the same client id panics while holding a mutex, which
    /// poisons it for every later connection of that listener. A node in that
    /// state must exit so its supervisor restarts it.
    pub async fn watch(&self) -> EngineError {
        const EVERY: Duration = Duration::from_secs(10);
        const FAILURES: u32 = 3;
        let mut failures = 0;
        loop {
            tokio::time::sleep(EVERY).await;
            let mut outcome = Ok(());
            for (addr, level) in [(self.v4, 4), (self.v5, 5)] {
                outcome = outcome.and(probe_once(addr, level, EVERY).await.map_err(|e| (addr, e)));
            }
            match outcome {
                Ok(()) => failures = 0,
                Err((addr, last_error)) => {
                    failures += 1;
                    tracing::warn!(%addr, error = %last_error, failures, "engine probe failed");
                    if failures >= FAILURES {
                        return EngineError::NotReady {
                            addr,
                            waited: EVERY * FAILURES,
                            last_error,
                        };
                    }
                }
            }
        }
    }
}

/// Binds port 0 and releases it, so rumqttd (which only takes an address) can bind it.
fn free_loopback_port() -> Result<SocketAddr, EngineError> {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(EngineError::Port)?;
    listener.local_addr().map_err(EngineError::Port)
}

fn broker_config(v4: SocketAddr, v5: SocketAddr) -> Config {
    let server = |name: &str, listen| ServerSettings {
        name: name.to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PACKET_SIZE,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([(
            "v4".to_owned(),
            server("internal-v4", v4),
        )])),
        v5: Some(HashMap::from([(
            "v5".to_owned(),
            server("internal-v5", v5),
        )])),
        ..Config::default()
    }
}

async fn wait_answers(addr: SocketAddr, level: u8, timeout: Duration) -> Result<(), EngineError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last_error = match probe_once(addr, level, Duration::from_secs(2)).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(EngineError::NotReady {
                addr,
                waited: timeout,
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn probe_once(addr: SocketAddr, level: u8, timeout: Duration) -> Result<(), String> {
    // A fresh client id each time: reusing one after an interrupted probe is
    // exactly what trips the rumqttd bug described on `Engine::watch`.
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let id = format!("skyport-probe-{}", PROBES.fetch_add(1, Ordering::Relaxed));
    match tokio::time::timeout(timeout, probe(addr, &probe_connect(level, &id))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no CONNACK within {timeout:?}")),
    }
}

/// One clean MQTT session: CONNECT, expect a successful CONNACK, DISCONNECT.
async fn probe(addr: SocketAddr, connect: &[u8]) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(connect).await?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    // CONNACK type, then a one-byte remaining length in both versions, then flags and code.
    if head[0] != 0x20 || head[3] != 0 {
        return Err(std::io::Error::other(format!(
            "unexpected CONNACK {head:02x?}"
        )));
    }
    stream.write_all(&[0xe0, 0x00]).await?;
    Ok(())
}

/// A clean-session CONNECT with a 30 s keep-alive at protocol `level` (4 or 5).
fn probe_connect(level: u8, client_id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, 0b10, 0, 30];
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}
