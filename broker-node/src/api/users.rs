//! `/auth_username` and `/auth_clientid`: built-in users, as EMQX 4's `emqx_auth_mnesia`.
//! Passwords go in, never out: reads show only names.
//!
//! `POST` takes one object (answer `{"code": 0}`) or an array of up to 10,000 (answer
//! `{"code": 0, "data": {"<name>": "ok", …}}`); a batch is all or nothing, and an existing
//! name is a 409 (code 113) rather than an overwrite — change passwords with `PUT`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{one_or_many, parse, JsonBody};
use super::envelope::{data, done, Data, Done, PageQuery, Paged, Paging};
use super::error::{blocking, ApiError};
use super::Errors;
use crate::security::users::{UserKind, MAX_USERS_PER_REQUEST};
use crate::security::Security;

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(list_usernames, add_usernames))
        .routes(routes!(get_username, update_username, delete_username))
        .routes(routes!(list_clientids, add_clientids))
        .routes(routes!(get_clientid, update_clientid, delete_clientid))
}

/// A user identified by username.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUsername {
    /// 1 to 1024 bytes.
    pub username: String,
    /// 1 to 1024 bytes; stored as an argon2id hash, never shown again.
    pub password: String,
}

/// A user identified by client id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientId {
    /// 1 to 1024 bytes.
    pub clientid: String,
    /// 1 to 1024 bytes; stored as an argon2id hash, never shown again.
    pub password: String,
}

/// One user, or a batch.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum NewUsernames {
    One(NewUsername),
    Many(Vec<NewUsername>),
}

/// One user, or a batch.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum NewClientIds {
    One(NewClientId),
    Many(Vec<NewClientId>),
}

/// Body of `PUT`: the new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// 1 to 1024 bytes.
    pub password: String,
}

/// A user, by username.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsernameView {
    pub username: String,
}

/// A user, by client id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientIdView {
    pub clientid: String,
}

/// Answer to `POST`: `data` (each name → `ok`) only for an array body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// Always 0.
    pub code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
}

async fn add(
    security: Security,
    kind: UserKind,
    users: Vec<(String, String)>,
    batch: bool,
) -> Result<Json<Added>, ApiError> {
    let names: Vec<String> = users.iter().map(|(name, _)| name.clone()).collect();
    blocking(move || security.users().add(kind, &users)).await?;
    let data = batch.then(|| names.into_iter().map(|n| (n, "ok".to_owned())).collect());
    Ok(Json(Added { code: 0, data }))
}

async fn change_password(
    security: Security,
    kind: UserKind,
    name: String,
    body: serde_json::Value,
) -> Result<Json<Done>, ApiError> {
    let NewPassword { password } = parse(body, None)?;
    blocking(move || security.users().set_password(kind, &name, &password)).await?;
    Ok(done())
}

async fn remove(security: Security, kind: UserKind, name: String) -> Result<Json<Done>, ApiError> {
    blocking(move || security.users().remove(kind, &name)).await?;
    Ok(done())
}

fn existing(security: &Security, kind: UserKind, name: &str) -> Result<(), ApiError> {
    if security.users().contains(kind, name) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "{} {name:?} does not exist",
            kind.field()
        )))
    }
}

/// List users identified by username.
#[utoipa::path(get, path = "/auth_username", tag = "auth_username", params(PageQuery),
    responses((status = 200, description = "A page of usernames", body = Paged<UsernameView>), Errors),
    security(("app_key" = [])))]
async fn list_usernames(
    State(security): State<Security>,
    paging: Paging,
) -> Json<Paged<UsernameView>> {
    let names = security.users().names(UserKind::Username);
    paging.page(
        names
            .into_iter()
            .map(|username| UsernameView { username })
            .collect(),
    )
}

/// Add users identified by username: one object or an array (all or nothing).
#[utoipa::path(post, path = "/auth_username", tag = "auth_username", request_body = NewUsernames,
    responses((status = 200, description = "Added", body = Added), Errors),
    security(("app_key" = [])))]
async fn add_usernames(
    State(security): State<Security>,
    JsonBody(body): JsonBody,
) -> Result<Json<Added>, ApiError> {
    let (users, batch) = one_or_many::<NewUsername>(body, MAX_USERS_PER_REQUEST, "users")?;
    let users = users
        .into_iter()
        .map(|u| (u.username, u.password))
        .collect();
    add(security, UserKind::Username, users, batch).await
}

/// Show a user identified by username (never its password).
#[utoipa::path(get, path = "/auth_username/{username}", tag = "auth_username",
    params(("username" = String, Path, description = "Username (percent-encoded)")),
    responses((status = 200, description = "The user", body = Data<UsernameView>), Errors),
    security(("app_key" = [])))]
async fn get_username(
    State(security): State<Security>,
    Path(username): Path<String>,
) -> Result<Json<Data<UsernameView>>, ApiError> {
    existing(&security, UserKind::Username, &username)?;
    Ok(data(UsernameView { username }))
}

/// Change the password of a user identified by username.
#[utoipa::path(put, path = "/auth_username/{username}", tag = "auth_username",
    params(("username" = String, Path, description = "Username (percent-encoded)")),
    request_body = NewPassword,
    responses((status = 200, description = "Changed", body = Done), Errors),
    security(("app_key" = [])))]
async fn update_username(
    State(security): State<Security>,
    Path(username): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Done>, ApiError> {
    change_password(security, UserKind::Username, username, body).await
}

/// Delete a user identified by username.
#[utoipa::path(delete, path = "/auth_username/{username}", tag = "auth_username",
    params(("username" = String, Path, description = "Username (percent-encoded)")),
    responses((status = 200, description = "Deleted", body = Done), Errors),
    security(("app_key" = [])))]
async fn delete_username(
    State(security): State<Security>,
    Path(username): Path<String>,
) -> Result<Json<Done>, ApiError> {
    remove(security, UserKind::Username, username).await
}

/// List users identified by client id.
#[utoipa::path(get, path = "/auth_clientid", tag = "auth_clientid", params(PageQuery),
    responses((status = 200, description = "A page of client ids", body = Paged<ClientIdView>), Errors),
    security(("app_key" = [])))]
async fn list_clientids(
    State(security): State<Security>,
    paging: Paging,
) -> Json<Paged<ClientIdView>> {
    let names = security.users().names(UserKind::ClientId);
    paging.page(
        names
            .into_iter()
            .map(|clientid| ClientIdView { clientid })
            .collect(),
    )
}

/// Add users identified by client id: one object or an array (all or nothing).
#[utoipa::path(post, path = "/auth_clientid", tag = "auth_clientid", request_body = NewClientIds,
    responses((status = 200, description = "Added", body = Added), Errors),
    security(("app_key" = [])))]
async fn add_clientids(
    State(security): State<Security>,
    JsonBody(body): JsonBody,
) -> Result<Json<Added>, ApiError> {
    let (users, batch) = one_or_many::<NewClientId>(body, MAX_USERS_PER_REQUEST, "users")?;
    let users = users
        .into_iter()
        .map(|u| (u.clientid, u.password))
        .collect();
    add(security, UserKind::ClientId, users, batch).await
}

/// Show a user identified by client id (never its password).
#[utoipa::path(get, path = "/auth_clientid/{clientid}", tag = "auth_clientid",
    params(("clientid" = String, Path, description = "Client id (percent-encoded)")),
    responses((status = 200, description = "The user", body = Data<ClientIdView>), Errors),
    security(("app_key" = [])))]
async fn get_clientid(
    State(security): State<Security>,
    Path(clientid): Path<String>,
) -> Result<Json<Data<ClientIdView>>, ApiError> {
    existing(&security, UserKind::ClientId, &clientid)?;
    Ok(data(ClientIdView { clientid }))
}

/// Change the password of a user identified by client id.
#[utoipa::path(put, path = "/auth_clientid/{clientid}", tag = "auth_clientid",
    params(("clientid" = String, Path, description = "Client id (percent-encoded)")),
    request_body = NewPassword,
    responses((status = 200, description = "Changed", body = Done), Errors),
    security(("app_key" = [])))]
async fn update_clientid(
    State(security): State<Security>,
    Path(clientid): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Done>, ApiError> {
    change_password(security, UserKind::ClientId, clientid, body).await
}

/// Delete a user identified by client id.
#[utoipa::path(delete, path = "/auth_clientid/{clientid}", tag = "auth_clientid",
    params(("clientid" = String, Path, description = "Client id (percent-encoded)")),
    responses((status = 200, description = "Deleted", body = Done), Errors),
    security(("app_key" = [])))]
async fn delete_clientid(
    State(security): State<Security>,
    Path(clientid): Path<String>,
) -> Result<Json<Done>, ApiError> {
    remove(security, UserKind::ClientId, clientid).await
}
