//! `/projects/{id}/quota`: how many deployments a project may have.
//!
//! Every project gets the control plane's default (`--deployment-quota`, 20) unless the
//! admin sets its own; `POST /deployments` beyond it is 409 `quota_exceeded`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{Admin, Principal};
use super::json::ApiJson;
use super::projects::path_id;
use super::Problems;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// Largest quota the admin can set.
const MAX_QUOTA: i64 = 100_000;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_quota, put_quota))
}

/// A project's quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    /// Most deployments the project may have (those being deleted do not count).
    pub max_deployments: i64,
    /// Whether this is the control plane's default rather than the project's own.
    pub default: bool,
}

/// Body of `PUT /projects/{id}/quota`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    /// Most deployments the project may have, 0 to 100000; `null` returns to the
    /// control plane's default.
    #[schema(minimum = 0, maximum = 100000)]
    pub max_deployments: Option<i64>,
}

async fn view(state: &AppState, project_id: crate::domain::Id) -> ApiResult<QuotaView> {
    let own = state
        .store
        .deployment_quota(project_id)
        .await
        .map_err(|e| ApiError::from_store(e, "project"))?;
    Ok(QuotaView {
        max_deployments: own.unwrap_or(state.limits.deployment_quota),
        default: own.is_none(),
    })
}

/// The project's deployment quota (any member or key of the project, or the admin).
#[utoipa::path(get, path = "/projects/{project_id}/quota", tag = "projects",
    params(("project_id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The quota", body = QuotaView), Problems),
    security(("bearer" = [])))]
async fn get_quota(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
) -> ApiResult<Json<QuotaView>> {
    let id = path_id(&project_id, "project")?;
    if !principal.can_access(id) {
        return Err(ApiError::not_found("project"));
    }
    Ok(Json(view(&state, id).await?))
}

/// Set the project's deployment quota (admin token only). Lowering it below the
/// project's current count refuses new deployments and deletes none.
#[utoipa::path(put, path = "/projects/{project_id}/quota", tag = "projects",
    params(("project_id" = String, Path, description = "Project id")),
    request_body = SetQuota,
    responses((status = 200, description = "The new quota", body = QuotaView), Problems),
    security(("bearer" = [])))]
async fn put_quota(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(project_id): Path<String>,
    ApiJson(body): ApiJson<SetQuota>,
) -> ApiResult<Json<QuotaView>> {
    let id = path_id(&project_id, "project")?;
    if let Some(limit) = body.max_deployments {
        if !(0..=MAX_QUOTA).contains(&limit) {
            return Err(ApiError::unprocessable(
                "invalid_max_deployments",
                format!("max_deployments must be between 0 and {MAX_QUOTA}"),
            )
            .with_field("max_deployments"));
        }
    }
    state
        .store
        .set_deployment_quota(id, body.max_deployments)
        .await
        .map_err(|e| ApiError::from_store(e, "project"))?;
    tracing::info!(project.id = %id, max_deployments = ?body.max_deployments, "deployment quota set");
    Ok(Json(view(&state, id).await?))
}
