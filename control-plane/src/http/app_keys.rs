//! `/deployments/{id}/app-keys`: keys of a deployment's own HTTP API (`{api}/api/v4`,
//! HTTP Basic `app_id:app_secret`, as EMQX's). Secrets are shown once and stored as their
//! SHA-256; the broker receives only the hashes.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{
    await_applied, no_content_or_accepted, resource_deliveries, Delivery, WaitQuery,
};
use super::auth::{check_role, ProjectKey, ProjectMember};
use super::deployments::{load, refuse_if_deleting, DeploymentScope};
use super::json::{ApiJson, ApiQuery};
use super::page::{PageQuery, Paged};
use super::projects::path_id;
use super::Problems;
use crate::app::AppState;
use crate::domain::{token, DeploymentName, Id, Role};
use crate::error::{ApiError, ApiResult};
use crate::store::{revision, AppKeyRecord};

/// Prefix of app secrets, so leaked ones are recognisable by secret scanners.
pub const APP_SECRET_PREFIX: &str = "skd_";

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_app_key, list_app_keys))
        .routes(routes!(delete_app_key))
}

/// Body of `POST /deployments/{deployment_id}/app-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppKey {
    /// A label for the key: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
    )]
    pub name: String,
    /// Delete the key when the web-console sign-in session creating it ends (sign-out or
    /// expiry), as the console does for the key it uses itself. Needs a session cookie:
    /// with an API key it is 422 `session_required`. Default false.
    #[serde(default)]
    pub session_bound: bool,
    /// A key that may only read through the deployment API (`GET`); the broker answers
    /// anything else with 403 (`forbidden_role`). A project `viewer` may create only this
    /// kind, and only session-bound: the one its web console reads clients,
    /// subscriptions, users, rules and bans with. Default false.
    #[serde(default)]
    pub read_only: bool,
}

/// A deployment API key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppKeyView {
    /// The user name of HTTP Basic authentication.
    pub app_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Whether the key is deleted when the console session that made it ends.
    pub session_bound: bool,
    /// Whether the key may only read.
    pub read_only: bool,
    /// Whether the running broker accepts the key yet.
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// A newly created app key, with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAppKey {
    #[serde(flatten)]
    pub key: AppKeyView,
    /// The password of HTTP Basic authentication. Store it now; it cannot be shown again.
    pub app_secret: String,
}

impl AppKeyView {
    fn new(k: AppKeyRecord, delivery: Delivery) -> Self {
        Self {
            app_id: k.app_id.to_string(),
            name: k.name,
            created_at: k.created_at,
            session_bound: k.console_session.is_some(),
            read_only: k.read_only,
            delivery,
        }
    }
}

/// Create a key for the deployment's HTTP API. Answers once the running broker accepts
/// it (201), or with 202 and `applied: false` when it has not yet after the apply
/// timeout, with `?wait=false`, or while the deployment is stopped. Needs `developer`,
/// except for a read-only, session-bound key, which a signed-in `viewer` may create.
#[utoipa::path(post, path = "/deployments/{deployment_id}/app-keys", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    request_body = CreateAppKey,
    responses(
        (status = 201, description = "Key created and accepted by the running broker; the secret is shown only now", body = CreatedAppKey),
        (status = 202, description = "Key created, not yet in force on the broker (`applied: false`); the secret is shown only now", body = CreatedAppKey),
        Problems),
    security(("bearer" = [])))]
async fn create_app_key(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key, deployment }: DeploymentScope<ProjectMember>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<CreateAppKey>,
) -> ApiResult<(StatusCode, Json<CreatedAppKey>)> {
    // A viewer's console may read the deployment API with a key that can do no more than
    // the viewer and dies with the sign-in; every other key needs `developer`.
    let viewers_own = body.read_only && body.session_bound && key.0.console_session.is_some();
    if !viewers_own {
        check_role(key.0.role, Role::Developer)?;
    }
    let name = DeploymentName::parse(&body.name)
        .map_err(|msg| ApiError::unprocessable("invalid_name", msg).with_field("name"))?;
    let console_session =
        match (body.session_bound, key.0.console_session) {
            (false, _) => None,
            (true, Some(session)) => Some(session),
            (true, None) => return Err(ApiError::unprocessable(
                "session_required",
                "session_bound keys belong to a web-console sign-in; an API key's caller has none",
            )
            .with_field("session_bound")),
        };
    refuse_if_deleting(&deployment)?;
    let secret = token::generate(APP_SECRET_PREFIX);
    let record = AppKeyRecord {
        app_id: Id::new(),
        deployment_id: deployment.id,
        name: name.to_string(),
        // Both backends keep microseconds: answer what a later list shows.
        created_at: Utc::now().trunc_subsecs(6),
        console_session,
        read_only: body.read_only,
    };
    state
        .store
        .create_app_key(deployment.project_id, &record, &token::hash(&secret))
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %deployment.id, app_key.id = %record.app_id, "app key created");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    Ok((
        delivery.status(StatusCode::CREATED),
        Json(CreatedAppKey {
            key: AppKeyView::new(record, delivery),
            app_secret: secret,
        }),
    ))
}

/// List the deployment's app keys (without secrets).
#[utoipa::path(get, path = "/deployments/{deployment_id}/app-keys", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), PageQuery),
    responses((status = 200, description = "One page of app keys", body = Paged<AppKeyView>), Problems),
    security(("bearer" = [])))]
async fn list_app_keys(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<AppKeyView>>> {
    let page = query.parse()?;
    let deployment = load(&state, &key, &deployment_id).await?;
    let rows = state
        .store
        .list_app_keys(deployment.id, page.after, page.limit + 1)
        .await?;
    let delivery = resource_deliveries(&state, &deployment).await?;
    Ok(Json(Paged::from_rows(
        rows,
        &page,
        |k| k.app_id,
        |k| {
            let d = delivery(&revision::app_key(k.app_id));
            AppKeyView::new(k, d)
        },
    )))
}

/// Revoke an app key. Answers 204 once the running broker refuses it, or 202 with
/// `applied: false` (apply timeout, `?wait=false`, stopped deployment).
#[utoipa::path(delete, path = "/deployments/{deployment_id}/app-keys/{app_id}", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"),
           ("app_id" = String, Path, description = "App key id"), WaitQuery),
    responses(
        (status = 204, description = "Key revoked; the running broker refuses it"),
        (status = 202, description = "Key revoked, the broker not yet told", body = Delivery),
        Problems),
    security(("bearer" = [])))]
async fn delete_app_key(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path((deployment_id, app_id)): Path<(String, String)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> ApiResult<Response> {
    let deployment = load(&state, &key, &deployment_id).await?;
    refuse_if_deleting(&deployment)?;
    let app_id = path_id(&app_id, "app key")?;
    state
        .store
        .delete_app_key(deployment.project_id, deployment.id, app_id)
        .await
        .map_err(|e| ApiError::from_store(e, "app key"))?;
    tracing::info!(deployment.id = %deployment.id, app_key.id = %app_id, "app key revoked");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    Ok(no_content_or_accepted(delivery))
}
