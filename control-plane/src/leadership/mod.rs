//! Leader election: with several replicas, exactly one runs the background work
//! (reconciler, domain re-checks, purges).
//!
//! Every replica serves the API. One is elected: with a PostgreSQL session-level
//! advisory lock held on a dedicated connection ([`postgres`]), or on Kubernetes with a
//! `coordination.k8s.io/v1` Lease ([`lease`]). SQLite means one replica, always the
//! leader. [`run_while_leader`] starts the background work when this replica becomes
//! the leader and aborts it the moment leadership is lost (a dropped connection, a
//! lease that could not be renewed), so two replicas never reconcile at once for longer
//! than the loss takes to notice. `docs/control-plane.md` has the design.

pub mod lease;
pub mod postgres;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// How often a candidate retries, and a leader checks that it still leads.
pub const RETRY: Duration = Duration::from_secs(2);

/// How the leader is elected.
pub enum Election {
    /// One replica (SQLite): always the leader.
    Single,
    /// A PostgreSQL advisory lock.
    Postgres(postgres::AdvisoryLock),
    /// A Kubernetes Lease.
    Lease(lease::LeaseLock),
}

/// This replica's view of the election.
pub struct Leadership {
    /// This replica's name (`host:pid`, or the pod name).
    pub identity: String,
    election: Arc<Election>,
    leading: watch::Sender<bool>,
}

impl Leadership {
    /// Starts campaigning (in the background) with `election`.
    pub fn start(identity: String, election: Election) -> Arc<Self> {
        let single = matches!(election, Election::Single);
        let (leading, _) = watch::channel(single);
        let leadership = Arc::new(Self {
            identity,
            election: Arc::new(election),
            leading,
        });
        let campaign = leadership.clone();
        match &*leadership.election {
            Election::Single => {}
            Election::Postgres(lock) => {
                tokio::spawn(
                    lock.clone()
                        .campaign(campaign.identity.clone(), campaign.leading.clone()),
                );
            }
            Election::Lease(lock) => {
                tokio::spawn(
                    lock.clone()
                        .campaign(campaign.identity.clone(), campaign.leading.clone()),
                );
            }
        }
        leadership
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Follows this replica's leadership.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// Who leads, as far as this replica can tell (`None`: no one now).
    pub async fn leader(&self) -> anyhow::Result<Option<String>> {
        if self.is_leader() {
            return Ok(Some(self.identity.clone()));
        }
        match &*self.election {
            Election::Single => Ok(Some(self.identity.clone())),
            Election::Postgres(lock) => lock.holder().await,
            Election::Lease(lock) => lock.holder().await,
        }
    }
}

/// The default identity of this replica: the pod's name on Kubernetes (`HOSTNAME`), with
/// the process id so that two processes on one host differ.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "skyport".into());
    format!("{host}:{}", std::process::id())
}

/// Runs the background work while this replica leads: `on_gain` first (e.g. adopting
/// the previous leader's brokers), then the tasks `start` spawns, all aborted as soon as
/// leadership is lost; then waits to lead again. Runs until dropped.
pub async fn run_while_leader<G, GF, S>(
    leadership: Arc<Leadership>,
    metrics: Arc<crate::metrics::Metrics>,
    mut on_gain: G,
    mut start: S,
) where
    G: FnMut() -> GF,
    GF: Future<Output = ()>,
    S: FnMut(&mut JoinSet<()>),
{
    let mut leading = leadership.watch();
    loop {
        metrics.set_leader(false);
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        tracing::info!(identity = %leadership.identity, "this replica is the leader: starting background work");
        metrics.set_leader(true);
        let mut work = JoinSet::new();
        // Aborted with the rest when leadership is lost while it runs.
        let gained = async {
            on_gain().await;
            start(&mut work);
            std::future::pending::<()>().await
        };
        tokio::select! {
            () = gained => {}
            lost = leading.wait_for(|l| !*l) => {
                if lost.is_err() {
                    return;
                }
            }
        }
        work.abort_all();
        while work.join_next().await.is_some() {}
        tracing::warn!(identity = %leadership.identity, "leadership lost: background work stopped");
    }
}
