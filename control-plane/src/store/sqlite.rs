//! SQLite backend: the laptop default, one file under the data dir.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Store on a SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

super::sql::sql_store!(SqliteStore, sqlx::Sqlite, MIGRATOR);
super::metering::metering_sql_store!(SqliteStore, "max");
super::security::security_sql_store!(SqliteStore);
super::network::network_sql_store!(SqliteStore);
super::people::people_sql_store!(SqliteStore);
super::revision::revision_sql_store!(SqliteStore);
super::ports::port_sql_store!(SqliteStore);
super::quota::quota_sql_store!(SqliteStore);
super::idempotency::idempotency_sql_store!(SqliteStore);
crate::alerts::store::alert_sql_store!(SqliteStore);
super::certificates::certificate_sql_store!(SqliteStore);
