//! Storage of certificates over their lifetime: each deployment's Skyport-issued server
//! certificate, renewals (of it and of Skyport-issued domain certificates), and the
//! notices given about uploaded certificates nearing expiry.
//!
//! A renewal replaces exactly the certificate it renews (compared by serial, or by PEM
//! for domains), bumps the deployment's generation when the broker serves it, and records
//! its event, all in one transaction: a renewal is delivered like any other change, and
//! two renewals of one certificate cannot both land.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use super::{DomainRecord, Event, StoreResult};
use crate::domain::Id;

/// A deployment's Skyport-issued server certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentCertificate {
    pub deployment_id: Id,
    pub project_id: Id,
    /// The DNS names and addresses it was issued for.
    pub names: Vec<String>,
    /// Leaf first, then the CA.
    pub cert_pem: String,
    /// The private key, sealed with the control plane's secret key.
    pub key_ciphertext: String,
    /// Upper-case hex.
    pub serial: String,
    pub not_after: DateTime<Utc>,
    pub issued_at: DateTime<Utc>,
}

/// An uploaded certificate nearing its expiry.
#[derive(Clone, Debug, PartialEq)]
pub struct CertificateNotice {
    pub deployment_id: Id,
    pub project_id: Id,
    /// `tls` (the custom certificate) or `domain:<name>`.
    pub resource: String,
    pub not_after: DateTime<Utc>,
}

impl CertificateNotice {
    /// The certificate's identity among notices: its resource and expiry.
    fn expires_key(&self) -> String {
        self.not_after.to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

/// Certificates' use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait CertificateStore: Send + Sync + 'static {
    async fn deployment_certificate(
        &self,
        deployment_id: Id,
    ) -> StoreResult<Option<DeploymentCertificate>>;
    /// Stores `cert` if the deployment's stored certificate is still the one with serial
    /// `previous` (`None`: it has none), else `Stale` and nothing is written. A renewal
    /// (`Some(event)`) also bumps the generation (so the broker is handed the new one)
    /// and records the event.
    async fn put_deployment_certificate(
        &self,
        cert: &DeploymentCertificate,
        previous: Option<&str>,
        renewal: Option<&Event>,
    ) -> StoreResult<()>;
    /// Deployment certificates expiring before `before`, soonest first.
    async fn due_deployment_certificates(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<DeploymentCertificate>>;
    /// Skyport-issued domain certificates expiring before `before`, with their project.
    async fn due_domain_certificates(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<(Id, DomainRecord)>>;
    /// Replaces the domain's certificate if it is still `previous_pem` (else `Stale`),
    /// bumping the generation when the domain is active (served), with `event`.
    async fn renew_domain_certificate(
        &self,
        project_id: Id,
        renewed: &DomainRecord,
        previous_pem: &str,
        event: &Event,
    ) -> StoreResult<()>;
    /// Uploaded certificates (custom TLS, custom domains) expiring before `before`.
    async fn expiring_uploaded_certificates(
        &self,
        before: DateTime<Utc>,
    ) -> StoreResult<Vec<CertificateNotice>>;
    /// Records the notice with `event`, unless this certificate had one: `false` then,
    /// and nothing is written.
    async fn record_certificate_notice(
        &self,
        notice: &CertificateNotice,
        event: &Event,
    ) -> StoreResult<bool>;
}

type CertificateRow = (
    String,
    String,
    sqlx::types::Json<Vec<String>>,
    String,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

pub(super) const CERTIFICATE_SELECT: &str = "SELECT c.deployment_id, d.project_id, c.names, \
     c.cert_pem, c.key_ciphertext, c.serial, c.not_after, c.issued_at \
     FROM deployment_certificates c JOIN deployments d ON d.id = c.deployment_id";

pub(super) fn certificate_of(row: CertificateRow) -> StoreResult<DeploymentCertificate> {
    let (deployment_id, project_id, names, cert_pem, key_ciphertext, serial, not_after, issued_at) =
        row;
    Ok(DeploymentCertificate {
        deployment_id: super::sql::parse("deployment id", &deployment_id)?,
        project_id: super::sql::parse("project id", &project_id)?,
        names: names.0,
        cert_pem,
        key_ciphertext,
        serial,
        not_after,
        issued_at,
    })
}

pub(super) fn notice_of(
    (deployment_id, project_id, resource, not_after): (String, String, String, DateTime<Utc>),
) -> StoreResult<CertificateNotice> {
    Ok(CertificateNotice {
        deployment_id: super::sql::parse("deployment id", &deployment_id)?,
        project_id: super::sql::parse("project id", &project_id)?,
        resource,
        not_after,
    })
}

pub(super) fn notice_key(notice: &CertificateNotice) -> String {
    notice.expires_key()
}

/// Implements [`CertificateStore`] for a backend struct with a `pool` field.
macro_rules! certificate_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::certificates::CertificateStore for $store {
            async fn deployment_certificate(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<
                Option<$crate::store::certificates::DeploymentCertificate>,
            > {
                let row = sqlx::query_as(&format!(
                    "{} WHERE c.deployment_id = $1",
                    $crate::store::certificates::CERTIFICATE_SELECT
                ))
                .bind(deployment_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::store::certificates::certificate_of)
                    .transpose()
            }

            async fn put_deployment_certificate(
                &self,
                cert: &$crate::store::certificates::DeploymentCertificate,
                previous: Option<&str>,
                renewal: Option<&$crate::store::Event>,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let written = match previous {
                    None => sqlx::query(
                        "INSERT INTO deployment_certificates \
                           (deployment_id, names, cert_pem, key_ciphertext, serial, not_after, issued_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (deployment_id) DO NOTHING",
                    )
                    .bind(cert.deployment_id.to_string())
                    .bind(sqlx::types::Json(&cert.names))
                    .bind(&cert.cert_pem)
                    .bind(&cert.key_ciphertext)
                    .bind(&cert.serial)
                    .bind(cert.not_after)
                    .bind(cert.issued_at)
                    .execute(&mut *tx)
                    .await?,
                    Some(previous) => sqlx::query(
                        "UPDATE deployment_certificates SET names = $2, cert_pem = $3, \
                           key_ciphertext = $4, serial = $5, not_after = $6, issued_at = $7 \
                         WHERE deployment_id = $1 AND serial = $8",
                    )
                    .bind(cert.deployment_id.to_string())
                    .bind(sqlx::types::Json(&cert.names))
                    .bind(&cert.cert_pem)
                    .bind(&cert.key_ciphertext)
                    .bind(&cert.serial)
                    .bind(cert.not_after)
                    .bind(cert.issued_at)
                    .bind(previous)
                    .execute(&mut *tx)
                    .await?,
                };
                if written.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Stale);
                }
                if let Some(event) = renewal {
                    $crate::store::security::bump_generation!(
                        tx,
                        cert.project_id,
                        cert.deployment_id,
                        $crate::store::revision::CERTIFICATE
                    );
                    $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn due_deployment_certificates(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<
                Vec<$crate::store::certificates::DeploymentCertificate>,
            > {
                let rows = sqlx::query_as(&format!(
                    "{} WHERE c.not_after < $1 ORDER BY c.not_after LIMIT $2",
                    $crate::store::certificates::CERTIFICATE_SELECT
                ))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map($crate::store::certificates::certificate_of)
                    .collect()
            }

            async fn due_domain_certificates(
                &self,
                before: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<
                Vec<($crate::domain::Id, $crate::store::network::DomainRecord)>,
            > {
                $crate::store::network::domains_with_projects!(
                    self,
                    "cert_source = 'skyport' AND cert_expires_at < $1 \
                     ORDER BY cert_expires_at LIMIT $2",
                    before,
                    limit
                )
            }

            async fn renew_domain_certificate(
                &self,
                project_id: $crate::domain::Id,
                renewed: &$crate::store::network::DomainRecord,
                previous_pem: &str,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE deployment_domains SET cert_pem = $1, key_ciphertext = $2, \
                       cert_expires_at = $3 \
                     WHERE deployment_id = $4 AND domain = $5 AND cert_pem = $6",
                )
                .bind(&renewed.cert_pem)
                .bind(&renewed.key_ciphertext)
                .bind(renewed.cert_expires_at)
                .bind(renewed.deployment_id.to_string())
                .bind(&renewed.domain)
                .bind(previous_pem)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Stale);
                }
                // A domain still waiting for its DNS record is not served: nothing to
                // deliver.
                if renewed.status == $crate::store::DomainStatus::Active {
                    $crate::store::security::bump_generation!(
                        tx,
                        project_id,
                        renewed.deployment_id,
                        $crate::store::revision::domain(&renewed.domain)
                    );
                }
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }

            async fn expiring_uploaded_certificates(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::certificates::CertificateNotice>>
            {
                let rows: Vec<(String, String, String, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as(
                        "SELECT t.deployment_id, d.project_id, 'tls', t.not_after \
                         FROM deployment_tls t JOIN deployments d ON d.id = t.deployment_id \
                         WHERE t.not_after < $1 \
                         UNION ALL \
                         SELECT g.deployment_id, d.project_id, 'domain:' || g.domain, \
                           g.cert_expires_at \
                         FROM deployment_domains g JOIN deployments d ON d.id = g.deployment_id \
                         WHERE g.cert_source = 'uploaded' AND g.cert_expires_at < $1",
                    )
                    .bind(before)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map($crate::store::certificates::notice_of)
                    .collect()
            }

            async fn record_certificate_notice(
                &self,
                notice: &$crate::store::certificates::CertificateNotice,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "INSERT INTO certificate_notices \
                       (deployment_id, resource, expires_at, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(notice.deployment_id.to_string())
                .bind(&notice.resource)
                .bind($crate::store::certificates::notice_key(notice))
                .bind(event.created_at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(super) use certificate_sql_store;
