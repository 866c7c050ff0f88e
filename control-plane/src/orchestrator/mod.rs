//! Orchestrators run deployments' brokers: as local processes, or on Kubernetes.
//!
//! The reconciler drives them; every method is idempotent and safe to call again after a
//! crash at any point.

pub mod kubernetes;
pub mod local;
pub mod security;

use async_trait::async_trait;

use crate::domain::{Endpoints, Id};
use crate::store::Deployment;

/// What the orchestrator observes of one deployment's broker.
#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// No broker runs. `last_exit` says why the last one ended, if it ended on its own.
    Down {
        last_exit: Option<String>,
        failures: u32,
    },
    /// A broker runs but is not ready yet.
    Starting,
    /// A broker runs, is ready, and reflects spec `generation`.
    Ready {
        generation: i64,
        endpoints: Endpoints,
    },
}

/// Outcome of [`Orchestrator::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The running broker already matches the spec.
    Unchanged,
    /// A broker was started (or restarted with the new configuration).
    Started,
    /// The broker keeps failing; the next attempt waits for the back-off.
    BackingOff,
}

#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("issuing the server certificate: {0}")]
    Certificate(String),
    /// The deployment's security settings could not be loaded (or its custom private
    /// key decrypted).
    #[error("security settings: {0}")]
    Security(String),
    /// Boxed: the API server's error is large, and local calls should not pay for it.
    #[error(transparent)]
    Kubernetes(Box<kubernetes::KubeError>),
}

impl From<kubernetes::KubeError> for OrchestratorError {
    fn from(err: kubernetes::KubeError) -> Self {
        OrchestratorError::Kubernetes(Box::new(err))
    }
}

impl OrchestratorError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| OrchestratorError::Io { context, source }
    }
}

/// A way to run brokers.
#[async_trait]
pub trait Orchestrator: Send + Sync + 'static {
    /// Looks at the deployment's broker without changing anything.
    async fn observe(&self, deployment: &Deployment) -> Observed;
    /// Makes the broker run the deployment's current spec.
    async fn apply(&self, deployment: &Deployment) -> Result<Applied, OrchestratorError>;
    /// Stops the broker, keeping its data.
    async fn stop(&self, id: Id) -> Result<(), OrchestratorError>;
    /// Stops the broker and removes everything it had.
    async fn remove(&self, id: Id) -> Result<(), OrchestratorError>;
    /// Deployments the orchestrator holds anything for (to collect orphans).
    async fn runtimes(&self) -> Vec<Id>;
    /// The address the platform's load balancer gave the deployment's internal endpoint,
    /// when it has one (`None` where the platform fixes the address itself: local).
    async fn internal_endpoint_address(
        &self,
        _deployment: &Deployment,
    ) -> Option<std::net::IpAddr> {
        None
    }
    /// Called when this replica becomes the leader, before it reconciles: forget what
    /// an earlier term knew and take over what the previous leader left running.
    async fn take_over(&self) {}
}
