//! The deployment event log's retention: events older than the retention period (7 days
//! by default, as EMQX Cloud keeps them) are purged by a background job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreResult};

/// A source of the current time, injectable so retention can be tested.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Deletes events older than `retention` as of `clock`'s now; returns how many.
pub async fn purge_once(
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Duration,
) -> StoreResult<u64> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let cutoff = clock
        .now()
        .checked_sub_signed(retention)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    store.purge_events(cutoff).await
}

/// Runs [`purge_once`] every `every` until the task is dropped.
pub async fn run_purger(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match purge_once(store.as_ref(), clock.as_ref(), retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged expired deployment events"),
            Err(err) => tracing::error!(error = %err, "purging deployment events failed"),
        }
    }
}
