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

use super::auth::ProjectKey;
use super::deployments::{actor, load, refuse_if_deleting, remove_add_on};
use super::domains::require_plan;
use super::Problems;
use crate::app::AppState;
use crate::domain::network::AddOn;
use crate::domain::EventType;
use crate::error::{ApiError, ApiResult};
use crate::store::{Deployment, Event, NatGatewayRecord};

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
    /// `Active` once the broker reflects the deployment's current spec.
    pub fn of(deployment: &Deployment) -> Self {
        if deployment.observed_generation >= deployment.generation {
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
}

fn view(deployment: &Deployment, record: NatGatewayRecord) -> NatGatewayView {
    NatGatewayView {
        status: AddOnStatus::of(deployment),
        egress_addresses: record.egress_addresses,
        created_at: record.created_at,
    }
}

/// Create the deployment's NAT gateway (201), or return the existing one (200): its
/// egress addresses never change while it exists. Not on serverless (409
/// `plan_not_supported`); 409 `nat_gateway_unavailable` when the platform has no egress
/// addresses configured.
#[utoipa::path(put, path = "/deployments/{deployment_id}/nat-gateway", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses(
        (status = 201, description = "Created; `provisioning` until the broker uses it", body = NatGatewayView),
        (status = 200, description = "It already existed", body = NatGatewayView),
        Problems),
    security(("bearer" = [])))]
async fn put_nat_gateway(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
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
    let deployment = load(&state, &key, &deployment_id).await?;
    let status = if created {
        tracing::info!(deployment.id = %deployment.id, "NAT gateway created");
        state.reconcile.notify_one();
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&deployment, record))).into_response())
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
    Ok(Json(view(&deployment, record)))
}

/// Remove the NAT gateway: outbound connections leave from the default address again.
/// Idempotent.
#[utoipa::path(delete, path = "/deployments/{deployment_id}/nat-gateway", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 204, description = "Removed (or there was none)"), Problems),
    security(("bearer" = [])))]
async fn delete_nat_gateway(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<StatusCode> {
    remove_add_on(
        &state,
        &key,
        &deployment_id,
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
