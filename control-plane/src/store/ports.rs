//! Host ports of local brokers, allocated atomically.
//!
//! A port is unique per host (the table's primary key), so concurrent creates, restarts
//! and several control planes sharing one database can never hand the same port to two
//! deployments. The allocation survives stop/start; the local orchestrator replaces it
//! when a port turns out to be taken by something outside Skyport.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::Id;

/// One allocated port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRecord {
    /// The listener it serves (`tcp`, `tls`, `ws`, `wss`, `api`).
    pub listener: String,
    pub port: u16,
}

/// Port allocation's use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait PortStore: Send + Sync + 'static {
    /// The deployment's ports on `host`.
    async fn ports(&self, host: &str, deployment_id: Id) -> StoreResult<Vec<PortRecord>>;
    /// Replaces the deployment's ports on `host` with `ports`, in one transaction:
    /// `Conflict` (and nothing written) when another deployment holds any of them.
    async fn claim_ports(
        &self,
        host: &str,
        deployment_id: Id,
        ports: &[PortRecord],
    ) -> StoreResult<()>;
}

/// Implements [`PortStore`] for a backend struct with a `pool` field.
macro_rules! port_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::ports::PortStore for $store {
            async fn ports(
                &self,
                host: &str,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ports::PortRecord>> {
                let rows: Vec<(String, i32)> = sqlx::query_as(
                    "SELECT listener, port FROM port_allocations \
                     WHERE host = $1 AND deployment_id = $2 ORDER BY listener",
                )
                .bind(host)
                .bind(deployment_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(listener, port)| {
                        Ok($crate::store::ports::PortRecord {
                            port: u16::try_from(port).map_err(|_| {
                                $crate::store::StoreError::Corrupt(format!("port {port}"))
                            })?,
                            listener,
                        })
                    })
                    .collect()
            }

            async fn claim_ports(
                &self,
                host: &str,
                deployment_id: $crate::domain::Id,
                ports: &[$crate::store::ports::PortRecord],
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM port_allocations WHERE host = $1 AND deployment_id = $2")
                    .bind(host)
                    .bind(deployment_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                let now = chrono::Utc::now();
                for record in ports {
                    sqlx::query(
                        "INSERT INTO port_allocations \
                           (host, port, deployment_id, listener, allocated_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(host)
                    .bind(i32::from(record.port))
                    .bind(deployment_id.to_string())
                    .bind(&record.listener)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(super) use port_sql_store;
