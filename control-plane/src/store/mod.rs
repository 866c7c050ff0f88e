//! Persistence: one trait, one implementation per database backend.
//!
//! Both backends share their SQL text (see `sql.rs`); each backend file only says how to
//! connect and migrate. The backend is chosen once, from the database URL's scheme.

pub mod certificates;
pub mod idempotency;
pub mod metering;
pub mod network;
pub mod people;
pub mod ports;
mod postgres;
pub mod quota;
pub mod revision;
pub mod security;
mod sql;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Actor, DesiredState, Endpoints, EventType, Id, Plan, Role, Status, Tier};

pub use certificates::{CertificateNotice, CertificateStore, DeploymentCertificate};
pub use idempotency::{IdempotencyRecord, IdempotencyStore};
pub use metering::{DeploymentUsage, MeteringStore, UsageRow};
pub use network::{
    CertSource, DomainCheck, DomainRecord, DomainStatus, InternalEndpointRecord, NatGatewayRecord,
    NetworkRecord, NetworkStore,
};
pub use people::{Member, PeopleStore, SessionRecord, UserRecord};
pub use ports::{PortRecord, PortStore};
pub use postgres::PgStore;
pub use quota::QuotaStore;
pub use revision::RevisionStore;
pub use security::{AppKeyRecord, SecurityRecord, SecurityStore, TlsRecord};
pub use sqlite::SqliteStore;

/// Errors of the store, independent of the backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint refused the write; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row was changed by someone else since it was read.
    #[error("stale write")]
    Stale,
    /// The project has as many deployments as its quota allows; nothing was written.
    #[error("deployment quota of {limit} reached")]
    QuotaExceeded { limit: i64 },
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            other => StoreError::Database(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A tenant: owns API keys and deployments.
#[derive(Clone, Debug)]
pub struct Project {
    pub id: Id,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A project API key; the secret itself is never stored, only its hash.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    pub prefix: String,
    /// What the key may do in its project, as for a member with that role.
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A deployment: spec (what the user asked for) and status (what the reconciler saw).
#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    pub plan: Plan,
    pub tier: Tier,
    pub version: String,
    pub desired_state: DesiredState,
    pub status: Status,
    pub status_reason: Option<String>,
    /// Bumped on every spec change (including stop/start/delete).
    pub generation: i64,
    /// The generation the running broker reflects.
    pub observed_generation: i64,
    /// The revision (a generation number) of the settings the running broker reported
    /// having applied; unlike `observed_generation` it never advances while stopped.
    pub applied_revision: i64,
    pub endpoints: Option<Endpoints>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to a deployment's spec; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct DeploymentPatch {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub tier: Option<Tier>,
    pub version: Option<String>,
    pub desired_state: Option<DesiredState>,
    /// Status to show right away, e.g. `stopping` after a stop request.
    pub status: Option<Status>,
}

/// What the reconciler observed, written only if the spec did not change meanwhile.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub status: Status,
    pub reason: Option<String>,
    pub observed_generation: i64,
    pub endpoints: Option<Endpoints>,
    /// The revision the running broker reported having applied.
    pub applied_revision: i64,
}

/// One entry of a deployment's event log.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Id,
    pub deployment_id: Id,
    pub project_id: Id,
    pub kind: EventType,
    /// `api_key:<id>`, `user:<id>` or `system`.
    pub actor: String,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Event {
    /// A new event about `deployment`, happening now.
    pub fn new(
        deployment: &Deployment,
        kind: EventType,
        actor: &Actor,
        details: serde_json::Value,
    ) -> Self {
        Self {
            id: Id::new(),
            deployment_id: deployment.id,
            project_id: deployment.project_id,
            kind,
            actor: actor.render(),
            details,
            created_at: Utc::now(),
        }
    }
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub kind: Option<EventType>,
    /// Inclusive lower bound.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub until: Option<DateTime<Utc>>,
}

/// Skyport's certificate authority, kept in the database so every replica shares it.
#[derive(Clone, Debug)]
pub struct CaRecord {
    pub cert_pem: String,
    /// The private key sealed with the secret key (a PEM in plaintext when an earlier
    /// version stored it; [`crate::ca::Ca::load_or_create`] seals it).
    pub key_sealed: String,
}

/// Every use case the control plane has for persistent state.
#[async_trait]
pub trait Store:
    crate::alerts::AlertStore
    + MeteringStore
    + CertificateStore
    + SecurityStore
    + NetworkStore
    + PeopleStore
    + RevisionStore
    + PortStore
    + QuotaStore
    + IdempotencyStore
    + Send
    + Sync
    + 'static
{
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Answers once the database does (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Reverts migrations down to (excluding) `target` version; 0 reverts all.
    async fn migrate_down(&self, target: i64) -> StoreResult<()>;

    async fn create_project(&self, project: &Project) -> StoreResult<()>;
    async fn get_project(&self, id: Id) -> StoreResult<Project>;
    async fn list_projects(&self, after: Option<Id>, limit: i64) -> StoreResult<Vec<Project>>;

    async fn create_api_key(&self, key: &ApiKey, secret_hash: &str) -> StoreResult<()>;
    async fn list_api_keys(&self, project_id: Id) -> StoreResult<Vec<ApiKey>>;
    async fn delete_api_key(&self, project_id: Id, key_id: Id) -> StoreResult<()>;
    /// The key whose secret hashes to `secret_hash`, if any.
    async fn find_api_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>>;

    /// Creates the deployment and records `event` in the same transaction.
    async fn create_deployment(&self, deployment: &Deployment, event: &Event) -> StoreResult<()>;
    async fn get_deployment(&self, project_id: Id, id: Id) -> StoreResult<Deployment>;
    async fn list_deployments(
        &self,
        project_id: Id,
        after: Option<Id>,
        limit: i64,
    ) -> StoreResult<Vec<Deployment>>;
    /// Every deployment of every project: the reconciler's desired state.
    async fn all_deployments(&self) -> StoreResult<Vec<Deployment>>;
    /// Applies a spec change, bumping `generation`, and records `events` (built with
    /// [`Event::new`] for this deployment) in the same transaction; returns the new row.
    async fn patch_deployment(
        &self,
        project_id: Id,
        id: Id,
        patch: &DeploymentPatch,
        events: &[Event],
    ) -> StoreResult<Deployment>;
    /// Records observed status if the deployment is still at `generation` (else `Stale`,
    /// and nothing is written), with `events` in the same transaction.
    async fn update_status(
        &self,
        id: Id,
        generation: i64,
        update: &StatusUpdate,
        events: &[Event],
    ) -> StoreResult<()>;
    /// Removes a deployment whose runtime is gone, if still at `generation`, recording
    /// `events` in the same transaction.
    async fn delete_deployment(&self, id: Id, generation: i64, events: &[Event])
        -> StoreResult<()>;

    /// A deployment's events, oldest first, scoped to the project (readable after the
    /// deployment itself is deleted).
    async fn list_events(
        &self,
        project_id: Id,
        deployment_id: Id,
        filter: &EventFilter,
        after: Option<Id>,
        limit: i64,
    ) -> StoreResult<Vec<Event>>;
    /// Deletes events created before `before`; returns how many.
    async fn purge_events(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    async fn load_ca(&self) -> StoreResult<Option<CaRecord>>;
    /// Stores the CA unless one exists (`Conflict` then).
    async fn insert_ca(&self, ca: &CaRecord) -> StoreResult<()>;
    /// Replaces the CA's key `plaintext` by `sealed`; `false` when the stored key is no
    /// longer `plaintext` (another replica sealed it first).
    async fn seal_ca_key(&self, plaintext: &str, sealed: &str) -> StoreResult<bool>;
}

/// Opens the store named by `url` (`sqlite:` or `postgres:`), creating a SQLite file if needed.
pub async fn connect(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PgStore::connect(url).await?))
    } else {
        anyhow::bail!("unsupported database URL scheme in `{url}`: use sqlite: or postgres:")
    }
}
