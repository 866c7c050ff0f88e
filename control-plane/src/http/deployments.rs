//! `/deployments`: MQTT broker deployments of the caller's project.
//!
//! Handlers only record intent (the spec) and answer; the reconciler does the work and
//! reports status. Writes that start work answer 202 with the transitional status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{Caller, ProjectKey};
use super::json::{ApiJson, ApiQuery};
use super::page::{PageQuery, Paged};
use super::projects::path_id;
use super::Problems;
use crate::app::AppState;
use crate::domain::{Actor, DeploymentName, DesiredState, EventType, Id, Plan, Status, Tier};
use crate::error::{ApiError, ApiResult};
use crate::store::{Deployment, DeploymentPatch, Event, NetworkRecord, StoreError};

pub use crate::domain::view::{
    DeploymentView, NetworkDomain, NetworkInternalEndpoint, NetworkView,
};

/// Broker versions this control plane can run.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.1"];

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_deployment, list_deployments))
        .routes(routes!(get_deployment, patch_deployment, delete_deployment))
        .routes(routes!(stop_deployment))
        .routes(routes!(start_deployment))
        .routes(routes!(get_ca))
}

/// Body of `POST /deployments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Name, unique in the project: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
    )]
    pub name: String,
    pub plan: Plan,
    /// Capacity; defaults to the plan's smallest tier.
    pub tier: Option<Tier>,
    /// Broker version; defaults to the newest supported.
    pub version: Option<String>,
}

/// Body of `PATCH /deployments/{id}`: fields present are changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDeployment {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
    )]
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub tier: Option<Tier>,
    pub version: Option<String>,
}

impl From<NetworkRecord> for NetworkView {
    fn from(n: NetworkRecord) -> Self {
        Self {
            domains: n
                .domains
                .into_iter()
                .map(|d| NetworkDomain {
                    domain: d.domain,
                    status: d.status,
                })
                .collect(),
            egress_addresses: n
                .nat_gateway
                .map(|nat| nat.egress_addresses)
                .unwrap_or_default(),
            internal_endpoint: n.internal_endpoint.map(|i| NetworkInternalEndpoint {
                address: i.address,
                allowed_cidrs: i.allowed_cidrs,
            }),
        }
    }
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        Self {
            id: d.id.to_string(),
            project_id: d.project_id.to_string(),
            name: d.name,
            plan: d.plan,
            tier: d.tier,
            version: d.version,
            desired_state: d.desired_state,
            status: d.status,
            status_reason: d.status_reason,
            generation: d.generation,
            observed_generation: d.observed_generation,
            applied_revision: d.applied_revision,
            endpoints: d.endpoints,
            network: None,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

fn parse_name(raw: &str) -> ApiResult<DeploymentName> {
    DeploymentName::parse(raw)
        .map_err(|msg| ApiError::unprocessable("invalid_name", msg).with_field("name"))
}

fn parse_tier(tier: Tier) -> ApiResult<Tier> {
    tier.validate()
        .map_err(|msg| ApiError::unprocessable("invalid_tier", msg).with_field("tier"))
}

fn parse_version(raw: &str) -> ApiResult<String> {
    if SUPPORTED_VERSIONS.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::unprocessable(
            "unsupported_version",
            format!(
                "version `{raw}` is not supported; supported: {}",
                SUPPORTED_VERSIONS.join(", ")
            ),
        )
        .with_field("version"))
    }
}

fn name_taken(name: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |err| match err {
        StoreError::Conflict(_) => ApiError::conflict(
            "name_taken",
            format!("a deployment named `{name}` already exists in this project"),
        )
        .with_field("name"),
        other => ApiError::from_store(other, "deployment"),
    }
}

pub(super) fn actor(key: &ProjectKey) -> Actor {
    key.0.actor.clone()
}

fn accepted(deployment: Deployment) -> Response {
    let location = format!("/api/v1/deployments/{}", deployment.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(DeploymentView::from(deployment)),
    )
        .into_response()
}

/// The caller's deployment `raw_id` (404 for another project's).
pub(super) async fn load(
    state: &AppState,
    key: &impl AsRef<Caller>,
    raw_id: &str,
) -> ApiResult<Deployment> {
    let id = path_id(raw_id, "deployment")?;
    state
        .store
        .get_deployment(key.as_ref().project_id, id)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))
}

/// The caller's deployment named by the path's `deployment_id`, with the caller's key
/// (a [`ProjectKey`], role checked by method, unless the handler asks otherwise).
///
/// Handlers that take a body extract this *before* the body, so another project's (or
/// a missing) deployment answers 404 whatever the body holds: no one learns from a 422
/// that a deployment exists in another project.
pub struct DeploymentScope<K = ProjectKey> {
    pub key: K,
    pub deployment: Deployment,
}

impl<K> axum::extract::FromRequestParts<Arc<AppState>> for DeploymentScope<K>
where
    K: axum::extract::FromRequestParts<Arc<AppState>, Rejection = ApiError>
        + AsRef<Caller>
        + Send
        + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let key = K::from_request_parts(parts, state).await?;
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|err| ApiError::bad_request("invalid_path", err.body_text()))?;
        let raw_id = params
            .get("deployment_id")
            .ok_or_else(|| ApiError::not_found("deployment"))?;
        let deployment = load(state, &key, raw_id).await?;
        Ok(Self { key, deployment })
    }
}

pub(super) fn refuse_if_deleting(d: &Deployment) -> ApiResult<()> {
    if d.status == Status::Deleting {
        return Err(ApiError::conflict(
            "deployment_deleting",
            "the deployment is being deleted",
        ));
    }
    Ok(())
}

/// `DELETE` of one of a deployment's add-ons (custom TLS, NAT gateway, internal
/// endpoint): `remove` deletes it and records `kind`'s event in one transaction, or
/// answers `false` and writes nothing when there was none. Idempotent: 204 when there
/// was none or the running broker has applied the removal, 202 with where it stands
/// otherwise (see [`super::applied`]).
pub(super) async fn remove_add_on<F, Fut>(
    state: &Arc<AppState>,
    key: &ProjectKey,
    raw_id: &str,
    wait: &super::applied::WaitQuery,
    kind: EventType,
    remove: F,
) -> ApiResult<Response>
where
    F: FnOnce(Arc<AppState>, Deployment, Event) -> Fut,
    Fut: std::future::Future<Output = Result<bool, StoreError>>,
{
    let deployment = load(state, key, raw_id).await?;
    refuse_if_deleting(&deployment)?;
    let event = Event::new(&deployment, kind, &actor(key), serde_json::json!({}));
    let id = deployment.id;
    let removed = remove(state.clone(), deployment.clone(), event)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    if !removed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    tracing::info!(deployment.id = %id, event = kind.as_str(), "add-on removed");
    let delivery = super::applied::await_applied(state, &deployment, wait).await?;
    Ok(super::applied::no_content_or_accepted(delivery))
}

/// Create a deployment. Answers 202 with status `provisioning`; poll until `running`.
/// A project has at most its quota of deployments (`GET /projects/{id}/quota`, 20 by
/// default): beyond it, 409 `quota_exceeded`.
#[utoipa::path(post, path = "/deployments", tag = "deployments",
    request_body = CreateDeployment,
    responses((status = 202, description = "Deployment accepted and provisioning", body = DeploymentView), Problems),
    security(("bearer" = [])))]
async fn create_deployment(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> ApiResult<Response> {
    let name = parse_name(&body.name)?;
    let tier = parse_tier(body.tier.unwrap_or_else(|| body.plan.default_tier()))?;
    let version = parse_version(body.version.as_deref().unwrap_or(SUPPORTED_VERSIONS[0]))?;
    let now = Utc::now();
    let deployment = Deployment {
        id: Id::new(),
        project_id: key.0.project_id,
        name: name.to_string(),
        plan: body.plan,
        tier,
        version,
        desired_state: DesiredState::Running,
        status: Status::Provisioning,
        status_reason: None,
        generation: 1,
        observed_generation: 0,
        applied_revision: 0,
        endpoints: None,
        created_at: now,
        updated_at: now,
    };
    let event = Event::new(
        &deployment,
        EventType::DeploymentCreated,
        &actor(&key),
        serde_json::json!({
            "name": deployment.name,
            "plan": deployment.plan,
            "tier": deployment.tier,
            "version": deployment.version,
        }),
    );
    state
        .store
        .create_deployment_within_quota(&deployment, &event, state.limits.deployment_quota)
        .await
        .map_err(name_taken(name.as_str()))?;
    tracing::info!(deployment.id = %deployment.id, plan = deployment.plan.as_str(), "deployment created");
    state.reconcile.notify_one();
    Ok(accepted(deployment))
}

/// List the project's deployments.
#[utoipa::path(get, path = "/deployments", tag = "deployments",
    params(PageQuery),
    responses((status = 200, description = "One page of deployments", body = Paged<DeploymentView>), Problems),
    security(("bearer" = [])))]
async fn list_deployments(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<DeploymentView>>> {
    let page = query.parse()?;
    let rows = state
        .store
        .list_deployments(key.0.project_id, page.after, page.limit + 1)
        .await?;
    Ok(Json(Paged::from_rows(
        rows,
        &page,
        |d| d.id,
        DeploymentView::from,
    )))
}

/// Get a deployment with its status, endpoints and networking add-ons (`network`).
#[utoipa::path(get, path = "/deployments/{deployment_id}", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The deployment", body = DeploymentView), Problems),
    security(("bearer" = [])))]
async fn get_deployment(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let network = state.store.network(deployment.id).await?;
    let mut view = DeploymentView::from(deployment);
    view.network = Some(network.into());
    Ok(Json(view))
}

/// Change a deployment: rename (200), or change plan, tier or version (202: the broker
/// is reconfigured and the status goes through `updating`).
#[utoipa::path(patch, path = "/deployments/{deployment_id}", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    request_body = UpdateDeployment,
    responses(
        (status = 200, description = "Renamed; nothing to roll out", body = DeploymentView),
        (status = 202, description = "Change accepted and rolling out", body = DeploymentView),
        Problems),
    security(("bearer" = [])))]
async fn patch_deployment(
    State(state): State<Arc<AppState>>,
    DeploymentScope {
        key,
        deployment: current,
    }: DeploymentScope,
    ApiJson(body): ApiJson<UpdateDeployment>,
) -> ApiResult<Response> {
    let name = body.name.as_deref().map(parse_name).transpose()?;
    let tier = body.tier.map(parse_tier).transpose()?;
    let version = body.version.as_deref().map(parse_version).transpose()?;
    refuse_if_deleting(&current)?;
    if let Some(plan) = body.plan.filter(|p| *p != current.plan) {
        let refused = super::domains::add_ons_refused_by(&state, &current, plan).await?;
        if !refused.is_empty() {
            let names: Vec<&str> = refused.iter().map(|a| a.describe()).collect();
            return Err(ApiError::conflict(
                "plan_feature_in_use",
                format!(
                    "the {} plan does not include {}; remove {} first",
                    plan.as_str(),
                    names.join(", "),
                    if names.len() == 1 { "it" } else { "them" }
                ),
            )
            .with_field("plan"));
        }
    }

    let rolls_out = body.plan.is_some_and(|p| p != current.plan)
        || tier.is_some_and(|t| t != current.tier)
        || version.as_ref().is_some_and(|v| *v != current.version);
    let renames = name.as_ref().is_some_and(|n| n.as_str() != current.name);
    if !rolls_out && !renames {
        return Ok(Json(DeploymentView::from(current)).into_response());
    }
    let status =
        (rolls_out && current.desired_state == DesiredState::Running).then_some(Status::Updating);
    let patch = DeploymentPatch {
        name: name.as_ref().map(|n| n.to_string()),
        plan: body.plan,
        tier,
        version,
        status,
        ..Default::default()
    };
    let mut events = Vec::new();
    if rolls_out {
        events.push(Event::new(
            &current,
            EventType::DeploymentTierChanged,
            &actor(&key),
            serde_json::json!({
                "from": { "plan": current.plan, "tier": current.tier, "version": current.version },
                "to": {
                    "plan": patch.plan.unwrap_or(current.plan),
                    "tier": patch.tier.unwrap_or(current.tier),
                    "version": patch.version.as_deref().unwrap_or(&current.version),
                },
            }),
        ));
    }
    let name_for_error = patch.name.clone().unwrap_or_default();
    let updated = state
        .store
        .patch_deployment(current.project_id, current.id, &patch, &events)
        .await
        .map_err(name_taken(&name_for_error))?;
    tracing::info!(deployment.id = %updated.id, generation = updated.generation, "deployment updated");
    state.reconcile.notify_one();
    if rolls_out {
        Ok(accepted(updated))
    } else {
        Ok(Json(DeploymentView::from(updated)).into_response())
    }
}

/// Delete a deployment: its broker is stopped and its data removed. Answers 202 with
/// status `deleting`; the deployment then disappears (404).
#[utoipa::path(delete, path = "/deployments/{deployment_id}", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 202, description = "Deletion accepted", body = DeploymentView), Problems),
    security(("bearer" = [])))]
async fn delete_deployment(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Response> {
    let current = load(&state, &key, &deployment_id).await?;
    if current.status == Status::Deleting {
        return Ok(accepted(current));
    }
    let patch = DeploymentPatch {
        desired_state: Some(DesiredState::Stopped),
        status: Some(Status::Deleting),
        ..Default::default()
    };
    let event = Event::new(
        &current,
        EventType::DeploymentDeleted,
        &actor(&key),
        serde_json::json!({ "name": current.name }),
    );
    let updated = state
        .store
        .patch_deployment(current.project_id, current.id, &patch, &[event])
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %updated.id, "deployment deletion requested");
    state.reconcile.notify_one();
    Ok(accepted(updated))
}

async fn set_desired(
    state: &AppState,
    key: &ProjectKey,
    raw_id: &str,
    desired: DesiredState,
    transitional: Status,
    kind: EventType,
) -> ApiResult<Response> {
    let current = load(state, key, raw_id).await?;
    refuse_if_deleting(&current)?;
    if current.desired_state == desired {
        return Ok(accepted(current));
    }
    let patch = DeploymentPatch {
        desired_state: Some(desired),
        status: Some(transitional),
        ..Default::default()
    };
    let event = Event::new(&current, kind, &actor(key), serde_json::json!({}));
    let updated = state
        .store
        .patch_deployment(current.project_id, current.id, &patch, &[event])
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %updated.id, desired = desired.as_str(), "desired state changed");
    state.reconcile.notify_one();
    Ok(accepted(updated))
}

/// Stop a deployment's broker. Sessions and configuration are kept.
#[utoipa::path(post, path = "/deployments/{deployment_id}/stop", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 202, description = "Stop accepted", body = DeploymentView), Problems),
    security(("bearer" = [])))]
async fn stop_deployment(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Response> {
    set_desired(
        &state,
        &key,
        &deployment_id,
        DesiredState::Stopped,
        Status::Stopping,
        EventType::DeploymentStopped,
    )
    .await
}

/// Start a stopped deployment.
#[utoipa::path(post, path = "/deployments/{deployment_id}/start", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 202, description = "Start accepted", body = DeploymentView), Problems),
    security(("bearer" = [])))]
async fn start_deployment(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Response> {
    set_desired(
        &state,
        &key,
        &deployment_id,
        DesiredState::Running,
        Status::Starting,
        EventType::DeploymentStarted,
    )
    .await
}

/// The CA certificate (PEM) that signs the deployment's server certificates: give it to
/// clients as their trust anchor (`mosquitto_pub --cafile ca.pem`).
#[utoipa::path(get, path = "/deployments/{deployment_id}/ca.pem", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "PEM-encoded CA certificate", body = String, content_type = "application/x-pem-file"), Problems),
    security(("bearer" = [])))]
async fn get_ca(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Response> {
    load(&state, &key, &deployment_id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.ca.cert_pem().to_owned(),
    )
        .into_response())
}
