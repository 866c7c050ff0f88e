//! Per-project limits: how many deployments a project may have.
//!
//! The check and the insert happen in one transaction that first locks the project's
//! row, so concurrent creates (on any replica) can never take a project past its quota.

use async_trait::async_trait;

use super::{Deployment, Event, StoreResult};
use crate::domain::Id;

/// Quota use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// The project's own deployment quota (`None`: the control plane's default);
    /// `NotFound` for an unknown project.
    async fn deployment_quota(&self, project_id: Id) -> StoreResult<Option<i64>>;
    /// Sets (or with `None` resets to the default) the project's deployment quota.
    async fn set_deployment_quota(&self, project_id: Id, limit: Option<i64>) -> StoreResult<()>;
    /// Creates the deployment with `event`, like [`super::Store::create_deployment`],
    /// unless the project already has as many deployments (not counting those being
    /// deleted) as its quota, `default_limit` when it has none of its own: then
    /// [`super::StoreError::QuotaExceeded`] and nothing is written.
    async fn create_deployment_within_quota(
        &self,
        deployment: &Deployment,
        event: &Event,
        default_limit: i64,
    ) -> StoreResult<()>;
}

/// Implements [`QuotaStore`] for a backend struct with a `pool` field.
macro_rules! quota_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::quota::QuotaStore for $store {
            async fn deployment_quota(
                &self,
                project_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Option<i64>> {
                let (limit,): (Option<i32>,) =
                    sqlx::query_as("SELECT max_deployments FROM projects WHERE id = $1")
                        .bind(project_id.to_string())
                        .fetch_one(&self.pool)
                        .await?;
                Ok(limit.map(i64::from))
            }

            async fn set_deployment_quota(
                &self,
                project_id: $crate::domain::Id,
                limit: Option<i64>,
            ) -> $crate::store::StoreResult<()> {
                let limit = limit
                    .map(|l| {
                        i32::try_from(l).map_err(|_| {
                            $crate::store::StoreError::Corrupt(format!("quota {l}"))
                        })
                    })
                    .transpose()?;
                let done = sqlx::query("UPDATE projects SET max_deployments = $1 WHERE id = $2")
                    .bind(limit)
                    .bind(project_id.to_string())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                Ok(())
            }

            async fn create_deployment_within_quota(
                &self,
                d: &$crate::store::Deployment,
                event: &$crate::store::Event,
                default_limit: i64,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                // A write first: it locks the project's row (PostgreSQL) or the database
                // (SQLite) until commit, so the count below cannot go stale.
                let locked = sqlx::query(
                    "UPDATE projects SET max_deployments = max_deployments WHERE id = $1",
                )
                .bind(d.project_id.to_string())
                .execute(&mut *tx)
                .await?;
                if locked.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                let (own,): (Option<i32>,) =
                    sqlx::query_as("SELECT max_deployments FROM projects WHERE id = $1")
                        .bind(d.project_id.to_string())
                        .fetch_one(&mut *tx)
                        .await?;
                let limit = own.map_or(default_limit, i64::from);
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM deployments WHERE project_id = $1 AND status <> 'deleting'",
                )
                .bind(d.project_id.to_string())
                .fetch_one(&mut *tx)
                .await?;
                if count >= limit {
                    return Err($crate::store::StoreError::QuotaExceeded { limit });
                }
                $crate::store::sql::insert_deployment!(tx, d);
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(super) use quota_sql_store;
