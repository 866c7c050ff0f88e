//! Metering retention: minute rows are kept for `minute_retention` (7 days by default),
//! hour rows for `hour_retention` (90 days), month rows for ever. Report cursors are kept
//! as long as hours, so a node that resumes an old epoch is still deduplicated.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Granularity;
use crate::events::Clock;
use crate::store::{Store, StoreResult};

/// How long each kind of row is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub minutes: Duration,
    pub hours: Duration,
}

/// What one purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub minutes: u64,
    pub hours: u64,
    pub cursors: u64,
}

fn cutoff(now: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    now.checked_sub_signed(keep)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Deletes rows past their retention as of `clock`'s now: a period goes once it has
/// started more than the retention ago.
pub async fn purge_once(
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Retention,
) -> StoreResult<Purged> {
    let now = clock.now();
    let minutes_before = cutoff(now, retention.minutes);
    let hours_before = cutoff(now, retention.hours);
    Ok(Purged {
        minutes: store
            .purge_usage(Granularity::Minute, minutes_before.timestamp())
            .await?,
        hours: store
            .purge_usage(Granularity::Hour, hours_before.timestamp())
            .await?,
        cursors: store.purge_cursors(hours_before.timestamp_millis()).await?,
    })
}

/// Runs [`purge_once`] every `every` until the task is dropped.
pub async fn run_purger(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Retention,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match purge_once(store.as_ref(), clock.as_ref(), retention).await {
            Ok(purged) if purged == Purged::default() => {}
            Ok(purged) => tracing::info!(
                minutes = purged.minutes,
                hours = purged.hours,
                cursors = purged.cursors,
                "purged expired metering rows"
            ),
            Err(err) => tracing::error!(error = %err, "purging metering rows failed"),
        }
    }
}
