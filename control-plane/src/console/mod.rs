//! The web console: static assets compiled into the binary (nothing is read from disk
//! or downloaded at run time), served at `/` and `/console/…`. The console is plain
//! JavaScript modules, so there is no build step; its API clients are generated from the
//! committed OpenAPI documents by [`client`] and committed beside the hand-written modules.

pub mod client;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// A JavaScript module of the console.
macro_rules! script {
    ($file:literal) => {
        (
            $file,
            "text/javascript; charset=utf-8",
            include_bytes!(concat!("../../console/", $file)),
        )
    };
}

/// Every asset: (path under `/console/`, content type, bytes).
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../console/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../console/style.css"),
    ),
    script!("app.js"),
    script!("api.js"),
    script!("api.gen.js"),
    script!("broker.gen.js"),
    script!("ui.js"),
    script!("chart.js"),
    script!("monitoring.js"),
    script!("networking.js"),
    script!("security.js"),
    script!("chains.js"),
    script!("keys.js"),
    script!("sessions.js"),
    script!("clients.js"),
    script!("online.js"),
    script!("mqtt.js"),
];

/// Scripts and styles only from this origin; `fetch` and WebSocket also to deployments'
/// own API and MQTT endpoints, which live on other ports or hosts.
const CSP: &str = "default-src 'self'; connect-src 'self' http: https: ws: wss:; \
    img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Routes of the console.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("index.html") }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

fn asset(name: &str) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(path, _, _)| *path == name) else {
        return crate::error::ApiError::not_found("console asset").into_response();
    };
    let mut response = (StatusCode::OK, *bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Assets change with the binary: revalidate rather than cache blindly.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
