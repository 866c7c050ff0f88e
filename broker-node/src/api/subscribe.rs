//! `/mqtt/subscribe`, `/mqtt/unsubscribe` and their `_batch` forms: changing a connected
//! client's subscriptions in its name, as EMQX 4's.
//!
//! The node sends the SUBSCRIBE or UNSUBSCRIBE to the engine on the client's own
//! connection and answers once the engine acknowledged it; the acknowledgement never
//! reaches the client. The ACL does not apply (the deployment owner asked), `$events/…`
//! filters work as for the client itself, and `$events/session_subscribed` /
//! `session_unsubscribed` are published. The client must be connected: a persistent
//! session that is offline answers code 112, like an unknown client.

use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{parse, JsonBody};
use super::clients::CLIENT_NOT_FOUND;
use super::error::{ApiError, INVALID_TOPIC, MISSING_PARAMETER, UNKNOWN_ERROR};
use super::Errors;
use crate::broker::registry::{Clients, Command, CommandError};
use crate::security::topic::validate_filter;
use crate::security::Security;

/// Most entries in one batch.
pub const MAX_BATCH: usize = 1_000;

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(subscribe))
        .routes(routes!(unsubscribe))
        .routes(routes!(subscribe_batch))
        .routes(routes!(unsubscribe_batch))
}

/// A subscription to add to a client.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscribeRequest {
    /// The client to subscribe; it must be connected.
    pub clientid: String,
    /// The topic filter (or use `topics`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Several topic filters, comma-separated.
    #[serde(default)]
    pub topics: Option<String>,
    /// 0, 1 or 2 (default 0).
    #[serde(default)]
    pub qos: u8,
}

/// A subscription to remove from a client.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UnsubscribeRequest {
    /// The client to unsubscribe; it must be connected.
    pub clientid: String,
    /// The topic filter (or use `topics`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Several topic filters, comma-separated.
    #[serde(default)]
    pub topics: Option<String>,
}

/// `{"code": 0}` once the engine acknowledged.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub code: u32,
}

/// The result of one entry of a batch.
// Named apart from publishing's `BatchResult` in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubscriptionBatchResult)]
pub struct BatchResult {
    pub clientid: String,
    /// The entry's topic (or topics) as given.
    pub topic: String,
    /// 0 done; otherwise the EMQX code of the error.
    pub code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchDone {
    pub code: u32,
    /// One result per entry, in the request's order.
    pub data: Vec<BatchResult>,
}

/// The filters of `topic` or `topics`, each checked.
fn filters(topic: &Option<String>, topics: &Option<String>) -> Result<Vec<String>, ApiError> {
    super::body::topics(topic, topics, |filter| {
        validate_filter(filter).map_err(|e| {
            ApiError::bad_request(INVALID_TOPIC, format!("topic filter {filter:?}: {e}"))
        })
    })
}

fn client_id(raw: &str) -> Result<&str, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            MISSING_PARAMETER,
            "`clientid` is empty",
        ));
    }
    Ok(raw)
}

/// Carries out a command and turns the engine's reason codes into the answer.
async fn run(
    clients: &Clients,
    client_id: &str,
    make: impl FnOnce(tokio::sync::oneshot::Sender<Vec<u8>>) -> Command,
) -> Result<(), ApiError> {
    let codes = clients
        .command(client_id, make)
        .await
        .map_err(|err| match err {
            CommandError::NotConnected => ApiError::new(
                StatusCode::NOT_FOUND,
                CLIENT_NOT_FOUND,
                format!("client {client_id:?} is not connected"),
            ),
            CommandError::NoAnswer => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                UNKNOWN_ERROR,
                format!("client {client_id:?} disconnected before the broker answered"),
            ),
        })?;
    // SUBACK grants are 0..=2; UNSUBACK success is 0 (0x11 "no subscription existed"
    // is fine too). Anything from 0x80 up is a refusal.
    match codes.iter().find(|code| **code >= 0x80) {
        Some(code) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            UNKNOWN_ERROR,
            format!("the broker refused with reason code {code:#04x}"),
        )),
        None => Ok(()),
    }
}

async fn do_subscribe(clients: &Clients, request: SubscribeRequest) -> Result<(), ApiError> {
    let filters = filters(&request.topic, &request.topics)?;
    if request.qos > 2 {
        return Err(ApiError::invalid(format!(
            "qos must be 0, 1 or 2; got {}",
            request.qos
        )));
    }
    let client_id = client_id(&request.clientid)?;
    let filters = filters.into_iter().map(|f| (f, request.qos)).collect();
    run(clients, client_id, |reply| Command::Subscribe {
        filters,
        reply,
    })
    .await
}

async fn do_unsubscribe(clients: &Clients, request: UnsubscribeRequest) -> Result<(), ApiError> {
    let filters = filters(&request.topic, &request.topics)?;
    let client_id = client_id(&request.clientid)?;
    run(clients, client_id, |reply| Command::Unsubscribe {
        filters,
        reply,
    })
    .await
}

/// Subscribe a client
///
/// Adds `topic` (or each of `topics`) to the connected client's subscriptions at `qos`.
#[utoipa::path(post, path = "/mqtt/subscribe", tag = "mqtt", request_body = SubscribeRequest,
    responses((status = 200, body = Done), Errors),
    security(("app_key" = [])))]
async fn subscribe(
    Extension(clients): Extension<Clients>,
    JsonBody(body): JsonBody,
) -> Result<Json<Done>, ApiError> {
    do_subscribe(&clients, parse(body, None)?).await?;
    Ok(Json(Done { code: 0 }))
}

/// Unsubscribe a client
///
/// Removes `topic` (or each of `topics`) from the connected client's subscriptions.
#[utoipa::path(post, path = "/mqtt/unsubscribe", tag = "mqtt", request_body = UnsubscribeRequest,
    responses((status = 200, body = Done), Errors),
    security(("app_key" = [])))]
async fn unsubscribe(
    Extension(clients): Extension<Clients>,
    JsonBody(body): JsonBody,
) -> Result<Json<Done>, ApiError> {
    do_unsubscribe(&clients, parse(body, None)?).await?;
    Ok(Json(Done { code: 0 }))
}

/// The entries of a batch body, each judged alone.
fn entries(body: serde_json::Value) -> Result<Vec<serde_json::Value>, ApiError> {
    let serde_json::Value::Array(items) = body else {
        return Err(ApiError::invalid("the body must be an array"));
    };
    if items.is_empty() {
        return Err(ApiError::bad_request(
            MISSING_PARAMETER,
            "the list is empty",
        ));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "at most {MAX_BATCH} entries per request; got {}",
            items.len()
        )));
    }
    Ok(items)
}

fn label(item: &serde_json::Value, field: &str) -> String {
    item.get(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

fn result(item: &serde_json::Value, outcome: Result<(), ApiError>) -> BatchResult {
    let topic = match label(item, "topic") {
        topic if topic.is_empty() => label(item, "topics"),
        topic => topic,
    };
    let (code, message) = match outcome {
        Ok(()) => (0, None),
        Err(err) => (err.code, Some(err.message)),
    };
    BatchResult {
        clientid: label(item, "clientid"),
        topic,
        code,
        message,
    }
}

/// Subscribe clients in bulk
///
/// Each entry (`clientid`, `topic`, `qos`) is carried out on its own, in order; the
/// answer has one result per entry (code 0 when done). At most 1,000 entries.
#[utoipa::path(post, path = "/mqtt/subscribe_batch", tag = "mqtt",
    request_body = Vec<SubscribeRequest>,
    responses((status = 200, body = BatchDone), Errors),
    security(("app_key" = [])))]
async fn subscribe_batch(
    Extension(clients): Extension<Clients>,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchDone>, ApiError> {
    let mut data = Vec::new();
    for (index, item) in entries(body)?.into_iter().enumerate() {
        let outcome = match parse::<SubscribeRequest>(item.clone(), Some(index)) {
            Ok(request) => do_subscribe(&clients, request).await,
            Err(err) => Err(err),
        };
        data.push(result(&item, outcome));
    }
    Ok(Json(BatchDone { code: 0, data }))
}

/// Unsubscribe clients in bulk
///
/// Each entry (`clientid`, `topic`) is carried out on its own, in order; the answer has
/// one result per entry. At most 1,000 entries.
#[utoipa::path(post, path = "/mqtt/unsubscribe_batch", tag = "mqtt",
    request_body = Vec<UnsubscribeRequest>,
    responses((status = 200, body = BatchDone), Errors),
    security(("app_key" = [])))]
async fn unsubscribe_batch(
    Extension(clients): Extension<Clients>,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchDone>, ApiError> {
    let mut data = Vec::new();
    for (index, item) in entries(body)?.into_iter().enumerate() {
        let outcome = match parse::<UnsubscribeRequest>(item.clone(), Some(index)) {
            Ok(request) => do_unsubscribe(&clients, request).await,
            Err(err) => Err(err),
        };
        data.push(result(&item, outcome));
    }
    Ok(Json(BatchDone { code: 0, data }))
}
