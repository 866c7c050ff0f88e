//! `/users`: console users. The admin creates them (also `skyport users add`); a signed-in
//! user reads their own account at `/session`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::Admin;
use super::json::{ApiJson, ApiQuery};
use super::page::{PageQuery, Paged};
use super::Problems;
use crate::app::AppState;
use crate::error::ApiResult;
use crate::store::UserRecord;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(create_user, list_users))
}

/// Body of `POST /users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// E-mail address the user signs in with (kept in lower case).
    #[schema(max_length = 254)]
    pub email: String,
    /// At least 10 characters; stored as an argon2id hash, never shown again.
    #[schema(min_length = 10)]
    pub password: String,
}

/// A console user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email,
            created_at: u.created_at,
        }
    }
}

/// Create a console user (admin token only). Bad addresses are 422 `invalid_email`,
/// short passwords 422 `weak_password`, a taken address 409 `email_taken`.
#[utoipa::path(post, path = "/users", tag = "people",
    request_body = CreateUser,
    responses((status = 201, description = "User created", body = UserView), Problems),
    security(("bearer" = [])))]
async fn create_user(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let user = super::session::add_user(state.store.as_ref(), &body.email, &body.password).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// List console users (admin token only).
#[utoipa::path(get, path = "/users", tag = "people",
    params(PageQuery),
    responses((status = 200, description = "One page of users", body = Paged<UserView>), Problems),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<Json<Paged<UserView>>> {
    let page = query.parse()?;
    let rows = state.store.list_users(page.after, page.limit + 1).await?;
    Ok(Json(Paged::from_rows(
        rows,
        &page,
        |u| u.id,
        UserView::from,
    )))
}
