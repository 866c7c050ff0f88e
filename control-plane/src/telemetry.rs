//! Tracing setup, once per process. `RUST_LOG` filters (default `info`); `--log-format
//! json` writes one JSON object a line. Every HTTP request gets a request id (its
//! `x-request-id`, or a generated UUID), which is in its log span, in the response's
//! `x-request-id`, and on the calls the control plane makes to brokers meanwhile.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being served (or of the reconcile step being run).
    static REQUEST_ID: String;
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Request ids and request logs around every route of `router`.
pub fn with_request_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(axum::middleware::from_fn(scope_request_id))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                method = %req.method(),
                uri = %req.uri().path(),
                request_id = %id,
            )
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Runs the rest of the request with its id in [`current_request_id`].
async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID.scope(id, next.run(req)).await
}

/// Runs `work` with `id` as its request id (e.g. one reconcile step).
pub async fn with_request_id<F: std::future::Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The request id of the current task, when it serves a request or a reconcile step.
pub fn current_request_id() -> Option<HeaderValue> {
    REQUEST_ID
        .try_with(|id| HeaderValue::from_str(id).ok())
        .ok()
        .flatten()
}
