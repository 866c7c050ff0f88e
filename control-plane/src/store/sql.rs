//! The SQL both backends share. `$n` placeholders work on PostgreSQL and SQLite alike,
//! and every column type used here maps to the same Rust type on both.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{ApiKey, Deployment, Event, Project, StoreError};
use crate::domain::{Endpoints, Tier};

#[derive(sqlx::FromRow)]
pub(super) struct ProjectRow {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
pub(super) struct DeploymentRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub plan: String,
    pub max_sessions: i64,
    pub max_tps: i64,
    pub version: String,
    pub desired_state: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    pub applied_revision: i64,
    pub endpoints: Option<Json<Endpoints>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    pub id: String,
    pub deployment_id: String,
    pub project_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub actor: String,
    pub details: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        Ok(Event {
            id: parse("event id", &row.id)?,
            deployment_id: parse("deployment id", &row.deployment_id)?,
            project_id: parse("project id", &row.project_id)?,
            kind: parse("event type", &row.kind)?,
            actor: row.actor,
            details: row.details.0,
            created_at: row.created_at,
        })
    }
}

pub(super) fn parse<T: std::str::FromStr>(what: &str, raw: &str) -> Result<T, StoreError> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} `{raw}`")))
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;

    fn try_from(row: ProjectRow) -> Result<Self, Self::Error> {
        Ok(Project {
            id: parse("project id", &row.id)?,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, Self::Error> {
        Ok(ApiKey {
            id: parse("api key id", &row.id)?,
            project_id: parse("project id", &row.project_id)?,
            name: row.name,
            prefix: row.prefix,
            role: parse("role", &row.role)?,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        })
    }
}

impl TryFrom<DeploymentRow> for Deployment {
    type Error = StoreError;

    fn try_from(row: DeploymentRow) -> Result<Self, Self::Error> {
        Ok(Deployment {
            id: parse("deployment id", &row.id)?,
            project_id: parse("project id", &row.project_id)?,
            name: row.name,
            plan: parse("plan", &row.plan)?,
            tier: Tier {
                max_sessions: row.max_sessions,
                max_tps: row.max_tps,
            },
            version: row.version,
            desired_state: parse("desired state", &row.desired_state)?,
            status: parse("status", &row.status)?,
            status_reason: row.status_reason,
            generation: row.generation,
            observed_generation: row.observed_generation,
            applied_revision: row.applied_revision,
            endpoints: row.endpoints.map(|json| json.0),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

pub(super) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

pub(super) const DEPLOYMENT_COLUMNS: &str = "id, project_id, name, plan, max_sessions, max_tps, \
     version, desired_state, status, status_reason, generation, observed_generation, endpoints, \
     created_at, updated_at, applied_revision";

/// Inserts events inside the transaction `$tx`.
macro_rules! insert_events {
    ($tx:ident, $events:expr) => {
        for event in $events {
            sqlx::query(
                "INSERT INTO deployment_events \
                   (id, deployment_id, project_id, type, actor, details, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(event.id.to_string())
            .bind(event.deployment_id.to_string())
            .bind(event.project_id.to_string())
            .bind(event.kind.as_str())
            .bind(&event.actor)
            .bind(sqlx::types::Json(&event.details))
            .bind(event.created_at)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

pub(super) use insert_events;

/// Inserts deployment `$d` within transaction `$tx`.
macro_rules! insert_deployment {
    ($tx:ident, $d:expr) => {
        let d = $d;
        sqlx::query(&format!(
            "INSERT INTO deployments ({}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            $crate::store::sql::DEPLOYMENT_COLUMNS
        ))
        .bind(d.id.to_string())
        .bind(d.project_id.to_string())
        .bind(&d.name)
        .bind(d.plan.as_str())
        .bind(d.tier.max_sessions)
        .bind(d.tier.max_tps)
        .bind(&d.version)
        .bind(d.desired_state.as_str())
        .bind(d.status.as_str())
        .bind(&d.status_reason)
        .bind(d.generation)
        .bind(d.observed_generation)
        .bind(d.endpoints.clone().map(sqlx::types::Json))
        .bind(d.created_at)
        .bind(d.updated_at)
        .bind(d.applied_revision)
        .execute(&mut *$tx)
        .await?;
    };
}

pub(super) use insert_deployment;

/// Implements [`super::Store`] for a backend struct with a `pool` field.
macro_rules! sql_store {
    ($store:ty, $db:ty, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn migrate(&self) -> $crate::store::StoreResult<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> $crate::store::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn migrate_down(&self, target: i64) -> $crate::store::StoreResult<()> {
                $migrator.undo(&self.pool, target).await?;
                Ok(())
            }

            async fn create_project(
                &self,
                project: &$crate::store::Project,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(project.id.to_string())
                    .bind(&project.name)
                    .bind(project.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_project(
                &self,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::store::Project> {
                let row: $crate::store::sql::ProjectRow =
                    sqlx::query_as("SELECT id, name, created_at FROM projects WHERE id = $1")
                        .bind(id.to_string())
                        .fetch_one(&self.pool)
                        .await?;
                row.try_into()
            }

            async fn list_projects(
                &self,
                after: Option<$crate::domain::Id>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Project>> {
                let rows: Vec<$crate::store::sql::ProjectRow> = sqlx::query_as(
                    "SELECT id, name, created_at FROM projects WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn create_api_key(
                &self,
                key: &$crate::store::ApiKey,
                secret_hash: &str,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_keys \
                       (id, project_id, name, prefix, secret_hash, created_at, role) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key.id.to_string())
                .bind(key.project_id.to_string())
                .bind(&key.name)
                .bind(&key.prefix)
                .bind(secret_hash)
                .bind(key.created_at)
                .bind(key.role.as_str())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_api_keys(
                &self,
                project_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ApiKey>> {
                let rows: Vec<$crate::store::sql::ApiKeyRow> = sqlx::query_as(
                    "SELECT id, project_id, name, prefix, role, created_at, last_used_at \
                     FROM api_keys WHERE project_id = $1 ORDER BY id",
                )
                .bind(project_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn delete_api_key(
                &self,
                project_id: $crate::domain::Id,
                key_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<()> {
                let done = sqlx::query("DELETE FROM api_keys WHERE project_id = $1 AND id = $2")
                    .bind(project_id.to_string())
                    .bind(key_id.to_string())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                Ok(())
            }

            async fn find_api_key(
                &self,
                secret_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::ApiKey>> {
                let row: Option<$crate::store::sql::ApiKeyRow> = sqlx::query_as(
                    "SELECT id, project_id, name, prefix, role, created_at, last_used_at \
                     FROM api_keys WHERE secret_hash = $1",
                )
                .bind(secret_hash)
                .fetch_optional(&self.pool)
                .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn create_deployment(
                &self,
                d: &$crate::store::Deployment,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                $crate::store::sql::insert_deployment!(tx, d);
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(())
            }

            async fn get_deployment(
                &self,
                project_id: $crate::domain::Id,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::store::Deployment> {
                let row: $crate::store::sql::DeploymentRow = sqlx::query_as(&format!(
                    "SELECT {} FROM deployments WHERE project_id = $1 AND id = $2",
                    $crate::store::sql::DEPLOYMENT_COLUMNS
                ))
                .bind(project_id.to_string())
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn list_deployments(
                &self,
                project_id: $crate::domain::Id,
                after: Option<$crate::domain::Id>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Deployment>> {
                let rows: Vec<$crate::store::sql::DeploymentRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM deployments WHERE project_id = $1 AND id > $2 \
                     ORDER BY id LIMIT $3",
                    $crate::store::sql::DEPLOYMENT_COLUMNS
                ))
                .bind(project_id.to_string())
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn all_deployments(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Deployment>> {
                let rows: Vec<$crate::store::sql::DeploymentRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM deployments ORDER BY id",
                    $crate::store::sql::DEPLOYMENT_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn patch_deployment(
                &self,
                project_id: $crate::domain::Id,
                id: $crate::domain::Id,
                patch: &$crate::store::DeploymentPatch,
                events: &[$crate::store::Event],
            ) -> $crate::store::StoreResult<$crate::store::Deployment> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE deployments SET \
                       name = COALESCE($3, name), \
                       plan = COALESCE($4, plan), \
                       max_sessions = COALESCE($5, max_sessions), \
                       max_tps = COALESCE($6, max_tps), \
                       version = COALESCE($7, version), \
                       desired_state = COALESCE($8, desired_state), \
                       status = COALESCE($9, status), \
                       status_reason = CASE WHEN $9 IS NULL THEN status_reason ELSE NULL END, \
                       generation = generation + 1, \
                       updated_at = $10 \
                     WHERE project_id = $1 AND id = $2",
                )
                .bind(project_id.to_string())
                .bind(id.to_string())
                .bind(patch.name.as_deref())
                .bind(patch.plan.map(|p| p.as_str()))
                .bind(patch.tier.map(|t| t.max_sessions))
                .bind(patch.tier.map(|t| t.max_tps))
                .bind(patch.version.as_deref())
                .bind(patch.desired_state.map(|s| s.as_str()))
                .bind(patch.status.map(|s| s.as_str()))
                .bind(chrono::Utc::now())
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                $crate::store::sql::insert_events!(tx, events);
                tx.commit().await?;
                self.get_deployment(project_id, id).await
            }

            async fn update_status(
                &self,
                id: $crate::domain::Id,
                generation: i64,
                update: &$crate::store::StatusUpdate,
                events: &[$crate::store::Event],
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE deployments SET status = $3, status_reason = $4, \
                       observed_generation = $5, endpoints = $6, updated_at = $7, \
                       applied_revision = $8 \
                     WHERE id = $1 AND generation = $2",
                )
                .bind(id.to_string())
                .bind(generation)
                .bind(update.status.as_str())
                .bind(&update.reason)
                .bind(update.observed_generation)
                .bind(update.endpoints.clone().map(sqlx::types::Json))
                .bind(chrono::Utc::now())
                .bind(update.applied_revision)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Stale);
                }
                $crate::store::sql::insert_events!(tx, events);
                tx.commit().await?;
                Ok(())
            }

            async fn delete_deployment(
                &self,
                id: $crate::domain::Id,
                generation: i64,
                events: &[$crate::store::Event],
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM deployments WHERE id = $1 AND generation = $2")
                    .bind(id.to_string())
                    .bind(generation)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::Stale);
                }
                $crate::store::sql::insert_events!(tx, events);
                tx.commit().await?;
                Ok(())
            }

            async fn list_events(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                filter: &$crate::store::EventFilter,
                after: Option<$crate::domain::Id>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::Event>> {
                let rows: Vec<$crate::store::sql::EventRow> = sqlx::query_as(
                    "SELECT id, deployment_id, project_id, type, actor, details, created_at \
                     FROM deployment_events \
                     WHERE project_id = $1 AND deployment_id = $2 AND id > $3 \
                       AND ($4 IS NULL OR type = $4) \
                       AND ($5 IS NULL OR created_at >= $5) \
                       AND ($6 IS NULL OR created_at < $6) \
                     ORDER BY id LIMIT $7",
                )
                .bind(project_id.to_string())
                .bind(deployment_id.to_string())
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(filter.kind.map(|k| k.as_str()))
                .bind(filter.since)
                .bind(filter.until)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                $crate::store::sql::convert(rows)
            }

            async fn purge_events(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM deployment_events WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn load_ca(&self) -> $crate::store::StoreResult<Option<$crate::store::CaRecord>> {
                let row: Option<(String, String)> = sqlx::query_as(
                    "SELECT cert_pem, key_pem FROM certificate_authority WHERE id = 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(cert_pem, key_sealed)| $crate::store::CaRecord {
                    cert_pem,
                    key_sealed,
                }))
            }

            async fn insert_ca(
                &self,
                ca: &$crate::store::CaRecord,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO certificate_authority (id, cert_pem, key_pem, created_at) \
                     VALUES (1, $1, $2, $3)",
                )
                .bind(&ca.cert_pem)
                .bind(&ca.key_sealed)
                .bind(chrono::Utc::now())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn seal_ca_key(
                &self,
                plaintext: &str,
                sealed: &str,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE certificate_authority SET key_pem = $1 WHERE id = 1 AND key_pem = $2",
                )
                .bind(sealed)
                .bind(plaintext)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(super) use sql_store;
