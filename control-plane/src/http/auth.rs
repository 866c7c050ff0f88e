//! Bearer authentication: the admin token, or a project API key.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};

use crate::app::AppState;
use crate::domain::{token, Id};
use crate::error::ApiError;
use crate::store::ApiKey;

/// Who is calling.
pub enum Principal {
    /// The operator, holding the admin token: manages projects and keys.
    Admin,
    /// A project's API key: sees only that project.
    Project(ApiKey),
}

impl Principal {
    /// Whether the caller may act on project `id`.
    pub fn can_access(&self, id: Id) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Project(key) => key.project_id == id,
        }
    }
}

/// The secret of the request's `Authorization: Bearer …` header.
pub fn bearer_secret(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("missing_token", "send `Authorization: Bearer <token>`")
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

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let hash = token::hash(bearer_secret(parts)?);
        if hash == state.admin_token_hash {
            return Ok(Principal::Admin);
        }
        match state.store.find_api_key(&hash).await? {
            Some(key) => Ok(Principal::Project(key)),
            None => Err(ApiError::unauthorized(
                "invalid_token",
                "the bearer token is not a valid API key",
            )),
        }
    }
}

/// A caller holding a project API key; resources are scoped to its project.
pub struct ProjectKey(pub ApiKey);

impl FromRequestParts<Arc<AppState>> for ProjectKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Project(key) => Ok(ProjectKey(key)),
            Principal::Admin => Err(ApiError::forbidden(
                "project_key_required",
                "deployments belong to a project: use one of its API keys, not the admin token",
            )),
        }
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
            Principal::Project(_) => Err(ApiError::forbidden(
                "admin_required",
                "this operation needs the admin token",
            )),
        }
    }
}
