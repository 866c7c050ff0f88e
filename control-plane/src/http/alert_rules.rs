//! `/projects/{id}/alert-rules`: what a project watches, and its active alerts.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::alert_channels::parse_name;
use super::auth::Principal;
use super::json::ApiJson;
use super::projects::{path_id, require_project};
use super::Problems;
use crate::alerts::rule::{MAX_CHANNELS_PER_RULE, MAX_REPEAT_SECONDS};
use crate::alerts::{AlertRule, AlertState, Condition};
use crate::app::AppState;
use crate::domain::{Id, Role};
use crate::error::{ApiError, ApiResult};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_rule, list_rules))
        .routes(routes!(get_rule, put_rule, delete_rule))
}

fn yes() -> bool {
    true
}

/// Body of `POST /projects/{project_id}/alert-rules` and `PUT …/{rule_id}` (which
/// replaces the rule).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    /// 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    pub condition: Condition,
    /// The one deployment of the project to watch; absent or `null`: all of them,
    /// including those created later.
    #[serde(default)]
    pub deployment_id: Option<String>,
    /// Channels of the project to notify (at most 16); empty: alerts are only in the
    /// event log.
    #[serde(default)]
    pub channel_ids: Vec<String>,
    /// Notify again this often (1 to 604800 seconds) while the alert stays active;
    /// absent or `null`: once.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub repeat_interval_seconds: Option<i64>,
    /// Default `true`. Disabling a rule drops its active alerts without notifying.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// Whether an alert is waiting for its condition to hold long enough, or has fired.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Pending,
    Firing,
}

/// One of a rule's active alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveAlertView {
    /// `<deployment id>`, `<deployment id>/tls` or `<deployment id>/domain/<name>`.
    pub subject: String,
    pub deployment_id: String,
    pub status: AlertStatus,
    /// When the condition was first seen.
    pub since: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Notifications sent: the first and the repeats.
    pub notifications: i64,
    /// What the evaluation saw when it last changed the alert.
    pub message: String,
}

/// An alert rule with its active alerts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRuleView {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub condition: Condition,
    pub deployment_id: Option<String>,
    pub channel_ids: Vec<String>,
    pub repeat_interval_seconds: Option<i64>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Pending and firing alerts, by subject.
    pub alerts: Vec<ActiveAlertView>,
}

/// A project's rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRuleList {
    pub items: Vec<AlertRuleView>,
}

fn view(rule: AlertRule, states: &[AlertState]) -> AlertRuleView {
    AlertRuleView {
        id: rule.id.to_string(),
        project_id: rule.project_id.to_string(),
        name: rule.name,
        condition: rule.condition,
        deployment_id: rule.deployment_id.map(|id| id.to_string()),
        channel_ids: rule.channel_ids.iter().map(Id::to_string).collect(),
        repeat_interval_seconds: rule.repeat_interval_seconds,
        enabled: rule.enabled,
        created_at: rule.created_at,
        updated_at: rule.updated_at,
        alerts: states
            .iter()
            .filter(|s| s.rule_id == rule.id)
            .map(|s| ActiveAlertView {
                subject: s.subject.clone(),
                deployment_id: s.deployment_id.to_string(),
                status: if s.fired_at.is_some() {
                    AlertStatus::Firing
                } else {
                    AlertStatus::Pending
                },
                since: s.since,
                fired_at: s.fired_at,
                last_notified_at: s.last_notified_at,
                notifications: s.notifications,
                message: s.message.clone(),
            })
            .collect(),
    }
}

/// Checks `spec` against the project; the rule it describes, with `id` and times.
async fn parse_spec(
    state: &AppState,
    project_id: Id,
    spec: AlertRuleSpec,
    id: Id,
    created_at: DateTime<Utc>,
) -> ApiResult<AlertRule> {
    let name = parse_name(&spec.name)?;
    let condition = spec.condition.validate()?;
    let deployment_id = match spec.deployment_id {
        None => None,
        Some(raw) => {
            let unknown = || {
                ApiError::unprocessable(
                    "invalid_deployment_id",
                    format!("`{raw}` is not a deployment of this project"),
                )
                .with_field("deployment_id")
            };
            let id: Id = raw.parse().map_err(|_| unknown())?;
            state
                .store
                .get_deployment(project_id, id)
                .await
                .map_err(|_| unknown())?;
            Some(id)
        }
    };
    if spec.channel_ids.len() > MAX_CHANNELS_PER_RULE {
        return Err(ApiError::unprocessable(
            "invalid_channel_ids",
            format!("a rule notifies at most {MAX_CHANNELS_PER_RULE} channels"),
        )
        .with_field("channel_ids"));
    }
    let channels = state.store.list_alert_channels(project_id).await?;
    let mut channel_ids = Vec::new();
    for (i, raw) in spec.channel_ids.iter().enumerate() {
        let known = raw
            .parse::<Id>()
            .ok()
            .filter(|id| channels.iter().any(|c| c.id == *id))
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_channel_ids",
                    format!("`{raw}` is not an alert channel of this project"),
                )
                .with_field(format!("channel_ids[{i}]"))
            })?;
        if !channel_ids.contains(&known) {
            channel_ids.push(known);
        }
    }
    if let Some(every) = spec.repeat_interval_seconds {
        if !(1..=MAX_REPEAT_SECONDS).contains(&every) {
            return Err(ApiError::unprocessable(
                "invalid_repeat_interval_seconds",
                format!("repeat_interval_seconds must be between 1 and {MAX_REPEAT_SECONDS}"),
            )
            .with_field("repeat_interval_seconds"));
        }
    }
    Ok(AlertRule {
        id,
        project_id,
        name,
        deployment_id,
        condition,
        channel_ids,
        repeat_interval_seconds: spec.repeat_interval_seconds,
        enabled: spec.enabled,
        created_at,
        updated_at: Utc::now(),
    })
}

async fn rule_view(state: &AppState, rule: AlertRule) -> ApiResult<AlertRuleView> {
    let states = state.store.alert_states(Some(rule.project_id)).await?;
    Ok(view(rule, &states))
}

/// Create an alert rule (owners and developers). The leader evaluates it from its next
/// pass on.
#[utoipa::path(post, path = "/projects/{project_id}/alert-rules", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id")),
    request_body = AlertRuleSpec,
    responses((status = 201, description = "Rule created", body = AlertRuleView), Problems),
    security(("bearer" = [])))]
async fn create_rule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
    body: Result<ApiJson<AlertRuleSpec>, ApiError>,
) -> ApiResult<(StatusCode, Json<AlertRuleView>)> {
    let project_id = require_project(&state, &principal, &project_id, Role::Developer).await?;
    let ApiJson(spec) = body?;
    let rule = parse_spec(&state, project_id, spec, Id::new(), Utc::now()).await?;
    state
        .store
        .create_alert_rule(&rule)
        .await
        .map_err(|e| ApiError::from_store(e, "alert rule"))?;
    tracing::info!(project.id = %project_id, alert_rule.id = %rule.id, kind = rule.condition.kind(), "alert rule created");
    Ok((StatusCode::CREATED, Json(view(rule, &[]))))
}

/// List a project's alert rules with their active alerts (any role).
#[utoipa::path(get, path = "/projects/{project_id}/alert-rules", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project's rules", body = AlertRuleList), Problems),
    security(("bearer" = [])))]
async fn list_rules(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
) -> ApiResult<Json<AlertRuleList>> {
    let project_id = require_project(&state, &principal, &project_id, Role::Viewer).await?;
    let rules = state.store.list_alert_rules(project_id).await?;
    let states = state.store.alert_states(Some(project_id)).await?;
    Ok(Json(AlertRuleList {
        items: rules.into_iter().map(|r| view(r, &states)).collect(),
    }))
}

async fn rule(state: &AppState, project_id: Id, raw: &str) -> ApiResult<AlertRule> {
    let id = path_id(raw, "alert rule")?;
    state
        .store
        .get_alert_rule(project_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "alert rule"))
}

/// One alert rule with its active alerts (any role).
#[utoipa::path(get, path = "/projects/{project_id}/alert-rules/{rule_id}", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id"),
           ("rule_id" = String, Path, description = "Alert rule id")),
    responses((status = 200, description = "The rule", body = AlertRuleView), Problems),
    security(("bearer" = [])))]
async fn get_rule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, rule_id)): Path<(String, String)>,
) -> ApiResult<Json<AlertRuleView>> {
    let project_id = require_project(&state, &principal, &project_id, Role::Viewer).await?;
    let rule = rule(&state, project_id, &rule_id).await?;
    Ok(Json(rule_view(&state, rule).await?))
}

/// Replace an alert rule (owners and developers). Its active alerts stay and are
/// evaluated against the new condition; disabling it drops them.
#[utoipa::path(put, path = "/projects/{project_id}/alert-rules/{rule_id}", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id"),
           ("rule_id" = String, Path, description = "Alert rule id")),
    request_body = AlertRuleSpec,
    responses((status = 200, description = "The rule as now stored", body = AlertRuleView), Problems),
    security(("bearer" = [])))]
async fn put_rule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, rule_id)): Path<(String, String)>,
    body: Result<ApiJson<AlertRuleSpec>, ApiError>,
) -> ApiResult<Json<AlertRuleView>> {
    let project_id = require_project(&state, &principal, &project_id, Role::Developer).await?;
    let current = rule(&state, project_id, &rule_id).await?;
    let ApiJson(spec) = body?;
    let rule = parse_spec(&state, project_id, spec, current.id, current.created_at).await?;
    state
        .store
        .update_alert_rule(&rule)
        .await
        .map_err(|e| ApiError::from_store(e, "alert rule"))?;
    tracing::info!(project.id = %project_id, alert_rule.id = %rule.id, "alert rule replaced");
    Ok(Json(rule_view(&state, rule).await?))
}

/// Delete an alert rule and its active alerts, without notifying (owners and
/// developers).
#[utoipa::path(delete, path = "/projects/{project_id}/alert-rules/{rule_id}", tag = "alerts",
    params(("project_id" = String, Path, description = "Project id"),
           ("rule_id" = String, Path, description = "Alert rule id")),
    responses((status = 204, description = "Rule deleted"), Problems),
    security(("bearer" = [])))]
async fn delete_rule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, rule_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let project_id = require_project(&state, &principal, &project_id, Role::Developer).await?;
    let id = path_id(&rule_id, "alert rule")?;
    state
        .store
        .delete_alert_rule(project_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "alert rule"))?;
    tracing::info!(project.id = %project_id, alert_rule.id = %id, "alert rule deleted");
    Ok(StatusCode::NO_CONTENT)
}
