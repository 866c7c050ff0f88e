//! Broker security storage: deployment app keys, authentication and authorization
//! chains, and custom TLS certificates.
//!
//! Every write also bumps the deployment's `generation` in the same transaction (and
//! answers `NotFound` when the deployment is not in the project), so the level-triggered
//! reconciler delivers the change to the broker. Secrets never reach the database in the
//! clear: app keys as the SHA-256 of the secret, TLS private keys as ciphertext.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use skyport_settings::security::{AppKey, Authentication, Authorization, SessionSettings, TlsType};

use super::{Event, StoreError, StoreResult};
use crate::domain::tls::CertificateDetails;
use crate::domain::Id;

/// A deployment API key as listed: never its secret.
#[derive(Clone, Debug, PartialEq)]
pub struct AppKeyRecord {
    pub app_id: Id,
    pub deployment_id: Id,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The console sign-in session (its id) the key lives and dies with, if any.
    pub console_session: Option<String>,
    /// The key may only read through the deployment API.
    pub read_only: bool,
}

/// A stored custom certificate; the private key only as ciphertext.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsRecord {
    pub tls_type: TlsType,
    /// Leaf first, then the chain (PEM).
    pub cert_pem: String,
    /// The private key, sealed with the control plane's secret key.
    pub key_ciphertext: String,
    /// Client CA for two-way TLS (PEM).
    pub ca_pem: Option<String>,
    pub details: CertificateDetails,
    pub updated_at: DateTime<Utc>,
}

/// Everything a deployment's broker needs for its `security.json`.
#[derive(Clone, Debug, Default)]
pub struct SecurityRecord {
    pub app_keys: Vec<AppKey>,
    /// `None` until the owner sets one: the broker's default applies.
    pub authentication: Option<Authentication>,
    pub authorization: Option<Authorization>,
    pub tls: Option<TlsRecord>,
    /// `None` until the owner sets them: the broker's defaults apply.
    pub sessions: Option<SessionSettings>,
}

/// Broker security's use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait SecurityStore: Send + Sync + 'static {
    /// Adds an app key with the hex SHA-256 of its secret.
    async fn create_app_key(
        &self,
        project_id: Id,
        key: &AppKeyRecord,
        secret_sha256: &str,
    ) -> StoreResult<()>;
    /// A page of a deployment's app keys, by app id.
    async fn list_app_keys(
        &self,
        deployment_id: Id,
        after: Option<Id>,
        limit: i64,
    ) -> StoreResult<Vec<AppKeyRecord>>;
    /// Removes an app key (`NotFound` if the deployment has no such key).
    async fn delete_app_key(
        &self,
        project_id: Id,
        deployment_id: Id,
        app_id: Id,
    ) -> StoreResult<()>;

    async fn get_authentication(&self, deployment_id: Id) -> StoreResult<Option<Authentication>>;
    async fn put_authentication(
        &self,
        project_id: Id,
        deployment_id: Id,
        chain: &Authentication,
    ) -> StoreResult<()>;
    async fn get_authorization(&self, deployment_id: Id) -> StoreResult<Option<Authorization>>;
    async fn put_authorization(
        &self,
        project_id: Id,
        deployment_id: Id,
        chain: &Authorization,
    ) -> StoreResult<()>;

    /// The deployment's custom certificate, if it has one.
    async fn get_tls(&self, deployment_id: Id) -> StoreResult<Option<TlsRecord>>;
    /// Sets (or replaces) the custom certificate, recording `event` in the same transaction.
    async fn put_tls(
        &self,
        project_id: Id,
        deployment_id: Id,
        tls: &TlsRecord,
        event: &Event,
    ) -> StoreResult<()>;
    /// Removes the custom certificate, recording `event`; `false` (and nothing written)
    /// when there was none.
    async fn delete_tls(
        &self,
        project_id: Id,
        deployment_id: Id,
        event: &Event,
    ) -> StoreResult<bool>;

    async fn get_session_settings(&self, deployment_id: Id)
        -> StoreResult<Option<SessionSettings>>;
    async fn put_session_settings(
        &self,
        project_id: Id,
        deployment_id: Id,
        settings: &SessionSettings,
    ) -> StoreResult<()>;

    /// Everything the broker's `security.json` is built from.
    async fn broker_security(&self, deployment_id: Id) -> StoreResult<SecurityRecord>;
}

pub(super) const AUTHENTICATION: &str = "authentication";
pub(super) const AUTHORIZATION: &str = "authorization";

#[derive(sqlx::FromRow)]
pub(super) struct AppKeyRow {
    pub app_id: String,
    pub deployment_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub console_session: Option<String>,
    pub read_only: bool,
}

impl TryFrom<AppKeyRow> for AppKeyRecord {
    type Error = StoreError;

    fn try_from(row: AppKeyRow) -> Result<Self, Self::Error> {
        Ok(AppKeyRecord {
            app_id: parse_id("app id", &row.app_id)?,
            deployment_id: parse_id("deployment id", &row.deployment_id)?,
            name: row.name,
            created_at: row.created_at,
            console_session: row.console_session,
            read_only: row.read_only,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TlsRow {
    pub tls_type: String,
    pub cert_pem: String,
    pub key_ciphertext: String,
    pub ca_pem: Option<String>,
    pub subject: String,
    pub issuer: String,
    pub sans: sqlx::types::Json<Vec<String>>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<TlsRow> for TlsRecord {
    type Error = StoreError;

    fn try_from(row: TlsRow) -> Result<Self, Self::Error> {
        Ok(TlsRecord {
            tls_type: parse_tls_type(&row.tls_type)?,
            cert_pem: row.cert_pem,
            key_ciphertext: row.key_ciphertext,
            ca_pem: row.ca_pem,
            details: CertificateDetails {
                subject: row.subject,
                issuer: row.issuer,
                sans: row.sans.0,
                not_before: row.not_before,
                not_after: row.not_after,
            },
            updated_at: row.updated_at,
        })
    }
}

pub(super) const TLS_COLUMNS: &str = "tls_type, cert_pem, key_ciphertext, ca_pem, subject, \
     issuer, sans, not_before, not_after, updated_at";

fn parse_id(what: &str, raw: &str) -> Result<Id, StoreError> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} `{raw}`")))
}

/// The TLS type as stored: its `security.json` spelling.
pub fn tls_type_str(t: TlsType) -> &'static str {
    match t {
        TlsType::OneWay => "one-way",
        TlsType::TwoWay => "two-way",
    }
}

fn parse_tls_type(raw: &str) -> Result<TlsType, StoreError> {
    match raw {
        "one-way" => Ok(TlsType::OneWay),
        "two-way" => Ok(TlsType::TwoWay),
        other => Err(StoreError::Corrupt(format!("tls type `{other}`"))),
    }
}

/// Bumps the deployment's generation inside the transaction `$tx` and records the new
/// generation as the revision of `$resource` (see [`super::RevisionStore`]); returns
/// `NotFound` from the enclosing function (rolling back) when the project has no such
/// deployment.
macro_rules! bump_generation {
    ($tx:ident, $project_id:expr, $deployment_id:expr, $resource:expr) => {
        let bumped: Option<(i64,)> = sqlx::query_as(
            "UPDATE deployments SET generation = generation + 1, updated_at = $3 \
             WHERE project_id = $1 AND id = $2 RETURNING generation",
        )
        .bind($project_id.to_string())
        .bind($deployment_id.to_string())
        .bind(chrono::Utc::now())
        .fetch_optional(&mut *$tx)
        .await?;
        let Some((revision,)) = bumped else {
            return Err($crate::store::StoreError::NotFound);
        };
        sqlx::query(
            "INSERT INTO deployment_revisions (deployment_id, resource, revision) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (deployment_id, resource) DO UPDATE SET revision = excluded.revision",
        )
        .bind($deployment_id.to_string())
        .bind(AsRef::<str>::as_ref(&$resource))
        .bind(revision)
        .execute(&mut *$tx)
        .await?;
    };
}

pub(super) use bump_generation;

/// Implements [`SecurityStore`] for a backend struct with a `pool` field.
macro_rules! security_sql_store {
    ($store:ty) => {
        impl $store {
            async fn get_chain<T: serde::de::DeserializeOwned + Send + Unpin + 'static>(
                &self,
                deployment_id: $crate::domain::Id,
                kind: &str,
            ) -> $crate::store::StoreResult<Option<T>> {
                let row: Option<(sqlx::types::Json<T>,)> = sqlx::query_as(
                    "SELECT chain FROM deployment_auth_chains WHERE deployment_id = $1 AND kind = $2",
                )
                .bind(deployment_id.to_string())
                .bind(kind)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(json,)| json.0))
            }

            async fn put_chain<T: serde::Serialize + Sync>(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                kind: &str,
                chain: &T,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                $crate::store::security::bump_generation!(tx, project_id, deployment_id, kind);
                sqlx::query(
                    "INSERT INTO deployment_auth_chains (deployment_id, kind, chain, updated_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (deployment_id, kind) DO UPDATE \
                       SET chain = excluded.chain, updated_at = excluded.updated_at",
                )
                .bind(deployment_id.to_string())
                .bind(kind)
                .bind(sqlx::types::Json(chain))
                .bind(chrono::Utc::now())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::security::SecurityStore for $store {
            async fn create_app_key(
                &self,
                project_id: $crate::domain::Id,
                key: &$crate::store::security::AppKeyRecord,
                secret_sha256: &str,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    key.deployment_id,
                    $crate::store::revision::app_key(key.app_id)
                );
                sqlx::query(
                    "INSERT INTO deployment_app_keys \
                       (app_id, deployment_id, name, secret_sha256, created_at, console_session, \
                        read_only) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key.app_id.to_string())
                .bind(key.deployment_id.to_string())
                .bind(&key.name)
                .bind(secret_sha256)
                .bind(key.created_at)
                .bind(&key.console_session)
                .bind(key.read_only)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_app_keys(
                &self,
                deployment_id: $crate::domain::Id,
                after: Option<$crate::domain::Id>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::security::AppKeyRecord>> {
                let rows: Vec<$crate::store::security::AppKeyRow> = sqlx::query_as(
                    "SELECT app_id, deployment_id, name, created_at, console_session, read_only \
                     FROM deployment_app_keys \
                     WHERE deployment_id = $1 AND app_id > $2 ORDER BY app_id LIMIT $3",
                )
                .bind(deployment_id.to_string())
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn delete_app_key(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                app_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "DELETE FROM deployment_app_keys WHERE deployment_id = $1 AND app_id = $2",
                )
                .bind(deployment_id.to_string())
                .bind(app_id.to_string())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::app_key(app_id)
                );
                tx.commit().await?;
                Ok(())
            }

            async fn get_authentication(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<
                Option<skyport_settings::security::Authentication>,
            > {
                self.get_chain(deployment_id, $crate::store::security::AUTHENTICATION)
                    .await
            }

            async fn put_authentication(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                chain: &skyport_settings::security::Authentication,
            ) -> $crate::store::StoreResult<()> {
                self.put_chain(
                    project_id,
                    deployment_id,
                    $crate::store::security::AUTHENTICATION,
                    chain,
                )
                .await
            }

            async fn get_authorization(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<
                Option<skyport_settings::security::Authorization>,
            > {
                self.get_chain(deployment_id, $crate::store::security::AUTHORIZATION)
                    .await
            }

            async fn put_authorization(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                chain: &skyport_settings::security::Authorization,
            ) -> $crate::store::StoreResult<()> {
                self.put_chain(
                    project_id,
                    deployment_id,
                    $crate::store::security::AUTHORIZATION,
                    chain,
                )
                .await
            }

            async fn get_tls(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Option<$crate::store::security::TlsRecord>> {
                let row: Option<$crate::store::security::TlsRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM deployment_tls WHERE deployment_id = $1",
                    $crate::store::security::TLS_COLUMNS
                ))
                .bind(deployment_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn put_tls(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                tls: &$crate::store::security::TlsRecord,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::TLS
                );
                sqlx::query(&format!(
                    "INSERT INTO deployment_tls (deployment_id, {}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (deployment_id) DO UPDATE SET \
                       tls_type = excluded.tls_type, cert_pem = excluded.cert_pem, \
                       key_ciphertext = excluded.key_ciphertext, ca_pem = excluded.ca_pem, \
                       subject = excluded.subject, issuer = excluded.issuer, \
                       sans = excluded.sans, not_before = excluded.not_before, \
                       not_after = excluded.not_after, updated_at = excluded.updated_at",
                    $crate::store::security::TLS_COLUMNS
                ))
                .bind(deployment_id.to_string())
                .bind($crate::store::security::tls_type_str(tls.tls_type))
                .bind(&tls.cert_pem)
                .bind(&tls.key_ciphertext)
                .bind(&tls.ca_pem)
                .bind(&tls.details.subject)
                .bind(&tls.details.issuer)
                .bind(sqlx::types::Json(&tls.details.sans))
                .bind(tls.details.not_before)
                .bind(tls.details.not_after)
                .bind(tls.updated_at)
                .execute(&mut *tx)
                .await?;
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }

            async fn delete_tls(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM deployment_tls WHERE deployment_id = $1")
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
                    $crate::store::revision::TLS
                );
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(true)
            }

            async fn get_session_settings(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<
                Option<skyport_settings::security::SessionSettings>,
            > {
                let row: Option<(
                    sqlx::types::Json<skyport_settings::security::SessionSettings>,
                )> = sqlx::query_as(
                    "SELECT settings FROM deployment_session_settings WHERE deployment_id = $1",
                )
                .bind(deployment_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(json,)| json.0))
            }

            async fn put_session_settings(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                settings: &skyport_settings::security::SessionSettings,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                $crate::store::security::bump_generation!(
                    tx,
                    project_id,
                    deployment_id,
                    $crate::store::revision::SESSIONS
                );
                sqlx::query(
                    "INSERT INTO deployment_session_settings (deployment_id, settings, updated_at) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (deployment_id) DO UPDATE \
                       SET settings = excluded.settings, updated_at = excluded.updated_at",
                )
                .bind(deployment_id.to_string())
                .bind(sqlx::types::Json(settings))
                .bind(chrono::Utc::now())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn broker_security(
                &self,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::store::security::SecurityRecord> {
                let keys: Vec<(String, String, bool)> = sqlx::query_as(
                    "SELECT app_id, secret_sha256, read_only FROM deployment_app_keys \
                     WHERE deployment_id = $1 ORDER BY app_id",
                )
                .bind(deployment_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                Ok($crate::store::security::SecurityRecord {
                    app_keys: keys
                        .into_iter()
                        .map(|(app_id, secret_sha256, read_only)| {
                            skyport_settings::security::AppKey {
                                app_id,
                                secret_sha256,
                                read_only,
                            }
                        })
                        .collect(),
                    authentication: self.get_authentication(deployment_id).await?,
                    authorization: self.get_authorization(deployment_id).await?,
                    tls: self.get_tls(deployment_id).await?,
                    sessions: self.get_session_settings(deployment_id).await?,
                })
            }
        }
    };
}

pub(super) use security_sql_store;
