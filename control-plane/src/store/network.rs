//! Storage of the networking add-ons: custom domains, NAT gateways and internal
//! endpoints.
//!
//! Writes that change what the broker serves (a domain becoming active or removed, a NAT
//! gateway or internal endpoint created, changed or removed) bump the deployment's
//! `generation` in the same transaction, so the reconciler delivers them; a domain still
//! waiting for its DNS record is not delivered and bumps nothing.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Event, StoreError, StoreResult};
use crate::domain::Id;

pub use crate::domain::network::DomainStatus;

/// Who issued a domain's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertSource {
    /// Uploaded by the owner.
    Uploaded,
    /// Issued by Skyport's CA.
    Skyport,
}

impl CertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::Uploaded => "uploaded",
            CertSource::Skyport => "skyport",
        }
    }
}

/// One custom domain of a deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainRecord {
    pub domain: String,
    pub deployment_id: Id,
    pub status: DomainStatus,
    pub cert_source: CertSource,
    /// Leaf first, then the chain (PEM).
    pub cert_pem: String,
    /// The private key, sealed with the control plane's secret key.
    pub key_ciphertext: String,
    pub cert_expires_at: DateTime<Utc>,
    /// The last DNS answer seen (what the verifier observed).
    pub observed: Option<serde_json::Value>,
    pub checks: i64,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When the background verifier looks again (pending domains only).
    pub next_check_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The outcome of one DNS check of a pending domain.
#[derive(Clone, Debug)]
pub struct DomainCheck {
    pub observed: serde_json::Value,
    pub checked_at: DateTime<Utc>,
    /// `Some` makes the domain active; `None` leaves it pending until `next_check_at`.
    pub verified: bool,
    pub next_check_at: Option<DateTime<Utc>>,
}

/// A deployment's NAT gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct NatGatewayRecord {
    pub egress_addresses: Vec<IpAddr>,
    pub created_at: DateTime<Utc>,
}

/// A deployment's internal endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct InternalEndpointRecord {
    /// The private address; `None` while the platform has not assigned one.
    pub address: Option<IpAddr>,
    pub allowed_cidrs: Vec<IpNet>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Everything networking a deployment has.
#[derive(Clone, Debug, Default)]
pub struct NetworkRecord {
    pub domains: Vec<DomainRecord>,
    pub nat_gateway: Option<NatGatewayRecord>,
    pub internal_endpoint: Option<InternalEndpointRecord>,
}

/// Networking's use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait NetworkStore: Send + Sync + 'static {
    /// Adds a domain (`Conflict` when any deployment already has it), with `event`.
    async fn create_domain(
        &self,
        project_id: Id,
        record: &DomainRecord,
        event: &Event,
    ) -> StoreResult<()>;
    async fn get_domain(&self, deployment_id: Id, domain: &str) -> StoreResult<DomainRecord>;
    /// Records a DNS check; a verified one makes the domain active (bumping the
    /// generation) and records `event`. `Stale` when the domain is gone or already active.
    async fn record_domain_check(
        &self,
        project_id: Id,
        deployment_id: Id,
        domain: &str,
        check: &DomainCheck,
        event: Option<&Event>,
    ) -> StoreResult<DomainRecord>;
    /// Removes a domain with `event`; `NotFound` when the deployment has no such domain.
    async fn delete_domain(
        &self,
        project_id: Id,
        deployment_id: Id,
        domain: &str,
        event: &Event,
    ) -> StoreResult<()>;
    /// Pending domains whose next check is due at `now`, oldest due first, with their
    /// project.
    async fn due_domain_checks(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<(Id, DomainRecord)>>;

    /// Creates the NAT gateway (with `event`) or, when one exists, leaves it as it is:
    /// egress addresses are fixed. Returns the one in force and whether it was created.
    async fn put_nat_gateway(
        &self,
        project_id: Id,
        deployment_id: Id,
        record: &NatGatewayRecord,
        event: &Event,
    ) -> StoreResult<(NatGatewayRecord, bool)>;
    /// Removes it with `event`; `false` (nothing written) when there was none.
    async fn delete_nat_gateway(
        &self,
        project_id: Id,
        deployment_id: Id,
        event: &Event,
    ) -> StoreResult<bool>;

    /// Creates or changes the internal endpoint, recording `event`.
    async fn put_internal_endpoint(
        &self,
        project_id: Id,
        deployment_id: Id,
        record: &InternalEndpointRecord,
        event: &Event,
    ) -> StoreResult<()>;
    async fn delete_internal_endpoint(
        &self,
        project_id: Id,
        deployment_id: Id,
        event: &Event,
    ) -> StoreResult<bool>;

    /// The deployment's domains (by name), NAT gateway and internal endpoint.
    async fn network(&self, deployment_id: Id) -> StoreResult<NetworkRecord>;

    /// Deployments whose internal endpoint has no address yet (one a load balancer
    /// assigns, on Kubernetes).
    async fn internal_endpoints_awaiting_address(&self) -> StoreResult<Vec<Id>>;
    /// Records the address the platform assigned to the deployment's internal endpoint;
    /// `false` when it has none (nothing written). Not a spec change: the broker is not
    /// told, since the load balancer, not the broker, holds the address.
    async fn set_internal_endpoint_address(
        &self,
        deployment_id: Id,
        address: IpAddr,
    ) -> StoreResult<bool>;
}

#[derive(sqlx::FromRow)]
pub(super) struct DomainRow {
    pub domain: String,
    pub deployment_id: String,
    pub status: String,
    pub cert_source: String,
    pub cert_pem: String,
    pub key_ciphertext: String,
    pub cert_expires_at: DateTime<Utc>,
    pub observed: Option<sqlx::types::Json<serde_json::Value>>,
    pub checks: i64,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub next_check_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub(super) const DOMAIN_COLUMNS: &str = "domain, deployment_id, status, cert_source, cert_pem, \
     key_ciphertext, cert_expires_at, observed, checks, last_checked_at, next_check_at, \
     verified_at, created_at";

impl TryFrom<DomainRow> for DomainRecord {
    type Error = StoreError;

    fn try_from(row: DomainRow) -> Result<Self, Self::Error> {
        Ok(DomainRecord {
            deployment_id: row.deployment_id.parse().map_err(|_| {
                StoreError::Corrupt(format!("deployment id `{}`", row.deployment_id))
            })?,
            status: match row.status.as_str() {
                "pending_dns" => DomainStatus::PendingDns,
                "active" => DomainStatus::Active,
                other => return Err(StoreError::Corrupt(format!("domain status `{other}`"))),
            },
            cert_source: match row.cert_source.as_str() {
                "uploaded" => CertSource::Uploaded,
                "skyport" => CertSource::Skyport,
                other => return Err(StoreError::Corrupt(format!("certificate source `{other}`"))),
            },
            domain: row.domain,
            cert_pem: row.cert_pem,
            key_ciphertext: row.key_ciphertext,
            cert_expires_at: row.cert_expires_at,
            observed: row.observed.map(|json| json.0),
            checks: row.checks,
            last_checked_at: row.last_checked_at,
            next_check_at: row.next_check_at,
            verified_at: row.verified_at,
            created_at: row.created_at,
        })
    }
}

/// A domain row with its deployment's project.
#[derive(sqlx::FromRow)]
pub(super) struct DomainProjectRow {
    #[sqlx(flatten)]
    pub domain: DomainRow,
    pub project_id: String,
}

impl TryFrom<DomainProjectRow> for (crate::domain::Id, DomainRecord) {
    type Error = StoreError;

    fn try_from(row: DomainProjectRow) -> Result<Self, Self::Error> {
        let project = super::sql::parse("project id", &row.project_id)?;
        Ok((project, row.domain.try_into()?))
    }
}

/// Domains matching `$filter` (SQL after `WHERE`, binding `$1` to `$at` and `$2` to
/// `$limit`), each with its deployment's project, in one query.
macro_rules! domains_with_projects {
    ($self:ident, $filter:expr, $at:expr, $limit:expr) => {{
        let rows: Vec<$crate::store::network::DomainProjectRow> = sqlx::query_as(&format!(
            "SELECT {}, (SELECT d.project_id FROM deployments d \
               WHERE d.id = deployment_domains.deployment_id) AS project_id \
             FROM deployment_domains WHERE {}",
            $crate::store::network::DOMAIN_COLUMNS,
            $filter
        ))
        .bind($at)
        .bind($limit)
        .fetch_all(&$self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }};
}

pub(super) use domains_with_projects;

/// Implements [`NetworkStore`] for a backend struct with a `pool` field.
macro_rules! network_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::network::NetworkStore for $store {
            async fn create_domain(
                &self,
                project_id: $crate::domain::Id,
                record: &$crate::store::network::DomainRecord,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                // Only checks that the deployment is the project's: pending domains are
                // not delivered to the broker.
                let owned: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM deployments WHERE project_id = $1 AND id = $2")
                        .bind(project_id.to_string())
                        .bind(record.deployment_id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                if owned.is_none() {
                    return Err($crate::store::StoreError::NotFound);
                }
                sqlx::query(&format!(
                    "INSERT INTO deployment_domains ({}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    $crate::store::network::DOMAIN_COLUMNS
                ))
                .bind(&record.domain)
                .bind(record.deployment_id.to_string())
                .bind(record.status.as_str())
                .bind(record.cert_source.as_str())
                .bind(&record.cert_pem)
                .bind(&record.key_ciphertext)
                .bind(record.cert_expires_at)
                .bind(record.observed.as_ref().map(sqlx::types::Json))
                .bind(record.checks)
                .bind(record.last_checked_at)
                .bind(record.next_check_at)
                .bind(record.verified_at)
                .bind(record.created_at)
                .execute(&mut *tx)
                .await?;
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }

            async fn get_domain(
                &self,
                deployment_id: $crate::domain::Id,
                domain: &str,
            ) -> $crate::store::StoreResult<$crate::store::network::DomainRecord> {
                let row: $crate::store::network::DomainRow = sqlx::query_as(&format!(
                    "SELECT {} FROM deployment_domains WHERE deployment_id = $1 AND domain = $2",
                    $crate::store::network::DOMAIN_COLUMNS
                ))
                .bind(deployment_id.to_string())
                .bind(domain)
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn record_domain_check(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                domain: &str,
                check: &$crate::store::network::DomainCheck,
                event: Option<&$crate::store::Event>,
            ) -> $crate::store::StoreResult<$crate::store::network::DomainRecord> {
                let mut tx = self.pool.begin().await?;
                let status = if check.verified { "active" } else { "pending_dns" };
                let done = sqlx::query(
                    "UPDATE deployment_domains SET status = $1, observed = $2, \
                       checks = checks + 1, last_checked_at = $3, next_check_at = $4, \
                       verified_at = $7 \
                     WHERE deployment_id = $5 AND domain = $6 AND status = 'pending_dns'",
                )
                .bind(status)
                .bind(sqlx::types::Json(&check.observed))
                .bind(check.checked_at)
                .bind(check.next_check_at)
                .bind(deployment_id.to_string())
                .bind(domain)
                .bind(check.verified.then_some(check.checked_at))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Stale);
                }
                if check.verified {
                    $crate::store::security::bump_generation!(
                        tx,
                        project_id,
                        deployment_id,
                        $crate::store::revision::domain(domain)
                    );
                }
                if let Some(event) = event {
                    $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                }
                let row: $crate::store::network::DomainRow = sqlx::query_as(&format!(
                    "SELECT {} FROM deployment_domains WHERE deployment_id = $1 AND domain = $2",
                    $crate::store::network::DOMAIN_COLUMNS
                ))
                .bind(deployment_id.to_string())
                .bind(domain)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                row.try_into()
            }

            async fn delete_domain(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                domain: &str,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM deployment_domains WHERE deployment_id = $1 AND domain = $2",
                )
                .bind(deployment_id.to_string())
                .bind(domain)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::domain(domain)
                );
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }

            async fn due_domain_checks(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<
                Vec<($crate::domain::Id, $crate::store::network::DomainRecord)>,
            > {
                $crate::store::network::domains_with_projects!(
                    self,
                    "status = 'pending_dns' AND next_check_at <= $1 \
                     ORDER BY next_check_at LIMIT $2",
                    now,
                    limit
                )
            }

            async fn put_nat_gateway(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                record: &$crate::store::network::NatGatewayRecord,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<($crate::store::network::NatGatewayRecord, bool)>
            {
                let mut tx = self.pool.begin().await?;
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::NAT_GATEWAY
                );
                let existing: Option<(
                    sqlx::types::Json<Vec<std::net::IpAddr>>,
                    chrono::DateTime<chrono::Utc>,
                )> = sqlx::query_as(
                    "SELECT egress_addresses, created_at FROM deployment_nat_gateways \
                     WHERE deployment_id = $1",
                )
                .bind(deployment_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((addresses, created_at)) = existing {
                    // Nothing changes: roll back the generation bump.
                    tx.rollback().await?;
                    return Ok((
                        $crate::store::network::NatGatewayRecord {
                            egress_addresses: addresses.0,
                            created_at,
                        },
                        false,
                    ));
                }
                sqlx::query(
                    "INSERT INTO deployment_nat_gateways (deployment_id, egress_addresses, created_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(deployment_id.to_string())
                .bind(sqlx::types::Json(&record.egress_addresses))
                .bind(record.created_at)
                .execute(&mut *tx)
                .await?;
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok((record.clone(), true))
            }

            async fn delete_nat_gateway(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                self.delete_add_on("deployment_nat_gateways", project_id, deployment_id, event)
                    .await
            }

            async fn put_internal_endpoint(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                record: &$crate::store::network::InternalEndpointRecord,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::INTERNAL_ENDPOINT
                );
                sqlx::query(
                    "INSERT INTO deployment_internal_endpoints \
                       (deployment_id, address, allowed_cidrs, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (deployment_id) DO UPDATE SET \
                       address = excluded.address, allowed_cidrs = excluded.allowed_cidrs, \
                       updated_at = excluded.updated_at",
                )
                .bind(deployment_id.to_string())
                .bind(record.address.map(|a| a.to_string()))
                .bind(sqlx::types::Json(&record.allowed_cidrs))
                .bind(record.created_at)
                .bind(record.updated_at)
                .execute(&mut *tx)
                .await?;
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }

            async fn internal_endpoints_awaiting_address(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::domain::Id>> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT deployment_id FROM deployment_internal_endpoints \
                     WHERE address IS NULL ORDER BY deployment_id",
                )
                .fetch_all(&self.pool)
                .await?;
                ids.iter()
                    .map(|id| $crate::store::sql::parse("deployment id", id))
                    .collect()
            }

            async fn set_internal_endpoint_address(
                &self,
                deployment_id: $crate::domain::Id,
                address: std::net::IpAddr,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE deployment_internal_endpoints SET address = $1, updated_at = $2 \
                     WHERE deployment_id = $3",
                )
                .bind(address.to_string())
                .bind(chrono::Utc::now())
                .bind(deployment_id.to_string())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_internal_endpoint(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                self.delete_add_on(
                    "deployment_internal_endpoints",
                    project_id,
                    deployment_id,
                    event,
                )
                .await
            }

            async fn network(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::store::network::NetworkRecord> {
                let rows: Vec<$crate::store::network::DomainRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM deployment_domains WHERE deployment_id = $1 ORDER BY domain",
                    $crate::store::network::DOMAIN_COLUMNS
                ))
                .bind(deployment_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                let nat: Option<(
                    sqlx::types::Json<Vec<std::net::IpAddr>>,
                    chrono::DateTime<chrono::Utc>,
                )> = sqlx::query_as(
                    "SELECT egress_addresses, created_at FROM deployment_nat_gateways \
                     WHERE deployment_id = $1",
                )
                .bind(deployment_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                let internal: Option<(
                    Option<String>,
                    sqlx::types::Json<Vec<ipnet::IpNet>>,
                    chrono::DateTime<chrono::Utc>,
                    chrono::DateTime<chrono::Utc>,
                )> = sqlx::query_as(
                    "SELECT address, allowed_cidrs, created_at, updated_at \
                     FROM deployment_internal_endpoints WHERE deployment_id = $1",
                )
                .bind(deployment_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok($crate::store::network::NetworkRecord {
                    domains: $crate::store::sql::convert(rows)?,
                    nat_gateway: nat.map(|(addresses, created_at)| {
                        $crate::store::network::NatGatewayRecord {
                            egress_addresses: addresses.0,
                            created_at,
                        }
                    }),
                    internal_endpoint: internal
                        .map(|(address, cidrs, created_at, updated_at)| {
                            Ok::<_, $crate::store::StoreError>(
                                $crate::store::network::InternalEndpointRecord {
                                    address: address
                                        .map(|a| {
                                            a.parse().map_err(|_| {
                                                $crate::store::StoreError::Corrupt(format!(
                                                    "internal address `{a}`"
                                                ))
                                            })
                                        })
                                        .transpose()?,
                                    allowed_cidrs: cidrs.0,
                                    created_at,
                                    updated_at,
                                },
                            )
                        })
                        .transpose()?,
                })
            }
        }

        impl $store {
            /// Deletes the add-on row of `table`, bumping the generation and recording
            /// `event`; `false` (nothing written) when there was none.
            async fn delete_add_on(
                &self,
                table: &str,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(&format!("DELETE FROM {table} WHERE deployment_id = $1"))
                    .bind(deployment_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::add_on(table)
                );
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(super) use network_sql_store;
