//! `/resources`: connections to external services that rule actions use (`web_hook`,
//! `backend_redis_single`, `backend_pgsql`, `backend_mysql`, `bridge_rabbit`,
//! `bridge_nats`), in EMQX 4's shapes. A resource is checked
//! when created (an unreachable service is refused, nothing stored) and on `GET
//! /resources/{id}` (`status[].is_alive`). Secrets (`password`, `token`, `secret`) are
//! write-only: answers show `******`.

use axum::extract::Path;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{parse, JsonBody};
use super::envelope::{data, done, Data, Done};
use super::error::ApiError;
use super::rules::node;
use super::RuleErrors;
use crate::broker::Broker;
use crate::rules::registry::{NewResource, RuleError};
use crate::rules::resource::Resource;
use crate::security::Security;

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(list_resources, create_resource))
        .routes(routes!(get_resource, delete_resource))
}

/// A resource to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResourceBody {
    /// Its id (default: `resource:` and 8 hex digits).
    #[serde(default)]
    pub id: Option<String>,
    /// `web_hook` (`url`, `method`, `headers`, `request_timeout_ms`),
    /// `backend_redis_single` (`server` host:port, `database`, `password`) or
    /// `backend_pgsql` / `backend_mysql` (`server`, `database`, `user`, `password`,
    /// `pool_size`), `bridge_rabbit` (`server`, `username`, `password`, `virtual_host`,
    /// `heartbeat`) or `bridge_nats` (`server`, `user`, `password` or `token`).
    #[serde(rename = "type")]
    #[schema(example = "backend_redis_single")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A resource (secrets shown as `******`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    pub description: String,
    /// Unix ms.
    pub created_at: i64,
    /// Per node, whether the service answers (only on `GET /resources/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<ResourceStatus>>,
}

/// Whether one node reaches the service.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceStatus {
    pub node: String,
    pub is_alive: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn view(resource: &Resource, status: Option<Vec<ResourceStatus>>) -> ResourceView {
    ResourceView {
        id: resource.record.id.clone(),
        kind: resource.record.kind.clone(),
        config: resource.record.masked_config(),
        description: resource.record.description.clone(),
        created_at: resource.record.created_at,
        status,
    }
}

/// List the resources.
#[utoipa::path(get, path = "/resources", tag = "rules",
    responses((status = 200, body = Data<Vec<ResourceView>>), RuleErrors),
    security(("app_key" = [])))]
async fn list_resources(Extension(broker): Extension<Broker>) -> Json<Data<Vec<ResourceView>>> {
    let resources = broker.rules.resources().await;
    data(resources.iter().map(|r| view(r, None)).collect())
}

/// Create a resource; the service must answer (else nothing is stored).
#[utoipa::path(post, path = "/resources", tag = "rules", request_body = NewResourceBody,
    responses((status = 200, body = Data<ResourceView>), RuleErrors),
    security(("app_key" = [])))]
async fn create_resource(
    Extension(broker): Extension<Broker>,
    JsonBody(body): JsonBody,
) -> Result<Json<Data<ResourceView>>, ApiError> {
    let body: NewResourceBody = parse(body, None)?;
    let resource = broker
        .rules
        .create_resource(NewResource {
            id: body.id,
            kind: body.kind,
            config: body.config,
            description: body.description.unwrap_or_default(),
        })
        .await?;
    Ok(data(view(&resource, None)))
}

/// A resource and whether its service answers now.
#[utoipa::path(get, path = "/resources/{id}", tag = "rules",
    params(("id" = String, Path, description = "The resource's id")),
    responses((status = 200, body = Data<ResourceView>), RuleErrors),
    security(("app_key" = [])))]
async fn get_resource(
    Extension(broker): Extension<Broker>,
    Path(id): Path<String>,
) -> Result<Json<Data<ResourceView>>, ApiError> {
    let resource = broker
        .rules
        .resource(&id)
        .await
        .ok_or_else(|| ApiError::from(RuleError::NotFound(id)))?;
    let checked = resource.check().await;
    let status = ResourceStatus {
        node: node(),
        is_alive: checked.is_ok(),
        error: checked.err(),
    };
    Ok(data(view(&resource, Some(vec![status]))))
}

/// Delete a resource no rule uses.
#[utoipa::path(delete, path = "/resources/{id}", tag = "rules",
    params(("id" = String, Path, description = "The resource's id")),
    responses((status = 200, body = Done), RuleErrors),
    security(("app_key" = [])))]
async fn delete_resource(
    Extension(broker): Extension<Broker>,
    Path(id): Path<String>,
) -> Result<Json<Done>, ApiError> {
    broker.rules.delete_resource(&id).await?;
    Ok(done())
}
