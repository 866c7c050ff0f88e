//! `/banned`: the ban list, as EMQX 4's. Times are Unix seconds; without `until` a ban
//! lasts five minutes. Adding a ban on the same `as`/`who` replaces it.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::AppId;
use super::body::{parse, JsonBody};
use super::envelope::{data, done, Data, Done, PageQuery, Paged, Paging};
use super::error::{blocking, ApiError};
use super::Errors;
use crate::security::banned::{now_secs, Ban, BanKind, DEFAULT_BAN_SECS};
use crate::security::{Security, MAX_NAME_BYTES};

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(list_bans, add_ban))
        .routes(routes!(delete_ban))
}

/// A ban to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBan {
    /// The client id, username, or IP address banned.
    pub who: String,
    /// `clientid`, `username` or `peerhost`.
    #[serde(rename = "as")]
    #[schema(example = "clientid")]
    pub kind: String,
    /// Why (free text, up to 1024 bytes).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who banned (free text; default: the app id of the request).
    #[serde(default)]
    pub by: Option<String>,
    /// When the ban was made, Unix seconds (default: now).
    #[serde(default)]
    pub at: Option<i64>,
    /// When it ends, Unix seconds (default: five minutes from now).
    #[serde(default)]
    pub until: Option<i64>,
}

/// A ban in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct BanView {
    pub who: String,
    /// `clientid`, `username` or `peerhost`.
    #[serde(rename = "as")]
    pub kind: String,
    pub reason: String,
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    /// Unix seconds.
    pub until: i64,
}

impl From<Ban> for BanView {
    fn from(ban: Ban) -> Self {
        Self {
            who: ban.who,
            kind: ban.kind.as_str().to_owned(),
            reason: ban.reason,
            by: ban.by,
            at: ban.at,
            until: ban.until,
        }
    }
}

fn kind(text: &str) -> Result<BanKind, ApiError> {
    BanKind::parse(text).ok_or_else(|| {
        ApiError::invalid(format!(
            "as must be clientid, username or peerhost; got {text:?}"
        ))
    })
}

fn free_text(field: &str, text: Option<String>, default: &str) -> Result<String, ApiError> {
    let text = text.unwrap_or_else(|| default.to_owned());
    if text.len() > MAX_NAME_BYTES {
        return Err(ApiError::invalid(format!(
            "{field} is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
            text.len()
        )));
    }
    Ok(text)
}

/// List the bans in force, oldest first.
#[utoipa::path(get, path = "/banned", tag = "banned", params(PageQuery),
    responses((status = 200, description = "A page of bans", body = Paged<BanView>), Errors),
    security(("app_key" = [])))]
async fn list_bans(State(security): State<Security>, paging: Paging) -> Json<Paged<BanView>> {
    let bans = security.bans().list(now_secs());
    paging.page(bans.into_iter().map(BanView::from).collect())
}

/// Ban a client id, username or peer address; connected clients are not kicked.
#[utoipa::path(post, path = "/banned", tag = "banned", request_body = NewBan,
    responses((status = 200, description = "The ban", body = Data<BanView>), Errors),
    security(("app_key" = [])))]
async fn add_ban(
    State(security): State<Security>,
    Extension(AppId(app_id)): Extension<AppId>,
    JsonBody(body): JsonBody,
) -> Result<Json<Data<BanView>>, ApiError> {
    let new: NewBan = parse(body, None)?;
    let now = now_secs();
    let ban = Ban {
        kind: kind(&new.kind)?,
        who: new.who,
        reason: free_text("reason", new.reason, "")?,
        by: free_text("by", new.by, &app_id)?,
        at: new.at.unwrap_or(now),
        until: new.until.unwrap_or(now + DEFAULT_BAN_SECS),
    };
    let ban = blocking(move || security.bans().add(ban, now)).await?;
    Ok(data(BanView::from(ban)))
}

/// Lift a ban.
#[utoipa::path(delete, path = "/banned/{as}/{who}", tag = "banned",
    params(
        ("as" = String, Path, description = "`clientid`, `username` or `peerhost`"),
        ("who" = String, Path, description = "The banned value (percent-encoded)"),
    ),
    responses((status = 200, description = "Lifted", body = Done), Errors),
    security(("app_key" = [])))]
async fn delete_ban(
    State(security): State<Security>,
    Path((kind_text, who)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let kind = kind(&kind_text)?;
    blocking(move || security.bans().remove(kind, &who, now_secs())).await?;
    Ok(done())
}
