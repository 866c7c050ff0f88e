//! `/deployments/{id}/internal-endpoint`: a second, private entry point on the same MQTT
//! ports, admitting only clients from `allowed_cidrs` (the peered VPC's ranges).
//!
//! Locally the broker listens on the platform's internal address (`--internal-address`)
//! and refuses connections from outside the ranges; on Kubernetes it is an internal
//! `LoadBalancer` Service with `loadBalancerSourceRanges`, whose address the cloud
//! assigns. Dedicated and premium plans only.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{await_applied, resource_delivery, Delivery, WaitQuery};
use super::auth::ProjectKey;
use super::deployments::{actor, load, refuse_if_deleting, remove_add_on, DeploymentScope};
use super::domains::require_plan;
use super::json::{ApiJson, ApiQuery};
use super::nat_gateway::AddOnStatus;
use super::Problems;
use crate::app::AppState;
use crate::domain::network::{self, AddOn};
use crate::domain::{Endpoints, EventType};
use crate::error::{ApiError, ApiResult};
use crate::store::{revision, Deployment, Event, InternalEndpointRecord};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(
        put_internal_endpoint,
        get_internal_endpoint,
        delete_internal_endpoint
    ))
}

/// Body of `PUT /deployments/{deployment_id}/internal-endpoint`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutInternalEndpoint {
    /// Client ranges admitted, e.g. `["10.1.0.0/16"]`; a bare address is one host. 1 to
    /// 64 ranges, without host bits set.
    pub allowed_cidrs: Vec<String>,
}

/// The MQTT URLs of the internal endpoint (the public ports, at its address).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct InternalUrls {
    pub mqtt: Option<String>,
    pub mqtts: Option<String>,
    pub ws: Option<String>,
    pub wss: Option<String>,
}

/// A deployment's internal endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct InternalEndpointView {
    pub status: AddOnStatus,
    /// The private address; absent until the platform's load balancer assigns one.
    #[schema(value_type = Option<String>)]
    pub address: Option<IpAddr>,
    pub endpoints: InternalUrls,
    pub allowed_cidrs: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Whether the running broker serves it yet.
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// `url` (as in the public endpoints) with its host replaced by `address`.
fn at_address(url: &str, host: &str, address: IpAddr) -> String {
    let address = match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    url.replacen(&format!("://{host}:"), &format!("://{address}:"), 1)
}

fn urls(public: Option<&Endpoints>, address: Option<IpAddr>) -> InternalUrls {
    let (Some(public), Some(address)) = (public, address) else {
        return InternalUrls::default();
    };
    let host = public.host.as_str();
    let map = |url: &Option<String>| url.as_deref().map(|u| at_address(u, host, address));
    InternalUrls {
        mqtt: map(&public.mqtt),
        mqtts: map(&public.mqtts),
        ws: map(&public.ws),
        wss: map(&public.wss),
    }
}

pub(super) fn view(
    deployment: &Deployment,
    record: InternalEndpointRecord,
    delivery: Delivery,
) -> InternalEndpointView {
    InternalEndpointView {
        delivery,
        status: if record.address.is_some() {
            AddOnStatus::of(delivery)
        } else {
            AddOnStatus::Provisioning
        },
        endpoints: urls(deployment.endpoints.as_ref(), record.address),
        address: record.address,
        allowed_cidrs: record.allowed_cidrs.iter().map(|c| c.to_string()).collect(),
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// Create the internal endpoint (201) or replace its allowed ranges (200). The broker
/// applies it without restarting. Not on serverless (409 `plan_not_supported`); 409
/// `internal_endpoint_unavailable` when the platform cannot make internal load
/// balancers; bad ranges are 422 `invalid_cidr`.
#[utoipa::path(put, path = "/deployments/{deployment_id}/internal-endpoint", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    request_body = PutInternalEndpoint,
    responses(
        (status = 201, description = "Created and served by the running broker", body = InternalEndpointView),
        (status = 200, description = "Allowed ranges replaced (or unchanged) and in force", body = InternalEndpointView),
        (status = 202, description = "Stored, not yet in force (`applied: false`)", body = InternalEndpointView),
        Problems),
    security(("bearer" = [])))]
async fn put_internal_endpoint(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key, deployment }: DeploymentScope,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<PutInternalEndpoint>,
) -> ApiResult<Response> {
    let cidrs = network::parse_cidrs(&body.allowed_cidrs)
        .map_err(|r| ApiError::unprocessable(r.code, r.detail).with_field(r.field))?;
    refuse_if_deleting(&deployment)?;
    require_plan(&deployment, AddOn::InternalEndpoint)?;
    if !state.network.internal_endpoints {
        return Err(ApiError::conflict(
            "internal_endpoint_unavailable",
            "this Skyport installation has no internal load balancer provider configured (--internal-lb-provider)",
        ));
    }
    let existing = state.store.network(deployment.id).await?.internal_endpoint;
    let now = Utc::now().trunc_subsecs(6);
    let record = InternalEndpointRecord {
        // Where a load balancer assigns it, the one it assigned stays across changes.
        address: state
            .network
            .internal_address
            .or(existing.as_ref().and_then(|e| e.address)),
        allowed_cidrs: cidrs,
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    if existing
        .as_ref()
        .is_some_and(|e| e.allowed_cidrs == record.allowed_cidrs)
    {
        let delivery = resource_delivery(&state, &deployment, revision::INTERNAL_ENDPOINT).await?;
        return Ok((StatusCode::OK, Json(view(&deployment, record, delivery))).into_response());
    }
    let event = Event::new(
        &deployment,
        if existing.is_some() {
            EventType::InternalEndpointUpdated
        } else {
            EventType::InternalEndpointCreated
        },
        &actor(&key),
        serde_json::json!({
            "address": record.address,
            "allowed_cidrs": record.allowed_cidrs,
        }),
    );
    state
        .store
        .put_internal_endpoint(deployment.project_id, deployment.id, &record, &event)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %deployment.id, ranges = record.allowed_cidrs.len(), "internal endpoint set");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    let status = delivery.status(if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    });
    Ok((status, Json(view(&deployment, record, delivery))).into_response())
}

/// The deployment's internal endpoint (404 when it has none).
#[utoipa::path(get, path = "/deployments/{deployment_id}/internal-endpoint", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The internal endpoint", body = InternalEndpointView), Problems),
    security(("bearer" = [])))]
async fn get_internal_endpoint(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<InternalEndpointView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let record = state
        .store
        .network(deployment.id)
        .await?
        .internal_endpoint
        .ok_or_else(|| ApiError::not_found("internal endpoint"))?;
    let delivery = resource_delivery(&state, &deployment, revision::INTERNAL_ENDPOINT).await?;
    Ok(Json(view(&deployment, record, delivery)))
}

/// Remove the internal endpoint: its listeners close (clients already connected through
/// it stay until they disconnect). Idempotent.
#[utoipa::path(delete, path = "/deployments/{deployment_id}/internal-endpoint", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    responses(
        (status = 204, description = "Removed (or there was none); the running broker closed its listeners"),
        (status = 202, description = "Removed, the broker not yet told (`applied: false`)", body = Delivery),
        Problems),
    security(("bearer" = [])))]
async fn delete_internal_endpoint(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> ApiResult<Response> {
    remove_add_on(
        &state,
        &key,
        &deployment_id,
        &wait,
        EventType::InternalEndpointDeleted,
        |state, d, event| async move {
            state
                .store
                .delete_internal_endpoint(d.project_id, d.id, &event)
                .await
        },
    )
    .await
}
