//! Metering storage: node tokens, report cursors and usage per minute, hour and month.
//!
//! Like the rest of the store, one SQL text serves both backends; the only difference,
//! the scalar maximum of two values (`max(a, b)` in SQLite, `GREATEST(a, b)` in
//! PostgreSQL), is a parameter of `metering_sql_store!`.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::Id;
use crate::metering::{Granularity, NodeToken, Report, ReportOutcome, Usage};

/// Usage of one period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    /// Unix seconds of the period (or bucket) start.
    pub period_start: i64,
    #[sqlx(flatten)]
    pub usage: Usage,
}

/// One deployment's usage in a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentUsage {
    pub deployment_id: Id,
    /// Absent once the deployment is deleted.
    pub name: Option<String>,
    pub usage: Usage,
}

/// Metering's use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait MeteringStore: Send + Sync + 'static {
    /// Records the hash of the deployment's node token (replacing an older one).
    async fn register_node_token(
        &self,
        deployment_id: Id,
        project_id: Id,
        token_hash: &str,
    ) -> StoreResult<()>;
    /// The deployment whose node token hashes to `token_hash`.
    async fn find_node_token(&self, token_hash: &str) -> StoreResult<Option<NodeToken>>;
    /// Applies `report` if it is the next of its (deployment, node, epoch): its usage is
    /// merged into the minute, hour and month rows and the cursor advanced, all in one
    /// transaction. `now_ms` is recorded as the time of the last applied report.
    async fn apply_report(
        &self,
        project_id: Id,
        report: &Report,
        now_ms: i64,
    ) -> StoreResult<ReportOutcome>;
    /// A deployment's usage at `granularity` in `[from, to)` (Unix seconds), merged into
    /// buckets of `bucket_seconds` aligned on multiples of it; empty buckets are absent.
    async fn usage_series(
        &self,
        project_id: Id,
        deployment_id: Id,
        granularity: Granularity,
        from: i64,
        to: i64,
        bucket_seconds: i64,
    ) -> StoreResult<Vec<UsageRow>>;
    /// Whether any usage of the deployment is kept (so a deleted one stays readable).
    async fn has_usage(&self, project_id: Id, deployment_id: Id) -> StoreResult<bool>;
    /// Every deployment's usage in the month starting at `month_start`, by deployment id.
    async fn monthly_usage(
        &self,
        project_id: Id,
        month_start: i64,
    ) -> StoreResult<Vec<DeploymentUsage>>;
    /// Deletes rows of `granularity` for periods starting before `before`; returns how many.
    async fn purge_usage(&self, granularity: Granularity, before: i64) -> StoreResult<u64>;
    /// Deletes cursors (and the load rows of `current_loads`) whose last report was
    /// applied before `before_ms`; returns how many cursors.
    async fn purge_cursors(&self, before_ms: i64) -> StoreResult<u64>;
    /// For each running deployment that reported: the time (ms) its last report was applied.
    async fn last_reports(&self) -> StoreResult<Vec<(Id, i64)>>;
    /// How many deployments are in each status.
    async fn count_deployments_by_status(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Each deployment's load in the newest minute of its last report, for reports
    /// applied at or after `since_ms` (what alerts on sessions and TPS compare).
    async fn current_loads(&self, since_ms: i64) -> StoreResult<Vec<(Id, Load)>>;
}

/// A deployment's load as its last report saw it: the peaks since the report before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Most sessions (connected plus persistent offline) at once.
    pub sessions: i64,
    /// Most messages in one second.
    pub tps: i64,
    /// When the report was applied (Unix ms).
    pub reported_at_ms: i64,
}

/// Columns of a usage row after `period_start`, in [`Usage`] field order.
pub(super) const USAGE_COLUMNS: [&str; 13] = [
    "messages_in",
    "messages_out",
    "retained_out",
    "http_published",
    "bytes_in",
    "bytes_out",
    "dropped",
    "sessions_max",
    "connected_max",
    "offline_persistent_max",
    "session_seconds",
    "seconds",
    "tps_max",
];

/// Whether a usage column merges by maximum (else by sum).
pub(super) fn is_max(column: &str) -> bool {
    column.ends_with("_max")
}

pub(super) fn table(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Minute => "metering_minutes",
        Granularity::Hour => "metering_hours",
        Granularity::Month => "metering_months",
    }
}

/// `INSERT … ON CONFLICT DO UPDATE` merging one usage row into `table`.
pub(super) fn upsert_sql(table: &str, greatest: &str) -> String {
    let columns = USAGE_COLUMNS.join(", ");
    let params: Vec<String> = (4..4 + USAGE_COLUMNS.len())
        .map(|n| format!("${n}"))
        .collect();
    let merges: Vec<String> = USAGE_COLUMNS
        .iter()
        .map(|c| {
            if is_max(c) {
                format!("{c} = {greatest}({table}.{c}, excluded.{c})")
            } else {
                format!("{c} = {table}.{c} + excluded.{c}")
            }
        })
        .collect();
    format!(
        "INSERT INTO {table} (deployment_id, period_start, project_id, {columns}) \
         VALUES ($1, $2, $3, {}) \
         ON CONFLICT (deployment_id, period_start) DO UPDATE SET {}",
        params.join(", "),
        merges.join(", ")
    )
}

/// `SELECT` of a deployment's usage in `[$3, $4)`, merged into buckets of `$5` seconds.
pub(super) fn series_sql(table: &str) -> String {
    let aggregates: Vec<String> = USAGE_COLUMNS
        .iter()
        .map(|c| {
            if is_max(c) {
                format!("MAX({c}) AS {c}")
            } else {
                format!("CAST(SUM({c}) AS BIGINT) AS {c}")
            }
        })
        .collect();
    format!(
        "SELECT (period_start / $5) * $5 AS period_start, {} FROM {table} \
         WHERE project_id = $1 AND deployment_id = $2 AND period_start >= $3 AND period_start < $4 \
         GROUP BY 1 ORDER BY 1",
        aggregates.join(", ")
    )
}

/// The values of `usage` in [`USAGE_COLUMNS`] order.
pub(super) fn usage_values(usage: &Usage) -> [i64; 13] {
    [
        usage.messages_in,
        usage.messages_out,
        usage.retained_out,
        usage.http_published,
        usage.bytes_in,
        usage.bytes_out,
        usage.dropped,
        usage.sessions_max,
        usage.connected_max,
        usage.offline_persistent_max,
        usage.session_seconds,
        usage.seconds,
        usage.tps_max,
    ]
}

/// A month row with its deployment's name (absent once deleted).
#[derive(sqlx::FromRow)]
pub(super) struct DeploymentUsageFields {
    pub deployment_id: String,
    pub name: Option<String>,
    #[sqlx(flatten)]
    pub usage: Usage,
}

/// Implements [`MeteringStore`] for a backend struct with a `pool` field; `$greatest` is
/// the backend's scalar maximum function.
macro_rules! metering_sql_store {
    ($store:ty, $greatest:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::metering::MeteringStore for $store {
            async fn register_node_token(
                &self,
                deployment_id: $crate::domain::Id,
                project_id: $crate::domain::Id,
                token_hash: &str,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO metering_node_tokens (deployment_id, project_id, token_hash, created_at_ms) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (deployment_id) DO UPDATE SET token_hash = excluded.token_hash",
                )
                .bind(deployment_id.to_string())
                .bind(project_id.to_string())
                .bind(token_hash)
                .bind(chrono::Utc::now().timestamp_millis())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_node_token(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::metering::NodeToken>> {
                let row: Option<(String, String, Option<String>)> = sqlx::query_as(
                    "SELECT t.deployment_id, t.project_id, d.id FROM metering_node_tokens t \
                     LEFT JOIN deployments d ON d.id = t.deployment_id WHERE t.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some((deployment_id, project_id, existing)) = row else {
                    return Ok(None);
                };
                let parse = |what: &str, raw: &str| {
                    raw.parse::<$crate::domain::Id>()
                        .map_err(|_| $crate::store::StoreError::Corrupt(format!("{what} `{raw}`")))
                };
                Ok(Some($crate::metering::NodeToken {
                    deployment_id: parse("deployment id", &deployment_id)?,
                    project_id: parse("project id", &project_id)?,
                    deployment_exists: existing.is_some(),
                }))
            }

            async fn apply_report(
                &self,
                project_id: $crate::domain::Id,
                report: &$crate::metering::Report,
                now_ms: i64,
            ) -> $crate::store::StoreResult<$crate::metering::ReportOutcome> {
                use $crate::metering::ReportOutcome;
                let deployment_id = report.deployment_id.to_string();
                let mut tx = self.pool.begin().await?;
                // The first statement writes, so SQLite takes its write lock up front and
                // PostgreSQL locks the cursor row: concurrent copies of one report serialise.
                let advanced = if report.seq == 1 {
                    sqlx::query(
                        "INSERT INTO metering_cursors (deployment_id, node_id, epoch, last_seq, applied_at_ms) \
                         VALUES ($1, $2, $3, 1, $4) ON CONFLICT DO NOTHING",
                    )
                    .bind(&deployment_id)
                    .bind(&report.node_id)
                    .bind(report.epoch)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                } else {
                    sqlx::query(
                        "UPDATE metering_cursors SET last_seq = $4, applied_at_ms = $5 \
                         WHERE deployment_id = $1 AND node_id = $2 AND epoch = $3 AND last_seq = $4 - 1",
                    )
                    .bind(&deployment_id)
                    .bind(&report.node_id)
                    .bind(report.epoch)
                    .bind(report.seq)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1
                };
                if !advanced {
                    let last: Option<i64> = sqlx::query_scalar(
                        "SELECT last_seq FROM metering_cursors \
                         WHERE deployment_id = $1 AND node_id = $2 AND epoch = $3",
                    )
                    .bind(&deployment_id)
                    .bind(&report.node_id)
                    .bind(report.epoch)
                    .fetch_optional(&mut *tx)
                    .await?;
                    tx.rollback().await?;
                    let last = last.unwrap_or(0);
                    return Ok(if report.seq <= last {
                        ReportOutcome::Duplicate { acked_seq: last }
                    } else {
                        ReportOutcome::Gap { expected_seq: last + 1 }
                    });
                }
                let project = project_id.to_string();
                for granularity in $crate::metering::Granularity::ALL {
                    let sql = $crate::store::metering::upsert_sql(
                        $crate::store::metering::table(granularity),
                        $greatest,
                    );
                    for (period_start, usage) in report.periods(granularity) {
                        let mut query = sqlx::query(&sql)
                            .bind(&deployment_id)
                            .bind(period_start)
                            .bind(&project);
                        for value in $crate::store::metering::usage_values(&usage) {
                            query = query.bind(value);
                        }
                        query.execute(&mut *tx).await?;
                    }
                }
                // The newest minute's peaks are the load now; a resent older report
                // does not overwrite a newer one.
                if let Some((minute, usage)) = report.minutes.last_key_value() {
                    sqlx::query(
                        "INSERT INTO deployment_load (deployment_id, project_id, minute, sessions, tps, reported_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (deployment_id) DO UPDATE SET minute = excluded.minute, \
                           sessions = excluded.sessions, tps = excluded.tps, reported_at_ms = excluded.reported_at_ms \
                         WHERE deployment_load.minute <= excluded.minute",
                    )
                    .bind(&deployment_id)
                    .bind(&project)
                    .bind(*minute)
                    .bind(usage.sessions_max)
                    .bind(usage.tps_max)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(ReportOutcome::Applied { acked_seq: report.seq })
            }

            async fn usage_series(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
                granularity: $crate::metering::Granularity,
                from: i64,
                to: i64,
                bucket_seconds: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::metering::UsageRow>> {
                let sql = $crate::store::metering::series_sql($crate::store::metering::table(granularity));
                let rows: Vec<$crate::store::metering::UsageRow> = sqlx::query_as(&sql)
                    .bind(project_id.to_string())
                    .bind(deployment_id.to_string())
                    .bind(from)
                    .bind(to)
                    .bind(bucket_seconds)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows)
            }

            async fn has_usage(
                &self,
                project_id: $crate::domain::Id,
                deployment_id: $crate::domain::Id,
            ) -> $crate::store::StoreResult<bool> {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT period_start FROM metering_months \
                     WHERE project_id = $1 AND deployment_id = $2 LIMIT 1",
                )
                .bind(project_id.to_string())
                .bind(deployment_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(found.is_some())
            }

            async fn monthly_usage(
                &self,
                project_id: $crate::domain::Id,
                month_start: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::metering::DeploymentUsage>> {
                let columns = $crate::store::metering::USAGE_COLUMNS
                    .iter()
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let rows: Vec<$crate::store::metering::DeploymentUsageFields> = sqlx::query_as(&format!(
                    "SELECT m.deployment_id, d.name, m.period_start, {columns} \
                     FROM metering_months m LEFT JOIN deployments d ON d.id = m.deployment_id \
                     WHERE m.project_id = $1 AND m.period_start = $2 ORDER BY m.deployment_id"
                ))
                .bind(project_id.to_string())
                .bind(month_start)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok($crate::store::metering::DeploymentUsage {
                            deployment_id: r.deployment_id.parse().map_err(|_| {
                                $crate::store::StoreError::Corrupt(format!("deployment id `{}`", r.deployment_id))
                            })?,
                            name: r.name,
                            usage: r.usage,
                        })
                    })
                    .collect()
            }

            async fn purge_usage(
                &self,
                granularity: $crate::metering::Granularity,
                before: i64,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query(&format!(
                    "DELETE FROM {} WHERE period_start < $1",
                    $crate::store::metering::table(granularity)
                ))
                .bind(before)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn purge_cursors(&self, before_ms: i64) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM metering_cursors WHERE applied_at_ms < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                sqlx::query("DELETE FROM deployment_load WHERE reported_at_ms < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn last_reports(&self) -> $crate::store::StoreResult<Vec<($crate::domain::Id, i64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT c.deployment_id, MAX(c.applied_at_ms) FROM metering_cursors c \
                     JOIN deployments d ON d.id = c.deployment_id \
                     WHERE d.status = 'running' GROUP BY c.deployment_id ORDER BY c.deployment_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(id, at)| {
                        id.parse()
                            .map(|id| (id, at))
                            .map_err(|_| $crate::store::StoreError::Corrupt(format!("deployment id `{id}`")))
                    })
                    .collect()
            }

            async fn count_deployments_by_status(&self) -> $crate::store::StoreResult<Vec<(String, i64)>> {
                Ok(sqlx::query_as("SELECT status, COUNT(*) FROM deployments GROUP BY status ORDER BY status")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn current_loads(
                &self,
                since_ms: i64,
            ) -> $crate::store::StoreResult<Vec<($crate::domain::Id, $crate::store::metering::Load)>> {
                let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT deployment_id, sessions, tps, reported_at_ms FROM deployment_load \
                     WHERE reported_at_ms >= $1 ORDER BY deployment_id",
                )
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(id, sessions, tps, reported_at_ms)| {
                        let id = id.parse().map_err(|_| {
                            $crate::store::StoreError::Corrupt(format!("deployment id `{id}`"))
                        })?;
                        Ok((id, $crate::store::metering::Load { sessions, tps, reported_at_ms }))
                    })
                    .collect()
            }
        }
    };
}

pub(super) use metering_sql_store;
