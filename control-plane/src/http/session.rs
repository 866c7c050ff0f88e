//! `/session`: web-console sign-in. A server-side session behind an HttpOnly,
//! SameSite=Strict cookie (Secure over TLS), with a CSRF token for unsafe requests
//! (`auth.rs` says why a synchronizer token). Ten wrong passwords in a row lock the
//! account for a while (429 with `Retry-After`), whoever sends them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::{SignedIn, SESSION_COOKIE};
use super::json::ApiJson;
use super::users::UserView;
use super::Problems;
use crate::app::AppState;
use crate::domain::person::{self, Email};
use crate::domain::{token, Id};
use crate::error::{ApiError, ApiResult};
use crate::store::{SessionRecord, UserRecord};

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(sign_in, get_session, sign_out))
}

/// Body of `POST /session`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The user's e-mail address.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// A signed-in session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub user: UserView,
    /// Send it in `X-CSRF-Token` with every unsafe request (POST, PUT, PATCH, DELETE)
    /// made with the session cookie.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl From<&SessionRecord> for SessionView {
    fn from(s: &SessionRecord) -> Self {
        Self {
            user: s.user.clone().into(),
            csrf_token: s.csrf_token.clone(),
            expires_at: s.expires_at,
        }
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "wrong e-mail address or password")
}

fn locked(until: DateTime<Utc>) -> Response {
    let seconds = (until - Utc::now()).num_seconds().max(1);
    (
        [(header::RETRY_AFTER, seconds.to_string())],
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many wrong passwords in a row: this account cannot sign in for {seconds} s"
            ),
        ),
    )
        .into_response()
}

/// A password hash nobody has, verified when the e-mail address is unknown so that a
/// wrong address costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| person::hash_password(&token::generate("")).unwrap_or_default())
}

/// Whether the response goes back over TLS, as far as this server can tell.
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.signin.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

fn session_cookie(value: &str, max_age_seconds: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("cookie values are URL-safe base64")
}

/// Sign in to the web console. Sets the session cookie; the body carries the CSRF token.
/// A wrong address or password is 401 `invalid_credentials`; the 10th wrong password in
/// a row, and every attempt for a while after, is 429 `too_many_attempts`.
#[utoipa::path(post, path = "/session", tag = "people",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in; `Set-Cookie` carries the session", body = SessionView),
        (status = 429, description = "The account is locked after too many wrong passwords", content_type = "application/problem+json", body = crate::error::Problem),
        Problems))]
async fn sign_in(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let Ok(email) = Email::parse(&body.email) else {
        return Err(invalid_credentials());
    };
    let Some(creds) = state.store.find_credentials(email.as_str()).await? else {
        let password = body.password.clone();
        let _ =
            tokio::task::spawn_blocking(move || person::verify_password(&password, decoy_hash()))
                .await;
        return Err(invalid_credentials());
    };
    let now = Utc::now();
    if let Some(until) = creds.locked_until.filter(|until| *until > now) {
        return Ok(locked(until));
    }
    let hash = creds.password_hash.clone();
    let password = body.password;
    let good = tokio::task::spawn_blocking(move || person::verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let user_id = creds.user.id;
    if !good {
        let until =
            now + chrono::Duration::from_std(state.signin.lockout).map_err(ApiError::internal)?;
        let locked_now = state
            .store
            .record_signin_failure(user_id, state.signin.max_failures, until)
            .await?;
        if locked_now {
            tracing::warn!(user.id = %user_id, "account locked after repeated wrong passwords");
            return Ok(locked(until));
        }
        return Err(invalid_credentials());
    }
    if creds.failed_signins > 0 {
        state.store.reset_signin_failures(user_id).await?;
    }
    let secret = token::generate("sks_");
    let ttl = chrono::Duration::from_std(state.signin.session_ttl).map_err(ApiError::internal)?;
    let session = SessionRecord {
        id: token::hash(&secret),
        user: creds.user,
        csrf_token: token::generate(""),
        created_at: now,
        expires_at: now + ttl,
    };
    state.store.create_session(&session).await?;
    tracing::info!(user.id = %user_id, "signed in");
    let cookie = session_cookie(
        &secret,
        state.signin.session_ttl.as_secs(),
        over_tls(&state, &headers),
    );
    Ok((
        StatusCode::CREATED,
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(SessionView::from(&session)),
    )
        .into_response())
}

/// The current session (cookie), with its CSRF token.
#[utoipa::path(get, path = "/session", tag = "people",
    responses((status = 200, description = "The session", body = SessionView), Problems))]
async fn get_session(SignedIn(session): SignedIn) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(SessionView::from(&session)),
    )
        .into_response()
}

/// Sign out: the session ends on the server (the cookie stops working everywhere) and
/// the cookie is cleared. Needs the CSRF token.
#[utoipa::path(delete, path = "/session", tag = "people",
    responses((status = 204, description = "Signed out"), Problems))]
async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    SignedIn(session): SignedIn,
) -> ApiResult<Response> {
    state.store.delete_session(&session.id).await?;
    // Its session-bound app keys went with it: tell the brokers.
    state.reconcile.notify_one();
    tracing::info!(user.id = %session.user.id, "signed out");
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            session_cookie("", 0, over_tls(&state, &headers)),
        )],
    )
        .into_response())
}

/// Adds a console user; shared by `POST /users` and `skyport users add`.
pub async fn add_user(
    state_store: &dyn crate::store::Store,
    email: &str,
    password: &str,
) -> ApiResult<UserRecord> {
    let email = Email::parse(email)
        .map_err(|msg| ApiError::unprocessable("invalid_email", msg).with_field("email"))?;
    person::check_password(password)
        .map_err(|msg| ApiError::unprocessable("weak_password", msg).with_field("password"))?;
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || person::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let user = UserRecord {
        id: Id::new(),
        email: email.to_string(),
        created_at: Utc::now(),
    };
    state_store
        .create_user(&user, &hash)
        .await
        .map_err(|err| match err {
            crate::store::StoreError::Conflict(_) => ApiError::conflict(
                "email_taken",
                format!("a user with the e-mail address `{email}` already exists"),
            )
            .with_field("email"),
            other => ApiError::from_store(other, "user"),
        })?;
    tracing::info!(user.id = %user.id, "user created");
    Ok(user)
}
