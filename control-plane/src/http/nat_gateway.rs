//! `/deployments/{id}/nat-gateway`: fixed egress addresses for everything the
//! deployment's broker opens outwards (external authentication and authorization
//! requests, later integrations), so the owner's firewalls can allow exactly them.
//!
//! The addresses come from the platform (`--nat-egress-address`): locally the broker
//! binds its outbound sockets to them; on Kubernetes the pods move to the NAT'd egress
//! (see the Kubernetes driver). Dedicated and premium plans only.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{await_applied, resource_delivery, Delivery, WaitQuery};
use super::auth::ProjectKey;
use super::deployments::{actor, load, refuse_if_deleting, remove_add_on};
use super::domains::require_plan;
use super::json::ApiQuery;
use super::Problems;
use crate::app::AppState;
use crate::domain::network::AddOn;
use crate::domain::EventType;
use crate::error::{ApiError, ApiResult};
use crate::store::{revision, Event, NatGatewayRecord};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(
        put_nat_gateway,
        get_nat_gateway,
        delete_nat_gateway
    ))
}

/// Whether an add-on is in force on the broker yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddOnStatus {
    /// Being applied to the broker.
    Provisioning,
    /// In force.
    Active,
}

impl AddOnStatus {
    /// `Active` once the running broker has applied the add-on.
    pub fn of(delivery: Delivery) -> Self {
        if delivery.applied {
            AddOnStatus::Active
        } else {
            AddOnStatus::Provisioning
        }
    }
}

/// A deployment's NAT gateway.
#[derive(Debug, Serialize, ToSchema)]
pub struct NatGatewayView {
    pub status: AddOnStatus,
    /// The addresses the broker's outbound connections leave from.
    #[schema(value_type = Vec<String>)]
    pub egress_addresses: Vec<IpAddr>,
    pub created_at: DateTime<Utc>,
    /// Whether the running broker uses it yet.
    #[serde(flatten)]
    pub delivery: Delivery,
}

fn view(record: NatGatewayRecord, delivery: Delivery) -> NatGatewayView {
    NatGatewayView {
        status: AddOnStatus::of(delivery),
        egress_addresses: record.egress_addresses,
        created_at: record.created_at,
        delivery,
    }
}

/// Create the deployment's NAT gateway (201), or return the existing one (200): its
/// egress addresses never change while it exists. Not on serverless (409
/// `plan_not_supported`); 409 `nat_gateway_unavailable` when the platform has no egress
/// addresses configured.
#[utoipa::path(put, path = "/deployments/{deployment_id}/nat-gateway", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    responses(
        (status = 201, description = "Created and used by the running broker", body = NatGatewayView),
        (status = 202, description = "Created; `provisioning` (`applied: false`) until the broker uses it", body = NatGatewayView),
        (status = 200, description = "It already existed", body = NatGatewayView),
        Problems),
    security(("bearer" = [])))]
async fn put_nat_gateway(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> ApiResult<Response> {
    let deployment = load(&state, &key, &deployment_id).await?;
    refuse_if_deleting(&deployment)?;
    require_plan(&deployment, AddOn::NatGateway)?;
    if state.network.egress_addresses.is_empty() {
        return Err(ApiError::conflict(
            "nat_gateway_unavailable",
            "this Skyport installation has no NAT egress addresses configured (--nat-egress-address)",
        ));
    }
    let record = NatGatewayRecord {
        egress_addresses: state.network.egress_addresses.clone(),
        created_at: Utc::now().trunc_subsecs(6),
    };
    let event = Event::new(
        &deployment,
        EventType::NatGatewayCreated,
        &actor(&key),
        serde_json::json!({ "egress_addresses": record.egress_addresses }),
    );
    let (record, created) = state
        .store
        .put_nat_gateway(deployment.project_id, deployment.id, &record, &event)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    let (status, delivery) = if created {
        tracing::info!(deployment.id = %deployment.id, "NAT gateway created");
        let delivery = await_applied(&state, &deployment, &wait).await?;
        (delivery.status(StatusCode::CREATED), delivery)
    } else {
        let deployment = load(&state, &key, &deployment_id).await?;
        let delivery = resource_delivery(&state, &deployment, revision::NAT_GATEWAY).await?;
        (StatusCode::OK, delivery)
    };
    Ok((status, Json(view(record, delivery))).into_response())
}

/// The deployment's NAT gateway (404 when it has none).
#[utoipa::path(get, path = "/deployments/{deployment_id}/nat-gateway", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The NAT gateway", body = NatGatewayView), Problems),
    security(("bearer" = [])))]
async fn get_nat_gateway(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<NatGatewayView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let record = state
        .store
        .network(deployment.id)
        .await?
        .nat_gateway
        .ok_or_else(|| ApiError::not_found("NAT gateway"))?;
    let delivery = resource_delivery(&state, &deployment, revision::NAT_GATEWAY).await?;
    Ok(Json(view(record, delivery)))
}

/// Remove the NAT gateway: outbound connections leave from the default address again.
/// Idempotent.
#[utoipa::path(delete, path = "/deployments/{deployment_id}/nat-gateway", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    responses(
        (status = 204, description = "Removed (or there was none); the running broker no longer uses it"),
        (status = 202, description = "Removed, the broker not yet told (`applied: false`)", body = Delivery),
        Problems),
    security(("bearer" = [])))]
async fn delete_nat_gateway(
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
        EventType::NatGatewayDeleted,
        |state, d, event| async move {
            state
                .store
                .delete_nat_gateway(d.project_id, d.id, &event)
                .await
        },
    )
    .await
}
