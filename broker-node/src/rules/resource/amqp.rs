//! A `bridge_rabbit` resource: one AMQP 0.9.1 connection with one channel in publisher
//! confirm mode, opened on first use and again after it broke.

use serde_json::{Map, Value};

use super::{server, string, unsigned, CHECK_TIMEOUT};

pub struct Amqp {
    uri: lapin::uri::AMQPUri,
    link: tokio::sync::Mutex<Option<Link>>,
}

struct Link {
    connection: lapin::Connection,
    channel: lapin::Channel,
    /// Counts the connections made, so actions know when to declare their exchange again.
    generation: u64,
}

impl Amqp {
    /// Reads `server` (default port 5672), `username`/`password` (default guest),
    /// `virtual_host` (default `/`) and `heartbeat` (seconds, default 30).
    pub fn new(config: &Map<String, Value>) -> Result<Self, String> {
        let (host, port) = server(config, 5672)?;
        let mut uri: lapin::uri::AMQPUri = "amqp://localhost"
            .parse()
            .map_err(|e| format!("server: {e}"))?;
        uri.authority.host = host;
        uri.authority.port = port;
        uri.authority.userinfo.username = string(config, "username", Some("guest"))?;
        uri.authority.userinfo.password = string(config, "password", Some("guest"))?;
        uri.vhost = string(config, "virtual_host", Some("/"))?;
        let heartbeat = unsigned(config, "heartbeat", 30)?;
        uri.query.heartbeat = Some(u16::try_from(heartbeat).map_err(|_| "heartbeat: too large")?);
        uri.query.connection_timeout = Some(CHECK_TIMEOUT.as_millis() as u64);
        Ok(Self {
            uri,
            link: tokio::sync::Mutex::new(None),
        })
    }

    /// The open channel and its connection's generation, connecting when there is none.
    pub async fn channel(&self) -> Result<(lapin::Channel, u64), String> {
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref() {
            if l.connection.status().connected() && l.channel.status().connected() {
                return Ok((l.channel.clone(), l.generation));
            }
        }
        let generation = link.as_ref().map_or(1, |l| l.generation + 1);
        if let Some(old) = link.take() {
            close(old);
        }
        let connect = async {
            let properties = lapin::ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio);
            let connection = lapin::Connection::connect_uri(self.uri.clone(), properties).await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(lapin::options::ConfirmSelectOptions::default())
                .await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let (connection, channel) = tokio::time::timeout(CHECK_TIMEOUT, connect)
            .await
            .map_err(|_| "RabbitMQ: no answer within 5 s".to_owned())?
            .map_err(|e| format!("RabbitMQ: {e}"))?;
        *link = Some(Link {
            connection,
            channel: channel.clone(),
            generation,
        });
        Ok((channel, generation))
    }

    /// Forgets a broken connection (closing it if it is still open); the message for
    /// the failure.
    pub async fn failed(&self, e: impl std::fmt::Display) -> String {
        if let Some(old) = self.link.lock().await.take() {
            close(old);
        }
        format!("RabbitMQ: {e}")
    }
}

impl Drop for Amqp {
    /// A deleted resource closes its connection cleanly (not left to the client library).
    fn drop(&mut self) {
        if let Some(link) = self.link.get_mut().take() {
            close(link);
        }
    }
}

/// Closes `link` in the background (it may already be gone).
fn close(link: Link) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        if link.connection.status().connected() {
            let _ = tokio::time::timeout(
                CHECK_TIMEOUT,
                link.connection.close(200, "skyport: reconnecting"),
            )
            .await;
        }
    });
}
