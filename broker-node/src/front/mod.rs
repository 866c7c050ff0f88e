//! Skyport's client-facing MQTT listeners: plain TCP, TLS, WebSocket and
//! WebSocket over TLS. Each accepted client's byte stream is served by
//! [`crate::broker::connection::serve`].

pub mod internal;
pub mod tls;
pub mod ws;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn, Instrument};

use crate::broker::connection::Peer;
use crate::broker::Broker;
use crate::config::Listeners;
use crate::security::Transport;
use internal::PeerFilter;
use tls::TlsState;

/// The kinds of MQTT listener, named as in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Wss => "wss",
        }
    }

    fn uses_tls(self) -> bool {
        matches!(self, Kind::Tls | Kind::Wss)
    }

    fn transport(self) -> Transport {
        match self {
            Kind::Tcp => Transport::Mqtt,
            Kind::Tls => Transport::Mqtts,
            Kind::Ws => Transport::Ws,
            Kind::Wss => Transport::Wss,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A listener that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind the {listener} listener on {addr}: {source}")]
pub struct BindError {
    pub listener: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` for the listener called `listener`.
pub async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr).await.map_err(|source| BindError {
        listener,
        addr,
        source,
    })
}

/// Binds every enabled MQTT listener.
pub async fn bind_all(config: &Listeners) -> Result<Vec<(Kind, TcpListener)>, BindError> {
    let mut bound = Vec::new();
    for (kind, addr) in [
        (Kind::Tcp, config.tcp),
        (Kind::Tls, config.tls),
        (Kind::Ws, config.ws),
        (Kind::Wss, config.wss),
    ] {
        if let Some(addr) = addr {
            bound.push((kind, bind(kind.name(), addr).await?));
        }
    }
    Ok(bound)
}

/// Starts an accept loop per listener; dropping (or aborting) the set closes them.
pub fn serve_all(
    listeners: Vec<(Kind, TcpListener)>,
    tls: Option<Arc<TlsState>>,
    broker: Broker,
) -> JoinSet<()> {
    for (kind, listener) in &listeners {
        if let Ok(addr) = listener.local_addr() {
            info!(listener = %kind, %addr, "listening for MQTT clients");
        }
    }
    serve_filtered(listeners, tls, broker, None)
}

/// Starts an accept loop per listener, closing at once the connections of peers that
/// `filter` (when given) does not allow. Connections already accepted outlive the set.
pub fn serve_filtered(
    listeners: Vec<(Kind, TcpListener)>,
    tls: Option<Arc<TlsState>>,
    broker: Broker,
    filter: Option<PeerFilter>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (kind, listener) in listeners {
        let tls = if kind.uses_tls() { tls.clone() } else { None };
        tasks.spawn(accept_loop(
            kind,
            listener,
            tls,
            broker.clone(),
            filter.clone(),
        ));
    }
    tasks
}

async fn accept_loop(
    kind: Kind,
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    broker: Broker,
    filter: Option<PeerFilter>,
) {
    let listener_port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually file-descriptor exhaustion; back off instead of spinning.
                warn!(listener = %kind, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if filter.as_ref().is_some_and(|f| !f.allows(addr.ip())) {
            debug!(listener = %kind, peer = %addr, "peer outside the allowed CIDRs; connection closed");
            drop(stream);
            continue;
        }
        let tls = tls.as_ref().map(|state| state.acceptor());
        let broker = broker.clone();
        let span = tracing::debug_span!("client", listener = %kind, peer = %addr);
        let peer = Peer {
            addr,
            transport: kind.transport(),
            listener_port,
        };
        tokio::spawn(
            async move {
                match serve(kind, stream, tls, broker, peer).await {
                    Ok(()) => debug!("connection closed"),
                    Err(e) => debug!(error = format!("{e:#}"), "connection ended"),
                }
            }
            .instrument(span),
        );
    }
}

async fn serve(
    kind: Kind,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    broker: Broker,
    peer: Peer,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let limit = broker.connect_timeout;
    // Each transport's relay is boxed: the task of every connection would otherwise be
    // as large as the largest one (TLS over WebSocket), all of it resident while the
    // client idles — a third of an idle connection's memory.
    match (kind, tls) {
        (Kind::Tcp, _) => Box::pin(relay(stream, broker, peer)).await,
        (Kind::Ws, _) => {
            Box::pin(async { relay(ws_handshake(stream, limit).await?, broker, peer).await }).await
        }
        (Kind::Tls, Some(tls)) => {
            Box::pin(async { relay(tls_handshake(&tls, stream, limit).await?, broker, peer).await })
                .await
        }
        (Kind::Wss, Some(tls)) => {
            Box::pin(async {
                let stream = tls_handshake(&tls, stream, limit).await?;
                relay(ws_handshake(stream, limit).await?, broker, peer).await
            })
            .await
        }
        (Kind::Tls | Kind::Wss, None) => anyhow::bail!("{kind} listener without TLS acceptor"),
    }
}

async fn relay<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    broker: Broker,
    peer: Peer,
) -> anyhow::Result<()> {
    crate::broker::connection::serve(stream, broker, peer).await?;
    Ok(())
}

/// A TLS handshake, which must finish within `limit` (the connect timeout).
async fn tls_handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
) -> anyhow::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(limit, tls.accept(stream))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake failed")
}

/// A WebSocket upgrade, which must finish within `limit` (the connect timeout).
async fn ws_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    limit: Duration,
) -> anyhow::Result<ws::WsByteStream<S>> {
    tokio::time::timeout(limit, ws::accept(stream))
        .await
        .context("WebSocket handshake timed out")?
        .context("WebSocket handshake failed")
}
