//! Storage of alert rules, channels and the state of active alerts.
//!
//! An alert's state changes by compare-and-set (a pending alert fires only if it has
//! not fired, a repeat only if no one notified since, a resolution only if it still
//! exists), each with its event in the same transaction: a leader that lost its lease
//! mid-pass and the next leader never both record or notify one change.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::rule::{AlertChannel, AlertRule, AlertState, ChannelTarget, Condition};
use crate::domain::Id;
use crate::store::{Event, StoreError, StoreResult};

/// Alerts' use cases; every [`crate::store::Store`] implements it.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    async fn create_alert_channel(&self, channel: &AlertChannel) -> StoreResult<()>;
    async fn list_alert_channels(&self, project_id: Id) -> StoreResult<Vec<AlertChannel>>;
    async fn get_alert_channel(&self, project_id: Id, id: Id) -> StoreResult<AlertChannel>;
    /// Removes a channel; `Conflict` (nothing removed) while a rule of the project
    /// names it.
    async fn delete_alert_channel(&self, project_id: Id, id: Id) -> StoreResult<()>;

    async fn create_alert_rule(&self, rule: &AlertRule) -> StoreResult<()>;
    async fn list_alert_rules(&self, project_id: Id) -> StoreResult<Vec<AlertRule>>;
    async fn get_alert_rule(&self, project_id: Id, id: Id) -> StoreResult<AlertRule>;
    /// Replaces a rule (all but its id, project and creation time). A disabled rule's
    /// alerts are dropped, without notification.
    async fn update_alert_rule(&self, rule: &AlertRule) -> StoreResult<()>;
    /// Removes a rule and its alerts.
    async fn delete_alert_rule(&self, project_id: Id, id: Id) -> StoreResult<()>;
    /// Every enabled rule of every project: what the evaluator checks.
    async fn enabled_alert_rules(&self) -> StoreResult<Vec<AlertRule>>;

    /// The alerts (pending and firing) of a project, or of every project.
    async fn alert_states(&self, project_id: Option<Id>) -> StoreResult<Vec<AlertState>>;
    /// Records a newly seen condition as pending (`false` when it already was).
    async fn open_alert(&self, state: &AlertState) -> StoreResult<bool>;
    /// Fires a pending alert with `event`; `false` (nothing written) if it is gone or
    /// already fired.
    async fn fire_alert(
        &self,
        rule_id: Id,
        subject: &str,
        at: DateTime<Utc>,
        message: &str,
        event: &Event,
    ) -> StoreResult<bool>;
    /// Records a repeat notification; `false` if someone notified since `previous`.
    async fn renotify_alert(
        &self,
        rule_id: Id,
        subject: &str,
        previous: DateTime<Utc>,
        at: DateTime<Utc>,
        message: &str,
    ) -> StoreResult<bool>;
    /// Removes the alert; if it had fired, records `event` and returns `true`.
    async fn close_alert(&self, rule_id: Id, subject: &str, event: &Event) -> StoreResult<bool>;
}

#[derive(sqlx::FromRow)]
pub(crate) struct ChannelRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub target: Json<ChannelTarget>,
    pub secret_ciphertext: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) const CHANNEL_COLUMNS: &str =
    "id, project_id, name, target, secret_ciphertext, created_at";

impl TryFrom<ChannelRow> for AlertChannel {
    type Error = StoreError;

    fn try_from(row: ChannelRow) -> Result<Self, Self::Error> {
        Ok(AlertChannel {
            id: parse("alert channel id", &row.id)?,
            project_id: parse("project id", &row.project_id)?,
            name: row.name,
            target: row.target.0,
            secret_ciphertext: row.secret_ciphertext,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RuleRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub deployment_id: Option<String>,
    pub rule_condition: Json<Condition>,
    pub channel_ids: Json<Vec<String>>,
    pub repeat_interval_seconds: Option<i64>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const RULE_COLUMNS: &str = "id, project_id, name, deployment_id, rule_condition, \
     channel_ids, repeat_interval_seconds, enabled, created_at, updated_at";

impl TryFrom<RuleRow> for AlertRule {
    type Error = StoreError;

    fn try_from(row: RuleRow) -> Result<Self, Self::Error> {
        Ok(AlertRule {
            id: parse("alert rule id", &row.id)?,
            project_id: parse("project id", &row.project_id)?,
            name: row.name,
            deployment_id: row
                .deployment_id
                .as_deref()
                .map(|raw| parse("deployment id", raw))
                .transpose()?,
            condition: row.rule_condition.0,
            channel_ids: row
                .channel_ids
                .0
                .iter()
                .map(|raw| parse("alert channel id", raw))
                .collect::<Result<_, _>>()?,
            repeat_interval_seconds: row.repeat_interval_seconds,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A rule's channel ids as stored.
pub(crate) fn channel_ids(rule: &AlertRule) -> Json<Vec<String>> {
    Json(rule.channel_ids.iter().map(Id::to_string).collect())
}

#[derive(sqlx::FromRow)]
pub(crate) struct StateRow {
    pub rule_id: String,
    pub subject: String,
    pub project_id: String,
    pub deployment_id: String,
    pub since: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    pub notifications: i64,
    pub message: String,
}

pub(crate) const STATE_COLUMNS: &str = "rule_id, subject, project_id, deployment_id, since, \
     fired_at, last_notified_at, notifications, message";

impl TryFrom<StateRow> for AlertState {
    type Error = StoreError;

    fn try_from(row: StateRow) -> Result<Self, Self::Error> {
        Ok(AlertState {
            rule_id: parse("alert rule id", &row.rule_id)?,
            subject: row.subject,
            project_id: parse("project id", &row.project_id)?,
            deployment_id: parse("deployment id", &row.deployment_id)?,
            since: row.since,
            fired_at: row.fired_at,
            last_notified_at: row.last_notified_at,
            notifications: row.notifications,
            message: row.message,
        })
    }
}

fn parse(what: &str, raw: &str) -> Result<Id, StoreError> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} `{raw}`")))
}

/// Whether any of `rules` names channel `id`.
pub(crate) fn channel_in_use(rules: &[RuleRow], id: Id) -> bool {
    let id = id.to_string();
    rules.iter().any(|r| r.channel_ids.0.contains(&id))
}

/// Implements [`AlertStore`] for a backend struct with a `pool` field.
macro_rules! alert_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::alerts::store::AlertStore for $store {
            async fn create_alert_channel(
                &self,
                c: &$crate::alerts::AlertChannel,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO alert_channels ({}) VALUES ($1, $2, $3, $4, $5, $6)",
                    $crate::alerts::store::CHANNEL_COLUMNS
                ))
                .bind(c.id.to_string())
                .bind(c.project_id.to_string())
                .bind(&c.name)
                .bind(sqlx::types::Json(&c.target))
                .bind(&c.secret_ciphertext)
                .bind(c.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_alert_channels(
                &self,
                project_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Vec<$crate::alerts::AlertChannel>> {
                let rows: Vec<$crate::alerts::store::ChannelRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_channels WHERE project_id = $1 ORDER BY id",
                    $crate::alerts::store::CHANNEL_COLUMNS
                ))
                .bind(project_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn get_alert_channel(
                &self,
                project_id: $crate::domain::Id,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::alerts::AlertChannel> {
                let row: $crate::alerts::store::ChannelRow = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_channels WHERE project_id = $1 AND id = $2",
                    $crate::alerts::store::CHANNEL_COLUMNS
                ))
                .bind(project_id.to_string())
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn delete_alert_channel(
                &self,
                project_id: $crate::domain::Id,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                // A write first: it locks the project's row (PostgreSQL) or the database
                // (SQLite), so no rule can start naming the channel meanwhile.
                let locked = sqlx::query("UPDATE projects SET name = name WHERE id = $1")
                    .bind(project_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                let rules: Vec<$crate::alerts::store::RuleRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_rules WHERE project_id = $1",
                    $crate::alerts::store::RULE_COLUMNS
                ))
                .bind(project_id.to_string())
                .fetch_all(&mut *tx)
                .await?;
                if $crate::alerts::store::channel_in_use(&rules, id) {
                    return Err($crate::store::StoreError::Conflict("alert_rules".into()));
                }
                let done =
                    sqlx::query("DELETE FROM alert_channels WHERE project_id = $1 AND id = $2")
                        .bind(project_id.to_string())
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_alert_rule(
                &self,
                r: &$crate::alerts::AlertRule,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(&format!(
                    "INSERT INTO alert_rules ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    $crate::alerts::store::RULE_COLUMNS
                ))
                .bind(r.id.to_string())
                .bind(r.project_id.to_string())
                .bind(&r.name)
                .bind(r.deployment_id.map(|id| id.to_string()))
                .bind(sqlx::types::Json(&r.condition))
                .bind($crate::alerts::store::channel_ids(r))
                .bind(r.repeat_interval_seconds)
                .bind(r.enabled)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_alert_rules(
                &self,
                project_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<Vec<$crate::alerts::AlertRule>> {
                let rows: Vec<$crate::alerts::store::RuleRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_rules WHERE project_id = $1 ORDER BY id",
                    $crate::alerts::store::RULE_COLUMNS
                ))
                .bind(project_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn get_alert_rule(
                &self,
                project_id: $crate::domain::Id,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<$crate::alerts::AlertRule> {
                let row: $crate::alerts::store::RuleRow = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_rules WHERE project_id = $1 AND id = $2",
                    $crate::alerts::store::RULE_COLUMNS
                ))
                .bind(project_id.to_string())
                .bind(id.to_string())
                .fetch_one(&self.pool)
                .await?;
                row.try_into()
            }

            async fn update_alert_rule(
                &self,
                r: &$crate::alerts::AlertRule,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE alert_rules SET name = $3, deployment_id = $4, rule_condition = $5, \
                     channel_ids = $6, repeat_interval_seconds = $7, enabled = $8, updated_at = $9 \
                     WHERE project_id = $1 AND id = $2",
                )
                .bind(r.project_id.to_string())
                .bind(r.id.to_string())
                .bind(&r.name)
                .bind(r.deployment_id.map(|id| id.to_string()))
                .bind(sqlx::types::Json(&r.condition))
                .bind($crate::alerts::store::channel_ids(r))
                .bind(r.repeat_interval_seconds)
                .bind(r.enabled)
                .bind(r.updated_at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                if !r.enabled {
                    sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
                        .bind(r.id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_alert_rule(
                &self,
                project_id: $crate::domain::Id,
                id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM alert_states WHERE rule_id = $1 AND project_id = $2",
                )
                .bind(id.to_string())
                .bind(project_id.to_string())
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query("DELETE FROM alert_rules WHERE project_id = $1 AND id = $2")
                    .bind(project_id.to_string())
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::store::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn enabled_alert_rules(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::alerts::AlertRule>> {
                let rows: Vec<$crate::alerts::store::RuleRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_rules WHERE enabled ORDER BY id",
                    $crate::alerts::store::RULE_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn alert_states(
                &self,
                project_id: Option<$crate::domain::Id>,
            ) -> $crate::store::StoreResult<Vec<$crate::alerts::AlertState>> {
                let rows: Vec<$crate::alerts::store::StateRow> = sqlx::query_as(&format!(
                    "SELECT {} FROM alert_states WHERE $1 = '' OR project_id = $1 \
                     ORDER BY rule_id, subject",
                    $crate::alerts::store::STATE_COLUMNS
                ))
                .bind(project_id.map(|id| id.to_string()).unwrap_or_default())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn open_alert(
                &self,
                s: &$crate::alerts::AlertState,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(&format!(
                    "INSERT INTO alert_states ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT DO NOTHING",
                    $crate::alerts::store::STATE_COLUMNS
                ))
                .bind(s.rule_id.to_string())
                .bind(&s.subject)
                .bind(s.project_id.to_string())
                .bind(s.deployment_id.to_string())
                .bind(s.since)
                .bind(s.fired_at)
                .bind(s.last_notified_at)
                .bind(s.notifications)
                .bind(&s.message)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn fire_alert(
                &self,
                rule_id: $crate::domain::Id,
                subject: &str,
                at: chrono::DateTime<chrono::Utc>,
                message: &str,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE alert_states SET fired_at = $3, last_notified_at = $3, \
                     notifications = 1, message = $4 \
                     WHERE rule_id = $1 AND subject = $2 AND fired_at IS NULL",
                )
                .bind(rule_id.to_string())
                .bind(subject)
                .bind(at)
                .bind(message)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                tx.commit().await?;
                Ok(true)
            }

            async fn renotify_alert(
                &self,
                rule_id: $crate::domain::Id,
                subject: &str,
                previous: chrono::DateTime<chrono::Utc>,
                at: chrono::DateTime<chrono::Utc>,
                message: &str,
            ) -> $crate::store::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE alert_states SET last_notified_at = $4, \
                     notifications = notifications + 1, message = $5 \
                     WHERE rule_id = $1 AND subject = $2 AND last_notified_at = $3",
                )
                .bind(rule_id.to_string())
                .bind(subject)
                .bind(previous)
                .bind(at)
                .bind(message)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn close_alert(
                &self,
                rule_id: $crate::domain::Id,
                subject: &str,
                event: &$crate::store::Event,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let fired: Option<(Option<chrono::DateTime<chrono::Utc>>,)> = sqlx::query_as(
                    "DELETE FROM alert_states WHERE rule_id = $1 AND subject = $2 \
                     RETURNING fired_at",
                )
                .bind(rule_id.to_string())
                .bind(subject)
                .fetch_optional(&mut *tx)
                .await?;
                let resolved = matches!(fired, Some((Some(_),)));
                if resolved {
                    $crate::store::sql::insert_events!(tx, std::slice::from_ref(event));
                }
                tx.commit().await?;
                Ok(resolved)
            }
        }
    };
}

pub(crate) use alert_sql_store;
