//! `/clients`: connected clients and disconnected persistent sessions, as EMQX 4's.
//!
//! Filters: `clientid`, `username`, `conn_state` (`connected` or `disconnected`) and
//! `_like_clientid` (substring); paged with `_page`/`_limit`. `DELETE /clients/{clientid}`
//! kicks the client and ends its session (subscriptions and queued messages).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::envelope::{data, done, Data, Done, PageQuery, Paged, Paging};
use super::error::{ApiError, INVALID_PARAMETER};
use super::Errors;
use crate::broker::registry::{Clients, Connected, Subscriptions};
use crate::broker::Broker;
use crate::metering::Meter;
use crate::mqtt::Version;
use crate::security::Security;

/// EMQX 4's code for a client that is not there.
pub const CLIENT_NOT_FOUND: u32 = 112;

pub fn router() -> OpenApiRouter<Security> {
    OpenApiRouter::new()
        .routes(routes!(list_clients))
        .routes(routes!(get_client, kick_client))
        .routes(routes!(list_subscriptions))
        .routes(routes!(client_subscriptions))
}

/// One subscription of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub node: String,
    pub clientid: String,
    pub topic: String,
    pub qos: u8,
}

fn subscription_views(
    subscriptions: &Subscriptions,
    client: Option<&str>,
) -> Vec<SubscriptionView> {
    let node = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    subscriptions
        .list()
        .into_iter()
        .filter(|(id, _, _)| client.is_none_or(|c| c == id))
        .map(|(clientid, topic, qos)| SubscriptionView {
            node: node.clone(),
            clientid,
            topic,
            qos,
        })
        .collect()
}

/// List subscriptions
///
/// Every session's subscriptions (connected clients and offline persistent sessions).
#[utoipa::path(get, path = "/subscriptions", tag = "subscriptions", params(PageQuery),
    responses((status = 200, body = Paged<SubscriptionView>), Errors),
    security(("app_key" = [])))]
async fn list_subscriptions(
    Extension(subscriptions): Extension<Subscriptions>,
    paging: Paging,
) -> Json<Paged<SubscriptionView>> {
    paging.page(subscription_views(&subscriptions, None))
}

/// A client's subscriptions
#[utoipa::path(get, path = "/subscriptions/{clientid}", tag = "subscriptions",
    params(("clientid" = String, Path)),
    responses((status = 200, body = Data<Vec<SubscriptionView>>), Errors),
    security(("app_key" = [])))]
async fn client_subscriptions(
    Extension(subscriptions): Extension<Subscriptions>,
    Path(client_id): Path<String>,
) -> Json<Data<Vec<SubscriptionView>>> {
    data(subscription_views(&subscriptions, Some(&client_id)))
}

/// A client: connected, or disconnected with a persistent session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClientView {
    pub clientid: String,
    pub username: Option<String>,
    /// `connected` or `disconnected`.
    pub conn_state: &'static str,
    pub connected: bool,
    /// Peer address (connected clients).
    pub ip_address: Option<String>,
    pub port: Option<u16>,
    /// `mqtt`, `mqtts`, `ws` or `wss`.
    pub transport: Option<&'static str>,
    pub proto_name: Option<&'static str>,
    /// 3 (MQTT 3.1), 4 (3.1.1) or 5.
    pub proto_ver: Option<u8>,
    pub keepalive: Option<u16>,
    pub clean_start: Option<bool>,
    /// RFC 3339 (connected clients).
    pub connected_at: Option<String>,
    /// Seconds until a disconnected session expires.
    pub expiry_in: Option<u64>,
}

impl ClientView {
    fn connected(c: Connected) -> Self {
        let (proto_name, proto_ver) = match c.version {
            Version::V3_1 => ("MQIsdp", 3),
            Version::V3_1_1 => ("MQTT", 4),
            Version::V5 => ("MQTT", 5),
        };
        Self {
            clientid: c.client_id,
            username: c.username,
            conn_state: "connected",
            connected: true,
            ip_address: Some(c.peer.ip().to_string()),
            port: Some(c.peer.port()),
            transport: Some(c.transport.name()),
            proto_name: Some(proto_name),
            proto_ver: Some(proto_ver),
            keepalive: Some(c.keep_alive),
            clean_start: Some(c.clean_start),
            connected_at: Some(c.connected_at.to_rfc3339()),
            expiry_in: None,
        }
    }

    fn offline(client_id: String, expires: Instant, now: Instant) -> Self {
        Self {
            clientid: client_id,
            username: None,
            conn_state: "disconnected",
            connected: false,
            ip_address: None,
            port: None,
            transport: None,
            proto_name: None,
            proto_ver: None,
            keepalive: None,
            clean_start: Some(false),
            connected_at: None,
            expiry_in: Some(expires.saturating_duration_since(now).as_secs()),
        }
    }
}

/// Filters of `GET /clients`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "documents the parameters; read from the raw query"
)]
pub struct ClientFilters {
    clientid: Option<String>,
    username: Option<String>,
    /// `connected` or `disconnected`.
    conn_state: Option<String>,
    /// Client ids containing this.
    _like_clientid: Option<String>,
}

fn all_clients(clients: &Clients, meter: &Meter) -> Vec<ClientView> {
    let now = Instant::now();
    let mut all: Vec<ClientView> = clients
        .list()
        .into_iter()
        .map(ClientView::connected)
        .collect();
    for (id, expires) in meter.offline_sessions() {
        if !all.iter().any(|c| c.clientid == id) {
            all.push(ClientView::offline(id, expires, now));
        }
    }
    all.sort_by(|a, b| a.clientid.cmp(&b.clientid));
    all
}

/// List clients
///
/// Connected clients and disconnected persistent sessions, filtered and paged.
#[utoipa::path(get, path = "/clients", tag = "clients", params(PageQuery, ClientFilters),
    responses((status = 200, body = Paged<ClientView>), Errors),
    security(("app_key" = [])))]
async fn list_clients(
    Extension(clients): Extension<Clients>,
    Extension(meter): Extension<Arc<Meter>>,
    Query(filters): Query<HashMap<String, String>>,
    paging: Paging,
) -> Result<Json<Paged<ClientView>>, ApiError> {
    let state = filters.get("conn_state").map(String::as_str);
    if state.is_some_and(|s| s != "connected" && s != "disconnected") {
        return Err(ApiError::bad_request(
            INVALID_PARAMETER,
            "conn_state must be `connected` or `disconnected`",
        ));
    }
    let wanted = |c: &ClientView| {
        filters.get("clientid").is_none_or(|id| *id == c.clientid)
            && filters
                .get("username")
                .is_none_or(|u| c.username.as_deref() == Some(u.as_str()))
            && state.is_none_or(|s| s == c.conn_state)
            && filters
                .get("_like_clientid")
                .is_none_or(|part| c.clientid.contains(part.as_str()))
    };
    let matching = all_clients(&clients, &meter)
        .into_iter()
        .filter(wanted)
        .collect();
    Ok(paging.page(matching))
}

/// Get a client
#[utoipa::path(get, path = "/clients/{clientid}", tag = "clients",
    params(("clientid" = String, Path)),
    responses((status = 200, body = Data<Vec<ClientView>>), Errors),
    security(("app_key" = [])))]
async fn get_client(
    Extension(clients): Extension<Clients>,
    Extension(meter): Extension<Arc<Meter>>,
    Path(client_id): Path<String>,
) -> Result<Json<Data<Vec<ClientView>>>, ApiError> {
    let found: Vec<ClientView> = all_clients(&clients, &meter)
        .into_iter()
        .filter(|c| c.clientid == client_id)
        .collect();
    if found.is_empty() {
        return Err(not_found(&client_id));
    }
    Ok(data(found))
}

/// Kick a client
///
/// Closes the client's connection (v5: DISCONNECT 0x98) and ends its session: its
/// subscriptions and queued messages are gone.
#[utoipa::path(delete, path = "/clients/{clientid}", tag = "clients",
    params(("clientid" = String, Path)),
    responses((status = 200, body = Done), Errors),
    security(("app_key" = [])))]
async fn kick_client(
    Extension(clients): Extension<Clients>,
    Extension(subscriptions): Extension<Subscriptions>,
    Extension(meter): Extension<Arc<Meter>>,
    Extension(broker): Extension<Broker>,
    Path(client_id): Path<String>,
) -> Result<Json<Done>, ApiError> {
    let was_connected = clients.kick(&client_id);
    let was_offline = meter
        .offline_sessions()
        .iter()
        .any(|(id, _)| *id == client_id);
    if !was_connected && !was_offline {
        return Err(not_found(&client_id));
    }
    broker.end_session(&client_id).await;
    // The kicked connection may still be winding down: its session must not be counted
    // as offline once it has gone.
    for _ in 0..50 {
        meter.forget_session(&client_id);
        if clients.get(&client_id).is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    meter.forget_session(&client_id);
    subscriptions.forget(&client_id);
    Ok(done())
}

fn not_found(client_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        CLIENT_NOT_FOUND,
        format!("client {client_id:?} is neither connected nor holding a session"),
    )
}
