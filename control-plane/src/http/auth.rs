//! Who is calling, and what they may do.
//!
//! Callers authenticate with a bearer token (the admin token or a project API key) or,
//! in the web console, with a session cookie from `POST /session`. People and keys have
//! a role per project (`owner` > `developer` > `viewer`), enforced here for every
//! deployment endpoint: reading needs `viewer`, any other method `developer`; members and
//! API keys need `owner` (checked by their handlers with [`Principal::require`]).
//!
//! CSRF: a cookie-authenticated request with an unsafe method must carry the session's
//! token in `X-CSRF-Token` (a synchronizer token, handed out by `POST /session` and
//! `GET /session`). A cross-site page can make the browser send the cookie (when
//! SameSite is not honoured) but can neither read the token nor set a custom header
//! without a CORS preflight, which this API never grants. Unlike an `Origin` check, this
//! does not depend on knowing the public URL behind proxies, nor on browsers sending
//! `Origin`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, Method};
use chrono::Utc;

use crate::app::AppState;
use crate::domain::{token, Actor, Id, Role};
use crate::error::ApiError;
use crate::store::{ApiKey, SessionRecord, UserRecord};

/// Name of the console's session cookie.
pub const SESSION_COOKIE: &str = "skyport_session";
/// Header carrying a session's CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Header naming the project a signed-in person acts in on `/deployments…` endpoints
/// (a project API key implies its project).
pub const PROJECT_HEADER: &str = "x-skyport-project";

/// Who is calling.
pub enum Principal {
    /// The operator, holding the admin token: manages projects, keys and users.
    Admin,
    /// A project's API key: sees only that project, with the key's role.
    Project(ApiKey),
    /// A console user signed in with a session cookie.
    Person(Person),
}

/// A signed-in console user and the projects they belong to.
pub struct Person {
    pub session: SessionRecord,
    pub memberships: Vec<(Id, Role)>,
}

impl Person {
    pub fn user(&self) -> &UserRecord {
        &self.session.user
    }
}

impl Principal {
    /// The caller's role in project `id`: `None` when it may not even see the project.
    pub fn role_in(&self, id: Id) -> Option<Role> {
        match self {
            Principal::Admin => Some(Role::Owner),
            Principal::Project(key) => (key.project_id == id).then_some(key.role),
            Principal::Person(person) => person
                .memberships
                .iter()
                .find(|(project, _)| *project == id)
                .map(|(_, role)| *role),
        }
    }

    /// Whether the caller may see project `id`.
    pub fn can_access(&self, id: Id) -> bool {
        self.role_in(id).is_some()
    }

    /// Requires at least `needed` in project `id`: 404 when the project is not the
    /// caller's, 403 `forbidden_role` when the role is too low.
    pub fn require(&self, id: Id, needed: Role) -> Result<Role, ApiError> {
        let role = self
            .role_in(id)
            .ok_or_else(|| ApiError::not_found("project"))?;
        check_role(role, needed)?;
        Ok(role)
    }
}

/// 403 `forbidden_role` unless `role` includes `needed`.
pub fn check_role(role: Role, needed: Role) -> Result<(), ApiError> {
    if role >= needed {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "forbidden_role",
        format!("this needs the `{needed}` role in the project; yours is `{role}`"),
    ))
}

/// The secret of the request's `Authorization: Bearer …` header.
pub fn bearer_secret(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "send `Authorization: Bearer <token>`, or sign in (POST /api/v1/session)",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("invalid_token", "invalid bearer token"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("invalid_token", "expected `Authorization: Bearer <token>`")
        })
}

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Compares secrets without exiting at the first difference.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The live session of the request's cookie. Unsafe methods must also carry the
/// session's CSRF token.
async fn signed_in(parts: &Parts, state: &AppState) -> Result<SessionRecord, ApiError> {
    let secret = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(|| {
        ApiError::unauthorized("not_signed_in", "sign in first (POST /api/v1/session)")
    })?;
    let id = token::hash(secret);
    let session = state.store.find_session(&id).await?.ok_or_else(|| {
        ApiError::unauthorized("invalid_session", "the session has ended; sign in again")
    })?;
    if session.expires_at <= Utc::now() {
        state.store.delete_session(&id).await?;
        state.reconcile.notify_one();
        return Err(ApiError::unauthorized(
            "invalid_session",
            "the session has expired; sign in again",
        ));
    }
    if !is_safe(&parts.method) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !same_secret(sent, &session.csrf_token) {
            return Err(ApiError::forbidden(
                "csrf_failed",
                "this request needs the session's CSRF token in the X-CSRF-Token header",
            ));
        }
    }
    Ok(session)
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // A bearer token wins over a cookie: automation never depends on browser state.
        if parts.headers.contains_key(header::AUTHORIZATION)
            || cookie(&parts.headers, SESSION_COOKIE).is_none()
        {
            let hash = token::hash(bearer_secret(parts)?);
            if hash == state.admin_token_hash {
                return Ok(Principal::Admin);
            }
            return match state.store.find_api_key(&hash).await? {
                Some(key) => Ok(Principal::Project(key)),
                None => Err(ApiError::unauthorized(
                    "invalid_token",
                    "the bearer token is not a valid API key",
                )),
            };
        }
        let session = signed_in(parts, state).await?;
        let memberships = state.store.memberships(session.user.id).await?;
        Ok(Principal::Person(Person {
            session,
            memberships,
        }))
    }
}

/// A project-scoped caller, already checked for the role the request's method needs.
pub struct Caller {
    pub project_id: Id,
    pub role: Role,
    /// Who the event log names for this caller's changes.
    pub actor: Actor,
    /// The console sign-in session (its id) of a signed-in person; `None` for API keys.
    pub console_session: Option<String>,
}

/// A caller acting in one project: a project API key, or a signed-in member naming the
/// project in `X-Skyport-Project`. Reading needs `viewer`, changing `developer`.
pub struct ProjectKey(pub Caller);

/// Like [`ProjectKey`] with any role whatever the method: for the one change a viewer
/// may make (the read-only app key its console session reads a deployment's API with),
/// whose handler checks the role against the request itself.
pub struct ProjectMember(pub Caller);

impl AsRef<Caller> for ProjectKey {
    fn as_ref(&self) -> &Caller {
        &self.0
    }
}

impl AsRef<Caller> for ProjectMember {
    fn as_ref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequestParts<Arc<AppState>> for ProjectKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let ProjectMember(caller) = ProjectMember::from_request_parts(parts, state).await?;
        let needed = if is_safe(&parts.method) {
            Role::Viewer
        } else {
            Role::Developer
        };
        check_role(caller.role, needed)?;
        Ok(ProjectKey(caller))
    }
}

impl FromRequestParts<Arc<AppState>> for ProjectMember {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller =
            match Principal::from_request_parts(parts, state).await? {
                Principal::Project(key) => Caller {
                    project_id: key.project_id,
                    role: key.role,
                    actor: Actor::ApiKey(key.id),
                    console_session: None,
                },
                Principal::Person(person) => {
                    let raw = parts
                        .headers
                        .get(PROJECT_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "project_required",
                                "name the project in the X-Skyport-Project header",
                            )
                        })?;
                    let project_id: Id = raw
                        .trim()
                        .parse()
                        .map_err(|_| ApiError::not_found("project"))?;
                    let user_id = person.user().id;
                    let console_session = Some(person.session.id.clone());
                    let role = Principal::Person(person)
                        .role_in(project_id)
                        .ok_or_else(|| ApiError::not_found("project"))?;
                    Caller {
                        project_id,
                        role,
                        actor: Actor::User(user_id),
                        console_session,
                    }
                }
                Principal::Admin => return Err(ApiError::forbidden(
                    "project_key_required",
                    "deployments belong to a project: use one of its API keys, not the admin token",
                )),
            };
        Ok(ProjectMember(caller))
    }
}

/// A caller holding the admin token.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Admin => Ok(Admin),
            Principal::Project(_) | Principal::Person(_) => Err(ApiError::forbidden(
                "admin_required",
                "this operation needs the admin token",
            )),
        }
    }
}

/// The request's console session (cookie), for `/session` itself.
pub struct SignedIn(pub SessionRecord);

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        signed_in(parts, state).await.map(SignedIn)
    }
}
