//! Resources: the connections actions use (an HTTP client, a Redis connection, a
//! PostgreSQL or MySQL pool, an AMQP channel, a NATS client), built from a resource's
//! config and checked at creation and on GET. One file per kind of connection where it
//! needs more than a few lines.

mod amqp;
mod nats;
mod sql;

pub use amqp::Amqp;
pub use nats::Nats;

use std::time::Duration;

use serde_json::{Map, Value};

use super::model::ResourceRecord;

/// How long a connection check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Resource types, EMQX 4's names.
pub const WEB_HOOK: &str = "web_hook";
pub const REDIS: &str = "backend_redis_single";
pub const PGSQL: &str = "backend_pgsql";
pub const MYSQL: &str = "backend_mysql";
pub const RABBIT: &str = "bridge_rabbit";
pub const NATS: &str = "bridge_nats";
pub const TYPES: &[&str] = &[WEB_HOOK, REDIS, PGSQL, MYSQL, RABBIT, NATS];

/// A live resource.
pub struct Resource {
    pub record: ResourceRecord,
    pub conn: Connection,
}

/// What a resource holds.
pub enum Connection {
    WebHook {
        client: reqwest::Client,
        url: reqwest::Url,
        headers: Vec<(String, String)>,
        method: reqwest::Method,
    },
    Redis {
        client: redis::Client,
        conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    },
    Pgsql {
        pool: sqlx::PgPool,
    },
    Mysql {
        pool: sqlx::MySqlPool,
    },
    // Boxed: an AMQP URI is large beside the other connections.
    Rabbit(Box<Amqp>),
    Nats(Nats),
}

/// Reads config key `key` as a string (`default` when absent).
pub fn string(
    config: &Map<String, Value>,
    key: &str,
    default: Option<&str>,
) -> Result<String, String> {
    match config.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => default
            .map(str::to_owned)
            .ok_or_else(|| format!("missing {key}")),
        Some(other) => Err(format!("{key} must be a string; got {other}")),
    }
}

/// Reads config key `key` as an unsigned integer.
pub fn unsigned(config: &Map<String, Value>, key: &str, default: u64) -> Result<u64, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| format!("{key} must be a non-negative integer; got {v}")),
    }
}

/// Reads a `{name: value}` object of strings.
pub fn headers(config: &Map<String, Value>, key: &str) -> Result<Vec<(String, String)>, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => {
                    reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("{key}: {k:?} is not a header name"))?;
                    Ok((k.clone(), s.clone()))
                }
                other => Err(format!("{key}.{k} must be a string; got {other}")),
            })
            .collect(),
        Some(other) => Err(format!("{key} must be an object; got {other}")),
    }
}

/// Reads config key `key` as a boolean (`true`/`false` or their strings).
pub fn boolean(config: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(format!("{key} must be true or false; got {other}")),
    }
}

/// `host:port` with a default port.
fn server(config: &Map<String, Value>, default_port: u16) -> Result<(String, u16), String> {
    let text = string(config, "server", None)?;
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (
            host.trim_matches(|c| c == '[' || c == ']').to_owned(),
            port.parse()
                .map_err(|_| format!("server: bad port in {text:?}"))?,
        ),
        None => (text.clone(), default_port),
    };
    if host.is_empty() {
        return Err(format!("server: no host in {text:?}"));
    }
    Ok((host, port))
}

impl Resource {
    /// Builds the resource from its config (no connection yet); errors name the field.
    /// Webhook requests leave from `egress` (the deployment's NAT gateway address) when
    /// set.
    pub fn build(record: ResourceRecord, egress: Option<std::net::IpAddr>) -> Result<Self, String> {
        let config = &record.config;
        let conn = match record.kind.as_str() {
            WEB_HOOK => {
                let url = string(config, "url", None)?;
                let url = reqwest::Url::parse(&url).map_err(|e| format!("url: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!(
                        "url: scheme must be http or https; got {}",
                        url.scheme()
                    ));
                }
                let method = string(config, "method", Some("POST"))?;
                let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("method: {method:?} is not an HTTP method"))?;
                let timeout = unsigned(config, "request_timeout_ms", 5_000)?;
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_millis(timeout.max(1)))
                    .connect_timeout(CHECK_TIMEOUT)
                    .local_address(egress)
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
                Connection::WebHook {
                    client,
                    url,
                    headers: headers(config, "headers")?,
                    method,
                }
            }
            REDIS => {
                let (host, port) = server(config, 6379)?;
                let database = unsigned(config, "database", 0)?;
                let password = string(config, "password", Some(""))?;
                let mut info = redis::RedisConnectionInfo::default().set_db(database as i64);
                if !password.is_empty() {
                    info = info.set_password(password);
                }
                let info = redis::IntoConnectionInfo::into_connection_info(
                    redis::ConnectionAddr::Tcp(host, port),
                )
                .map_err(|e| format!("server: {e}"))?
                .set_redis_settings(info);
                let client = redis::Client::open(info).map_err(|e| format!("server: {e}"))?;
                Connection::Redis {
                    client,
                    conn: tokio::sync::Mutex::new(None),
                }
            }
            PGSQL => Connection::Pgsql {
                pool: sql::postgres(config)?,
            },
            MYSQL => Connection::Mysql {
                pool: sql::mysql(config)?,
            },
            RABBIT => Connection::Rabbit(Box::new(Amqp::new(config)?)),
            NATS => Connection::Nats(Nats::new(config)?),
            other => {
                return Err(format!(
                    "type: unknown resource type {other:?}; known: {}",
                    TYPES.join(", ")
                ))
            }
        };
        Ok(Self { record, conn })
    }

    /// Whether the service answers (within a few seconds).
    pub async fn check(&self) -> Result<(), String> {
        let check = async {
            match &self.conn {
                Connection::WebHook { url, .. } => {
                    let host = url.host_str().ok_or("url has no host")?.to_owned();
                    let port = url.port_or_known_default().unwrap_or(80);
                    tokio::net::TcpStream::connect((host.as_str(), port))
                        .await
                        .map(drop)
                        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))
                }
                Connection::Redis { .. } => {
                    let mut conn = self.redis().await?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .map(drop)
                        .map_err(|e| self.redis_failed(e))
                }
                Connection::Pgsql { pool } => sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(|e| format!("PostgreSQL: {e}")),
                Connection::Mysql { pool } => sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(|e| format!("MySQL: {e}")),
                Connection::Rabbit(amqp) => amqp.channel().await.map(drop),
                Connection::Nats(nats) => nats.check().await,
            }
        };
        tokio::time::timeout(CHECK_TIMEOUT, check)
            .await
            .unwrap_or_else(|_| Err("no answer within 5 s".to_owned()))
    }

    /// The Redis connection, connecting when there is none.
    pub async fn redis(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let Connection::Redis { client, conn } = &self.conn else {
            return Err("not a Redis resource".to_owned());
        };
        let mut slot = conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(CHECK_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| "Redis: no answer within 5 s".to_owned())?
            .map_err(|e| format!("Redis: {e}"))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Forgets a broken Redis connection; the message for the failure.
    pub fn redis_failed(&self, e: redis::RedisError) -> String {
        if let Connection::Redis { conn, .. } = &self.conn {
            if let Ok(mut slot) = conn.try_lock() {
                *slot = None;
            }
        }
        format!("Redis: {e}")
    }
}
