//! `GET /healthz` and `GET /readyz` under `/api/v1`, for probes and load balancers.
//! Neither needs a credential nor touches a broker.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

/// Longest wait for the database before readiness fails.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Readiness: whether this replica can serve the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when the database answers and a leader is known, else `not_ready`.
    pub status: String,
    /// Whether the database answered.
    pub database: bool,
    /// The replica running the reconciler, if one leads now.
    pub leader: Option<String>,
    /// This replica's name.
    pub replica: String,
    /// Whether this replica is the leader.
    pub is_leader: bool,
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The database is reachable and a leader is known (which runs the reconciler): 200,
/// else 503 with what is missing.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness)))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let database = matches!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let leader = match tokio::time::timeout(CHECK_TIMEOUT, state.leadership.leader()).await {
        Ok(Ok(leader)) => leader,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "cannot tell who leads");
            None
        }
        Err(_) => None,
    };
    let ready = database && leader.is_some();
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        database,
        leader,
        replica: state.leadership.identity.clone(),
        is_leader: state.leadership.is_leader(),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
