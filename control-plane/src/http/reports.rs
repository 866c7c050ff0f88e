//! `POST /internal/v1/metering/reports`: usage reports from broker nodes.
//!
//! Not part of the public API: brokers call it with their deployment's node token. It is
//! served under `/internal/v1` and documented in the OpenAPI document with that server.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::server::Server;
use utoipa::{IntoResponses, PartialSchema, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::bearer_secret;
use super::json::ApiJson;
use crate::app::AppState;
use crate::domain::{token, Id};
use crate::error::{ApiError, ApiResult, Problem};
use crate::metering::report::{MAX_MINUTES, MAX_NODE_ID_LEN, MAX_VALUE};
use crate::metering::{NodeToken, Report, ReportOutcome, Usage};

/// Where the routes of this module are mounted.
pub const BASE: &str = "/internal/v1";

/// The internal routes (relative to [`BASE`]).
pub fn router() -> axum::Router<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(ingest_report))
        .split_for_parts()
        .0
}

/// Adds the internal routes to the public document, each with its own server ([`BASE`]).
pub fn document(doc: &mut utoipa::openapi::OpenApi) {
    let (_, mut internal) = OpenApiRouter::<Arc<AppState>>::new()
        .routes(routes!(ingest_report))
        .split_for_parts();
    for item in internal.paths.paths.values_mut() {
        item.servers = Some(vec![Server::new(BASE)]);
    }
    doc.merge(internal);
    // Referenced by a response only, so not collected on its own.
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(SeqGapProblem::name().into_owned(), SeqGapProblem::schema());
}

/// Body of a report: the usage delta since the node's previous report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    /// The deployment the node serves; must be the node token's.
    pub deployment_id: String,
    /// The reporting node (e.g. its pod name), 1 to 128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    pub node_id: String,
    /// The node process's lifetime: its start time in Unix milliseconds.
    #[schema(minimum = 0)]
    pub epoch: i64,
    /// 1 for the epoch's first report, then one more for each report.
    #[schema(minimum = 1)]
    pub seq: i64,
    /// Usage since the previous report, per UTC minute (at most 300 entries).
    #[schema(max_items = 300)]
    pub minutes: Vec<MinuteUsage>,
}

/// A node's usage in one UTC minute (since its previous report). Counters are at most 10^15.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MinuteUsage {
    /// Start of the minute (RFC 3339, seconds zero), e.g. `2026-11-29T07:25:00Z`.
    pub minute: DateTime<Utc>,
    /// PUBLISH packets received from clients.
    #[schema(minimum = 0)]
    pub messages_in: i64,
    /// PUBLISH packets sent to subscribers.
    #[schema(minimum = 0)]
    pub messages_out: i64,
    /// Retained messages delivered.
    #[schema(minimum = 0)]
    pub retained_out: i64,
    /// Messages published through the deployment HTTP API.
    #[schema(minimum = 0)]
    pub http_published: i64,
    /// MQTT application-layer bytes received.
    #[schema(minimum = 0)]
    pub bytes_in: i64,
    /// MQTT application-layer bytes sent.
    #[schema(minimum = 0)]
    pub bytes_out: i64,
    /// Messages dropped.
    #[schema(minimum = 0)]
    pub dropped: i64,
    /// Highest session count in any sampled second.
    #[schema(minimum = 0)]
    pub sessions_max: i64,
    /// Highest connected-client count in any sampled second.
    #[schema(minimum = 0)]
    pub connected_max: i64,
    /// Highest persistent-offline session count in any sampled second.
    #[schema(minimum = 0)]
    pub offline_persistent_max: i64,
    /// Sum over the sampled seconds of the session count.
    #[schema(minimum = 0)]
    pub session_seconds: i64,
    /// Number of sampled seconds (at most 60).
    #[schema(minimum = 0, maximum = 60)]
    pub seconds: i64,
    /// Highest messages-per-second (TPS rule) in any sampled second.
    #[schema(minimum = 0)]
    pub tps_max: i64,
}

/// The report is in (applied now or before).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportAck {
    /// Every report of this node and epoch up to this sequence number is applied; the
    /// node may forget them.
    pub acked_seq: i64,
}

/// `409 seq_gap`: earlier reports of the epoch are missing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeqGapProblem {
    #[serde(flatten)]
    pub problem: Problem,
    /// The sequence number to resend from.
    pub expected_seq: i64,
}

/// Answers of the report endpoint besides 200.
#[derive(IntoResponses)]
pub enum ReportProblems {
    /// Malformed JSON.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Missing or unknown node token, or the token of another deployment.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The deployment was deleted.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// `seq_gap`: resend from `expected_seq`.
    #[response(status = 409, content_type = "application/problem+json")]
    Gap(SeqGapProblem),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// Invalid report, e.g. `invalid_minutes` (negative counter, minute not on a minute
    /// boundary) or `unknown_field`.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}

/// A caller holding a deployment's node token.
pub struct NodeCaller(pub NodeToken);

impl FromRequestParts<Arc<AppState>> for NodeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let hash = token::hash(bearer_secret(parts)?);
        match state.store.find_node_token(&hash).await? {
            Some(node) => Ok(NodeCaller(node)),
            None => Err(ApiError::unauthorized(
                "invalid_token",
                "the bearer token is not a node token",
            )),
        }
    }
}

fn invalid(field: String, detail: impl Into<String>) -> ApiError {
    let top = field
        .split(['.', '['])
        .next()
        .unwrap_or_default()
        .to_owned();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("invalid_{top}"),
        detail,
    )
    .with_field(field)
}

fn parse_report(body: UsageReport) -> ApiResult<Report> {
    let deployment_id: Id = body.deployment_id.parse().map_err(|_| {
        invalid(
            "deployment_id".into(),
            "deployment_id is not a deployment id",
        )
    })?;
    if body.node_id.is_empty() || body.node_id.len() > MAX_NODE_ID_LEN {
        return Err(invalid(
            "node_id".into(),
            format!("node_id must be 1 to {MAX_NODE_ID_LEN} bytes"),
        ));
    }
    if body.epoch < 0 {
        return Err(invalid("epoch".into(), "epoch must not be negative"));
    }
    if body.seq < 1 {
        return Err(invalid("seq".into(), "seq starts at 1"));
    }
    if body.minutes.len() > MAX_MINUTES {
        return Err(invalid(
            "minutes".into(),
            format!("a report carries at most {MAX_MINUTES} minutes"),
        ));
    }
    let mut minutes = BTreeMap::<i64, Usage>::new();
    for (i, entry) in body.minutes.into_iter().enumerate() {
        if entry.minute.second() != 0 || entry.minute.nanosecond() != 0 {
            return Err(invalid(
                format!("minutes[{i}].minute"),
                format!("{} is not the start of a minute", entry.minute.to_rfc3339()),
            ));
        }
        let usage = Usage {
            messages_in: entry.messages_in,
            messages_out: entry.messages_out,
            retained_out: entry.retained_out,
            http_published: entry.http_published,
            bytes_in: entry.bytes_in,
            bytes_out: entry.bytes_out,
            dropped: entry.dropped,
            sessions_max: entry.sessions_max,
            connected_max: entry.connected_max,
            offline_persistent_max: entry.offline_persistent_max,
            session_seconds: entry.session_seconds,
            seconds: entry.seconds,
            tps_max: entry.tps_max,
        };
        let named = [
            ("messages_in", usage.messages_in),
            ("messages_out", usage.messages_out),
            ("retained_out", usage.retained_out),
            ("http_published", usage.http_published),
            ("bytes_in", usage.bytes_in),
            ("bytes_out", usage.bytes_out),
            ("dropped", usage.dropped),
            ("sessions_max", usage.sessions_max),
            ("connected_max", usage.connected_max),
            ("offline_persistent_max", usage.offline_persistent_max),
            ("session_seconds", usage.session_seconds),
            ("seconds", usage.seconds),
            ("tps_max", usage.tps_max),
        ];
        for (name, value) in named {
            if !(0..=MAX_VALUE).contains(&value) {
                return Err(invalid(
                    format!("minutes[{i}].{name}"),
                    format!("{name} must be between 0 and {MAX_VALUE}, got {value}"),
                ));
            }
        }
        if usage.seconds > 60 {
            return Err(invalid(
                format!("minutes[{i}].seconds"),
                "a minute has at most 60 seconds",
            ));
        }
        minutes
            .entry(entry.minute.timestamp())
            .or_default()
            .merge(&usage);
    }
    Ok(Report {
        deployment_id,
        node_id: body.node_id,
        epoch: body.epoch,
        seq: body.seq,
        minutes,
    })
}

fn seq_gap(expected_seq: i64) -> Response {
    let status = StatusCode::CONFLICT;
    let body = SeqGapProblem {
        problem: Problem {
            type_: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Conflict").to_owned(),
            status: status.as_u16(),
            detail: format!(
                "earlier reports of this epoch are missing: resend from seq {expected_seq}"
            ),
            code: "seq_gap".into(),
            field: Some("seq".into()),
        },
        expected_seq,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Apply a broker node's usage report. Idempotent: a report already applied is
/// acknowledged again and ignored; a report after a gap is refused with 409 `seq_gap`
/// and the `expected_seq` to resend from.
#[utoipa::path(post, path = "/metering/reports", tag = "internal",
    request_body = UsageReport,
    responses((status = 200, description = "Applied now or before", body = ReportAck), ReportProblems),
    security(("bearer" = [])))]
async fn ingest_report(
    State(state): State<Arc<AppState>>,
    NodeCaller(node): NodeCaller,
    ApiJson(body): ApiJson<UsageReport>,
) -> ApiResult<Response> {
    let report = parse_report(body)?;
    if report.deployment_id != node.deployment_id {
        return Err(ApiError::unauthorized(
            "invalid_token",
            "the node token does not belong to this deployment",
        ));
    }
    if !node.deployment_exists {
        return Err(ApiError::not_found("deployment"));
    }
    let now_ms = Utc::now().timestamp_millis();
    let outcome = state
        .store
        .apply_report(node.project_id, &report, now_ms)
        .await?;
    Ok(match outcome {
        ReportOutcome::Applied { acked_seq } => {
            state.metrics.report("applied");
            Json(ReportAck { acked_seq }).into_response()
        }
        ReportOutcome::Duplicate { acked_seq } => {
            state.metrics.report("duplicate");
            Json(ReportAck { acked_seq }).into_response()
        }
        ReportOutcome::Gap { expected_seq } => {
            state.metrics.report("gap");
            tracing::info!(
                deployment.id = %report.deployment_id,
                node.id = %report.node_id,
                epoch = report.epoch,
                seq = report.seq,
                expected_seq,
                "metering report after a gap; asked to resend"
            );
            seq_gap(expected_seq)
        }
    })
}

#[cfg(test)]
mod tests {
    use skyport_settings::metering::{Counts, MinuteRecord, Report as WireReport};

    use super::*;

    /// A report as a broker node sends it (`skyport-settings`) is one this endpoint takes.
    #[test]
    fn takes_the_nodes_report_format() {
        let sent = WireReport {
            deployment_id: "0192f0a0-0000-7000-8000-00000000000a".into(),
            node_id: "skyport-0192f0a0-0".into(),
            epoch: 1_767_225_600_000,
            seq: 3,
            minutes: vec![MinuteRecord {
                minute: "2026-11-29T07:25:00Z".into(),
                counts: Counts {
                    messages_in: 1,
                    messages_out: 2,
                    retained_out: 3,
                    http_published: 4,
                    bytes_in: 5,
                    bytes_out: 6,
                    dropped: 7,
                },
                sessions_max: 8,
                connected_max: 9,
                offline_persistent_max: 10,
                session_seconds: 11,
                seconds: 60,
                tps_max: 13,
            }],
        };
        let body: UsageReport =
            serde_json::from_value(serde_json::to_value(&sent).unwrap()).unwrap();
        let report = parse_report(body).unwrap();
        assert_eq!(report.deployment_id.to_string(), sent.deployment_id);
        assert_eq!((report.epoch, report.seq), (sent.epoch, 3));
        let usage = &report.minutes[&1_795_937_100];
        assert_eq!(
            (
                usage.messages_in,
                usage.dropped,
                usage.seconds,
                usage.tps_max
            ),
            (1, 7, 60, 13)
        );
    }
}
