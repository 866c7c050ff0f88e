//! `/projects/{id}/members`: people in a project and their roles. Members of any role
//! read the list; owners (and the admin) change it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::Principal;
use super::json::ApiJson;
use super::projects::{path_id, require_project};
use super::users::UserView;
use super::Problems;
use crate::app::AppState;
use crate::domain::person::Email;
use crate::domain::{Id, Role};
use crate::error::{ApiError, ApiResult};
use crate::store::{Member, StoreError};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(set_member_role, remove_member))
}

/// Body of `POST /projects/{project_id}/members`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// E-mail address of an existing console user.
    pub email: String,
    pub role: Role,
}

/// Body of `PUT /projects/{project_id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// A project member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub user: UserView,
    pub role: Role,
    /// When the user joined the project.
    pub created_at: DateTime<Utc>,
}

/// A project's members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberView>,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            user: m.user.into(),
            role: m.role,
            created_at: m.created_at,
        }
    }
}

/// Refuses to leave a project without an owner (409 `last_owner`).
async fn keep_an_owner(state: &AppState, project_id: Id, user_id: Id) -> ApiResult<()> {
    let members = state.store.list_members(project_id).await?;
    let owners: Vec<_> = members.iter().filter(|m| m.role == Role::Owner).collect();
    if owners.len() == 1 && owners[0].user.id == user_id {
        return Err(ApiError::conflict(
            "last_owner",
            "this is the project's only owner: make someone else owner first",
        ));
    }
    Ok(())
}

/// List a project's members (any member).
#[utoipa::path(get, path = "/projects/{project_id}/members", tag = "people",
    params(("project_id" = String, Path, description = "Project id")),
    responses((status = 200, description = "The members", body = MemberList), Problems),
    security(("bearer" = [])))]
async fn list_members(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
) -> ApiResult<Json<MemberList>> {
    let id = require_project(&state, &principal, &project_id, Role::Viewer).await?;
    let members = state.store.list_members(id).await?;
    Ok(Json(MemberList {
        items: members.into_iter().map(Into::into).collect(),
    }))
}

/// Add a user to a project with a role (owner). An unknown address is 422
/// `unknown_user`; a member already there is 409 `already_member`.
#[utoipa::path(post, path = "/projects/{project_id}/members", tag = "people",
    params(("project_id" = String, Path, description = "Project id")),
    request_body = AddMember,
    responses((status = 201, description = "Member added", body = MemberView), Problems),
    security(("bearer" = [])))]
async fn add_member(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(project_id): Path<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> ApiResult<(StatusCode, Json<MemberView>)> {
    let id = require_project(&state, &principal, &project_id, Role::Owner).await?;
    let email = Email::parse(&body.email)
        .map_err(|msg| ApiError::unprocessable("invalid_email", msg).with_field("email"))?;
    let user = state
        .store
        .find_credentials(email.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable("unknown_user", format!("no user has the address `{email}`"))
                .with_field("email")
        })?
        .user;
    let now = Utc::now();
    state
        .store
        .add_member(id, user.id, body.role, now)
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => ApiError::conflict(
                "already_member",
                format!("`{email}` is already a member of this project"),
            )
            .with_field("email"),
            other => ApiError::from_store(other, "member"),
        })?;
    tracing::info!(project.id = %id, user.id = %user.id, role = %body.role, "member added");
    Ok((
        StatusCode::CREATED,
        Json(MemberView {
            user: user.into(),
            role: body.role,
            created_at: now,
        }),
    ))
}

/// Change a member's role (owner). The only owner cannot step down (409 `last_owner`).
#[utoipa::path(put, path = "/projects/{project_id}/members/{user_id}", tag = "people",
    params(("project_id" = String, Path, description = "Project id"),
           ("user_id" = String, Path, description = "User id")),
    request_body = SetRole,
    responses((status = 200, description = "The member with the new role", body = MemberView), Problems),
    security(("bearer" = [])))]
async fn set_member_role(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetRole>,
) -> ApiResult<Json<MemberView>> {
    let id = require_project(&state, &principal, &project_id, Role::Owner).await?;
    let user_id = path_id(&user_id, "member")?;
    if body.role != Role::Owner {
        keep_an_owner(&state, id, user_id).await?;
    }
    state
        .store
        .set_member_role(id, user_id, body.role)
        .await
        .map_err(|e| ApiError::from_store(e, "member"))?;
    let member = state
        .store
        .list_members(id)
        .await?
        .into_iter()
        .find(|m| m.user.id == user_id)
        .ok_or_else(|| ApiError::not_found("member"))?;
    Ok(Json(member.into()))
}

/// Remove a member (owner). The only owner cannot leave (409 `last_owner`).
#[utoipa::path(delete, path = "/projects/{project_id}/members/{user_id}", tag = "people",
    params(("project_id" = String, Path, description = "Project id"),
           ("user_id" = String, Path, description = "User id")),
    responses((status = 204, description = "Member removed"), Problems),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((project_id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = require_project(&state, &principal, &project_id, Role::Owner).await?;
    let user_id = path_id(&user_id, "member")?;
    keep_an_owner(&state, id, user_id).await?;
    state
        .store
        .remove_member(id, user_id)
        .await
        .map_err(|e| ApiError::from_store(e, "member"))?;
    tracing::info!(project.id = %id, user.id = %user_id, "member removed");
    Ok(StatusCode::NO_CONTENT)
}
