//! The `/api/v1` REST API: one module per resource, assembled with utoipa-axum so every
//! route is in the OpenAPI document by construction.

pub mod alert_channels;
pub mod alert_rules;
pub mod api_keys;
pub mod app_keys;
pub mod applied;
pub mod auth;
pub mod auth_chains;
pub mod deployments;
pub mod domains;
pub mod events;
pub mod health;
pub mod idempotency;
pub mod internal_endpoint;
pub mod json;
pub mod members;
pub mod metering;
pub mod nat_gateway;
pub mod page;
pub mod projects;
pub mod quotas;
pub mod rate_limit;
pub mod reports;
pub mod session;
pub mod sessions;
pub mod tls;
pub mod users;

use std::sync::Arc;

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::Problem;

/// Error answers every endpoint may give, as problem documents.
#[derive(IntoResponses)]
pub enum Problems {
    /// Malformed JSON (`malformed_json`, also for characters after the JSON document),
    /// bad query parameter or cursor.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Missing or invalid bearer token or session.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The caller may not perform this operation (e.g. `forbidden_role`, `csrf_failed`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource in the caller's project (checked before the body is read, so
    /// another project's deployment is 404 whatever the body).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The request conflicts with the current state (e.g. `name_taken`,
    /// `quota_exceeded`, `idempotency_key_in_use`).
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// The body is JSON but invalid (e.g. `invalid_name`, `unknown_field`), or an
    /// `Idempotency-Key` was reused with another request (`idempotency_key_reused`).
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// Too many requests with this credential (`rate_limited`): retry after
    /// `Retry-After` seconds; `RateLimit` and `RateLimit-Policy` tell the budget.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(Problem),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Skyport control plane API",
        description = "Create and manage MQTT broker deployments. Authenticate with \
            `Authorization: Bearer <token>`: the admin token manages projects, their API \
            keys and console users; a project API key manages that project's deployments. \
            People sign in with `POST /session` (the web console does), which sets an \
            HttpOnly session cookie; with it, unsafe requests carry the session's \
            `X-CSRF-Token`, and `/deployments…` requests name the project in \
            `X-Skyport-Project`. Keys and members have a role per project: `viewer` reads, \
            `developer` also changes deployments, `owner` also manages members and API \
            keys; a lower role is refused with 403 `forbidden_role`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/api/v1")),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "projects", description = "Tenants and their API keys"),
        (name = "people", description = "Console users, sign-in sessions and project members"),
        (name = "deployments", description = "MQTT broker deployments"),
        (name = "networking", description = "Custom domains, NAT gateway and internal endpoint"),
        (name = "metering", description = "Usage: sessions, TPS, messages and traffic"),
        (name = "alerts", description = "Alert rules on deployments, and the channels (webhook, email) they notify"),
        (name = "operations", description = "Health and readiness probes"),
        (name = "internal", description = "Called by broker nodes, not by users; served under /internal/v1"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "Web-console session from `POST /session`; unsafe methods also need `X-CSRF-Token`",
            ))),
        );
    }
}

/// Documents the `Idempotency-Key` header on every `POST`.
struct IdempotencyKeyHeader;

impl Modify for IdempotencyKeyHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        for item in openapi.paths.paths.values_mut() {
            let Some(post) = item.post.as_mut() else {
                continue;
            };
            let header = ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(
                    "Makes the POST safe to retry: within 24 hours the same key and \
                     request get the first answer again (with `Idempotent-Replayed: true`); \
                     the same key with another request is 422 `idempotency_key_reused`. \
                     1 to 255 visible ASCII characters, per API key or person.",
                ))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255)),
                ))
                .build();
            post.parameters.get_or_insert_with(Vec::new).push(header);
        }
    }
}

/// The API router (paths relative to `/api/v1`) and its OpenAPI document.
pub fn router() -> (axum::Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(projects::router())
        .merge(quotas::router())
        .merge(health::router())
        .merge(api_keys::router())
        .merge(session::router())
        .merge(users::router())
        .merge(members::router())
        .merge(deployments::router())
        .merge(app_keys::router())
        .merge(auth_chains::router())
        .merge(tls::router())
        .merge(sessions::router())
        .merge(domains::router())
        .merge(nat_gateway::router())
        .merge(internal_endpoint::router())
        .merge(events::router())
        .merge(metering::router())
        .merge(alert_channels::router())
        .merge(alert_rules::router())
        .split_for_parts();
    // After the merge: the routers' paths are not in `ApiDoc` itself.
    IdempotencyKeyHeader.modify(&mut doc);
    reports::document(&mut doc);
    (api, doc)
}

/// The OpenAPI document as committed in `openapi/skyport.json`.
pub fn openapi_json() -> String {
    let (_, doc) = router();
    let mut text = doc
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json`.
pub async fn serve_openapi(doc: Arc<utoipa::openapi::OpenApi>) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}
