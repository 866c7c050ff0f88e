//! `/projects/{id}/api-keys`: bearer keys scoped to one project. Secrets are shown once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::Principal;
use super::json::ApiJson;
use super::projects::{path_id, require_project};
use super::Problems;
use crate::app::AppState;
use crate::domain::{token, DeploymentName, Id, Role};
use crate::error::{ApiError, ApiResult};
use crate::store::ApiKey;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(delete_api_key))
}

/// Body of `POST /projects/{project_id}/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A label for the key: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
    )]
    pub name: String,
    /// What the key may do in the project (default `owner`, as keys could before roles).
    #[serde(default)]
    pub role: Option<Role>,
}

/// An API key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// First characters of the secret, to recognise the key.
    pub prefix: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A newly created key, with its secret: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Bearer secret for `Authorization: Bearer …`. Store it now; it cannot be shown again.
    pub secret: String,
}

/// All keys of a project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            project_id: k.project_id.to_string(),
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_at: k.created_at,
        }
    }
}

/// Create an API key for a project (admin token, or an owner of the project: key or member).
#[utoipa::path(post, path = "/projects/{project_id}/api-keys", tag = "projects",
    params(("project_id" = String, Path, description = "Project id")),
    request_body = CreateApiKey,
    responses((status = 201, description = "Key created; the secret is shown only now", body = CreatedApiKey), Problems),
    security(("bearer" = [])))]
async fn create_api_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
    ApiJson(body): ApiJson<CreateApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let project_id = require_project(&state, &principal, &project_id, Role::Owner).await?;
    let name = DeploymentName::parse(&body.name)
        .map_err(|msg| ApiError::unprocessable("invalid_name", msg).with_field("name"))?;
    let secret = token::generate(token::API_KEY_PREFIX);
    let key = ApiKey {
        id: Id::new(),
        project_id,
        name: name.to_string(),
        prefix: token::display_prefix(&secret),
        role: body.role.unwrap_or(Role::Owner),
        created_at: Utc::now(),
        last_used_at: None,
    };
    state
        .store
        .create_api_key(&key, &token::hash(&secret))
        .await
        .map_err(|e| ApiError::from_store(e, "api key"))?;
    tracing::info!(project.id = %project_id, api_key.id = %key.id, "api key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: key.into(),
            secret,
        }),
    ))
}

/// List a project's API keys, without secrets (owners).
#[utoipa::path(get, path = "/projects/{project_id}/api-keys", tag = "projects",
    params(("project_id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project's keys", body = ApiKeyList), Problems),
    security(("bearer" = [])))]
async fn list_api_keys(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
) -> ApiResult<Json<ApiKeyList>> {
    let project_id = require_project(&state, &principal, &project_id, Role::Owner).await?;
    let keys = state.store.list_api_keys(project_id).await?;
    Ok(Json(ApiKeyList {
        items: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke an API key; it stops working at once (owners).
#[utoipa::path(delete, path = "/projects/{project_id}/api-keys/{key_id}", tag = "projects",
    params(("project_id" = String, Path, description = "Project id"),
           ("key_id" = String, Path, description = "API key id")),
    responses((status = 204, description = "Key revoked"), Problems),
    security(("bearer" = [])))]
async fn delete_api_key(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project_id = require_project(&state, &principal, &project_id, Role::Owner).await?;
    let key_id = path_id(&key_id, "api key")?;
    state
        .store
        .delete_api_key(project_id, key_id)
        .await
        .map_err(|e| ApiError::from_store(e, "api key"))?;
    tracing::info!(project.id = %project_id, api_key.id = %key_id, "api key revoked");
    Ok(StatusCode::NO_CONTENT)
}
