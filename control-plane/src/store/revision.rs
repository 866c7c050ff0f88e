//! Revisions of what brokers apply (read-your-writes).
//!
//! Every write a broker must apply bumps the deployment's `generation` in its own
//! transaction; the new generation is that write's *revision*, recorded per resource
//! (`deployment_revisions`). The broker reports the revision of the settings it has in
//! force, and the reconciler stores it as the deployment's `applied_revision`: a resource
//! is `pending` while its revision is above it.

use std::collections::HashMap;

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::Id;

/// The authentication chain.
pub const AUTHENTICATION: &str = super::security::AUTHENTICATION;
/// The authorization chain.
pub const AUTHORIZATION: &str = super::security::AUTHORIZATION;
/// The custom TLS certificate.
pub const TLS: &str = "tls";
/// The Skyport-issued default server certificate (renewed by the leader).
pub const CERTIFICATE: &str = "certificate";
/// Persistent-session settings.
pub const SESSIONS: &str = "sessions";
/// The NAT gateway.
pub const NAT_GATEWAY: &str = "nat_gateway";
/// The internal endpoint.
pub const INTERNAL_ENDPOINT: &str = "internal_endpoint";

/// One app key.
pub fn app_key(app_id: Id) -> String {
    format!("app_key:{app_id}")
}

/// One custom domain.
pub fn domain(domain: &str) -> String {
    format!("domain:{domain}")
}

/// The add-on kept in `table` (the tables `delete_add_on` removes rows from).
pub fn add_on(table: &str) -> &'static str {
    match table {
        "deployment_nat_gateways" => NAT_GATEWAY,
        "deployment_internal_endpoints" => INTERNAL_ENDPOINT,
        _ => "add_on",
    }
}

/// Reading revisions back; every [`super::Store`] implements it.
#[async_trait]
pub trait RevisionStore: Send + Sync + 'static {
    /// The revision at which `resource` of the deployment last changed, if it ever did.
    async fn resource_revision(
        &self,
        deployment_id: Id,
        resource: &str,
    ) -> StoreResult<Option<i64>>;
    /// Every resource's revision, by resource name.
    async fn resource_revisions(&self, deployment_id: Id) -> StoreResult<HashMap<String, i64>>;
    /// Raises the deployment's applied revision to `revision` (what its broker reported
    /// in force), whatever its spec's generation is now; `false` when it was already at
    /// least that.
    async fn record_applied_revision(&self, deployment_id: Id, revision: i64) -> StoreResult<bool>;
}

/// Implements [`RevisionStore`] for a backend struct with a `pool` field.
macro_rules! revision_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::revision::RevisionStore for $store {
            async fn resource_revision(
                &self,
                deployment_id: $crate::domain::Id,
                resource: &str,
            ) -> $crate::store::StoreResult<Option<i64>> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "SELECT revision FROM deployment_revisions \
                     WHERE deployment_id = $1 AND resource = $2",
                )
                .bind(deployment_id.to_string())
                .bind(resource)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(revision,)| revision))
            }

            async fn resource_revisions(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<std::collections::HashMap<String, i64>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT resource, revision FROM deployment_revisions WHERE deployment_id = $1",
                )
                .bind(deployment_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().collect())
            }

            async fn record_applied_revision(
                &self,
                deployment_id: $crate::domain::Id,
                revision: i64,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE deployments SET applied_revision = $2 \
                     WHERE id = $1 AND applied_revision < $2",
                )
                .bind(deployment_id.to_string())
                .bind(revision)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(super) use revision_sql_store;

#[cfg(test)]
mod tests {
    #[test]
    fn add_on_tables_name_their_resource() {
        assert_eq!(super::add_on("deployment_nat_gateways"), super::NAT_GATEWAY);
        assert_eq!(
            super::add_on("deployment_internal_endpoints"),
            super::INTERNAL_ENDPOINT
        );
    }
}
