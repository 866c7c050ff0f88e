//! `/acl`: built-in ACL rules, as EMQX 4's `emqx_auth_mnesia`.
//!
//! A rule names one subject — `clientid`, `username`, or neither for every client (EMQX
//! shows those as `"all": "$all"`; `"login": "$all"`, `"username": "$all"` and
//! `"clientid": "$all"` are taken to mean the same) — plus `topic`, `action` (`pub`, `sub`,
//! `pubsub`, or `publish`, `subscribe`, `all`) and `access` (`allow`, `deny`).
//!
//! Rules are evaluated in the order they were added, first match wins; `POST` of a rule
//! with the subject and topic of an existing one replaces it in place. `POST` takes one
//! rule or an array of up to 1,000, all or nothing. Beyond EMQX, `GET /acl` lists every
//! rule in evaluation order.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{one_or_many, JsonBody};
use super::envelope::{data, done, Data, Done, PageQuery, Paged, Paging};
use super::error::{blocking, ApiError};
use super::Errors;
use crate::security::acl::{Access, AclAction, Rule, Subject, MAX_RULES_PER_REQUEST};
use crate::security::Security;

const ALL: &str = "$all";

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(list_rules, add_rules))
        .routes(routes!(list_clientid_rules))
        .routes(routes!(list_username_rules))
        .routes(routes!(list_all_rules))
        .routes(routes!(rules_of_clientid))
        .routes(routes!(rules_of_username))
        .routes(routes!(delete_clientid_rule))
        .routes(routes!(delete_username_rule))
        .routes(routes!(delete_all_rule))
}

/// An ACL rule to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// The client id the rule applies to.
    #[serde(default)]
    pub clientid: Option<String>,
    /// The username the rule applies to.
    #[serde(default)]
    pub username: Option<String>,
    /// EMQX 4.0's subject field; only `$all` is accepted.
    #[serde(default)]
    pub login: Option<String>,
    /// `$all`, as EMQX shows rules for every client.
    #[serde(default)]
    pub all: Option<String>,
    /// Topic filter: MQTT wildcards, `%c`/`%u` placeholders, or `eq <filter>` for an exact
    /// match.
    #[schema(example = "devices/%c/#")]
    pub topic: String,
    /// `pub`, `sub`, `pubsub` (or `publish`, `subscribe`, `all`).
    #[schema(example = "pubsub")]
    pub action: String,
    /// `allow` or `deny`.
    #[schema(example = "allow")]
    pub access: String,
}

/// One rule, or a batch.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum NewRules {
    One(NewRule),
    Many(Vec<NewRule>),
}

/// An ACL rule as shown: exactly one of `clientid`, `username` or `all`.
// Named apart from the data-integration rules' `RuleView` in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AclRuleView)]
pub struct RuleView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clientid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `$all` for rules that apply to every client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<String>,
    pub topic: String,
    /// `pub`, `sub` or `pubsub`.
    pub action: String,
    /// `allow` or `deny`.
    pub access: String,
}

/// A rule just added.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedRule {
    #[serde(flatten)]
    pub rule: RuleView,
    /// Always `ok`.
    pub result: String,
}

/// `data` of `POST /acl`: one rule for an object body, a list for an array.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AddedRules {
    One(AddedRule),
    Many(Vec<AddedRule>),
}

impl From<&Rule> for RuleView {
    fn from(rule: &Rule) -> Self {
        let (clientid, username, all) = match &rule.subject {
            Subject::ClientId(id) => (Some(id.clone()), None, None),
            Subject::Username(name) => (None, Some(name.clone()), None),
            Subject::All => (None, None, Some(ALL.to_owned())),
        };
        Self {
            clientid,
            username,
            all,
            topic: rule.topic.clone(),
            action: rule.action.as_str().to_owned(),
            access: rule.access.as_str().to_owned(),
        }
    }
}

impl NewRule {
    fn subject(&self) -> Result<Subject, ApiError> {
        for (field, value) in [("all", &self.all), ("login", &self.login)] {
            if let Some(value) = value.as_deref().filter(|v| *v != ALL) {
                return Err(ApiError::invalid(format!(
                    "{field} is only accepted as \"$all\" (got {value:?}); name a client with \
                     clientid or username"
                )));
            }
        }
        let mut all = self.all.is_some() || self.login.is_some();
        let mut specific = Vec::new();
        if let Some(id) = &self.clientid {
            if id == ALL {
                all = true;
            } else {
                specific.push(Subject::ClientId(id.clone()));
            }
        }
        if let Some(name) = &self.username {
            if name == ALL {
                all = true;
            } else {
                specific.push(Subject::Username(name.clone()));
            }
        }
        match (specific.pop(), specific.is_empty(), all) {
            (None, _, _) => Ok(Subject::All),
            (Some(subject), true, false) => Ok(subject),
            _ => Err(ApiError::invalid(
                "a rule applies to one subject: clientid, username, or every client ($all)",
            )),
        }
    }

    fn into_rule(self) -> Result<Rule, ApiError> {
        let subject = self.subject()?;
        let action = AclAction::parse(&self.action).ok_or_else(|| {
            ApiError::invalid(format!(
                "action must be pub, sub, pubsub, publish, subscribe or all; got {:?}",
                self.action
            ))
        })?;
        let access = Access::parse(&self.access).ok_or_else(|| {
            ApiError::invalid(format!(
                "access must be allow or deny; got {:?}",
                self.access
            ))
        })?;
        Ok(Rule::new(subject, self.topic, action, access)?)
    }
}

fn rules_where(security: &Security, keep: impl Fn(&Subject) -> bool) -> Vec<RuleView> {
    let set = security.acl().snapshot();
    set.rules
        .iter()
        .filter(|r| keep(&r.subject))
        .map(RuleView::from)
        .collect()
}

async fn remove(
    security: Security,
    subject: Subject,
    topic: String,
) -> Result<Json<Done>, ApiError> {
    blocking(move || security.acl().remove(&subject, &topic)).await?;
    Ok(done())
}

/// List every rule, in evaluation order.
#[utoipa::path(get, path = "/acl", tag = "acl", operation_id = "list_acl_rules", params(PageQuery),
    responses((status = 200, description = "A page of rules", body = Paged<RuleView>), Errors),
    security(("app_key" = [])))]
async fn list_rules(State(security): State<Security>, paging: Paging) -> Json<Paged<RuleView>> {
    paging.page(rules_where(&security, |_| true))
}

/// Add rules: one object or an array (all or nothing).
#[utoipa::path(post, path = "/acl", tag = "acl", request_body = NewRules,
    responses((status = 200, description = "Added", body = Data<AddedRules>), Errors),
    security(("app_key" = [])))]
async fn add_rules(
    State(security): State<Security>,
    JsonBody(body): JsonBody,
) -> Result<Json<Data<AddedRules>>, ApiError> {
    let (new, batch) = one_or_many::<NewRule>(body, MAX_RULES_PER_REQUEST, "rules")?;
    let rules = new
        .into_iter()
        .enumerate()
        .map(|(i, rule)| rule.into_rule().map_err(|e| e.at_item(batch.then_some(i))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut added: Vec<AddedRule> = rules
        .iter()
        .map(|rule| AddedRule {
            rule: RuleView::from(rule),
            result: "ok".to_owned(),
        })
        .collect();
    blocking(move || security.acl().add(rules)).await?;
    let answer = match added.pop() {
        Some(one) if !batch => AddedRules::One(one),
        last => {
            added.extend(last);
            AddedRules::Many(added)
        }
    };
    Ok(data(answer))
}

/// List the rules of every client id.
#[utoipa::path(get, path = "/acl/clientid", tag = "acl", params(PageQuery),
    responses((status = 200, description = "A page of rules", body = Paged<RuleView>), Errors),
    security(("app_key" = [])))]
async fn list_clientid_rules(
    State(security): State<Security>,
    paging: Paging,
) -> Json<Paged<RuleView>> {
    paging.page(rules_where(&security, |s| {
        matches!(s, Subject::ClientId(_))
    }))
}

/// List the rules of every username.
#[utoipa::path(get, path = "/acl/username", tag = "acl", params(PageQuery),
    responses((status = 200, description = "A page of rules", body = Paged<RuleView>), Errors),
    security(("app_key" = [])))]
async fn list_username_rules(
    State(security): State<Security>,
    paging: Paging,
) -> Json<Paged<RuleView>> {
    paging.page(rules_where(&security, |s| {
        matches!(s, Subject::Username(_))
    }))
}

/// List the rules that apply to every client.
#[utoipa::path(get, path = "/acl/$all", tag = "acl", params(PageQuery),
    responses((status = 200, description = "A page of rules", body = Paged<RuleView>), Errors),
    security(("app_key" = [])))]
async fn list_all_rules(State(security): State<Security>, paging: Paging) -> Json<Paged<RuleView>> {
    paging.page(rules_where(&security, |s| *s == Subject::All))
}

/// List the rules of one client id.
#[utoipa::path(get, path = "/acl/clientid/{clientid}", tag = "acl",
    params(("clientid" = String, Path, description = "Client id (percent-encoded)"), PageQuery),
    responses((status = 200, description = "A page of rules", body = Paged<RuleView>), Errors),
    security(("app_key" = [])))]
async fn rules_of_clientid(
    State(security): State<Security>,
    Path(clientid): Path<String>,
    paging: Paging,
) -> Json<Paged<RuleView>> {
    paging.page(rules_where(
        &security,
        |s| matches!(s, Subject::ClientId(id) if *id == clientid),
    ))
}

/// List the rules of one username.
#[utoipa::path(get, path = "/acl/username/{username}", tag = "acl",
    params(("username" = String, Path, description = "Username (percent-encoded)"), PageQuery),
    responses((status = 200, description = "A page of rules", body = Paged<RuleView>), Errors),
    security(("app_key" = [])))]
async fn rules_of_username(
    State(security): State<Security>,
    Path(username): Path<String>,
    paging: Paging,
) -> Json<Paged<RuleView>> {
    paging.page(rules_where(
        &security,
        |s| matches!(s, Subject::Username(n) if *n == username),
    ))
}

/// Delete a client id's rule on a topic.
#[utoipa::path(delete, path = "/acl/clientid/{clientid}/topic/{topic}", tag = "acl",
    params(
        ("clientid" = String, Path, description = "Client id (percent-encoded)"),
        ("topic" = String, Path, description = "The rule's topic, percent-encoded (`a%2F%23` for `a/#`)"),
    ),
    responses((status = 200, description = "Deleted", body = Done), Errors),
    security(("app_key" = [])))]
async fn delete_clientid_rule(
    State(security): State<Security>,
    Path((clientid, topic)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    remove(security, Subject::ClientId(clientid), topic).await
}

/// Delete a username's rule on a topic.
#[utoipa::path(delete, path = "/acl/username/{username}/topic/{topic}", tag = "acl",
    params(
        ("username" = String, Path, description = "Username (percent-encoded)"),
        ("topic" = String, Path, description = "The rule's topic, percent-encoded (`a%2F%23` for `a/#`)"),
    ),
    responses((status = 200, description = "Deleted", body = Done), Errors),
    security(("app_key" = [])))]
async fn delete_username_rule(
    State(security): State<Security>,
    Path((username, topic)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    remove(security, Subject::Username(username), topic).await
}

/// Delete the every-client rule on a topic.
#[utoipa::path(delete, path = "/acl/$all/topic/{topic}", tag = "acl",
    params(("topic" = String, Path, description = "The rule's topic, percent-encoded (`a%2F%23` for `a/#`)")),
    responses((status = 200, description = "Deleted", body = Done), Errors),
    security(("app_key" = [])))]
async fn delete_all_rule(
    State(security): State<Security>,
    Path(topic): Path<String>,
) -> Result<Json<Done>, ApiError> {
    remove(security, Subject::All, topic).await
}
