//! Housekeeping of web-console sign-in sessions: expired ones are purged on a timer,
//! with the deployment app keys they made for themselves, so neither outlives the
//! sign-in when nobody signs out.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use crate::store::Store;

/// Purges expired sessions every `every`, waking the reconciler when any went, so the
/// brokers stop accepting their app keys.
pub async fn run_purger(store: Arc<dyn Store>, reconcile: Arc<Notify>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match store.purge_sessions(Utc::now()).await {
            Ok(0) => {}
            Ok(purged) => {
                tracing::info!(purged, "purged expired console sessions");
                reconcile.notify_one();
            }
            Err(err) => tracing::error!(error = %err, "purging console sessions failed"),
        }
    }
}
