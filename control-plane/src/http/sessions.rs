//! `/deployments/{id}/sessions`: how the deployment's persistent sessions behave — how
//! long an MQTT 3.1.1 persistent session outlives its connection (2 h by default), the
//! most an MQTT 5 client's session expiry is honoured for, and how many messages an
//! offline session keeps (1,000 by default; beyond it the oldest are dropped, counted
//! and announced on `$events/message_dropped`). Changes reach the running broker
//! without a restart and apply to sessions from their next connection.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use skyport_settings::security::SessionSettings;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{await_applied, resource_delivery, Delivery, WaitQuery};
use super::auth::ProjectKey;
use super::deployments::{load, refuse_if_deleting, DeploymentScope};
use super::json::{ApiJson, ApiQuery};
use super::Problems;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::store::revision;

/// The longest session expiry accepted: 7 days.
pub const MAX_EXPIRY_SECS: u64 = 7 * 24 * 3600;
/// The largest offline queue accepted.
pub const MAX_QUEUE: usize = 100_000;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_sessions, put_sessions))
}

/// A deployment's persistent-session settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// Seconds an MQTT 3.1.1 persistent session (`clean_session=false`) outlives its
    /// connection; 0 ends it at disconnect. At most 604800 (7 days).
    #[schema(maximum = 604800)]
    pub session_expiry_secs: u64,
    /// The most seconds an MQTT 5 client's `session_expiry_interval` is honoured for. At
    /// most 604800.
    #[schema(maximum = 604800)]
    pub max_session_expiry_secs: u64,
    /// Messages kept for one offline session, 1 to 100000.
    #[schema(minimum = 1, maximum = 100000)]
    pub max_queued_messages: usize,
    /// Read-only, as `GET` shows it: accepted and ignored in a `PUT` body, so a document
    /// read can be written back.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<i64>)]
    pub revision: Option<IgnoredAny>,
    /// Read-only, as `GET` shows it; ignored in a `PUT` body.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<bool>)]
    pub applied: Option<IgnoredAny>,
    /// Read-only, as `GET` shows it; ignored in a `PUT` body.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<String>)]
    pub apply_status: Option<IgnoredAny>,
}

/// The persistent-session settings, and whether the running broker has them in force
/// (a `PUT` accepts this document back, ignoring `revision`, `applied` and
/// `apply_status`).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsView {
    pub session_expiry_secs: u64,
    pub max_session_expiry_secs: u64,
    pub max_queued_messages: usize,
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl SessionsView {
    fn new(s: SessionSettings, delivery: Delivery) -> Self {
        Self {
            session_expiry_secs: s.session_expiry_secs,
            max_session_expiry_secs: s.max_session_expiry_secs,
            max_queued_messages: s.max_queued_messages,
            delivery,
        }
    }
}

impl From<SessionSettings> for Sessions {
    fn from(s: SessionSettings) -> Self {
        Self {
            session_expiry_secs: s.session_expiry_secs,
            max_session_expiry_secs: s.max_session_expiry_secs,
            max_queued_messages: s.max_queued_messages,
            revision: None,
            applied: None,
            apply_status: None,
        }
    }
}

fn check(body: &Sessions) -> ApiResult<SessionSettings> {
    let invalid = |field: &str, detail: String| {
        ApiError::unprocessable("invalid_session_settings", detail).with_field(field)
    };
    for (field, value) in [
        ("session_expiry_secs", body.session_expiry_secs),
        ("max_session_expiry_secs", body.max_session_expiry_secs),
    ] {
        if value > MAX_EXPIRY_SECS {
            return Err(invalid(
                field,
                format!("at most {MAX_EXPIRY_SECS} seconds (7 days); got {value}"),
            ));
        }
    }
    if !(1..=MAX_QUEUE).contains(&body.max_queued_messages) {
        return Err(invalid(
            "max_queued_messages",
            format!(
                "between 1 and {MAX_QUEUE}; got {}",
                body.max_queued_messages
            ),
        ));
    }
    Ok(SessionSettings {
        session_expiry_secs: body.session_expiry_secs,
        max_session_expiry_secs: body.max_session_expiry_secs,
        max_queued_messages: body.max_queued_messages,
    })
}

/// The deployment's persistent-session settings (the defaults until changed).
#[utoipa::path(get, path = "/deployments/{deployment_id}/sessions", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The settings", body = SessionsView), Problems),
    security(("bearer" = [])))]
async fn get_sessions(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<SessionsView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let settings = state.store.get_session_settings(deployment.id).await?;
    Ok(Json(SessionsView::new(
        settings.unwrap_or_default(),
        resource_delivery(&state, &deployment, revision::SESSIONS).await?,
    )))
}

/// Replace the deployment's persistent-session settings. Out-of-range values are 422
/// `invalid_session_settings` (naming the field) and change nothing.
#[utoipa::path(put, path = "/deployments/{deployment_id}/sessions", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    request_body = Sessions,
    responses(
        (status = 200, description = "Stored and in force on the running broker", body = SessionsView),
        (status = 202, description = "Stored, not yet in force (`applied: false`)", body = SessionsView),
        Problems),
    security(("bearer" = [])))]
async fn put_sessions(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key: _, deployment }: DeploymentScope,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<Sessions>,
) -> ApiResult<(StatusCode, Json<SessionsView>)> {
    let settings = check(&body)?;
    refuse_if_deleting(&deployment)?;
    state
        .store
        .put_session_settings(deployment.project_id, deployment.id, &settings)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %deployment.id, ?settings, "session settings stored");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    Ok((
        delivery.status(StatusCode::OK),
        Json(SessionsView::new(settings, delivery)),
    ))
}
