//! The reconciler: converges observed state (the orchestrator) on desired state (the
//! store). Level-triggered: each pass looks at everything afresh, so a missed
//! notification, a crash mid-pass or a restart only delays convergence.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

use crate::domain::{Actor, DesiredState, EventType, Id, Status};
use crate::orchestrator::{Applied, Observed, Orchestrator};
use crate::store::{Deployment, Event, StatusUpdate, Store, StoreError};

/// Pause between passes while some deployment is in transition.
const BUSY_INTERVAL: Duration = Duration::from_millis(200);
/// Pause between passes when everything has converged (crash detection latency).
const IDLE_INTERVAL: Duration = Duration::from_secs(1);
/// Consecutive broker failures after which the deployment is shown as `failed`.
const FAILED_AFTER: u32 = 3;
/// Deployments reconciled at once.
const CONCURRENCY: usize = 8;

/// The applied revisions this replica's reconciler has recorded, for writes waiting on
/// them: a woken waiter looks up its own deployment here instead of in the database, so
/// one recorded revision does not make every waiter query it.
#[derive(Debug, Default)]
pub struct AppliedRevisions {
    revisions: std::sync::Mutex<HashMap<Id, i64>>,
    changed: Notify,
}

impl AppliedRevisions {
    /// Records that `id`'s broker has `revision` in force (revisions only rise) and wakes
    /// the waiters.
    pub fn record(&self, id: Id, revision: i64) {
        {
            let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
            let known = revisions.entry(id).or_insert(revision);
            *known = (*known).max(revision);
        }
        self.changed.notify_waiters();
    }

    /// The highest revision recorded for `id` by this replica.
    pub fn get(&self, id: Id) -> Option<i64> {
        let revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        revisions.get(&id).copied()
    }

    /// Completes at the next [`AppliedRevisions::record`].
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

pub struct Reconciler {
    store: Arc<dyn Store>,
    orchestrator: Arc<dyn Orchestrator>,
    wake: Arc<Notify>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Where applied revisions are published for waiting writes.
    applied: Option<Arc<AppliedRevisions>>,
}

impl Reconciler {
    pub fn new(
        store: Arc<dyn Store>,
        orchestrator: Arc<dyn Orchestrator>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            orchestrator,
            wake,
            metrics: None,
            applied: None,
        }
    }

    /// Counts each deployment's reconciliation outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Publishes to `applied` every revision a broker has applied that it records.
    pub fn with_applied(mut self, applied: Arc<AppliedRevisions>) -> Self {
        self.applied = Some(applied);
        self
    }

    /// Runs passes until the task is dropped.
    pub async fn run(self) {
        loop {
            let busy = match self.pass().await {
                Ok(busy) => busy,
                Err(err) => {
                    tracing::error!(error = %err, "reconcile pass failed");
                    true
                }
            };
            let pause = if busy { BUSY_INTERVAL } else { IDLE_INTERVAL };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass over every deployment; true if any is still converging.
    pub async fn pass(&self) -> Result<bool, StoreError> {
        let deployments = self.store.all_deployments().await?;
        let known: HashSet<_> = deployments.iter().map(|d| d.id).collect();
        let busy = futures::stream::iter(deployments.clone())
            .map(|d| async move {
                // Each step has its own request id, sent on its calls to the broker.
                let request_id = format!("reconcile-{}", uuid::Uuid::new_v4());
                let span = tracing::info_span!("reconcile", deployment.id = %d.id, %request_id);
                let result = tracing::Instrument::instrument(
                    crate::telemetry::with_request_id(request_id.clone(), self.reconcile(&d)),
                    span,
                )
                .await;
                if let Some(metrics) = &self.metrics {
                    metrics.reconciled(match &result {
                        Ok(false) => "converged",
                        Ok(true) => "progressing",
                        Err(_) => "error",
                    });
                    if let Err(err) = &result {
                        metrics.reconcile_error(error_kind(err));
                    }
                }
                match result {
                    Ok(busy) => busy,
                    Err(err) => {
                        tracing::error!(deployment.id = %d.id, error = %err, "reconcile failed");
                        true
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .fold(false, |acc, busy| async move { acc || busy })
            .await;
        self.record_internal_addresses(&deployments).await;
        for orphan in self.orchestrator.runtimes().await {
            if !known.contains(&orphan) {
                tracing::info!(deployment.id = %orphan, "removing runtime of a deployment that no longer exists");
                if let Err(err) = self.orchestrator.remove(orphan).await {
                    tracing::error!(deployment.id = %orphan, error = %err, "removing orphan failed");
                }
            }
        }
        Ok(busy)
    }

    /// Records the addresses load balancers have given internal endpoints that had none
    /// (on Kubernetes; locally the address is fixed when the endpoint is created).
    async fn record_internal_addresses(&self, deployments: &[Deployment]) {
        let awaiting = match self.store.internal_endpoints_awaiting_address().await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::error!(error = %err, "listing internal endpoints without an address failed");
                return;
            }
        };
        for id in awaiting {
            let Some(d) = deployments.iter().find(|d| d.id == id) else {
                continue;
            };
            let Some(address) = self.orchestrator.internal_endpoint_address(d).await else {
                continue;
            };
            match self.store.set_internal_endpoint_address(id, address).await {
                Ok(_) => {
                    tracing::info!(deployment.id = %id, %address, "internal endpoint address assigned")
                }
                Err(err) => {
                    tracing::error!(deployment.id = %id, error = %err, "recording the internal endpoint address failed")
                }
            }
        }
    }

    /// Converges one deployment; true while it is still in transition.
    async fn reconcile(&self, d: &Deployment) -> anyhow::Result<bool> {
        if d.status == Status::Deleting {
            self.orchestrator.remove(d.id).await?;
            match self.store.delete_deployment(d.id, d.generation, &[]).await {
                Ok(()) => tracing::info!(deployment.id = %d.id, "deployment deleted"),
                Err(StoreError::Stale) => return Ok(true),
                Err(err) => return Err(err.into()),
            }
            return Ok(false);
        }
        match d.desired_state {
            DesiredState::Stopped => {
                if !matches!(self.orchestrator.observe(d).await, Observed::Down { .. }) {
                    self.orchestrator.stop(d.id).await?;
                }
                let update = StatusUpdate {
                    status: Status::Stopped,
                    reason: None,
                    observed_generation: d.generation,
                    ..as_recorded(d)
                };
                self.report(d, update, vec![]).await?;
                Ok(false)
            }
            DesiredState::Running => self.converge_running(d).await,
        }
    }

    /// Records the deployment as running when the broker reports its current generation
    /// in force; returns whether it did.
    async fn report_if_current(
        &self,
        d: &Deployment,
        observed: &Observed,
    ) -> Result<bool, StoreError> {
        let Observed::Ready {
            generation,
            endpoints,
        } = observed
        else {
            return Ok(false);
        };
        if *generation != d.generation {
            return Ok(false);
        }
        let update = StatusUpdate {
            status: Status::Running,
            reason: None,
            observed_generation: *generation,
            endpoints: Some(endpoints.clone()),
            // The broker reported this generation's settings in force.
            applied_revision: *generation,
        };
        self.report(d, update, vec![]).await?;
        Ok(true)
    }

    async fn converge_running(&self, d: &Deployment) -> anyhow::Result<bool> {
        let observed = self.orchestrator.observe(d).await;
        if self.report_if_current(d, &observed).await? {
            return Ok(false);
        }
        if observed == Observed::Starting {
            return Ok(true);
        }
        let applied = match self.orchestrator.apply(d).await {
            Ok(applied) => applied,
            Err(err) => {
                let update = StatusUpdate {
                    status: Status::Failed,
                    reason: Some(err.to_string()),
                    ..as_recorded(d)
                };
                self.report(d, update, vec![]).await?;
                return Ok(true);
            }
        };
        let (last_exit, failures) = match observed {
            Observed::Down {
                last_exit,
                failures,
            } => (last_exit, failures),
            _ => (None, 0),
        };
        let mut events = Vec::new();
        if applied == Applied::Started {
            if let Some(exit) = &last_exit {
                events.push(system_event(
                    d,
                    EventType::BrokerRestarted,
                    serde_json::json!({ "reason": exit }),
                ));
            } else if d.status == Status::Provisioning {
                events.push(system_event(
                    d,
                    EventType::DeploymentProvisioning,
                    serde_json::json!({}),
                ));
            }
        }
        let (status, reason) = match applied {
            // Applied in place (security settings, certificates): the broker has usually
            // reloaded by now, so look again at once rather than a pass later, and
            // writes waiting for it answer sooner.
            Applied::Unchanged => {
                let again = self.orchestrator.observe(d).await;
                return Ok(!self.report_if_current(d, &again).await?);
            }
            _ if failures >= FAILED_AFTER => (
                Status::Failed,
                Some(format!(
                    "broker failed {failures} times in a row; retrying with back-off. Last: {}",
                    last_exit.unwrap_or_default()
                )),
            ),
            Applied::Started | Applied::BackingOff => {
                let status = match d.status {
                    Status::Running | Status::Failed if last_exit.is_some() => Status::Starting,
                    Status::Running => Status::Updating,
                    other => other,
                };
                (status, last_exit.map(|e| format!("restarting after: {e}")))
            }
        };
        let update = StatusUpdate {
            status,
            reason,
            ..as_recorded(d)
        };
        self.report(d, update, events).await?;
        Ok(true)
    }

    /// Writes status if it changed and the spec did not move meanwhile.
    async fn report(
        &self,
        d: &Deployment,
        update: StatusUpdate,
        mut events: Vec<Event>,
    ) -> Result<(), StoreError> {
        let status = update.status;
        let reason = &update.reason;
        if d.status != status {
            match status {
                Status::Running => events.push(system_event(
                    d,
                    EventType::DeploymentRunning,
                    serde_json::json!({}),
                )),
                Status::Failed => events.push(system_event(
                    d,
                    EventType::DeploymentFailed,
                    serde_json::json!({ "reason": reason }),
                )),
                _ => {}
            }
        }
        if events.is_empty() && update == as_recorded(d) {
            return Ok(());
        }
        match self
            .store
            .update_status(d.id, d.generation, &update, &events)
            .await
        {
            Ok(()) => {
                if d.applied_revision != update.applied_revision {
                    if let Some(applied) = &self.applied {
                        applied.record(d.id, update.applied_revision);
                    }
                }
                if d.status != status {
                    tracing::info!(deployment.id = %d.id, from = d.status.as_str(), to = status.as_str(), "status changed");
                }
                Ok(())
            }
            // The spec changed under us; the next pass sees the new one. What the broker
            // reported in force is still true: record it, or under a steady stream of
            // writes every report would be stale and no write would see itself applied.
            Err(StoreError::Stale) => {
                if update.applied_revision > d.applied_revision
                    && self
                        .store
                        .record_applied_revision(d.id, update.applied_revision)
                        .await?
                {
                    if let Some(applied) = &self.applied {
                        applied.record(d.id, update.applied_revision);
                    }
                }
                Ok(())
            }
            Err(err) => Err(err),
        }
    }
}

/// The `kind` label of a reconcile error (see [`crate::metrics::ERROR_KINDS`]).
fn error_kind(err: &anyhow::Error) -> &'static str {
    use crate::orchestrator::OrchestratorError;
    if err.downcast_ref::<StoreError>().is_some() {
        return "store";
    }
    match err.downcast_ref::<OrchestratorError>() {
        Some(OrchestratorError::Io { .. }) => "io",
        Some(OrchestratorError::Certificate(_)) => "certificate",
        Some(OrchestratorError::Security(_)) => "security",
        Some(OrchestratorError::Kubernetes(_)) => "kubernetes",
        None => "other",
    }
}

/// The deployment's status as the store has it: a report of nothing new.
fn as_recorded(d: &Deployment) -> StatusUpdate {
    StatusUpdate {
        status: d.status,
        reason: d.status_reason.clone(),
        observed_generation: d.observed_generation,
        endpoints: d.endpoints.clone(),
        applied_revision: d.applied_revision,
    }
}

fn system_event(d: &Deployment, kind: EventType, details: serde_json::Value) -> Event {
    Event::new(d, kind, &Actor::System, details)
}
