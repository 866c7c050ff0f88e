//! Election with a PostgreSQL session-level advisory lock.
//!
//! A candidate holds a dedicated connection (not from the pool) and tries
//! `pg_try_advisory_lock` every [`super::RETRY`]. The lock lives as long as the session:
//! when the leader dies its connection closes and PostgreSQL frees the lock at once, so
//! the next try of another replica wins. The leader pings its connection every
//! [`super::RETRY`] with a timeout; an error or a timeout means the session may be gone
//! (and the lock with it), so it stops leading before anything else can go wrong.
//! The connection's `application_name` names the replica, so any replica can tell who
//! leads from `pg_locks` and `pg_stat_activity`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::watch;

use super::RETRY;

/// The advisory lock's key ("skyp" in ASCII): `pg_locks` shows it as `objid` with
/// `classid` 0.
const LOCK_KEY: i64 = 0x736b_7970;
/// Longest wait for the leader's ping before it assumes its session is gone.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// Prefix of the leader connection's `application_name`.
const APP_PREFIX: &str = "skyport-leader ";

/// The lock, and a small pool to ask who holds it.
#[derive(Clone)]
pub struct AdvisoryLock {
    options: PgConnectOptions,
    pool: PgPool,
}

impl AdvisoryLock {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(PING_TIMEOUT)
            .connect_lazy_with(options.clone());
        Ok(Self { options, pool })
    }

    /// Campaigns for ever, publishing whether this replica leads on `leading`.
    pub async fn campaign(self, identity: String, leading: watch::Sender<bool>) {
        let options = self
            .options
            .clone()
            .application_name(&format!("{APP_PREFIX}{identity}"))
            .disable_statement_logging();
        loop {
            match PgConnection::connect_with(&options).await {
                Ok(conn) => {
                    let reason = hold(conn, &leading).await;
                    leading.send_replace(false);
                    tracing::warn!(%reason, "leader election connection lost; reconnecting");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot reach PostgreSQL for leader election")
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// The replica holding the lock, from its connection's `application_name`.
    pub async fn holder(&self) -> anyhow::Result<Option<String>> {
        let name: Option<String> = sqlx::query_scalar(
            "SELECT a.application_name FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.classid::bigint = 0 AND l.objid::bigint = $1 \
               AND l.objsubid = 1 AND l.granted \
             LIMIT 1",
        )
        .bind(LOCK_KEY)
        .fetch_optional(&self.pool)
        .await?;
        Ok(name.map(|n| n.strip_prefix(APP_PREFIX).unwrap_or(&n).to_owned()))
    }
}

/// Tries for the lock on `conn` and, once held, pings until the connection fails.
/// Returns why it gave up.
async fn hold(mut conn: PgConnection, leading: &watch::Sender<bool>) -> String {
    loop {
        let tried = tokio::time::timeout(
            PING_TIMEOUT,
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut conn),
        )
        .await;
        match tried {
            Ok(Ok(true)) => break,
            Ok(Ok(false)) => tokio::time::sleep(RETRY).await,
            Ok(Err(err)) => return err.to_string(),
            Err(_) => return "no answer in time".into(),
        }
    }
    leading.send_replace(true);
    loop {
        tokio::time::sleep(RETRY).await;
        match tokio::time::timeout(PING_TIMEOUT, conn.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return err.to_string(),
            Err(_) => return "ping not answered in time".into(),
        }
    }
}
