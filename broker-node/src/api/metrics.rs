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
use crate::rules::Rules;
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
async fn get_metrics(
    Extension(meter): Extension<Arc<Meter>>,
    Extension(broker): Extension<crate::broker::Broker>,
) -> Json<Data<Vec<NodeMetrics>>> {
    let node = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let metrics = counters(&meter)
        .into_iter()
        .chain(rule_totals(&broker.rules))
        .map(|(name, _, value)| (name, value))
        .collect();
    data(vec![NodeMetrics { node, metrics }])
}

/// The rule engine's totals over every rule and action.
fn rule_totals(rules: &Rules) -> Vec<(&'static str, &'static str, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    let live = rules.live();
    let sum_rules = |f: &dyn Fn(&crate::rules::engine::RuleMetrics) -> u64| {
        live.rules.iter().map(|r| f(&r.metrics)).sum::<u64>()
    };
    let sum_actions = |f: &dyn Fn(&crate::rules::buffer::Counters) -> u64| {
        live.rules
            .iter()
            .flat_map(|r| r.actions.iter())
            .map(|a| f(&a.buffer.counters))
            .sum::<u64>()
    };
    vec![
        (
            "rules.matched",
            "inputs rules matched (FROM and WHERE held)",
            sum_rules(&|m| m.matched.load(Relaxed)),
        ),
        (
            "rules.failed",
            "inputs on which a rule's statement failed",
            sum_rules(&|m| m.failed.load(Relaxed)),
        ),
        (
            "rules.inputs.dropped",
            "inputs dropped because the rule thread was behind",
            rules.inputs_dropped(),
        ),
        (
            "actions.success",
            "rule outputs delivered to their sinks",
            sum_actions(&|c| c.success.load(Relaxed)),
        ),
        (
            "actions.failure",
            "rule outputs their sinks refused",
            sum_actions(&|c| c.failed.load(Relaxed)),
        ),
        (
            "actions.dropped",
            "rule outputs dropped from a full action buffer",
            sum_actions(&|c| c.dropped.load(Relaxed)),
        ),
        (
            "actions.retried",
            "rule outputs of delivery attempts that failed and were retried",
            sum_actions(&|c| c.retried.load(Relaxed)),
        ),
    ]
}

/// Per rule and action counters, Prometheus text with `rule` and `action` labels.
fn rule_series(rules: &Rules, text: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    let live = rules.live();
    let families: [(&str, &str, &str); 6] = [
        (
            "skyport_broker_rule_matched_total",
            "counter",
            "inputs the rule matched",
        ),
        (
            "skyport_broker_rule_action_success_total",
            "counter",
            "outputs the action delivered",
        ),
        (
            "skyport_broker_rule_action_failed_total",
            "counter",
            "outputs the action's sink refused",
        ),
        (
            "skyport_broker_rule_action_dropped_total",
            "counter",
            "outputs dropped from the action's full buffer",
        ),
        (
            "skyport_broker_rule_action_retried_total",
            "counter",
            "outputs of failed attempts, retried",
        ),
        (
            "skyport_broker_rule_action_queued",
            "gauge",
            "outputs waiting in the action's buffer",
        ),
    ];
    for (i, (metric, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(text, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
        for rule in &live.rules {
            let id = label(&rule.record.id);
            if i == 0 {
                let _ = writeln!(
                    text,
                    "{metric}{{rule=\"{id}\"}} {}",
                    rule.metrics.matched.load(Relaxed)
                );
                continue;
            }
            for action in &rule.actions {
                let c = &action.buffer.counters;
                let value = match i {
                    1 => c.success.load(Relaxed),
                    2 => c.failed.load(Relaxed),
                    3 => c.dropped.load(Relaxed),
                    4 => c.retried.load(Relaxed),
                    _ => action.buffer.len() as u64,
                };
                let _ = writeln!(
                    text,
                    "{metric}{{rule=\"{id}\",action=\"{}\"}} {value}",
                    label(&action.record.id)
                );
            }
        }
    }
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition of the same counters (`skyport_broker_…`).
pub async fn prometheus(Extension(broker): Extension<crate::broker::Broker>) -> impl IntoResponse {
    let (meter, rules) = (&broker.meter, &broker.rules);
    let mut text = String::new();
    for (name, help, value) in counters(meter).into_iter().chain(rule_totals(rules)) {
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
    rule_series(rules, &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
