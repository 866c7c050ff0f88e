//! Connection pools of the SQL sinks (`backend_pgsql`, `backend_mysql`): the same config
//! keys (`server`, `database`, `user`, `password`, `pool_size`), connected lazily.
//!
//! Both sessions are set up so that the literals `actions/insert.rs` renders mean the
//! same thing: a backslash is an ordinary character (PostgreSQL's
//! `standard_conforming_strings`, MySQL's `NO_BACKSLASH_ESCAPES`), a quote is doubled.

use serde_json::{Map, Value};
use sqlx::Executor;

use super::{server, string, unsigned, CHECK_TIMEOUT};

/// How many connections a pool holds (`pool_size`, default 8, 1 to 64).
fn pool_size(config: &Map<String, Value>) -> Result<u32, String> {
    Ok(unsigned(config, "pool_size", 8)?.clamp(1, 64) as u32)
}

pub fn postgres(config: &Map<String, Value>) -> Result<sqlx::PgPool, String> {
    let (host, port) = server(config, 5432)?;
    let options = sqlx::postgres::PgConnectOptions::new()
        .host(&host)
        .port(port)
        .database(&string(config, "database", None)?)
        .username(&string(config, "user", None)?)
        .password(&string(config, "password", Some(""))?)
        .options([("standard_conforming_strings", "on")]);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool_size(config)?)
        .acquire_timeout(CHECK_TIMEOUT)
        .connect_lazy_with(options))
}

pub fn mysql(config: &Map<String, Value>) -> Result<sqlx::MySqlPool, String> {
    let (host, port) = server(config, 3306)?;
    let mut options = sqlx::mysql::MySqlConnectOptions::new()
        .host(&host)
        .port(port)
        .database(&string(config, "database", None)?)
        .username(&string(config, "user", None)?)
        .charset("utf8mb4");
    // An empty password is no password (MySQL refuses an empty one given as such).
    let password = string(config, "password", Some(""))?;
    if !password.is_empty() {
        options = options.password(&password);
    }
    Ok(sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(pool_size(config)?)
        .acquire_timeout(CHECK_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "SET SESSION sql_mode = \
                     CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_BACKSLASH_ESCAPES')",
                )
                .await
                .map(drop)
            })
        })
        .connect_lazy_with(options))
}
