//! `/mqtt/publish` and `/mqtt/publish_batch`: publishing over HTTP, as EMQX 4's.
//!
//! A message names one `topic` or several comma-separated `topics` (each gets the
//! message); the payload is text, or base64 with `"encoding": "base64"`. The answer comes
//! once the engine has taken the message (acknowledged it at the asked QoS). Each message
//! published counts once in metering as HTTP-published (product §5).

use axum::{Extension, Json};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{one_or_many, parse, topics, JsonBody};
use super::error::{ApiError, INVALID_TOPIC};
use super::Errors;
use crate::broker::Broker;
use crate::security::Security;

/// Most messages in one `publish_batch`.
pub const MAX_BATCH: usize = 1_000;
/// Largest topic name, in bytes (MQTT's limit).
const MAX_TOPIC_BYTES: usize = 65_535;

/// The routes; handlers find the [`Broker`] as a request extension.
pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(publish_batch))
}

/// A message to publish.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PublishRequest {
    /// The topic to publish to (or use `topics`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Several topics, comma-separated; each gets the message.
    #[serde(default)]
    pub topics: Option<String>,
    /// Shown as the publisher in EMQX; accepted and ignored here.
    #[serde(default)]
    pub clientid: Option<String>,
    #[serde(default)]
    pub payload: String,
    /// `plain` (default) or `base64`.
    #[serde(default)]
    #[schema(example = "plain")]
    pub encoding: Option<String>,
    /// 0, 1 or 2 (default 0).
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
}

/// `{"code": 0}` once the message is published.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    pub code: u32,
}

/// The result of one message of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    /// The message's topic (or topics) as given.
    pub topic: String,
    /// 0 published; otherwise the EMQX code of the error.
    pub code: u32,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchPublished {
    pub code: u32,
    /// One result per message, in the request's order.
    pub data: Vec<BatchResult>,
}

/// Checks a request and turns it into the messages to publish, one per topic.
fn messages(request: PublishRequest) -> Result<(String, Vec<Message>), ApiError> {
    let topics = topics(&request.topic, &request.topics, validate_topic_name)?;
    if request.qos > 2 {
        return Err(ApiError::invalid(format!(
            "qos must be 0, 1 or 2; got {}",
            request.qos
        )));
    }
    let payload = match request.encoding.as_deref() {
        None | Some("plain") => request.payload.into_bytes(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(request.payload.as_bytes())
            .map_err(|e| ApiError::invalid(format!("payload is not valid base64: {e}")))?,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding must be `plain` or `base64`; got {other:?}"
            )))
        }
    };
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            PAYLOAD_TOO_LARGE,
            format!(
                "payload of {} bytes exceeds the broker's {MAX_PAYLOAD_BYTES}-byte limit",
                payload.len()
            ),
        ));
    }
    let label = topics.join(",");
    let messages = topics
        .into_iter()
        .map(|topic| Message {
            topic,
            payload: payload.clone().into(),
            qos: request.qos,
            retain: request.retain,
        })
        .collect();
    Ok((label, messages))
}

/// A topic name one may publish to: not empty, no wildcards, no NUL, not too long.
fn validate_topic_name(topic: &str) -> Result<(), ApiError> {
    let problem = if topic.is_empty() {
        Some("is empty")
    } else if topic.len() > MAX_TOPIC_BYTES {
        Some("is longer than 65535 bytes")
    } else if topic.contains(['+', '#']) {
        Some("contains a wildcard")
    } else if topic.contains('\0') {
        Some("contains NUL")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ApiError::bad_request(
            INVALID_TOPIC,
            format!("topic {topic:?} {problem}"),
        )),
        None => Ok(()),
    }
}

/// One message to publish.
#[derive(Debug, Clone)]
struct Message {
    topic: String,
    payload: bytes::Bytes,
    qos: u8,
    retain: bool,
}

/// Largest payload accepted: what fits in an MQTT packet the broker would carry.
const MAX_PAYLOAD_BYTES: usize = crate::broker::MAX_PACKET_SIZE - 1024;

/// EMQX-style code for a payload over the limit.
pub const PAYLOAD_TOO_LARGE: u32 = 413;

async fn send(broker: &Broker, messages: &[Message]) -> Result<(), ApiError> {
    for m in messages {
        broker
            .publish_http(m.topic.clone(), m.payload.clone(), m.qos, m.retain)
            .await;
    }
    Ok(())
}

/// Publish a message
///
/// Publishes to `topic` (or each of `topics`) and answers once the broker has taken it.
#[utoipa::path(post, path = "/mqtt/publish", tag = "mqtt", request_body = PublishRequest,
    responses((status = 200, body = Published), Errors),
    security(("app_key" = [])))]
async fn publish(
    Extension(broker): Extension<Broker>,
    JsonBody(body): JsonBody,
) -> Result<Json<Published>, ApiError> {
    let (_, messages) = messages(parse(body, None)?)?;
    send(&broker, &messages).await?;
    Ok(Json(Published { code: 0 }))
}

/// Publish several messages
///
/// Each message is checked and published on its own, in order; the answer has one
/// result per message (code 0 when published). At most 1,000 messages.
#[utoipa::path(post, path = "/mqtt/publish_batch", tag = "mqtt",
    request_body = Vec<PublishRequest>,
    responses((status = 200, body = BatchPublished), Errors),
    security(("app_key" = [])))]
async fn publish_batch(
    Extension(broker): Extension<Broker>,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchPublished>, ApiError> {
    if !body.is_array() {
        return Err(ApiError::invalid("the body must be an array of messages"));
    }
    let items = match body {
        serde_json::Value::Array(items) => items,
        _ => Vec::new(),
    };
    // Validate the batch's size and shape as one; each message is then judged alone.
    one_or_many::<serde_json::Value>(
        serde_json::Value::Array(items.clone()),
        MAX_BATCH,
        "messages",
    )?;
    let mut data = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let label = item
            .get("topic")
            .or_else(|| item.get("topics"))
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let outcome = match parse::<PublishRequest>(item, Some(index)).and_then(messages) {
            Ok((_, messages)) => send(&broker, &messages).await,
            Err(err) => Err(err),
        };
        data.push(match outcome {
            Ok(()) => BatchResult {
                topic: label,
                code: 0,
                message: None,
            },
            Err(err) => BatchResult {
                topic: label,
                code: err.code,
                message: Some(err.message),
            },
        });
    }
    Ok(Json(BatchPublished { code: 0, data }))
}
