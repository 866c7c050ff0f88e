//! `/deployments/{id}/authentication` and `/deployments/{id}/authorization`: the ordered
//! chains of sources the broker asks about every CONNECT, and every PUBLISH and
//! SUBSCRIBE. A `PUT` replaces the chain; the broker applies it within seconds without
//! restarting or dropping connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use skyport_settings::security::{
    self as broker, Authentication, Authorization, Decision, HttpMethod, HttpSource, Source,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::applied::{await_applied, resource_delivery, Delivery, WaitQuery};
use super::auth::ProjectKey;
use super::deployments::{load, refuse_if_deleting, DeploymentScope};
use super::json::{ApiJson, ApiQuery};
use super::Problems;
use crate::app::AppState;
use crate::domain::auth_chain::{self, ChainKind, Invalid};
use crate::error::{ApiError, ApiResult};
use crate::store::revision;

/// How long the reachability check of an HTTP source waits for a TCP connection.
const REACHABILITY_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(get_authentication, put_authentication))
        .routes(routes!(get_authorization, put_authorization))
}

/// Kind of a chain source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// The broker's built-in users (authentication) or ACL rules (authorization),
    /// managed through the deployment API (`/api/v4/auth_username`, `/api/v4/acl`, …).
    BuiltIn,
    /// The owner's HTTP service, as EMQX's `emqx_auth_http`.
    Http,
}

/// HTTP method of an HTTP source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Get,
    Post,
}

/// One source of a chain. `built_in` takes no other field; `http` needs `url`, the rest
/// have defaults.
///
/// Templates (`url`, header values, body values) may use `%u` username, `%c` client id,
/// `%a` peer address, `%r` protocol (`mqtt`, `mqtts`, `ws`, `wss`), `%P` password, `%p`
/// listener port and, in authorization sources only, `%A` action (`publish` or
/// `subscribe`) and `%t` topic; `%%` is a literal `%`. The service answers 200 to allow,
/// 200 with body `ignore` to defer to the next source; anything else denies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// Absolute `http` or `https` URL (required for `http`); placeholders allowed in the
    /// path and query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub url: Option<String>,
    /// `get` sends `body` as the query string; `post` (default) as a form, or as JSON
    /// when `headers` sets `content-type: application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Request parameters, name → template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BTreeMap<String, String>>,
    /// Request headers, name → template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Request timeout, 1 to 60000 ms (default 5000); a timeout denies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60000)]
    pub timeout_ms: Option<i64>,
    /// How long a decision is reused for the same request, 0 to 3600000 ms (default
    /// 60000; 0 disables the cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 3600000)]
    pub cache_ttl_ms: Option<i64>,
    /// Most idle connections kept open to the service, 1 to 1024 (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1024)]
    pub pool_size: Option<i64>,
}

/// The authentication chain (body of `PUT`, answer of `GET`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationSpec {
    /// Let in clients that no source accepts or refuses (every source said `ignore`, or
    /// the chain is empty). Default false.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Sources asked in order, at most 8, at most one `built_in`.
    #[schema(max_items = 8)]
    pub sources: Vec<SourceSpec>,
    /// Read-only, as `GET` shows it: accepted and ignored in a `PUT` body, so a document
    /// read can be written back.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<i64>)]
    pub revision: Option<IgnoredAny>,
    /// Read-only, as `GET` shows it; ignored in a `PUT` body.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<bool>)]
    pub applied: Option<IgnoredAny>,
    /// Read-only, as `GET` shows it; ignored in a `PUT` body.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<String>)]
    pub apply_status: Option<IgnoredAny>,
}

/// What no source decided, or a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoMatch {
    Allow,
    Deny,
}

/// The authorization chain (body of `PUT`, answer of `GET`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSpec {
    /// The decision when no source matches: `allow` (EMQX's default) or `deny`.
    #[serde(default = "default_no_match")]
    pub no_match: NoMatch,
    /// Also disconnect a client whose PUBLISH is denied (MQTT 3.1.1 cannot tell it
    /// otherwise). Default false.
    #[serde(default)]
    pub disconnect_on_deny: bool,
    /// Sources asked in order, first decision wins; at most 8, at most one `built_in`.
    #[schema(max_items = 8)]
    pub sources: Vec<SourceSpec>,
    /// Read-only, as `GET` shows it: accepted and ignored in a `PUT` body, so a document
    /// read can be written back.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<i64>)]
    pub revision: Option<IgnoredAny>,
    /// Read-only, as `GET` shows it; ignored in a `PUT` body.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<bool>)]
    pub applied: Option<IgnoredAny>,
    /// Read-only, as `GET` shows it; ignored in a `PUT` body.
    #[serde(default, skip_serializing)]
    #[schema(read_only, value_type = Option<String>)]
    pub apply_status: Option<IgnoredAny>,
}

fn default_no_match() -> NoMatch {
    NoMatch::Allow
}

/// Something accepted but worth knowing, e.g. an HTTP source that did not answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Warning {
    /// Stable code, e.g. `http_source_unreachable`.
    pub code: String,
    /// Index of the source concerned in `sources`.
    pub source: usize,
    pub detail: String,
}

/// The authentication chain as stored (defaults filled in), with warnings about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticationUpdated {
    pub allow_anonymous: bool,
    pub sources: Vec<SourceSpec>,
    /// Accepted but worth knowing, e.g. `http_source_unreachable`.
    pub warnings: Vec<Warning>,
    /// Whether the running broker has the chain in force.
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// The authentication chain, and whether the running broker has it in force (a `PUT`
/// accepts this document back, ignoring `revision`, `applied` and `apply_status`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticationView {
    pub allow_anonymous: bool,
    pub sources: Vec<SourceSpec>,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// The authorization chain, and whether the running broker has it in force (a `PUT`
/// accepts this document back, ignoring `revision`, `applied` and `apply_status`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationView {
    pub no_match: NoMatch,
    pub disconnect_on_deny: bool,
    pub sources: Vec<SourceSpec>,
    #[serde(flatten)]
    pub delivery: Delivery,
}

/// The authorization chain as stored (defaults filled in), with warnings about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationUpdated {
    pub no_match: NoMatch,
    pub disconnect_on_deny: bool,
    pub sources: Vec<SourceSpec>,
    /// Accepted but worth knowing, e.g. `http_source_unreachable`.
    pub warnings: Vec<Warning>,
    /// Whether the running broker has the chain in force.
    #[serde(flatten)]
    pub delivery: Delivery,
}

impl From<&Source> for SourceSpec {
    fn from(source: &Source) -> Self {
        match source {
            Source::BuiltIn => SourceSpec {
                kind: SourceType::BuiltIn,
                url: None,
                method: None,
                body: None,
                headers: None,
                timeout_ms: None,
                cache_ttl_ms: None,
                pool_size: None,
            },
            Source::Http(http) => SourceSpec {
                kind: SourceType::Http,
                url: Some(http.url.clone()),
                method: Some(match http.method {
                    HttpMethod::Get => Method::Get,
                    HttpMethod::Post => Method::Post,
                }),
                body: Some(http.body.clone()),
                headers: Some(http.headers.clone()),
                timeout_ms: Some(saturate(http.timeout_ms)),
                cache_ttl_ms: Some(saturate(http.cache_ttl_ms)),
                pool_size: Some(saturate(http.pool_size as u64)),
            },
        }
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<&Authentication> for AuthenticationSpec {
    fn from(a: &Authentication) -> Self {
        Self {
            allow_anonymous: a.allow_anonymous,
            sources: a.chain.iter().map(SourceSpec::from).collect(),
            revision: None,
            applied: None,
            apply_status: None,
        }
    }
}

impl From<&Authorization> for AuthorizationSpec {
    fn from(a: &Authorization) -> Self {
        Self {
            no_match: match a.no_match {
                Decision::Allow => NoMatch::Allow,
                Decision::Deny => NoMatch::Deny,
            },
            disconnect_on_deny: a.disconnect_on_deny,
            sources: a.chain.iter().map(SourceSpec::from).collect(),
            revision: None,
            applied: None,
            apply_status: None,
        }
    }
}

fn invalid(err: Invalid) -> ApiError {
    ApiError::unprocessable(err.code, err.detail).with_field(err.field)
}

/// Converts and checks the request's sources into the broker's chain.
fn parse_sources(sources: &[SourceSpec], kind: ChainKind) -> ApiResult<Vec<Source>> {
    if sources.len() > auth_chain::MAX_SOURCES {
        // Before looking at each: the count is the first thing wrong.
        let probe = vec![Source::BuiltIn; sources.len()];
        return Err(invalid(
            auth_chain::check_chain(&probe, kind).expect_err("too many sources"),
        ));
    }
    let chain = sources
        .iter()
        .enumerate()
        .map(|(i, s)| parse_source(s, &format!("sources[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    auth_chain::check_chain(&chain, kind).map_err(invalid)?;
    Ok(chain)
}

fn parse_source(s: &SourceSpec, at: &str) -> ApiResult<Source> {
    match s.kind {
        SourceType::BuiltIn => {
            let extra = [
                ("url", s.url.is_some()),
                ("method", s.method.is_some()),
                ("body", s.body.is_some()),
                ("headers", s.headers.is_some()),
                ("timeout_ms", s.timeout_ms.is_some()),
                ("cache_ttl_ms", s.cache_ttl_ms.is_some()),
                ("pool_size", s.pool_size.is_some()),
            ]
            .into_iter()
            .find(|(_, present)| *present);
            if let Some((name, _)) = extra {
                return Err(ApiError::unprocessable(
                    "field_not_allowed",
                    format!("`{name}` applies to `http` sources only"),
                )
                .with_field(format!("{at}.{name}")));
            }
            Ok(Source::BuiltIn)
        }
        SourceType::Http => {
            let url = s.url.clone().ok_or_else(|| {
                ApiError::unprocessable("missing_field", "an `http` source needs a `url`")
                    .with_field(format!("{at}.url"))
            })?;
            let number = |value: Option<i64>, default: u64, range, code, name: &str| {
                let value = value.unwrap_or(saturate(default));
                auth_chain::check_range(value, range, code, format!("{at}.{name}"))
                    .map(|()| value as u64)
                    .map_err(invalid)
            };
            Ok(Source::Http(HttpSource {
                url,
                method: match s.method.unwrap_or(Method::Post) {
                    Method::Get => HttpMethod::Get,
                    Method::Post => HttpMethod::Post,
                },
                body: s.body.clone().unwrap_or_default(),
                headers: s.headers.clone().unwrap_or_default(),
                timeout_ms: number(
                    s.timeout_ms,
                    broker::default_timeout_ms(),
                    &auth_chain::TIMEOUT_MS,
                    "invalid_timeout_ms",
                    "timeout_ms",
                )?,
                cache_ttl_ms: number(
                    s.cache_ttl_ms,
                    broker::default_cache_ttl_ms(),
                    &auth_chain::CACHE_TTL_MS,
                    "invalid_cache_ttl_ms",
                    "cache_ttl_ms",
                )?,
                pool_size: number(
                    s.pool_size,
                    broker::default_pool_size() as u64,
                    &auth_chain::POOL_SIZE,
                    "invalid_pool_size",
                    "pool_size",
                )? as usize,
            }))
        }
    }
}

/// Names a failure inside `sources` by its field: `sources[2].method` →
/// `invalid_method`, `sources[0].type` → `invalid_source_type`.
fn refine(err: ApiError) -> ApiError {
    let Some(field) = err.field.as_deref() else {
        return err;
    };
    if !err.code.starts_with("invalid_") || !field.starts_with("sources[") {
        return err;
    }
    let leaf = field.rsplit('.').next().unwrap_or_default();
    let code = match leaf {
        "type" => "invalid_source_type".to_owned(),
        "method" | "url" | "body" | "headers" | "timeout_ms" | "cache_ttl_ms" | "pool_size" => {
            format!("invalid_{leaf}")
        }
        _ if field
            .split('.')
            .nth(1)
            .is_some_and(|f| f == "body" || f == "headers") =>
        {
            format!("invalid_{}", field.split('.').nth(1).unwrap_or_default())
        }
        _ => "invalid_source".to_owned(),
    };
    ApiError {
        code: code.into(),
        ..err
    }
}

/// Tries a TCP connection to every HTTP source's host, at once, for at most a second;
/// the ones that fail become warnings (the service may come up later).
async fn reachability(chain: &[Source]) -> Vec<Warning> {
    let checks = chain.iter().enumerate().filter_map(|(i, s)| match s {
        Source::Http(http) => Some(async move {
            check_reachable(&http.url)
                .await
                .err()
                .map(|detail| Warning {
                    code: "http_source_unreachable".into(),
                    source: i,
                    detail,
                })
        }),
        Source::BuiltIn => None,
    });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn check_reachable(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    match tokio::time::timeout(
        REACHABILITY_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("cannot connect to {host}:{port}: {err}")),
        Err(_) => Err(format!(
            "no TCP connection to {host}:{port} within {} ms",
            REACHABILITY_TIMEOUT.as_millis()
        )),
    }
}

/// The deployment's authentication chain (the broker's default until one is set:
/// built-in users only, anonymous refused).
#[utoipa::path(get, path = "/deployments/{deployment_id}/authentication", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The authentication chain", body = AuthenticationView), Problems),
    security(("bearer" = [])))]
async fn get_authentication(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<AuthenticationView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let chain = state
        .store
        .get_authentication(deployment.id)
        .await?
        .unwrap_or_default();
    let AuthenticationSpec {
        allow_anonymous,
        sources,
        ..
    } = (&chain).into();
    Ok(Json(AuthenticationView {
        allow_anonymous,
        sources,
        delivery: resource_delivery(&state, &deployment, revision::AUTHENTICATION).await?,
    }))
}

/// Replace the deployment's authentication chain. HTTP sources are checked for
/// reachability (one second at most); an unreachable one is accepted with a warning.
#[utoipa::path(put, path = "/deployments/{deployment_id}/authentication", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    request_body = AuthenticationSpec,
    responses(
        (status = 200, description = "Chain replaced and in force on the running broker", body = AuthenticationUpdated),
        (status = 202, description = "Chain replaced, not yet in force (`applied: false`)", body = AuthenticationUpdated),
        Problems),
    security(("bearer" = [])))]
async fn put_authentication(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key: _, deployment }: DeploymentScope,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    body: Result<ApiJson<AuthenticationSpec>, ApiError>,
) -> ApiResult<(StatusCode, Json<AuthenticationUpdated>)> {
    let ApiJson(body) = body.map_err(refine)?;
    let chain = Authentication {
        allow_anonymous: body.allow_anonymous,
        chain: parse_sources(&body.sources, ChainKind::Authentication)?,
    };
    refuse_if_deleting(&deployment)?;
    state
        .store
        .put_authentication(deployment.project_id, deployment.id, &chain)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %deployment.id, sources = chain.chain.len(), "authentication chain replaced");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    let AuthenticationSpec {
        allow_anonymous,
        sources,
        ..
    } = (&chain).into();
    Ok((
        delivery.status(StatusCode::OK),
        Json(AuthenticationUpdated {
            allow_anonymous,
            sources,
            warnings: reachability(&chain.chain).await,
            delivery,
        }),
    ))
}

/// The deployment's authorization chain (the broker's default until one is set:
/// built-in ACL rules, `no_match` allow).
#[utoipa::path(get, path = "/deployments/{deployment_id}/authorization", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id")),
    responses((status = 200, description = "The authorization chain", body = AuthorizationView), Problems),
    security(("bearer" = [])))]
async fn get_authorization(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
) -> ApiResult<Json<AuthorizationView>> {
    let deployment = load(&state, &key, &deployment_id).await?;
    let chain = state
        .store
        .get_authorization(deployment.id)
        .await?
        .unwrap_or_default();
    let AuthorizationSpec {
        no_match,
        disconnect_on_deny,
        sources,
        ..
    } = (&chain).into();
    Ok(Json(AuthorizationView {
        no_match,
        disconnect_on_deny,
        sources,
        delivery: resource_delivery(&state, &deployment, revision::AUTHORIZATION).await?,
    }))
}

/// Replace the deployment's authorization chain. HTTP sources are checked for
/// reachability (one second at most); an unreachable one is accepted with a warning.
#[utoipa::path(put, path = "/deployments/{deployment_id}/authorization", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), WaitQuery),
    request_body = AuthorizationSpec,
    responses(
        (status = 200, description = "Chain replaced and in force on the running broker", body = AuthorizationUpdated),
        (status = 202, description = "Chain replaced, not yet in force (`applied: false`)", body = AuthorizationUpdated),
        Problems),
    security(("bearer" = [])))]
async fn put_authorization(
    State(state): State<Arc<AppState>>,
    DeploymentScope { key: _, deployment }: DeploymentScope,
    ApiQuery(wait): ApiQuery<WaitQuery>,
    body: Result<ApiJson<AuthorizationSpec>, ApiError>,
) -> ApiResult<(StatusCode, Json<AuthorizationUpdated>)> {
    let ApiJson(body) = body.map_err(refine)?;
    let chain = Authorization {
        no_match: match body.no_match {
            NoMatch::Allow => Decision::Allow,
            NoMatch::Deny => Decision::Deny,
        },
        disconnect_on_deny: body.disconnect_on_deny,
        chain: parse_sources(&body.sources, ChainKind::Authorization)?,
    };
    refuse_if_deleting(&deployment)?;
    state
        .store
        .put_authorization(deployment.project_id, deployment.id, &chain)
        .await
        .map_err(|e| ApiError::from_store(e, "deployment"))?;
    tracing::info!(deployment.id = %deployment.id, sources = chain.chain.len(), "authorization chain replaced");
    let delivery = await_applied(&state, &deployment, &wait).await?;
    let AuthorizationSpec {
        no_match,
        disconnect_on_deny,
        sources,
        ..
    } = (&chain).into();
    Ok((
        delivery.status(StatusCode::OK),
        Json(AuthorizationUpdated {
            no_match,
            disconnect_on_deny,
            sources,
            warnings: reachability(&chain.chain).await,
            delivery,
        }),
    ))
}
