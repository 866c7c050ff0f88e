//! PostgreSQL backend: production, shared by every control-plane replica.

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Store on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }
}

super::sql::sql_store!(PgStore, sqlx::Postgres, MIGRATOR);
super::metering::metering_sql_store!(PgStore, "GREATEST");
super::security::security_sql_store!(PgStore);
super::network::network_sql_store!(PgStore);
super::people::people_sql_store!(PgStore);
super::revision::revision_sql_store!(PgStore);
super::ports::port_sql_store!(PgStore);
super::quota::quota_sql_store!(PgStore);
super::idempotency::idempotency_sql_store!(PgStore);
crate::alerts::store::alert_sql_store!(PgStore);
super::certificates::certificate_sql_store!(PgStore);
