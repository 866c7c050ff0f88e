//! HTTP Basic authentication of `/api/v4` with the deployment's app keys.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use super::error::ApiError;
use crate::security::{AppKeyAccess, Security};

/// The app id a request authenticated with (e.g. the default `by` of a ban).
#[derive(Debug, Clone)]
pub struct AppId(pub String);

/// Lets the request through only with `Authorization: Basic base64(app_id:app_secret)` of
/// one of the deployment's app keys; otherwise 401 with `WWW-Authenticate`. A read-only
/// key (a console viewer's) may only read: any other method is 403.
pub async fn require_app_key(
    State(security): State<Security>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let credentials = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("HTTP Basic authentication with an app key is required")
        })?;
    let (app_id, secret) = credentials
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, encoded) = value.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then_some(encoded.trim())
        })
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            Some((id.to_owned(), secret.to_owned()))
        })
        .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
    let access = security
        .check_app_key(&app_id, &secret)
        .ok_or_else(|| ApiError::unauthorized("wrong app id or app secret"))?;
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    if access == AppKeyAccess::ReadOnly && !reading {
        return Err(ApiError::forbidden_role(
            "this app key is read-only (it belongs to a console viewer): it cannot change anything",
        ));
    }
    request.extensions_mut().insert(AppId(app_id));
    Ok(next.run(request).await)
}
