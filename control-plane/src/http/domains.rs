//! `/deployments/{id}/domains`: custom domains, served by the broker by SNI once their
//! DNS record is verified (see [`crate::domains`] for the verification flow and
//! [`crate::domain::network`] for the rules and problem codes).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use skyport_settings::security::TlsType;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{
    await_applied, no_content_or_accepted, resource_deliveries, resource_delivery, Delivery,
    WaitQuery,
};
use super::auth::ProjectKey;
use super::deployments::{actor, load, refuse_if_deleting, DeploymentScope};
use super::json::{ApiJson, ApiQuery};
use super::Problems;
use crate::app::AppState;
use crate::domain::network::{self, AddOn, DnsRecord, DomainName};
use crate::domain::tls::{self, TlsUpload};
use crate::domain::{EventType, Plan};
use crate::error::{ApiError, ApiResult};
use crate::store::{
    revision, CertSource, Deployment, DomainRecord, DomainStatus, Event, StoreError,
};

/// Most custom domains one deployment may have.
pub const MAX_DOMAINS: usize = 50;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(add_domain, list_domains))
        .routes(routes!(get_domain, delete_domain))
        .routes(routes!(verify_domain))
}

/// Body of `POST /deployments/{deployment_id}/domains`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomain {
    /// Host name clients will use, e.g. `mqtt.example.com`. Unicode names are stored as
    /// punycode; `*.example.com` needs an uploaded certificate covering it.
    #[schema(min_length = 1, max_length = 253)]
    pub domain: String,
    /// PEM certificate chain for the domain (leaf first). Without it, Skyport's CA
    /// issues one (see `GET /deployments/{id}/ca.pem`).
    #[schema(max_length = 32768, pattern = r"^[\t\n\r\x20-\x7E]*$")]
    pub certificate: Option<String>,
    /// PEM private key of `certificate`, unencrypted; stored encrypted, never returned.
    #[schema(max_length = 32768, pattern = r"^[\t\n\r\x20-\x7E]*$")]
    pub private_key: Option<String>,
}

/// The certificate a domain is served with (never its key).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainCertificate {
    pub source: CertSource,
    pub expires_at: DateTime<Utc>,
}

/// A custom domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    /// `pending_dns` until the DNS record below is seen, then `active` (served by SNI).
    pub status: DomainStatus,
    /// The record to create at the domain's DNS provider.
    pub dns_record: Option<DnsRecord>,
    pub certificate: DomainCertificate,
    /// What DNS answered at the last check: `cname`, `addresses`, and `error` when the
    /// lookup itself failed.
    #[schema(value_type = Option<Object>)]
    pub observed: Option<serde_json::Value>,
    /// DNS checks made so far.
    pub checks: i64,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When the background check looks again (pending domains only).
    pub next_check_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Whether the running broker serves the domain as it stands (an active domain is
    /// `pending` until the broker serves its certificate; a domain waiting for its DNS
    /// record has nothing to apply).
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// `{"items": [...]}`: a deployment's domains, by name (at most 50, so never paged).
#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    pub items: Vec<DomainView>,
    /// Always absent: the list is never cut.
    pub next_cursor: Option<String>,
}

fn view(deployment: &Deployment, record: DomainRecord, delivery: Delivery) -> DomainView {
    DomainView {
        delivery,
        dns_record: crate::domains::required_record(deployment, &record.domain),
        status: record.status,
        certificate: DomainCertificate {
            source: record.cert_source,
            expires_at: record.cert_expires_at,
        },
        observed: record.observed,
        checks: record.checks,
        last_checked_at: record.last_checked_at,
        next_check_at: record.next_check_at,
        verified_at: record.verified_at,
        created_at: record.created_at,
        domain: record.domain,
    }
}

/// Refuses an add-on the deployment's plan does not include.
pub(super) fn require_plan(deployment: &Deployment, add_on: AddOn) -> ApiResult<()> {
    if add_on.allowed_on(deployment.plan) {
        return Ok(());
    }
    Err(ApiError::conflict(
        "plan_not_supported",
        format!(
            "the {} plan does not include {}; use dedicated or premium",
            deployment.plan.as_str(),
            add_on.describe()
        ),
    ))
}

/// The domain `raw` of the deployment (404 when it has no such domain).
async fn load_domain(
    state: &AppState,
    deployment: &Deployment,
    raw: &str,
) -> ApiResult<DomainRecord> {
    let name = DomainName::parse(raw).map_err(|_| ApiError::not_found("domain"))?;
    state
        .store
        .get_domain(deployment.id, name.as_str())
        .await
        .map_err(|e| ApiError::from_store(e, "domain"))
}

/// The certificate a new domain is served with: the upload, checked, or one issued by
/// Skyport's CA. Returns (source, chain PEM, key PEM, expiry).
fn certificate(
    state: &AppState,
    domain: &DomainName,
    body: &AddDomain,
) -> ApiResult<(CertSource, String, String, DateTime<Utc>)> {
    let upload = match (&body.certificate, &body.private_key) {
        (Some(cert), Some(key)) => Some((cert.as_str(), key.as_str())),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::unprocessable(
                "certificate_incomplete",
                "send `certificate` and `private_key` together, or neither for a certificate from Skyport's CA",
            )
            .with_field(if body.certificate.is_some() {
                "private_key"
            } else {
                "certificate"
            }))
        }
    };
    let (source, chain, key) = match upload {
        Some((cert, key)) => (CertSource::Uploaded, cert.to_owned(), key.to_owned()),
        None if domain.is_wildcard() => return Err(ApiError::unprocessable(
            "wildcard_needs_certificate",
            "Skyport's CA does not issue wildcard certificates: upload one covering the wildcard",
        )
        .with_field("certificate")),
        None => {
            let issued = state
                .ca
                .issue_server_cert(&[domain.to_string()], Utc::now())
                .map_err(ApiError::internal)?;
            (CertSource::Skyport, issued.chain_pem, issued.key_pem)
        }
    };
    let checked = tls::check(
        &TlsUpload {
            tls_type: TlsType::OneWay,
            cert: &chain,
            key: &key,
            ca_cert: None,
        },
        Utc::now(),
    )
    .map_err(|r| {
        let field = match r.field {
            "key" => "private_key",
            _ => "certificate",
        };
        ApiError::unprocessable(r.code, r.detail).with_field(field)
    })?;
    if !network::covers(&checked.details.sans, domain) {
        return Err(ApiError::unprocessable(
            "certificate_domain_mismatch",
            format!(
                "the certificate covers {:?}, not `{domain}`",
                checked.details.sans
            ),
        )
        .with_field("certificate"));
    }
    Ok((
        source,
        checked.cert_pem,
        checked.key_pem,
        checked.details.not_after,
    ))
}

/// Add a custom domain. Answers 201 with status `pending_dns` and the DNS record to
/// create (`dns_record`): a CNAME to the deployment's default host (A/AAAA when that
/// host is an address). Skyport then checks DNS in the background with back-off, or at
/// once on `POST …/verify`. Not on serverless (409 `plan_not_supported`); a domain any
/// deployment already has is 409 `domain_taken`; the deployment must have run once
/// (409 `deployment_not_ready`, it has no host yet). Invalid names, mismatched or
/// expired certificates are 422 (`invalid_domain`, `certificate_incomplete`,
/// `wildcard_needs_certificate`, `certificate_domain_mismatch`, and the `tls_*` codes of
/// `PUT …/tls`).
#[utoipa::path(post, path = "/deployments/{deployment_id}/domains", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    request_body = AddDomain,
    responses((status = 201, description = "Domain added, waiting for its DNS record", body = DomainView), Problems),
    security(("bearer" = [])))]
async fn add_domain(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key, deployment }: DeploymentScope,
    ApiJson(body): ApiJson<AddDomain>,
) -> ApiResult<Response> {
    let domain = DomainName::parse(&body.domain)
        .map_err(|r| ApiError::unprocessable(r.code, r.detail).with_field(r.field))?;
    refuse_if_deleting(&deployment)?;
    require_plan(&deployment, AddOn::CustomDomain)?;
    if deployment.endpoints.is_none() {
        return Err(ApiError::conflict(
            "deployment_not_ready",
            "the deployment has no default host yet to point the domain at; add domains once it has run",
        ));
    }
    let existing = state.store.network(deployment.id).await?;
    if existing.domains.len() >= MAX_DOMAINS {
        return Err(ApiError::conflict(
            "domain_limit_reached",
            format!("a deployment has at most {MAX_DOMAINS} custom domains"),
        ));
    }
    let (source, cert_pem, key_pem, expires_at) = certificate(&state, &domain, &body)?;
    let now = Utc::now().trunc_subsecs(6);
    let record = DomainRecord {
        domain: domain.to_string(),
        deployment_id: deployment.id,
        status: DomainStatus::PendingDns,
        cert_source: source,
        key_ciphertext: state
            .secret_key
            .seal(key_pem.as_bytes(), &deployment.id.to_string()),
        cert_pem,
        cert_expires_at: expires_at,
        observed: None,
        checks: 0,
        last_checked_at: None,
        next_check_at: Some(crate::domains::next_check_at(
            state.network.dns_recheck_interval,
            0,
            now,
        )),
        verified_at: None,
        created_at: now,
    };
    let event = Event::new(
        &deployment,
        EventType::DomainAdded,
        &actor(&key),
        serde_json::json!({
            "domain": record.domain,
            "certificate": record.cert_source,
            "record": crate::domains::required_record(&deployment, &record.domain),
        }),
    );
    state
        .store
        .create_domain(deployment.project_id, &record, &event)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "domain_taken",
                format!("`{domain}` is already a custom domain of a deployment"),
            )
            .with_field("domain"),
            other => ApiError::from_store(other, "deployment"),
        })?;
    tracing::info!(deployment.id = %deployment.id, %domain, source = source.as_str(), "custom domain added");
    let location = format!(
        "/api/v1/deployments/{}/domains/{}",
        deployment.id, record.domain
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        // Waiting for its DNS record: nothing for the broker to apply yet.
        Json(view(&deployment, record, Delivery::default())),
    )
        .into_response())
}

/// List the deployment's custom domains.
#[utoipa::path(get, path = "/deployments/{deployment_id}/domains", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The domains, by name", body = DomainList), Problems),
    security(("bearer" = [])))]
async fn list_domains(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<DomainList>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let network = state.store.network(deployment.id).await?;
    let delivery = resource_deliveries(&state, &deployment).await?;
    Ok(Json(DomainList {
        items: network
            .domains
            .into_iter()
            .map(|d| {
                let delivery = delivery(&revision::domain(&d.domain));
                view(&deployment, d, delivery)
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Get one custom domain, with what DNS answered at its last check.
#[utoipa::path(get, path = "/deployments/{deployment_id}/domains/{domain}", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"),
           ("domain" = String, Path, description = "The custom domain")),
    responses((status = 200, description = "The domain", body = DomainView), Problems),
    security(("bearer" = [])))]
async fn get_domain(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path((deployment_id, domain)): Path<(String, String)>,
) -> ApiResult<Json<DomainView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let record = load_domain(&state, &deployment, &domain).await?;
    let delivery =
        resource_delivery(&state, &deployment, &revision::domain(&record.domain)).await?;
    Ok(Json(view(&deployment, record, delivery)))
}

/// Remove a custom domain: the broker stops serving it (clients connected through it
/// stay connected; new handshakes get the default certificate).
#[utoipa::path(delete, path = "/deployments/{deployment_id}/domains/{domain}", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"),
           ("domain" = String, Path, description = "The custom domain"), WaitQuery),
    responses(
        (status = 204, description = "Removed; the running broker no longer serves it"),
        (status = 202, description = "Removed, the broker not yet told (`applied: false`)", body = Delivery),
        Problems),
    security(("bearer" = [])))]
async fn delete_domain(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path((deployment_id, domain)): Path<(String, String)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> ApiResult<Response> {
    let deployment = load(&state, &key, &deployment_id).await?;
    refuse_if_deleting(&deployment)?;
    let record = load_domain(&state, &deployment, &domain).await?;
    let event = Event::new(
        &deployment,
        EventType::DomainRemoved,
        &actor(&key),
        serde_json::json!({ "domain": record.domain }),
    );
    state
        .store
        .delete_domain(deployment.project_id, deployment.id, &record.domain, &event)
        .await
        .map_err(|e| ApiError::from_store(e, "domain"))?;
    tracing::info!(deployment.id = %deployment.id, domain = %record.domain, "custom domain removed");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    Ok(no_content_or_accepted(delivery))
}

/// Check the domain's DNS record now. A match makes it `active` (the broker serves it
/// within seconds); otherwise it stays `pending_dns` and `observed` says what DNS
/// answered. An active domain is returned as it is.
#[utoipa::path(post, path = "/deployments/{deployment_id}/domains/{domain}/verify", tag = "networking",
    params(("deployment_id" = String, Path, description = "Deployment id"),
           ("domain" = String, Path, description = "The custom domain"), WaitQuery),
    responses(
        (status = 200, description = "The domain after the check (when it became active: served by the running broker)", body = DomainView),
        (status = 202, description = "Verified and active, not yet served by the broker (`applied: false`)", body = DomainView),
        Problems),
    security(("bearer" = [])))]
async fn verify_domain(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path((deployment_id, domain)): Path<(String, String)>,
    ApiQuery(wait): ApiQuery<WaitQuery>,
) -> ApiResult<(StatusCode, Json<DomainView>)> {
    let deployment = load(&state, &key, &deployment_id).await?;
    refuse_if_deleting(&deployment)?;
    let record = load_domain(&state, &deployment, &domain).await?;
    let resource = revision::domain(&record.domain);
    if record.status == DomainStatus::Active {
        let delivery = resource_delivery(&state, &deployment, &resource).await?;
        return Ok((StatusCode::OK, Json(view(&deployment, record, delivery))));
    }
    let updated = match crate::domains::check(&state, &deployment, &record, &actor(&key)).await {
        Ok(updated) => updated,
        // Verified (or removed) concurrently: show what is there now.
        Err(StoreError::Stale) => load_domain(&state, &deployment, &domain).await?,
        Err(other) => return Err(ApiError::from_store(other, "domain")),
    };
    let delivery = if updated.status == DomainStatus::Active {
        await_applied(&state, &deployment, &wait).await?
    } else {
        resource_delivery(&state, &deployment, &resource).await?
    };
    Ok((
        delivery.status(StatusCode::OK),
        Json(view(&deployment, updated, delivery)),
    ))
}

/// The add-ons a deployment has that `plan` does not allow, for plan changes.
pub(super) async fn add_ons_refused_by(
    state: &AppState,
    deployment: &Deployment,
    plan: Plan,
) -> ApiResult<Vec<AddOn>> {
    let network = state.store.network(deployment.id).await?;
    let attached = [
        (AddOn::CustomDomain, !network.domains.is_empty()),
        (AddOn::NatGateway, network.nat_gateway.is_some()),
        (AddOn::InternalEndpoint, network.internal_endpoint.is_some()),
    ];
    Ok(attached
        .into_iter()
        .filter(|(add_on, present)| *present && !add_on.allowed_on(plan))
        .map(|(add_on, _)| add_on)
        .collect())
}
