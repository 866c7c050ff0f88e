//! A `bridge_nats` resource: one NATS client (it reconnects by itself; while it is
//! disconnected, actions fail their batch and retry from the buffer).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{server, string, CHECK_TIMEOUT};

pub struct Nats {
    address: String,
    user: String,
    password: String,
    token: String,
    client: tokio::sync::Mutex<Option<async_nats::Client>>,
}

impl Nats {
    /// Reads `server` (default port 4222) and either `user`/`password` or `token`.
    pub fn new(config: &Map<String, Value>) -> Result<Self, String> {
        let (host, port) = server(config, 4222)?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(Self {
            address: format!("nats://{host}:{port}"),
            user: string(config, "user", Some(""))?,
            password: string(config, "password", Some(""))?,
            token: string(config, "token", Some(""))?,
            client: tokio::sync::Mutex::new(None),
        })
    }

    /// The client, connecting when there is none.
    pub async fn client(&self) -> Result<async_nats::Client, String> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(CHECK_TIMEOUT)
            // Back within a couple of seconds of the server (the default waits longer).
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64 << attempts.min(4)).min(Duration::from_secs(2))
            });
        if !self.token.is_empty() {
            options = options.token(self.token.clone());
        } else if !self.user.is_empty() {
            options = options.user_and_password(self.user.clone(), self.password.clone());
        }
        let client = tokio::time::timeout(CHECK_TIMEOUT, options.connect(self.address.as_str()))
            .await
            .map_err(|_| "NATS: no answer within 5 s".to_owned())?
            .map_err(|e| format!("NATS: {e}"))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// The client if it is connected now.
    pub async fn connected(&self) -> Result<async_nats::Client, String> {
        let client = self.client().await?;
        match client.connection_state() {
            async_nats::connection::State::Connected => Ok(client),
            state => Err(format!("NATS: {state}")),
        }
    }

    /// Whether the server answers a round trip.
    pub async fn check(&self) -> Result<(), String> {
        let client = self.connected().await?;
        client.flush().await.map_err(|e| format!("NATS: {e}"))
    }
}
