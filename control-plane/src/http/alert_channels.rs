//! `/projects/{id}/alert-channels`: where a project's alerts go. A webhook's signing
//! secret is shown once, at creation.

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
use crate::alerts::channel::{DeploymentRef, Notification, NotificationStatus, RuleRef};
use crate::alerts::{AlertChannel, ChannelTarget, Condition, Invalid};
use crate::app::AppState;
use crate::domain::{token, DeploymentName, Id, Role};
use crate::error::{ApiError, ApiResult};
use crate::store::StoreError;

/// Prefix of webhook signing secrets.
pub const SECRET_PREFIX: &str = "whsec_";

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_channel, list_channels))
        .routes(routes!(get_channel, delete_channel))
        .routes(routes!(test_channel))
}

/// A name of a rule or channel: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
pub(super) fn parse_name(raw: &str) -> ApiResult<String> {
    DeploymentName::parse(raw)
        .map(|n| n.to_string())
        .map_err(|msg| ApiError::unprocessable("invalid_name", msg).with_field("name"))
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        ApiError::unprocessable(invalid.code, invalid.detail).with_field(invalid.field)
    }
}

/// Kinds of channel.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Email,
}

/// Body of `POST /projects/{project_id}/alert-channels`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAlertChannel {
    /// 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Webhooks: an absolute `http` or `https` URL, without credentials.
    #[serde(default)]
    pub url: Option<String>,
    /// Email: 1 to 16 recipient addresses.
    #[serde(default)]
    pub to: Option<Vec<String>>,
}

impl CreateAlertChannel {
    fn target(self) -> ApiResult<ChannelTarget> {
        let wrong = |field: &str, kind: &str| {
            ApiError::unprocessable(
                "unknown_field",
                format!("`{field}` does not apply to {kind} channels"),
            )
            .with_field(field)
        };
        let missing = |field: &str, kind: &str| {
            ApiError::unprocessable("missing_field", format!("{kind} channels need `{field}`"))
                .with_field(field)
        };
        let target = match self.kind {
            ChannelKind::Webhook => {
                if self.to.is_some() {
                    return Err(wrong("to", "webhook"));
                }
                ChannelTarget::Webhook {
                    url: self.url.ok_or_else(|| missing("url", "webhook"))?,
                }
            }
            ChannelKind::Email => {
                if self.url.is_some() {
                    return Err(wrong("url", "email"));
                }
                ChannelTarget::Email {
                    to: self.to.ok_or_else(|| missing("to", "email"))?,
                }
            }
        };
        Ok(target.validate()?)
    }
}

/// An alert channel as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertChannelView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    /// `webhook` with `url`, or `email` with `to`.
    #[serde(flatten)]
    pub target: ChannelTarget,
    pub created_at: DateTime<Utc>,
}

/// A newly created channel; a webhook's with its signing secret, shown only now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAlertChannel {
    #[serde(flatten)]
    pub channel: AlertChannelView,
    /// Webhooks: the HMAC-SHA256 key of `X-Skyport-Signature` (its UTF-8 bytes). Store
    /// it now; it cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A project's channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertChannelList {
    pub items: Vec<AlertChannelView>,
}

impl From<AlertChannel> for AlertChannelView {
    fn from(c: AlertChannel) -> Self {
        Self {
            id: c.id.to_string(),
            project_id: c.project_id.to_string(),
            name: c.name,
            target: c.target,
            created_at: c.created_at,
        }
    }
}

/// Create an alert channel (owners and developers). A webhook's signing secret is in
/// the answer, and only there.
#[utoipa::path(post, path = "/projects/{project_id}/alert-channels", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id")),
    request_body = CreateAlertChannel,
    responses((status = 201, description = "Channel created", body = CreatedAlertChannel), Problems),
    security(("bearer" = [])))]
async fn create_channel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
    body: Result<ApiJson<CreateAlertChannel>, ApiError>,
) -> ApiResult<(StatusCode, Json<CreatedAlertChannel>)> {
    let project_id = require_project(&state, &principal, &project_id, Role::Developer).await?;
    let ApiJson(body) = body?;
    let name = parse_name(&body.name)?;
    let target = body.target()?;
    if matches!(target, ChannelTarget::Email { .. }) && !state.alerts.notifier.has_mailer() {
        return Err(ApiError::conflict(
            "smtp_not_configured",
            "email channels need an SMTP server: the operator sets --smtp-url",
        ));
    }
    let id = Id::new();
    let secret =
        matches!(target, ChannelTarget::Webhook { .. }).then(|| token::generate(SECRET_PREFIX));
    let channel = AlertChannel {
        id,
        project_id,
        name,
        target,
        secret_ciphertext: secret
            .as_ref()
            .map(|s| state.secret_key.seal(s.as_bytes(), &id.to_string())),
        created_at: Utc::now(),
    };
    state
        .store
        .create_alert_channel(&channel)
        .await
        .map_err(|e| ApiError::from_store(e, "alert channel"))?;
    tracing::info!(project.id = %project_id, alert_channel.id = %id, kind = channel.target.kind(), "alert channel created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedAlertChannel {
            channel: channel.into(),
            secret,
        }),
    ))
}

/// List a project's alert channels (any role).
#[utoipa::path(get, path = "/projects/{project_id}/alert-channels", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project's channels", body = AlertChannelList), Problems),
    security(("bearer" = [])))]
async fn list_channels(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
) -> ApiResult<Json<AlertChannelList>> {
    let project_id = require_project(&state, &principal, &project_id, Role::Viewer).await?;
    let channels = state.store.list_alert_channels(project_id).await?;
    Ok(Json(AlertChannelList {
        items: channels.into_iter().map(Into::into).collect(),
    }))
}

async fn channel(state: &AppState, project_id: Id, raw: &str) -> ApiResult<AlertChannel> {
    let id = path_id(raw, "alert channel")?;
    state
        .store
        .get_alert_channel(project_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "alert channel"))
}

/// One alert channel (any role).
#[utoipa::path(get, path = "/projects/{project_id}/alert-channels/{channel_id}", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id"),
           ("channel_id" = String, Path, description = "Alert channel id")),
    responses((status = 200, description = "The channel", body = AlertChannelView), Problems),
    security(("bearer" = [])))]
async fn get_channel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, channel_id)): Path<(String, String)>,
) -> ApiResult<Json<AlertChannelView>> {
    let project_id = require_project(&state, &principal, &project_id, Role::Viewer).await?;
    Ok(Json(channel(&state, project_id, &channel_id).await?.into()))
}

/// Delete an alert channel (owners and developers); 409 `channel_in_use` while a rule
/// names it.
#[utoipa::path(delete, path = "/projects/{project_id}/alert-channels/{channel_id}", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id"),
           ("channel_id" = String, Path, description = "Alert channel id")),
    responses((status = 204, description = "Channel deleted"), Problems),
    security(("bearer" = [])))]
async fn delete_channel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, channel_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project_id = require_project(&state, &principal, &project_id, Role::Developer).await?;
    let id = path_id(&channel_id, "alert channel")?;
    match state.store.delete_alert_channel(project_id, id).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(
                "channel_in_use",
                "an alert rule sends to this channel; change or delete the rule first",
            ))
        }
        Err(e) => return Err(ApiError::from_store(e, "alert channel")),
    }
    tracing::info!(project.id = %project_id, alert_channel.id = %id, "alert channel deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test notification to the channel now (owners and developers): 204 once the
/// webhook answered 2xx or the SMTP server took the mail, else 502 `delivery_failed`
/// with the reason.
#[utoipa::path(post, path = "/projects/{project_id}/alert-channels/{channel_id}/test", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id"),
           ("channel_id" = String, Path, description = "Alert channel id")),
    responses((status = 204, description = "Delivered"),
              (status = 502, description = "Not delivered (`delivery_failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
              Problems),
    security(("bearer" = [])))]
async fn test_channel(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, channel_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project_id = require_project(&state, &principal, &project_id, Role::Developer).await?;
    let channel = channel(&state, project_id, &channel_id).await?;
    let now = Utc::now();
    let notification = Notification {
        id: uuid::Uuid::new_v4().to_string(),
        status: NotificationStatus::Firing,
        project_id: project_id.to_string(),
        rule: RuleRef {
            id: "test".into(),
            name: "Test notification".into(),
            condition: Condition::Sessions { percent: 100 },
        },
        deployment: DeploymentRef {
            id: "test".into(),
            name: None,
        },
        subject: "test".into(),
        message: format!("A test of alert channel {}", channel.name),
        since: now,
        fired_at: now,
        resolved_at: None,
        sequence: 1,
    };
    state
        .alerts
        .notifier
        .deliver(&channel, &notification)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "delivery_failed", e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
