//! Metering: exact counts of messages, bytes and sessions (product §5), sampled every
//! second into minute records and reported to the control plane with sequence numbers.

pub mod aggregate;
pub mod meter;
pub mod reporter;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use aggregate::{Aggregator, MinuteRecord};
pub use meter::{Counts, Meter, SessionCounts, SessionEnd};
use reporter::{Outbox, Target};
use tokio::sync::Mutex;

/// Where the node reports to; from the config file's `metering` section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub token: String,
    pub interval: Duration,
    pub outbox: PathBuf,
    pub deployment_id: String,
    pub node_id: String,
}

/// The metering pipeline of one node.
pub struct Metering {
    pub meter: Arc<Meter>,
    aggregator: Aggregator,
    outbox: Mutex<Option<Outbox>>,
    target: Option<Target>,
    http: reqwest::Client,
    interval: Duration,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Metering {
    /// A pipeline that reports per `settings`, or only counts when there are none.
    pub fn new(settings: Option<Settings>, http: reqwest::Client) -> Arc<Self> {
        let epoch = unix_now().as_millis() as i64;
        let (outbox, target, interval) = match settings {
            Some(s) => (
                Some(Outbox::open(s.outbox, s.deployment_id, s.node_id, epoch)),
                Some(Target {
                    url: s.url,
                    token: s.token,
                }),
                s.interval,
            ),
            None => (None, None, Duration::from_secs(10)),
        };
        Arc::new(Self {
            meter: Arc::new(Meter::default()),
            aggregator: Aggregator::default(),
            outbox: Mutex::new(outbox),
            target,
            http,
            interval,
        })
    }

    /// Samples the meter at every wall-clock second boundary, forever.
    pub async fn run_sampler(self: Arc<Self>) {
        loop {
            let now = unix_now();
            let to_next =
                Duration::from_secs(1) - Duration::from_nanos(u64::from(now.subsec_nanos()));
            tokio::time::sleep(to_next).await;
            // The counters taken now belong to the second that just ended.
            let second = unix_now().as_secs() as i64 - 1;
            self.aggregator.sample(&self.meter, second, Instant::now());
        }
    }

    /// Queues what was sampled and delivers the outbox, every interval, forever.
    pub async fn run_reporter(self: Arc<Self>) {
        let Some(target) = self.target.clone() else {
            return;
        };
        let mut failures = 0u32;
        loop {
            let pause = if failures == 0 {
                self.interval
            } else {
                reporter::backoff(failures, self.interval)
            };
            tokio::time::sleep(pause).await;
            let mut guard = self.outbox.lock().await;
            let Some(outbox) = guard.as_mut() else { return };
            if failures == 0 {
                outbox.push(self.aggregator.drain());
            }
            outbox.flush(&self.http, &target).await;
            failures = if outbox.is_empty() { 0 } else { failures + 1 };
        }
    }

    /// On shutdown: samples the last partial second, queues everything, tries one
    /// delivery and leaves the rest in the outbox for the next run.
    pub async fn shutdown(&self) {
        let second = unix_now().as_secs() as i64;
        self.aggregator.sample(&self.meter, second, Instant::now());
        let mut guard = self.outbox.lock().await;
        if let (Some(outbox), Some(target)) = (guard.as_mut(), self.target.as_ref()) {
            outbox.push(self.aggregator.drain());
            let _ = tokio::time::timeout(Duration::from_secs(2), outbox.flush(&self.http, target))
                .await;
            if !outbox.is_empty() {
                tracing::info!(
                    reports = outbox.len(),
                    "metering reports kept for the next run"
                );
            }
        }
    }

    /// Minute records sampled and not yet reported (for the node's own metrics API).
    pub fn session_counts(&self) -> SessionCounts {
        self.meter.sessions(Instant::now())
    }
}
