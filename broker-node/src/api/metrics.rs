//! The node's counters: `GET /api/v4/metrics` in EMQX 4's shape, and Prometheus text at
//! `/metrics`. Both read the metering counters (totals since the node started), so they
//! agree exactly with what is billed.

use std::sync::Arc;
use std::time::Instant;

use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::envelope::{data, Data};
use super::Errors;
use crate::metering::Meter;
use crate::security::Security;

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new().routes(routes!(get_metrics))
}

/// The counters of one node, named as EMQX 4 names them.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeMetrics {
    pub node: String,
    /// `messages.received` (PUBLISH from clients), `messages.sent` (PUBLISH to
    /// subscribers, retained deliveries included), `messages.retained.sent`,
    /// `messages.publish.http`, `messages.dropped`, `bytes.received`, `bytes.sent`,
    /// `sessions.connected`, `sessions.persistent`.
    pub metrics: std::collections::BTreeMap<&'static str, u64>,
}

fn counters(meter: &Meter) -> Vec<(&'static str, &'static str, u64)> {
    let totals = meter.totals();
    let sessions = meter.sessions(Instant::now());
    vec![
        (
            "messages.received",
            "PUBLISH packets received from clients",
            totals.messages_in,
        ),
        (
            "messages.sent",
            "PUBLISH packets sent to subscribers, retained deliveries included",
            totals.messages_out + totals.retained_out,
        ),
        (
            "messages.retained.sent",
            "retained messages delivered on subscribe",
            totals.retained_out,
        ),
        (
            "messages.publish.http",
            "messages published through the HTTP API",
            totals.http_published,
        ),
        ("messages.dropped", "messages dropped", totals.dropped),
        ("bytes.received", "MQTT bytes received", totals.bytes_in),
        ("bytes.sent", "MQTT bytes sent", totals.bytes_out),
        (
            "sessions.connected",
            "connected clients",
            sessions.connected,
        ),
        (
            "sessions.persistent",
            "disconnected clients whose persistent session has not expired",
            sessions.offline_persistent,
        ),
    ]
}

/// Node metrics
///
/// Totals since the node started.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, body = Data<Vec<NodeMetrics>>), Errors),
    security(("app_key" = [])))]
async fn get_metrics(Extension(meter): Extension<Arc<Meter>>) -> Json<Data<Vec<NodeMetrics>>> {
    let node = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let metrics = counters(&meter)
        .into_iter()
        .map(|(name, _, value)| (name, value))
        .collect();
    data(vec![NodeMetrics { node, metrics }])
}

/// Prometheus text exposition of the same counters (`skyport_broker_…`).
pub async fn prometheus(Extension(meter): Extension<Arc<Meter>>) -> impl IntoResponse {
    let mut text = String::new();
    for (name, help, value) in counters(&meter) {
        let metric = format!("skyport_broker_{}", name.replace('.', "_"));
        let kind = if name.starts_with("sessions.") {
            "gauge"
        } else {
            "counter"
        };
        let suffix = if kind == "counter" { "_total" } else { "" };
        text.push_str(&format!(
            "# HELP {metric}{suffix} {help}\n# TYPE {metric}{suffix} {kind}\n{metric}{suffix} {value}\n"
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
