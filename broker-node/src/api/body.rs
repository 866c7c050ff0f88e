//! Request bodies as EMQX 4 takes them: JSON whatever the `Content-Type` (its documented
//! `curl -d` examples send none), one object or an array of them for batches.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, MISSING_PARAMETER, NOT_JSON};

/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A JSON request body, not yet given a type.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            ApiError::new(e.status(), super::error::INVALID_PARAMETER, e.body_text())
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(NOT_JSON, format!("the request body is not JSON: {e}"))
        })
    }
}

/// Converts one JSON object to `T`: a missing field is code 107, anything else 108.
/// `index` is the position in a batch, named in the message.
pub fn parse<T: DeserializeOwned>(value: Value, index: Option<usize>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let error = if message.starts_with("missing field") {
            ApiError::bad_request(MISSING_PARAMETER, message)
        } else if path == "." {
            ApiError::invalid(message)
        } else {
            ApiError::invalid(format!("{path}: {message}"))
        };
        error.at_item(index)
    })
}

/// One object, or an array of 1 to `max` of them (`what` names them in errors). The flag
/// says whether it was an array.
pub fn one_or_many<T: DeserializeOwned>(
    value: Value,
    max: usize,
    what: &str,
) -> Result<(Vec<T>, bool), ApiError> {
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request(
                    MISSING_PARAMETER,
                    format!("the list of {what} is empty"),
                ));
            }
            if items.len() > max {
                return Err(ApiError::invalid(format!(
                    "at most {max} {what} per request; got {}",
                    items.len()
                )));
            }
            let parsed = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| parse(item, Some(i)))
                .collect::<Result<_, _>>()?;
            Ok((parsed, true))
        }
        Value::Object(_) => Ok((vec![parse(value, None)?], false)),
        _ => Err(ApiError::invalid(format!(
            "the body must be an object or an array of {what}"
        ))),
    }
}

/// The topics of a request's `topic`, or else its comma-separated `topics`, each checked
/// by `check` (107 when neither is given).
pub fn topics(
    topic: &Option<String>,
    topics: &Option<String>,
    check: impl Fn(&str) -> Result<(), ApiError>,
) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = match (topic, topics) {
        (Some(topic), _) if !topic.is_empty() => vec![topic.clone()],
        (_, Some(topics)) if !topics.is_empty() => {
            topics.split(',').map(|t| t.trim().to_owned()).collect()
        }
        _ => {
            return Err(ApiError::bad_request(
                MISSING_PARAMETER,
                "missing field `topic` (or `topics`)",
            ))
        }
    };
    for topic in &list {
        check(topic)?;
    }
    Ok(list)
}
