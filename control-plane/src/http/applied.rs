//! Read-your-writes to brokers.
//!
//! Every write a broker must apply bumps the deployment's generation; the new generation
//! is the write's `revision`. The broker reports the revision of the settings it has in
//! force and the reconciler records it as the deployment's `applied_revision`. A write
//! then answers only once the running broker has applied it (200/201/204), or after
//! the control plane's `--apply-timeout` (5 s by default), or at once with `?wait=false`,
//! with 202 and `applied: false`. Until applied, the resource shows `apply_status:
//! pending`. A stopped deployment keeps the change and applies it on start.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::domain::{DesiredState, Status};
use crate::error::{ApiError, ApiResult};
use crate::store::Deployment;

/// Longest pause between two looks at the store while waiting (another replica's
/// reconciler may be the one recording the revision).
const RECHECK: Duration = Duration::from_millis(100);
/// The same on the leader, whose own reconciler wakes waiters as it records revisions:
/// the store is looked at only for stops and deletes meanwhile.
const LEADER_RECHECK: Duration = Duration::from_secs(1);

/// `?wait=` of writes that a broker applies.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait for the running broker to apply the change (default true, up to the control
    /// plane's apply timeout, 5 s by default); `false` answers at once.
    pub wait: Option<bool>,
}

/// Whether the running broker has a change in force yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplyStatus {
    /// Stored, not yet in force on the running broker (or the deployment is stopped: it
    /// applies on start).
    Pending,
    /// The running broker has it in force.
    Applied,
}

/// Where a change stands on its way to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    /// The deployment revision at which this last changed (0: never changed).
    pub revision: i64,
    /// Whether the running broker has applied `revision`.
    pub applied: bool,
    /// `pending` until the running broker has applied `revision`, then `applied`.
    pub apply_status: ApplyStatus,
}

impl Default for Delivery {
    /// Never changed: nothing to apply.
    fn default() -> Self {
        Self::new(0, 0)
    }
}

impl Delivery {
    fn new(revision: i64, applied_revision: i64) -> Self {
        let applied = applied_revision >= revision;
        Self {
            revision,
            applied,
            apply_status: if applied {
                ApplyStatus::Applied
            } else {
                ApplyStatus::Pending
            },
        }
    }

    /// `done` once applied, else 202 Accepted.
    pub fn status(self, done: StatusCode) -> StatusCode {
        if self.applied {
            done
        } else {
            StatusCode::ACCEPTED
        }
    }
}

/// The answer of a `DELETE`: 204 once applied, else 202 with where it stands.
pub fn no_content_or_accepted(delivery: Delivery) -> axum::response::Response {
    use axum::response::IntoResponse;
    if delivery.applied {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::ACCEPTED, axum::Json(delivery)).into_response()
    }
}

/// After a write to `deployment`: waits (unless `query` says not to) until the running
/// broker has applied it, or the apply timeout passes.
pub async fn await_applied(
    state: &Arc<AppState>,
    deployment: &Deployment,
    query: &WaitQuery,
) -> ApiResult<Delivery> {
    state.reconcile.notify_one();
    let current = reload(state, deployment).await?;
    // Every later write has a higher revision: waiting for the current generation
    // covers this one.
    let revision = current.generation;
    if !query.wait.unwrap_or(true) {
        return Ok(Delivery::new(revision, current.applied_revision));
    }
    let deadline = tokio::time::Instant::now() + state.apply_timeout;
    // The leader's reconciler publishes what it records in `state.applied`; the store is
    // the truth for the rest (another replica's reconciler, a stop or delete meanwhile).
    let every = if state.leadership.is_leader() {
        LEADER_RECHECK
    } else {
        RECHECK
    };
    let mut next_look = tokio::time::Instant::now();
    loop {
        let changed = state.applied.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if let Some(applied) = state.applied.get(deployment.id) {
            if applied >= revision {
                return Ok(Delivery::new(revision, applied));
            }
        }
        let now = tokio::time::Instant::now();
        if now >= next_look || now >= deadline {
            let current = reload(state, deployment).await?;
            let delivery = Delivery::new(revision, current.applied_revision);
            if delivery.applied
                || current.desired_state == DesiredState::Stopped
                || current.status == Status::Deleting
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(delivery);
            }
            next_look = tokio::time::Instant::now() + every;
        }
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep_until(next_look.min(deadline)) => {}
        }
    }
}

/// Where `resource` of `deployment` stands (for `GET`s).
pub async fn resource_delivery(
    state: &AppState,
    deployment: &Deployment,
    resource: &str,
) -> ApiResult<Delivery> {
    let revision = state
        .store
        .resource_revision(deployment.id, resource)
        .await?
        .unwrap_or_default();
    Ok(Delivery::new(revision, deployment.applied_revision))
}

/// Where each of `resources` stands, from one read of the revisions.
pub async fn resource_deliveries(
    state: &AppState,
    deployment: &Deployment,
) -> ApiResult<impl Fn(&str) -> Delivery> {
    let revisions = state.store.resource_revisions(deployment.id).await?;
    let applied = deployment.applied_revision;
    Ok(move |resource: &str| {
        Delivery::new(
            revisions.get(resource).copied().unwrap_or_default(),
            applied,
        )
    })
}

async fn reload(state: &AppState, deployment: &Deployment) -> ApiResult<Deployment> {
    state
        .store
        .get_deployment(deployment.project_id, deployment.id)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))
}
