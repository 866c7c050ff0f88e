//! The deployment HTTP API: health and readiness (later also `/api/v4`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// Flipped once the engine answers and every listener is bound.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

/// Routes of the deployment API.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

async fn readyz(State(readiness): State<Readiness>) -> (StatusCode, Json<Status>) {
    if readiness.is_ready() {
        (StatusCode::OK, Json(Status { status: "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status { status: "starting" }),
        )
    }
}
