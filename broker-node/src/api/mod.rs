//! The deployment HTTP API: `/healthz` and `/readyz` (open), and `/api/v4` in EMQX 4's
//! shapes, behind HTTP Basic with the deployment's app keys. Assembled with utoipa-axum so
//! every `/api/v4` route is in the OpenAPI document (`skyport-broker openapi`, committed
//! as `openapi/broker.json`).

pub mod acl;
pub mod auth;
pub mod banned;
pub mod body;
pub mod clients;
pub mod envelope;
pub mod error;
pub mod metrics;
pub mod mqtt;
pub mod resources;
pub mod rules;
pub mod subscribe;
pub mod users;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::reload::ReloadHandle;
use crate::security::Security;
use error::{ApiError, ErrorBody, Problem};

/// Flipped once the engine answers and every listener is bound; also carries the
/// handle `POST /reload` uses.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    reload: Option<ReloadHandle>,
}

impl Readiness {
    /// `POST /reload` makes `handle`'s reloader look at the settings files now.
    pub fn with_reload(mut self, handle: ReloadHandle) -> Self {
        self.reload = Some(handle);
        self
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    /// The revision of the security settings in force (`security.json`'s `revision`):
    /// the control plane waits for it to know a write has been applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

/// What the open probes look at.
#[derive(Clone)]
struct Probe {
    readiness: Readiness,
    security: Security,
}

/// Error answers of `/api/v4` endpoints, `{"code", "message"}` with EMQX 4 codes.
#[derive(IntoResponses)]
pub enum Errors {
    /// Invalid input: 104 empty name or password, 107 missing field, 108 invalid value,
    /// 109 body not JSON, 115 invalid topic filter. Nothing was changed.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing or wrong app key (code 103).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// No such user, ACL rule, ban, rule or resource (code 105).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Already exists (code 113) or a limit would be exceeded (code 108).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// Internal error (code 102).
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// Error answers of the rules and resources endpoints: [`Errors`], and on 409 also
/// problem+json for what the deployment's plan does not allow.
pub struct RuleErrors;

impl utoipa::IntoResponses for RuleErrors {
    fn responses(
    ) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        let mut responses = Errors::responses();
        let conflict = ResponseBuilder::new()
            .description(
                "Already exists (code 113) or in use (code 108); or refused by the \
                 deployment's plan, as problem+json with code `plan_not_supported` or \
                 `plan_limit_reached`. Nothing was changed.",
            )
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build();
        responses.insert("409".to_owned(), conflict.into());
        responses
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Skyport broker node API",
        description = "The deployment API of one Skyport broker node, in EMQX 4's `/api/v4` \
            shapes: answers are `{\"code\": 0, \"data\": …}`, errors `{\"code\": <EMQX code>, \
            \"message\": …}`. Authenticate with HTTP Basic `app_id:app_secret` of one of the \
            deployment's app keys; a read-only key (a console viewer's) may only read, \
            anything else answers 403 with code 403 and a message starting \
            `forbidden_role:`. Passwords are write-only.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/api/v4")),
    components(schemas(ErrorBody, Problem)),
    modifiers(&BasicAuth),
    tags(
        (name = "auth_username", description = "Built-in users identified by username"),
        (name = "auth_clientid", description = "Built-in users identified by client id"),
        (name = "acl", description = "Built-in ACL rules"),
        (name = "banned", description = "Banned client ids, usernames and peer addresses"),
        (name = "mqtt", description = "Publishing over HTTP"),
        (name = "clients", description = "Connected clients and persistent sessions"),
        (name = "subscriptions", description = "Sessions' subscriptions"),
        (name = "metrics", description = "The node's counters"),
        (name = "rules", description = "Data integrations: rules, their actions and resources"),
    )
)]
struct ApiDoc;

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "app_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The `/api/v4` routes (relative paths) and their OpenAPI document.
fn v4() -> (Router<Security>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(users::router())
        .merge(acl::router())
        .merge(banned::router())
        .merge(mqtt::router())
        .merge(subscribe::router())
        .merge(clients::router())
        .merge(metrics::router())
        .merge(rules::router())
        .merge(resources::router())
        .split_for_parts()
}

/// The OpenAPI document of `/api/v4`, as committed in `openapi/broker.json`.
pub fn openapi_json() -> String {
    let (_, doc) = v4();
    let mut text = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// Routes of the deployment API.
pub fn router(
    readiness: Readiness,
    security: crate::security::Security,
    broker: crate::broker::Broker,
) -> Router {
    let (api, _) = v4();
    let security_for_probe = security.clone();
    let prometheus = get(metrics::prometheus).layer(axum::Extension(broker.clone()));
    let api = api
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::Extension(broker.clients.clone()))
        .layer(axum::Extension(broker.subscriptions.clone()))
        .layer(axum::Extension(broker.meter.clone()))
        .layer(axum::Extension(broker))
        .layer(axum::middleware::from_fn_with_state(
            security.clone(),
            auth::require_app_key,
        ))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(security)
        .layer(cors());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/reload", axum::routing::post(reload))
        .route("/metrics", prometheus)
        .with_state(Probe {
            readiness,
            security: security_for_probe,
        })
        .nest("/api/v4", api)
}

/// Lets web pages on other origins (the control plane's web console) call the API.
/// Safe with any origin: authentication is an explicit `Authorization` header that a page
/// must know the app secret to set, never a cookie the browser adds by itself.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{header, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok",
        revision: None,
    })
}

/// `POST /reload`: looks at `security.json` (and the files it names) now, then answers
/// like `/readyz`. Open like the probes: it only makes the node read files the control
/// plane wrote, and concurrent calls share one look.
async fn reload(State(probe): State<Probe>) -> (StatusCode, Json<Status>) {
    if let Some(handle) = &probe.readiness.reload {
        handle.reload_now().await;
    }
    readyz(State(probe)).await
}

async fn readyz(State(probe): State<Probe>) -> (StatusCode, Json<Status>) {
    let revision = Some(probe.security.settings().revision);
    if probe.readiness.is_ready() {
        (
            StatusCode::OK,
            Json(Status {
                status: "ready",
                revision,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status {
                status: "starting",
                revision,
            }),
        )
    }
}
