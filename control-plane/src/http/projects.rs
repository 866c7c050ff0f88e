//! `/projects`: tenants. The admin creates and lists them; a key sees its own.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{Admin, Principal};
use super::json::{ApiJson, ApiQuery};
use super::page::{PageQuery, Paged};
use super::Problems;
use crate::app::AppState;
use crate::domain::{DeploymentName, Id, Role};
use crate::error::{ApiError, ApiResult};
use crate::store::{Project, StoreError};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_project, list_projects))
        .routes(routes!(get_project))
}

/// Body of `POST /projects`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Unique project name: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"
    )]
    pub name: String,
}

/// A project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The caller's role in the project (`owner` for the admin token).
    pub role: Role,
}

impl ProjectView {
    fn new(p: Project, role: Role) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            created_at: p.created_at,
            role,
        }
    }
}

/// Parses a path id; an id that cannot exist is simply not found.
pub(super) fn path_id(raw: &str, what: &str) -> ApiResult<Id> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

/// The project a path names, once `principal` holds at least `needed` in it and it exists.
pub(super) async fn require_project(
    state: &AppState,
    principal: &Principal,
    raw: &str,
    needed: Role,
) -> ApiResult<Id> {
    let id = path_id(raw, "project")?;
    principal.require(id, needed)?;
    state
        .store
        .get_project(id)
        .await
        .map_err(|e| ApiError::from_store(e, "project"))?;
    Ok(id)
}

/// Create a project (admin token only).
#[utoipa::path(post, path = "/projects", tag = "projects",
    request_body = CreateProject,
    responses((status = 201, description = "Project created", body = ProjectView), Problems),
    security(("bearer" = [])))]
async fn create_project(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    let name = DeploymentName::parse(&body.name)
        .map_err(|msg| ApiError::unprocessable("invalid_name", msg).with_field("name"))?;
    let project = Project {
        id: Id::new(),
        name: name.to_string(),
        created_at: Utc::now(),
    };
    state
        .store
        .create_project(&project)
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => ApiError::conflict(
                "name_taken",
                format!("a project named `{name}` already exists"),
            )
            .with_field("name"),
            other => ApiError::from_store(other, "project"),
        })?;
    tracing::info!(project.id = %project.id, "project created");
    Ok((
        StatusCode::CREATED,
        Json(ProjectView::new(project, Role::Owner)),
    ))
}

/// List projects: all of them for the admin, its own for a project key, their own for a
/// signed-in person.
#[utoipa::path(get, path = "/projects", tag = "projects",
    params(PageQuery),
    responses((status = 200, description = "One page of projects", body = Paged<ProjectView>), Problems),
    security(("bearer" = [])))]
async fn list_projects(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<ProjectView>>> {
    let page = query.parse()?;
    let rows = match &principal {
        Principal::Admin => {
            state
                .store
                .list_projects(page.after, page.limit + 1)
                .await?
        }
        Principal::Project(key) => {
            let own = state.store.get_project(key.project_id).await?;
            if page.after.is_some_and(|after| after >= own.id) {
                Vec::new()
            } else {
                vec![own]
            }
        }
        Principal::Person(person) => {
            let mut rows = Vec::new();
            for (id, _) in &person.memberships {
                if page.after.is_some_and(|after| after >= *id) {
                    continue;
                }
                if rows.len() as i64 > page.limit {
                    break;
                }
                rows.push(state.store.get_project(*id).await?);
            }
            rows
        }
    };
    Ok(Json(Paged::from_rows(
        rows,
        &page,
        |p| p.id,
        |p| {
            let role = principal.role_in(p.id).unwrap_or(Role::Viewer);
            ProjectView::new(p, role)
        },
    )))
}

/// Get one project.
#[utoipa::path(get, path = "/projects/{project_id}", tag = "projects",
    params(("project_id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The project", body = ProjectView), Problems),
    security(("bearer" = [])))]
async fn get_project(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    let id = path_id(&project_id, "project")?;
    let role = principal
        .role_in(id)
        .ok_or_else(|| ApiError::not_found("project"))?;
    let project = state
        .store
        .get_project(id)
        .await
        .map_err(|e| ApiError::from_store(e, "project"))?;
    Ok(Json(ProjectView::new(project, role)))
}
