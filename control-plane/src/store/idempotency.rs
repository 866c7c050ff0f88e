//! Answers kept for `Idempotency-Key` retries (see `http::idempotency`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// A kept (or still pending) answer to one caller's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Digest of the method, path and body of the request that first used the key.
    pub request_hash: String,
    /// `None` while the first request is still being answered.
    pub status: Option<u16>,
    /// The sealed answer (see `encryption::SecretKey::seal`).
    pub response: Option<String>,
}

/// Idempotency use cases; every [`super::Store`] implements it.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Reserves `key` of `principal` for the request `request_hash`, unless a record
    /// holds it: then answers that record. A record created before `expired_before`,
    /// or still pending and created before `abandoned_before` (its request died with
    /// its replica), is replaced. `None` means the caller now holds the reservation.
    async fn reserve_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        expired_before: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    /// Keeps the answer to a reserved key.
    async fn complete_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        status: u16,
        response: &str,
    ) -> StoreResult<()>;
    /// Drops a reservation whose request failed on our side, so a retry runs again.
    async fn release_idempotency_key(&self, principal: &str, key: &str) -> StoreResult<()>;
    /// Deletes records created before `before`; returns how many.
    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

/// Implements [`IdempotencyStore`] for a backend struct with a `pool` field.
macro_rules! idempotency_sql_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::idempotency::IdempotencyStore for $store {
            async fn reserve_idempotency_key(
                &self,
                principal: &str,
                key: &str,
                request_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
                expired_before: chrono::DateTime<chrono::Utc>,
                abandoned_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<$crate::store::idempotency::IdempotencyRecord>>
            {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 \
                     AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
                )
                .bind(principal)
                .bind(key)
                .bind(expired_before)
                .bind(abandoned_before)
                .execute(&self.pool)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (principal, key, request_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (principal, key) DO NOTHING",
                )
                .bind(principal)
                .bind(key)
                .bind(request_hash)
                .bind(now)
                .execute(&self.pool)
                .await?;
                if inserted.rows_affected() == 1 {
                    return Ok(None);
                }
                let row: Option<(String, Option<i32>, Option<String>)> = sqlx::query_as(
                    "SELECT request_hash, status, response FROM idempotency_keys \
                     WHERE principal = $1 AND key = $2",
                )
                .bind(principal)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(request_hash, status, response)| {
                    $crate::store::idempotency::IdempotencyRecord {
                        request_hash,
                        status: status.and_then(|s| u16::try_from(s).ok()),
                        response,
                    }
                }))
            }

            async fn complete_idempotency_key(
                &self,
                principal: &str,
                key: &str,
                status: u16,
                response: &str,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(
                    "UPDATE idempotency_keys SET status = $1, response = $2 \
                     WHERE principal = $3 AND key = $4",
                )
                .bind(i32::from(status))
                .bind(response)
                .bind(principal)
                .bind(key)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_idempotency_key(
                &self,
                principal: &str,
                key: &str,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query("DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2")
                    .bind(principal)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn purge_idempotency_keys(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(super) use idempotency_sql_store;
