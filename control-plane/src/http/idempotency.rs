//! `Idempotency-Key` on every `POST` of `/api/v1`.
//!
//! The first request with a key runs, and its answer (status, body, content type and
//! `Location`) is kept for 24 h, per caller: the API key, the person (whatever their
//! session) or the admin. A retry with the same key and the same request (method, path
//! and body) gets that answer again, marked `Idempotent-Replayed: true`, and changes
//! nothing; the same key with another request is 422 `idempotency_key_reused`, and
//! while the first is still running 409 `idempotency_key_in_use`. Answers 5xx (our
//! failures) and 429 are not kept, so a retry runs again. Kept answers are encrypted
//! with the secret key, since some hold a secret shown once (a new API key's). Keys are
//! 1 to 255 visible ASCII characters (a UUID is a good choice).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::auth::Principal;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::IdempotencyRecord;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long an answer is kept.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// A request still pending after this long died with its replica: the key is free again.
const ABANDONED_AFTER: Duration = Duration::from_secs(120);
/// Longest key.
const MAX_KEY_LEN: usize = 255;

/// What is kept of an answer (sealed).
#[derive(Serialize, Deserialize)]
struct Kept {
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

fn parse_key(raw: &HeaderValue) -> Result<String, ApiError> {
    raw.to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })
}

/// Whose keys these are.
fn principal_id(principal: &Principal) -> String {
    match principal {
        Principal::Admin => "admin".into(),
        Principal::Project(key) => format!("api_key:{}", key.id),
        Principal::Person(person) => format!("user:{}", person.user().id),
    }
}

fn request_hash(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(method.as_str());
    digest.update([0]);
    digest.update(uri.path_and_query().map_or("", |p| p.as_str()));
    digest.update([0]);
    digest.update(body);
    hex::encode(digest.finalize())
}

/// Middleware of `/api/v1`: runs a keyed `POST` once and replays its answer.
pub async fn idempotent(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let key = match parse_key(raw) {
        Ok(key) => key,
        Err(err) => return err.into_response(),
    };
    let (mut parts, body) = req.into_parts();
    // An unauthenticated request is answered by the handler (401) and kept nowhere.
    let principal = match Principal::from_request_parts(&mut parts, &state).await {
        Ok(principal) => principal_id(&principal),
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let bytes = match axum::body::to_bytes(body, super::json::MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "unreadable_body",
                "the request body is unreadable or too large",
            )
            .into_response()
        }
    };
    let hash = request_hash(&parts.method, &parts.uri, &bytes);
    let now = Utc::now();
    let reserved = state
        .store
        .reserve_idempotency_key(
            &principal,
            &key,
            &hash,
            now,
            now - RETENTION,
            now - ABANDONED_AFTER,
        )
        .await;
    match reserved {
        Err(err) => ApiError::internal(err).into_response(),
        Ok(Some(record)) => answer_again(&state, &principal, &key, &hash, record),
        Ok(None) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            keep(&state, &principal, &key, response).await
        }
    }
}

/// The answer to a key already used.
fn answer_again(
    state: &AppState,
    principal: &str,
    key: &str,
    hash: &str,
    record: IdempotencyRecord,
) -> Response {
    if record.request_hash != hash {
        return ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request (method, path or body) in the last 24 hours",
        )
        .into_response();
    }
    let (Some(status), Some(sealed)) = (record.status, record.response) else {
        let mut response = ApiError::conflict(
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being answered; retry shortly",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(1));
        return response;
    };
    let kept = state
        .secret_key
        .open(&sealed, &context(principal, key))
        .ok()
        .and_then(|plain| serde_json::from_str::<Kept>(plain.expose_secret()).ok());
    let (Some(kept), Ok(status)) = (kept, StatusCode::from_u16(status)) else {
        return ApiError::internal(format!("idempotency record of {principal} is unreadable"))
            .into_response();
    };
    let mut response = (status, kept.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, kept.content_type),
        (header::LOCATION, kept.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Keeps the first answer (or frees the key after a failure of ours), and sends it.
async fn keep(state: &AppState, principal: &str, key: &str, response: Response) -> Response {
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        if let Err(err) = state.store.release_idempotency_key(principal, key).await {
            tracing::error!(error = %err, "freeing an idempotency key failed");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let _ = state.store.release_idempotency_key(principal, key).await;
            return ApiError::internal(format!("reading the answer: {err}")).into_response();
        }
    };
    let header_text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let kept = Kept {
        content_type: header_text(header::CONTENT_TYPE),
        location: header_text(header::LOCATION),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let plain = serde_json::to_vec(&kept).expect("a kept answer serialises");
    let sealed = state.secret_key.seal(&plain, &context(principal, key));
    if let Err(err) = state
        .store
        .complete_idempotency_key(principal, key, status.as_u16(), &sealed)
        .await
    {
        tracing::error!(error = %err, "keeping an idempotent answer failed");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Binds a sealed answer to its caller and key.
fn context(principal: &str, key: &str) -> String {
    format!("idempotency:{principal}:{key}")
}

/// Deletes answers older than [`RETENTION`] every `every`.
pub async fn run_purger(store: Arc<dyn crate::store::Store>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let before = Utc::now() - RETENTION;
        match store.purge_idempotency_keys(before).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired idempotency keys"),
            Err(err) => tracing::error!(error = %err, "purging idempotency keys failed"),
        }
    }
}
