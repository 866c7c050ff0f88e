//! Prometheus metrics of the control plane, served as text at `GET /metrics`.
//!
//! Request counts and latencies are recorded by a middleware, reconcile outcomes by the
//! reconciler, metering report results by the ingest handler; deployments by status and
//! metering lag are read from the store at scrape time, so every replica reports the
//! shared truth.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::app::AppState;
use crate::domain::Status;
use crate::store::Store;

const STATUSES: [Status; 8] = [
    Status::Provisioning,
    Status::Running,
    Status::Updating,
    Status::Stopping,
    Status::Stopped,
    Status::Starting,
    Status::Deleting,
    Status::Failed,
];

/// Kinds of reconcile errors, the label values of `reconcile_errors_total`.
pub const ERROR_KINDS: [&str; 6] = [
    "store",
    "io",
    "certificate",
    "security",
    "kubernetes",
    "other",
];

/// The control plane's metric families.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    reconcile: IntCounterVec,
    reconcile_errors: IntCounterVec,
    reconcile_lag: Gauge,
    leader: prometheus::IntGauge,
    reports: IntCounterVec,
    deployments: IntGaugeVec,
    metering_lag: GaugeVec,
    metering_lag_max: Gauge,
    alert_notifications: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("skyport".into()), None).expect("valid prefix");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests, by route template, method and status.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let reconcile = IntCounterVec::new(
            Opts::new(
                "reconcile_total",
                "Reconciliations of one deployment, by result: converged, progressing or error.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Failed reconciliations, by kind: store, io, certificate, security, kubernetes or other.",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let reconcile_lag = Gauge::new(
            "reconcile_lag_seconds",
            "Seconds since the longest-unconverged deployment (generation ahead of observed_generation) last changed, in spec or status; 0 when all have converged.",
        )
        .expect("valid metric");
        let leader = prometheus::IntGauge::new(
            "leader",
            "1 while this replica is the leader running the reconciler and background work, else 0.",
        )
        .expect("valid metric");
        let reports = IntCounterVec::new(
            Opts::new(
                "metering_reports_total",
                "Metering reports received from brokers, by result: applied, duplicate or gap.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let deployments = IntGaugeVec::new(
            Opts::new("deployments", "Deployments by status."),
            &["status"],
        )
        .expect("valid metric");
        let metering_lag = GaugeVec::new(
            Opts::new(
                "metering_lag_seconds",
                "Seconds since the last applied metering report, per running deployment that has reported.",
            ),
            &["deployment_id"],
        )
        .expect("valid metric");
        let metering_lag_max = Gauge::new(
            "metering_lag_max_seconds",
            "Largest metering_lag_seconds over running deployments (0 when none has reported).",
        )
        .expect("valid metric");
        let alert_notifications = IntCounterVec::new(
            Opts::new(
                "alert_notifications_total",
                "Alert notifications by channel type (webhook, email) and final result: delivered, or failed after every retry.",
            ),
            &["channel", "result"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(reconcile.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_lag.clone()),
            Box::new(leader.clone()),
            Box::new(reports.clone()),
            Box::new(deployments.clone()),
            Box::new(metering_lag.clone()),
            Box::new(metering_lag_max.clone()),
            Box::new(alert_notifications.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        for result in ["converged", "progressing", "error"] {
            reconcile.with_label_values(&[result]);
        }
        for kind in ERROR_KINDS {
            reconcile_errors.with_label_values(&[kind]);
        }
        for result in ["applied", "duplicate", "gap"] {
            reports.with_label_values(&[result]);
        }
        Self {
            registry,
            http_requests,
            http_duration,
            reconcile,
            reconcile_errors,
            reconcile_lag,
            leader,
            reports,
            deployments,
            metering_lag,
            metering_lag_max,
            alert_notifications,
        }
    }

    /// Counts one alert notification's outcome on a channel of type `channel`.
    pub fn alert_notification(&self, channel: &str, delivered: bool) {
        let result = if delivered { "delivered" } else { "failed" };
        self.alert_notifications
            .with_label_values(&[channel, result])
            .inc();
    }

    /// Counts one reconciliation of a deployment (`converged`, `progressing` or `error`).
    pub fn reconciled(&self, result: &str) {
        self.reconcile.with_label_values(&[result]).inc();
    }

    /// Counts one failed reconciliation by kind (one of [`ERROR_KINDS`]).
    pub fn reconcile_error(&self, kind: &str) {
        self.reconcile_errors.with_label_values(&[kind]).inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts one metering report (`applied`, `duplicate` or `gap`).
    pub fn report(&self, result: &str) {
        self.reports.with_label_values(&[result]).inc();
    }

    fn observe_request(&self, route: &str, method: &str, status: &str, seconds: f64) {
        let labels = [route, method, status];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Reads the store-derived gauges; a failure leaves them as they were.
    async fn refresh(&self, store: &dyn Store) {
        match store.count_deployments_by_status().await {
            Ok(counts) => {
                for status in STATUSES {
                    let n = counts
                        .iter()
                        .find(|(s, _)| s == status.as_str())
                        .map_or(0, |(_, n)| *n);
                    self.deployments
                        .with_label_values(&[status.as_str()])
                        .set(n);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "reading deployment counts for /metrics failed")
            }
        }
        match store.all_deployments().await {
            Ok(all) => {
                let now = chrono::Utc::now();
                let lag = all
                    .iter()
                    .filter(|d| d.observed_generation < d.generation)
                    .map(|d| (now - d.updated_at).num_milliseconds().max(0) as f64 / 1000.0)
                    .fold(0.0f64, f64::max);
                self.reconcile_lag.set(lag);
            }
            Err(err) => tracing::error!(error = %err, "reading reconcile lag for /metrics failed"),
        }
        match store.last_reports().await {
            Ok(last) => {
                let now_ms = chrono::Utc::now().timestamp_millis();
                self.metering_lag.reset();
                let mut max = 0.0f64;
                for (id, at_ms) in last {
                    let lag = (now_ms - at_ms).max(0) as f64 / 1000.0;
                    max = max.max(lag);
                    self.metering_lag
                        .with_label_values(&[&id.to_string()])
                        .set(lag);
                }
                self.metering_lag_max.set(max);
            }
            Err(err) => tracing::error!(error = %err, "reading metering lag for /metrics failed"),
        }
    }

    fn render(&self) -> String {
        let mut text = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

/// `GET /metrics`: Prometheus text exposition format.
pub async fn serve(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.refresh(state.store.as_ref()).await;
    (
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        state.metrics.render(),
    )
        .into_response()
}

/// Middleware recording every request's count and latency under its route template
/// (`unmatched` for unknown paths, so clients cannot blow up the label set).
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS => req.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let started = Instant::now();
    let response = next.run(req).await;
    state.metrics.observe_request(
        &route,
        &method,
        response.status().as_str(),
        started.elapsed().as_secs_f64(),
    );
    response
}
