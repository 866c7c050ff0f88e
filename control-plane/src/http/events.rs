//! `/deployments/{id}/events`: the deployment's event log, readable for the retention
//! period, also after the deployment is deleted.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::ProjectKey;
use super::json::ApiQuery;
use super::page::{PageQuery, Paged};
use super::projects::path_id;
use super::Problems;
use crate::app::AppState;
use crate::domain::EventType;
use crate::error::{ApiError, ApiResult};
use crate::store::{Event, EventFilter, StoreError};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// Filters of `GET /deployments/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this type, e.g. `deployment.running`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    pub until: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub deployment_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// `api_key:<id>` or `user:<id>` for an action through the API, `system` for Skyport's own.
    pub actor: String,
    /// Type-specific details, e.g. the failure `reason` or the tier change.
    pub details: serde_json::Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.to_string(),
            deployment_id: e.deployment_id.to_string(),
            kind: e.kind,
            time: e.created_at,
            actor: e.actor,
            details: e.details,
        }
    }
}

pub(super) fn parse_time(raw: Option<&str>, field: &str) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|err| {
                ApiError::bad_request(
                    "invalid_time",
                    format!("{field} is not an RFC 3339 time: {err}"),
                )
                .with_field(field)
            })
    })
    .transpose()
}

/// List a deployment's events, oldest first.
#[utoipa::path(get, path = "/deployments/{deployment_id}/events", tag = "deployments",
    params(("deployment_id" = String, Path, description = "Deployment id"), EventQuery),
    responses((status = 200, description = "One page of events", body = Paged<EventView>), Problems),
    security(("bearer" = [])))]
async fn list_events(
    State(state): State<Arc<AppState>>,
    key: ProjectKey,
    Path(deployment_id): Path<String>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> ApiResult<Json<Paged<EventView>>> {
    let id = path_id(&deployment_id, "deployment")?;
    let kind = query
        .kind
        .as_deref()
        .map(|raw| {
            raw.parse::<EventType>()
                .map_err(|msg| ApiError::bad_request("invalid_type", msg).with_field("type"))
        })
        .transpose()?;
    let since = parse_time(query.since.as_deref(), "since")?;
    let until = parse_time(query.until.as_deref(), "until")?;
    if let (Some(since), Some(until)) = (since, until) {
        if since > until {
            return Err(ApiError::bad_request(
                "invalid_range",
                "`since` must not be after `until`",
            ));
        }
    }
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .parse()?;
    let project_id = key.0.project_id;
    // A deleted deployment's events stay readable; an id never seen in this project is 404.
    match state.store.get_deployment(project_id, id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            let any = state
                .store
                .list_events(project_id, id, &EventFilter::default(), None, 1)
                .await?;
            if any.is_empty() {
                return Err(ApiError::not_found("deployment"));
            }
        }
        Err(err) => return Err(err.into()),
    }
    let filter = EventFilter { kind, since, until };
    let rows = state
        .store
        .list_events(project_id, id, &filter, page.after, page.limit + 1)
        .await?;
    Ok(Json(Paged::from_rows(
        rows,
        &page,
        |e| e.id,
        EventView::from,
    )))
}
