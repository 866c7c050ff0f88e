//! `/deployments/{id}/tls`: the server certificate of the deployment's TLS listeners
//! (mqtts, wss). By default Skyport's CA issues it (one-way TLS); the owner may upload a
//! custom one, for one-way or two-way (client certificate) TLS. The private key is
//! encrypted at rest and never returned. Changes reach the broker without a restart.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use skyport_settings::security::TlsType as BrokerTlsType;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{await_applied, resource_delivery, Delivery, WaitQuery};
use super::auth::ProjectKey;
use super::deployments::{actor, load, refuse_if_deleting, remove_add_on, DeploymentScope};
use super::json::{ApiJson, ApiQuery};
use super::Problems;
use crate::app::AppState;
use crate::domain::tls::{self, TlsUpload};
use crate::domain::EventType;
use crate::error::{ApiError, ApiResult};
use crate::store::{revision, Event, TlsRecord};

/// A custom certificate is shown as `expiring` this long before it expires.
const EXPIRING_WITHIN: chrono::Duration = chrono::Duration::days(30);

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(get_tls, put_tls, delete_tls))
}

/// One-way (server certificate only) or two-way (clients present certificates too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum TlsType {
    #[serde(rename = "one-way")]
    OneWay,
    #[serde(rename = "two-way")]
    TwoWay,
}

impl From<TlsType> for BrokerTlsType {
    fn from(t: TlsType) -> Self {
        match t {
            TlsType::OneWay => BrokerTlsType::OneWay,
            TlsType::TwoWay => BrokerTlsType::TwoWay,
        }
    }
}

impl From<BrokerTlsType> for TlsType {
    fn from(t: BrokerTlsType) -> Self {
        match t {
            BrokerTlsType::OneWay => TlsType::OneWay,
            BrokerTlsType::TwoWay => TlsType::TwoWay,
        }
    }
}

/// Body of `PUT /deployments/{deployment_id}/tls`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTls {
    pub tls_type: TlsType,
    /// PEM certificate chain, leaf first, then every intermediate; X.509 v3, valid now.
    #[schema(max_length = 32768, pattern = r"^[\t\n\r\x20-\x7E]*$")]
    pub cert: String,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted. Stored
    /// encrypted, never returned.
    #[schema(max_length = 32768, pattern = r"^[\t\n\r\x20-\x7E]*$")]
    pub key: String,
    /// PEM CA certificate(s) client certificates must chain to: required for `two-way`,
    /// refused for `one-way`.
    #[schema(max_length = 32768, pattern = r"^[\t\n\r\x20-\x7E]*$")]
    pub ca_cert: Option<String>,
}

/// Where the certificate in use comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsSource {
    /// Uploaded by the owner.
    Custom,
    /// Issued by Skyport's CA (see `GET /deployments/{id}/ca.pem`) and renewed by Skyport.
    Skyport,
}

/// Validity of the certificate in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsStatus {
    Active,
    /// Expires within 30 days: upload a renewed certificate.
    Expiring,
    Expired,
}

/// The deployment's TLS configuration; never the private key.
#[derive(Debug, Serialize, ToSchema)]
pub struct TlsView {
    pub tls_type: TlsType,
    pub source: TlsSource,
    pub status: TlsStatus,
    /// End of the custom certificate's validity; absent for Skyport's, which is issued
    /// when the broker starts and renewed automatically.
    pub expires_at: Option<DateTime<Utc>>,
    /// Subject distinguished name of the custom certificate (absent for Skyport's).
    pub subject: Option<String>,
    /// DNS names and IP addresses the custom certificate covers (empty for Skyport's).
    pub sans: Vec<String>,
    /// Issuer distinguished name (Skyport's CA for Skyport's certificate).
    pub issuer: String,
    /// When the custom certificate was uploaded.
    pub updated_at: Option<DateTime<Utc>>,
    /// Whether the running broker serves this configuration yet.
    #[serde(flatten)]
    pub delivery: Delivery,
}

fn view(record: Option<&TlsRecord>, ca_issuer: &str, now: DateTime<Utc>) -> TlsView {
    match record {
        None => TlsView {
            tls_type: TlsType::OneWay,
            source: TlsSource::Skyport,
            status: TlsStatus::Active,
            expires_at: None,
            subject: None,
            sans: Vec::new(),
            delivery: Delivery::default(),
            issuer: ca_issuer.to_owned(),
            updated_at: None,
        },
        Some(r) => TlsView {
            tls_type: r.tls_type.into(),
            source: TlsSource::Custom,
            status: if r.details.not_after < now {
                TlsStatus::Expired
            } else if r.details.not_after < now + EXPIRING_WITHIN {
                TlsStatus::Expiring
            } else {
                TlsStatus::Active
            },
            expires_at: Some(r.details.not_after),
            subject: Some(r.details.subject.clone()),
            sans: r.details.sans.clone(),
            delivery: Delivery::default(),
            issuer: r.details.issuer.clone(),
            updated_at: Some(r.updated_at),
        },
    }
}

/// The distinguished name of Skyport's CA.
fn ca_issuer(state: &AppState) -> String {
    use x509_parser::prelude::FromDer;
    rustls_pemfile::certs(&mut state.ca.cert_pem().as_bytes())
        .next()
        .and_then(Result::ok)
        .and_then(|der| {
            x509_parser::certificate::X509Certificate::from_der(der.as_ref())
                .ok()
                .map(|(_, cert)| cert.subject().to_string())
        })
        .unwrap_or_else(|| "Skyport CA".into())
}

/// The deployment's TLS configuration: the custom certificate, or Skyport's default.
#[utoipa::path(get, path = "/deployments/{deployment_id}/tls", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The TLS configuration", body = TlsView), Problems),
    security(("bearer" = [])))]
async fn get_tls(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<TlsView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let record = state.store.get_tls(deployment.id).await?;
    let mut tls = view(record.as_ref(), &ca_issuer(&state), Utc::now());
    tls.delivery = resource_delivery(&state, &deployment, revision::TLS).await?;
    Ok(Json(tls))
}

/// Upload a custom certificate (replacing any previous one). It is checked first: PEM,
/// X.509 v3, valid now, key matching the leaf, unencrypted key, complete chain (a leaf
/// not self-signed must be followed by its issuer; the last certificate may be issued
/// by a root clients trust), and a client CA for two-way TLS. Each failure is a 422 with
/// its own code (`tls_not_pem`, `tls_cert_not_v3`, `tls_cert_expired`,
/// `tls_cert_not_yet_valid`, `tls_key_mismatch`, `tls_key_encrypted`,
/// `tls_key_unsupported`, `tls_chain_incomplete`, `tls_ca_required`,
/// `tls_ca_not_allowed`) and leaves the configuration unchanged.
#[utoipa::path(put, path = "/deployments/{deployment_id}/tls", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    request_body = PutTls,
    responses(
        (status = 200, description = "Certificate stored and served by the running broker", body = TlsView),
        (status = 202, description = "Certificate stored, not yet served (`applied: false`)", body = TlsView),
        Problems),
    security(("bearer" = [])))]
async fn put_tls(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key, deployment }: DeploymentScope,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    ApiJson(body): ApiJson<PutTls>,
) -> ApiResult<(StatusCode, Json<TlsView>)> {
    let now = Utc::now();
    let upload = TlsUpload {
        tls_type: body.tls_type.into(),
        cert: &body.cert,
        key: &body.key,
        ca_cert: body.ca_cert.as_deref(),
    };
    let cert = tls::check(&upload, now)
        .map_err(|r| ApiError::unprocessable(r.code, r.detail).with_field(r.field))?;
    refuse_if_deleting(&deployment)?;
    let record = TlsRecord {
        tls_type: cert.tls_type,
        key_ciphertext: state
            .secret_key
            .seal(cert.key_pem.as_bytes(), &deployment.id.to_string()),
        cert_pem: cert.cert_pem,
        ca_pem: cert.ca_pem,
        details: cert.details,
        updated_at: now.trunc_subsecs(6),
    };
    let event = Event::new(
        &deployment,
        EventType::TlsUpdated,
        &actor(&key),
        serde_json::json!({
            "tls_type": TlsType::from(record.tls_type),
            "subject": record.details.subject,
            "sans": record.details.sans,
            "expires_at": record.details.not_after,
        }),
    );
    state
        .store
        .put_tls(deployment.project_id, deployment.id, &record, &event)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %deployment.id, tls_type = ?record.tls_type, "custom certificate stored");
    let mut tls = view(Some(&record), "", now);
    tls.delivery = await_applied(&state, &deployment, &wait).await?;
    Ok((tls.delivery.status(StatusCode::OK), Json(tls)))
}

/// Go back to the certificate issued by Skyport's CA (one-way TLS). Idempotent.
#[utoipa::path(delete, path = "/deployments/{deployment_id}/tls", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    responses(
        (status = 204, description = "Custom certificate removed (or there was none); the running broker serves Skyport's"),
        (status = 202, description = "Removed, the broker not yet told (`applied: false`)", body = Delivery),
        Problems),
    security(("bearer" = [])))]
async fn delete_tls(
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
        EventType::TlsRemoved,
        |state, d, event| async move { state.store.delete_tls(d.project_id, d.id, &event).await },
    )
    .await
}
