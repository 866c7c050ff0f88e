//! Usage: `/deployments/{id}/metrics` (time series) and `/projects/{id}/usage` (monthly
//! totals). Both stay readable after a deployment is deleted, scoped by project.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{Principal, ProjectKey};
use super::events::parse_time;
use super::json::ApiQuery;
use super::projects::path_id;
use super::Problems;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::metering::series::{Plan, PlanError, Point, MAX_POINTS};
use crate::metering::{month_start, Usage};
use crate::store::StoreError;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(deployment_metrics))
        .routes(routes!(project_usage))
}

/// Range and resolution of `GET /deployments/{id}/metrics`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Start of the range (RFC 3339, inclusive); defaults to one hour before `to`.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End of the range (RFC 3339, exclusive); defaults to now.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Bucket length, a whole number of minutes written as a duration: `1m` (default),
    /// `5m`, `1h`, `1d`, … Buckets are aligned on multiples of the step since the Unix
    /// epoch (`1d` buckets are UTC days); at most 1440 points per request.
    pub step: Option<String>,
}

/// A deployment's usage series.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsSeries {
    /// One point per bucket intersecting `[from, to)`, oldest first; buckets without usage
    /// are zero.
    pub points: Vec<MetricsPoint>,
}

/// Usage of one bucket `[ts, ts + step)`.
///
/// Counters (`messages*`, `retained_out`, `http_published`, `bytes_*`, `dropped`) are
/// totals over the bucket. `*_max` are the highest value of any second in the bucket.
/// `sessions_avg` is the session-seconds of the bucket divided by its length in seconds
/// (the time-weighted mean session count, seconds without reports counting as zero);
/// `tps_avg` is `messages` divided by the bucket's length in seconds. Steps of whole hours
/// are served from hourly roll-ups (kept 90 days by default), other steps from per-minute
/// rows (kept 7 days by default); older buckets read as zero.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsPoint {
    /// Start of the bucket.
    pub ts: DateTime<Utc>,
    /// Highest session count (connected plus persistent offline) in any second.
    pub sessions_max: i64,
    /// Session-seconds / bucket seconds.
    pub sessions_avg: f64,
    /// Highest connected-client count in any second.
    pub connected_max: i64,
    /// Highest persistent-offline session count in any second.
    pub offline_persistent_max: i64,
    /// Highest messages per second (TPS) in any second.
    pub tps_max: i64,
    /// `messages` / bucket seconds.
    pub tps_avg: f64,
    /// The TPS-counted total: `messages_in + messages_out + retained_out + http_published`.
    pub messages: i64,
    /// PUBLISH received from clients.
    pub messages_in: i64,
    /// PUBLISH sent to subscribers.
    pub messages_out: i64,
    /// Retained messages delivered.
    pub retained_out: i64,
    /// Messages published through the deployment HTTP API.
    pub http_published: i64,
    /// MQTT application-layer bytes received.
    pub bytes_in: i64,
    /// MQTT application-layer bytes sent.
    pub bytes_out: i64,
    /// Messages dropped (e.g. offline queue overflow).
    pub dropped: i64,
}

impl From<Point> for MetricsPoint {
    fn from(p: Point) -> Self {
        Self {
            ts: DateTime::from_timestamp(p.start, 0).unwrap_or_default(),
            sessions_max: p.sessions_max,
            sessions_avg: p.sessions_avg,
            connected_max: p.connected_max,
            offline_persistent_max: p.offline_persistent_max,
            tps_max: p.tps_max,
            tps_avg: p.tps_avg,
            messages: p.usage.messages(),
            messages_in: p.usage.messages_in,
            messages_out: p.usage.messages_out,
            retained_out: p.usage.retained_out,
            http_published: p.usage.http_published,
            bytes_in: p.usage.bytes_in,
            bytes_out: p.usage.bytes_out,
            dropped: p.usage.dropped,
        }
    }
}

fn parse_step(raw: Option<&str>) -> ApiResult<i64> {
    let Some(raw) = raw else { return Ok(60) };
    let invalid = |detail: String| ApiError::bad_request("invalid_step", detail).with_field("step");
    let step = humantime::parse_duration(raw.trim()).map_err(|err| {
        invalid(format!(
            "step `{raw}` is not a duration like 1m, 5m, 1h or 1d: {err}"
        ))
    })?;
    if step.subsec_nanos() != 0 {
        return Err(invalid("step must be a whole number of minutes".into()));
    }
    i64::try_from(step.as_secs()).map_err(|_| invalid("step is too long".into()))
}

/// A deployment's usage over time: sessions, TPS, messages and traffic per bucket.
#[utoipa::path(get, path = "/deployments/{deployment_id}/metrics", tag = "metering",
    params(("deployment_id" = String, Path, description = "Deployment id"), MetricsQuery),
    responses((status = 200, description = "The series; bad input is 400 `invalid_time`, \
        `invalid_range` (from after to), `invalid_step` or `too_many_points`", body = MetricsSeries), Problems),
    security(("bearer" = [])))]
async fn deployment_metrics(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
    ApiQuery(query): ApiQuery<MetricsQuery>,
) -> ApiResult<Json<MetricsSeries>> {
    let id = path_id(&deployment_id, "deployment")?;
    let step = parse_step(query.step.as_deref())?;
    let to = parse_time(query.to.as_deref(), "to")?.unwrap_or_else(Utc::now);
    let from = match parse_time(query.from.as_deref(), "from")? {
        Some(from) => from,
        None => to.checked_sub_signed(Duration::hours(1)).unwrap_or(to),
    };
    let plan = Plan::new(from.timestamp(), to.timestamp(), step).map_err(|err| match err {
        PlanError::InvalidStep(detail) => ApiError::bad_request("invalid_step", detail).with_field("step"),
        PlanError::InvalidRange => ApiError::bad_request("invalid_range", "`from` must not be after `to`"),
        PlanError::TooManyPoints(points) => ApiError::bad_request(
            "too_many_points",
            format!("the range holds {points} steps; at most {MAX_POINTS} per request: use a larger step"),
        ),
    })?;
    let project_id = key.0.project_id;
    // A deleted deployment's usage stays readable; an id never seen in this project is 404.
    match state.store.get_deployment(project_id, id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            if !state.store.has_usage(project_id, id).await? {
                return Err(ApiError::not_found("deployment"));
            }
        }
        Err(err) => return Err(err.into()),
    }
    let rows = state
        .store
        .usage_series(
            project_id,
            id,
            plan.granularity,
            plan.start,
            plan.end,
            plan.step,
        )
        .await?;
    Ok(Json(MetricsSeries {
        points: plan
            .points(rows)
            .into_iter()
            .map(MetricsPoint::from)
            .collect(),
    }))
}

/// `?month=` of `GET /projects/{id}/usage`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The month, `YYYY-MM` (UTC); defaults to the current month.
    #[param(pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
}

/// Billable usage totals over a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotals {
    /// Session-seconds / 60: sessions (connected plus persistent offline) integrated
    /// over time.
    pub session_minutes: f64,
    /// Highest session count in any second. In `total`: the sum of the deployments' peaks.
    pub peak_sessions: i64,
    /// Highest TPS in any second. In `total`: the sum of the deployments' peaks.
    pub peak_tps: i64,
    /// TPS-counted messages: in + out to subscribers + retained delivered + HTTP-published.
    pub messages: i64,
    /// MQTT application-layer bytes received.
    pub bytes_in: i64,
    /// MQTT application-layer bytes sent.
    pub bytes_out: i64,
}

impl UsageTotals {
    fn of(usage: &Usage) -> Self {
        Self {
            session_minutes: usage.session_seconds as f64 / 60.0,
            peak_sessions: usage.sessions_max,
            peak_tps: usage.tps_max,
            messages: usage.messages(),
            bytes_in: usage.bytes_in,
            bytes_out: usage.bytes_out,
        }
    }
}

/// One deployment's usage in the month.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentUsageView {
    pub deployment_id: String,
    /// The deployment's name; null once it is deleted.
    pub name: Option<String>,
    #[serde(flatten)]
    pub usage: UsageTotals,
}

/// A project's usage in a month, per deployment (including deleted ones) and in total.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectUsage {
    pub project_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Deployments with usage in the month, by id.
    pub deployments: Vec<DeploymentUsageView>,
    pub total: UsageTotals,
}

/// Parses `YYYY-MM` into (year, month), refusing months after `now`'s.
fn parse_month(raw: Option<&str>, now: DateTime<Utc>) -> ApiResult<(i32, u32)> {
    let Some(raw) = raw else {
        return Ok((now.year(), now.month()));
    };
    let invalid =
        |detail: String| ApiError::bad_request("invalid_month", detail).with_field("month");
    let parsed = raw
        .split_once('-')
        .filter(|(y, m)| y.len() == 4 && m.len() == 2)
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        .filter(|(y, m)| *y >= 1970 && (1..=12).contains(m));
    let Some((year, month)) = parsed else {
        return Err(invalid(format!(
            "month `{raw}` is not a month written YYYY-MM, e.g. 2026-11"
        )));
    };
    if (year, month) > (now.year(), now.month()) {
        return Err(invalid(format!("month `{raw}` has not started yet")));
    }
    Ok((year, month))
}

/// A project's usage in a month: session-minutes, peak sessions, peak TPS, messages and
/// traffic per deployment and in total (admin token, or the project's own key). A month
/// not written `YYYY-MM`, or not started yet, is 400 `invalid_month`.
#[utoipa::path(get, path = "/projects/{project_id}/usage", tag = "metering",
    params(("project_id" = String, Path, description = "Project id"), UsageQuery),
    responses((status = 200, description = "The month's usage", body = ProjectUsage), Problems),
    security(("bearer" = [])))]
async fn project_usage(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> ApiResult<Json<ProjectUsage>> {
    let id = path_id(&project_id, "project")?;
    if !principal.can_access(id) {
        return Err(ApiError::not_found("project"));
    }
    let (year, month) = parse_month(query.month.as_deref(), Utc::now())?;
    let start = month_start(year, month).ok_or_else(|| {
        ApiError::bad_request("invalid_month", "no such month").with_field("month")
    })?;
    state
        .store
        .get_project(id)
        .await
        .map_err(|e| ApiError::from_store(e, "project"))?;
    let rows = state.store.monthly_usage(id, start).await?;
    let mut total = UsageTotals::of(&Usage::default());
    let deployments = rows
        .into_iter()
        .map(|row| {
            let usage = UsageTotals::of(&row.usage);
            total.session_minutes += usage.session_minutes;
            total.peak_sessions = total.peak_sessions.saturating_add(usage.peak_sessions);
            total.peak_tps = total.peak_tps.saturating_add(usage.peak_tps);
            total.messages = total.messages.saturating_add(usage.messages);
            total.bytes_in = total.bytes_in.saturating_add(usage.bytes_in);
            total.bytes_out = total.bytes_out.saturating_add(usage.bytes_out);
            DeploymentUsageView {
                deployment_id: row.deployment_id.to_string(),
                name: row.name,
                usage,
            }
        })
        .collect();
    Ok(Json(ProjectUsage {
        project_id: id.to_string(),
        month: format!("{year:04}-{month:02}"),
        deployments,
        total,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn months_parse_strictly() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap();
        assert_eq!(parse_month(Some("2026-11"), now).unwrap(), (2026, 11));
        assert_eq!(parse_month(Some("2025-01"), now).unwrap(), (2025, 1));
        assert_eq!(parse_month(None, now).unwrap(), (2026, 11));
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "", "2026-12", "+026-11",
        ] {
            assert_eq!(
                parse_month(Some(bad), now).unwrap_err().code,
                "invalid_month",
                "{bad}"
            );
        }
    }

    #[test]
    fn steps_are_durations() {
        assert_eq!(parse_step(None).unwrap(), 60);
        assert_eq!(parse_step(Some("5m")).unwrap(), 300);
        assert_eq!(parse_step(Some("1d")).unwrap(), 86_400);
        assert_eq!(parse_step(Some("soon")).unwrap_err().code, "invalid_step");
        assert_eq!(parse_step(Some("1.5s")).unwrap_err().code, "invalid_step");
    }
}
