//! JSON and query extractors whose rejections are precise problem documents.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A JSON request body. Malformed JSON (trailing characters after the document
/// included) is 400 `malformed_json`; a well-formed body that
/// does not fit the schema is 422 with `unknown_field`, `missing_field` or
/// `invalid_<field>`, and the offending path in `field`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|err| ApiError::new(err.status(), "unreadable_body", err.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document into `T`, classifying failures as described on [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The whole body must be one JSON document: syntax (trailing characters included)
    // is checked before the schema, so `{…} garbage` is malformed, never half-accepted.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|err| ApiError::bad_request("malformed_json", format!("malformed JSON: {err}")))?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if !inner.is_data() {
            return ApiError::bad_request("malformed_json", format!("malformed JSON: {inner}"));
        }
        let message = inner.to_string();
        let code = if message.starts_with("unknown field") {
            "unknown_field".into()
        } else if message.starts_with("missing field") {
            "missing_field".into()
        } else {
            let top = path.split(['.', '[']).next().unwrap_or_default();
            if top.is_empty() || top == "?" {
                "invalid_body".into()
            } else {
                format!("invalid_{top}")
            }
        };
        let mut error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
        if path != "." {
            error = error.with_field(path);
        }
        error
    })
}

/// Query parameters; a parameter of the wrong type is 400 `invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded_from_str(query).map(ApiQuery)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_query", "unparseable query string"))?,
    )
    .map(|q| q.0)
    .map_err(|err| ApiError::bad_request("invalid_query", err.body_text()))
}
