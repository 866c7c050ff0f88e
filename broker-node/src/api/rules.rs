//! `/rules` and `/actions`: the rule engine, in EMQX 4's shapes. A rule is `rawsql`
//! (EMQX's SQL), `actions: [{name, params}]`, `enabled`, `description`; answers add its
//! `for` (the topics it selects from) and per-node `metrics`. Changes apply at once,
//! with no client dropped, and survive restarts.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{parse, JsonBody};
use super::envelope::{data, done, Data, Done};
use super::error::{
    ApiError, ALREADY_EXISTS, INVALID_PARAMETER, MISSING_PARAMETER, NOT_FOUND, UNKNOWN_ERROR,
};
use super::RuleErrors;
use crate::broker::Broker;
use crate::rules::actions::{catalogue, ActionError, ActionInfo};
use crate::rules::engine::LiveRule;
use crate::rules::registry::{NewRule, RuleError, RuleUpdate};
use crate::security::Security;

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_actions))
}

/// An action of a rule, as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// An action of `GET /actions`, e.g. `republish`, `data_to_webserver`.
    pub name: String,
    /// Its params (templates use `${field}` of the rule's output).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
}

/// A rule to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRuleBody {
    /// Its id (default: `rule:` and 8 hex digits).
    #[serde(default)]
    pub id: Option<String>,
    /// `SELECT … FROM "<topic filter>"[, …] [WHERE …]`.
    #[schema(
        example = "SELECT payload.temp AS temp, clientid FROM \"sensors/#\" WHERE payload.temp > 30"
    )]
    pub rawsql: String,
    pub actions: Vec<ActionBody>,
    #[serde(default)]
    pub description: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Changes to a rule: what is left out stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleUpdateBody {
    #[serde(default)]
    pub rawsql: Option<String>,
    /// Replaces the actions; an action given again with the same name and params keeps
    /// its buffer and counters.
    #[serde(default)]
    pub actions: Option<Vec<ActionBody>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: String,
    pub rawsql: String,
    /// The topic filters and `$events/…` topics it selects from.
    #[serde(rename = "for")]
    pub for_: Vec<String>,
    pub actions: Vec<ActionView>,
    pub enabled: bool,
    pub description: String,
    /// Unix ms.
    pub created_at: i64,
    /// One entry per node.
    pub metrics: Vec<RuleMetricsView>,
}

/// A rule's counters on one node.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleMetricsView {
    pub node: String,
    /// Inputs for which FROM and WHERE held (the actions got the output).
    pub matched: u64,
    /// Inputs FROM selected but WHERE refused.
    pub no_result: u64,
    /// Inputs on which the statement failed (e.g. a function got the wrong type).
    pub failed: u64,
    /// Matched per second, over the last second.
    pub speed: f64,
    /// The highest `speed` seen.
    pub speed_max: f64,
}

/// An action of a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionView {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// Always empty (no fallback actions).
    #[schema(value_type = Vec<Object>)]
    pub fallbacks: Vec<Value>,
    pub metrics: Vec<ActionMetricsView>,
}

/// An action's counters on one node.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionMetricsView {
    pub node: String,
    /// Outputs the sink took.
    pub success: u64,
    /// Outputs the sink refused (not retried, e.g. an SQL error or a 4xx answer).
    pub failed: u64,
    /// Outputs dropped because the buffer was full (the oldest go first).
    pub dropped: u64,
    /// Outputs of failed attempts that were retried (the sink was down).
    pub retried: u64,
    /// Outputs waiting in the buffer now.
    pub queued: u64,
}

pub fn node() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into())
}

fn view(rule: &LiveRule) -> RuleView {
    let m = &rule.metrics;
    RuleView {
        id: rule.record.id.clone(),
        rawsql: rule.record.rawsql.clone(),
        for_: rule.statement.sources.clone(),
        actions: rule
            .actions
            .iter()
            .map(|a| {
                let c = &a.buffer.counters;
                ActionView {
                    id: a.record.id.clone(),
                    name: a.record.name.clone(),
                    params: a.record.params.clone(),
                    fallbacks: Vec::new(),
                    metrics: vec![ActionMetricsView {
                        node: node(),
                        success: c.success.load(Ordering::Relaxed),
                        failed: c.failed.load(Ordering::Relaxed),
                        dropped: c.dropped.load(Ordering::Relaxed),
                        retried: c.retried.load(Ordering::Relaxed),
                        queued: a.buffer.len() as u64,
                    }],
                }
            })
            .collect(),
        enabled: rule.record.enabled,
        description: rule.record.description.clone(),
        created_at: rule.record.created_at,
        metrics: vec![RuleMetricsView {
            node: node(),
            matched: m.matched.load(Ordering::Relaxed),
            no_result: m.no_result.load(Ordering::Relaxed),
            failed: m.failed.load(Ordering::Relaxed),
            speed: f64::from_bits(m.speed.load(Ordering::Relaxed)),
            speed_max: f64::from_bits(m.speed_max.load(Ordering::Relaxed)),
        }],
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        let message = e.to_string();
        match e {
            RuleError::Sql(_) | RuleError::Invalid(_) | RuleError::Unreachable(_) => {
                Self::invalid(message)
            }
            RuleError::Action(ActionError::MissingResource { .. }) | RuleError::NoActions => {
                Self::bad_request(MISSING_PARAMETER, message)
            }
            RuleError::Action(ActionError::NoSuchResource { .. }) => {
                Self::bad_request(NOT_FOUND, message)
            }
            RuleError::Action(_) => Self::invalid(message),
            RuleError::NotFound(_) => Self::not_found(message),
            RuleError::Exists(_) => Self::new(StatusCode::CONFLICT, ALREADY_EXISTS, message),
            RuleError::InUse { .. } => Self::new(StatusCode::CONFLICT, INVALID_PARAMETER, message),
            RuleError::Plan(ref plan) => Self::problem(StatusCode::CONFLICT, plan.code(), message),
            RuleError::NotStarted => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, UNKNOWN_ERROR, message)
            }
            RuleError::Store(ref cause) => Self::internal(cause),
        }
    }
}

fn actions(body: Vec<ActionBody>) -> Vec<(String, Map<String, Value>)> {
    body.into_iter().map(|a| (a.name, a.params)).collect()
}

/// List the rules with their metrics.
#[utoipa::path(get, path = "/rules", tag = "rules",
    responses((status = 200, body = Data<Vec<RuleView>>), RuleErrors),
    security(("app_key" = [])))]
async fn list_rules(Extension(broker): Extension<Broker>) -> Json<Data<Vec<RuleView>>> {
    let rules = broker.rules.rules().await;
    data(rules.iter().map(|r| view(r)).collect())
}

/// Create a rule; it applies at once. A bad statement, an unknown action or a missing
/// resource is refused and nothing is stored.
#[utoipa::path(post, path = "/rules", tag = "rules", request_body = NewRuleBody,
    responses((status = 200, body = Data<RuleView>), RuleErrors),
    security(("app_key" = [])))]
async fn create_rule(
    Extension(broker): Extension<Broker>,
    JsonBody(body): JsonBody,
) -> Result<Json<Data<RuleView>>, ApiError> {
    let body: NewRuleBody = parse(body, None)?;
    let rule = broker
        .rules
        .create_rule(NewRule {
            id: body.id,
            rawsql: body.rawsql,
            actions: actions(body.actions),
            description: body.description.unwrap_or_default(),
            enabled: body.enabled.unwrap_or(true),
        })
        .await?;
    Ok(data(view(&rule)))
}

/// A rule with its metrics.
#[utoipa::path(get, path = "/rules/{id}", tag = "rules",
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 200, body = Data<RuleView>), RuleErrors),
    security(("app_key" = [])))]
async fn get_rule(
    Extension(broker): Extension<Broker>,
    Path(id): Path<String>,
) -> Result<Json<Data<RuleView>>, ApiError> {
    let rule: Arc<LiveRule> = broker
        .rules
        .rule(&id)
        .await
        .ok_or_else(|| ApiError::from(RuleError::NotFound(id)))?;
    Ok(data(view(&rule)))
}

/// Change a rule (statement, actions, description, enabled); it applies at once.
#[utoipa::path(put, path = "/rules/{id}", tag = "rules", request_body = RuleUpdateBody,
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 200, body = Data<RuleView>), RuleErrors),
    security(("app_key" = [])))]
async fn update_rule(
    Extension(broker): Extension<Broker>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Data<RuleView>>, ApiError> {
    let body: RuleUpdateBody = parse(body, None)?;
    let rule = broker
        .rules
        .update_rule(
            &id,
            RuleUpdate {
                rawsql: body.rawsql,
                actions: body.actions.map(actions),
                description: body.description,
                enabled: body.enabled,
            },
        )
        .await?;
    Ok(data(view(&rule)))
}

/// Delete a rule and what its actions still had buffered.
#[utoipa::path(delete, path = "/rules/{id}", tag = "rules",
    params(("id" = String, Path, description = "The rule's id")),
    responses((status = 200, body = Done), RuleErrors),
    security(("app_key" = [])))]
async fn delete_rule(
    Extension(broker): Extension<Broker>,
    Path(id): Path<String>,
) -> Result<Json<Done>, ApiError> {
    broker.rules.delete_rule(&id).await?;
    Ok(done())
}

/// The actions rules can use, with their params.
#[utoipa::path(get, path = "/actions", tag = "rules",
    responses((status = 200, body = Data<Vec<ActionInfo>>), RuleErrors),
    security(("app_key" = [])))]
async fn list_actions() -> Json<Data<Vec<ActionInfo>>> {
    data(catalogue())
}
