//! The internal endpoint: a second, private entry point to the deployment. For each
//! public MQTT listener there is one on the endpoint's address with the same port, which
//! closes at once (before any handshake) the connections of peers outside the allowed
//! CIDRs.
//!
//! The listeners follow the settings in force: a new address rebinds them, new CIDRs
//! apply in place to the next connection, and connections already accepted stay up
//! whatever happens to the listener that accepted them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info};

use super::tls::TlsState;
use super::{bind, serve_filtered, Kind};
use crate::broker::Broker;
use crate::security::settings::InternalEndpoint;

/// How long after a failed bind the listeners are tried again (a settings change retries
/// at once).
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// The peers a listener admits, replaceable while it runs. Cheap to clone; clones share
/// the list.
#[derive(Clone, Default)]
pub struct PeerFilter {
    allowed: Arc<ArcSwap<Vec<IpNet>>>,
}

impl PeerFilter {
    /// Whether `ip` is inside one of the allowed networks. IPv4 peers of a dual-stack
    /// socket (`::ffff:a.b.c.d`) are judged as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed.load().iter().any(|net| net.contains(&ip))
    }

    /// Puts `allowed` in force for every later connection.
    pub fn set(&self, allowed: Vec<IpNet>) {
        self.allowed.store(Arc::new(allowed));
    }
}

/// The public listeners the internal endpoint mirrors, and what they serve with.
pub struct Mirror {
    /// Each public MQTT listener's kind and bound port.
    pub ports: Vec<(Kind, u16)>,
    pub tls: Option<Arc<TlsState>>,
    pub broker: Broker,
}

/// The internal listeners up now.
struct Bound {
    address: IpAddr,
    tasks: JoinSet<()>,
}

/// Keeps the internal listeners in line with `endpoint` until its sender goes away. A
/// listener that cannot be bound is logged and tried again later; it never stops the node.
pub async fn supervise(mut endpoint: watch::Receiver<Option<InternalEndpoint>>, mirror: Mirror) {
    let filter = PeerFilter::default();
    let mut bound: Option<Bound> = None;
    loop {
        let wanted = endpoint.borrow_and_update().clone();
        let retry = match wanted {
            None => {
                close(&mut bound).await;
                false
            }
            Some(wanted) => {
                filter.set(wanted.allowed_cidrs);
                if bound.as_ref().map(|b| b.address) != Some(wanted.address) {
                    close(&mut bound).await;
                    bound = open(wanted.address, &mirror, &filter).await;
                }
                bound.is_none()
            }
        };
        tokio::select! {
            changed = endpoint.changed() => {
                if changed.is_err() {
                    close(&mut bound).await;
                    return;
                }
            }
            () = tokio::time::sleep(RETRY_INTERVAL), if retry => {}
        }
    }
}

/// Binds every mirrored port on `address`, all or none.
async fn open(address: IpAddr, mirror: &Mirror, filter: &PeerFilter) -> Option<Bound> {
    let mut listeners: Vec<(Kind, TcpListener)> = Vec::new();
    for &(kind, port) in &mirror.ports {
        match bind(kind.name(), SocketAddr::new(address, port)).await {
            Ok(listener) => listeners.push((kind, listener)),
            Err(e) => {
                error!(error = %e, "cannot open the internal endpoint; retrying later");
                return None;
            }
        }
    }
    let addresses: Vec<String> = listeners
        .iter()
        .filter_map(|(kind, l)| Some(format!("{kind}={}", l.local_addr().ok()?)))
        .collect();
    info!(
        addresses = addresses.join(","),
        "internal endpoint listening"
    );
    let tasks = serve_filtered(
        listeners,
        mirror.tls.clone(),
        mirror.broker.clone(),
        Some(filter.clone()),
    );
    Some(Bound { address, tasks })
}

/// Stops accepting on the internal listeners and waits until their sockets are closed,
/// so the address can be bound again at once.
async fn close(bound: &mut Option<Bound>) {
    if let Some(Bound { address, mut tasks }) = bound.take() {
        tasks.shutdown().await;
        info!(%address, "internal endpoint closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_admits_only_allowed_networks_and_changes_in_place() {
        let filter = PeerFilter::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(
            !filter.allows(ip("10.0.0.1")),
            "nothing is allowed by default"
        );
        let shared = filter.clone();
        shared.set(vec![
            "10.0.0.0/31".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ]);
        assert!(filter.allows(ip("10.0.0.1")));
        assert!(!filter.allows(ip("10.0.0.2")));
        assert!(filter.allows(ip("::ffff:10.0.0.0")));
        assert!(filter.allows(ip("fd12::1")));
        assert!(!filter.allows(ip("::1")));
    }
}
