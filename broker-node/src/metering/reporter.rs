//! Delivers minute records to the control plane exactly once in effect: every report
//! carries (node, epoch, seq), stays in an on-disk outbox until acknowledged, and is
//! retried; the control plane ignores duplicates and asks for gaps to be resent.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use super::aggregate::MinuteRecord;

/// One report, as the control plane's ingest endpoint takes it (`skyport-settings`
/// defines the format for both sides).
pub use skyport_settings::metering::Report;

/// Where and how to report.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
}

/// Reports not yet acknowledged, persisted so a restart loses none.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    queue: VecDeque<Report>,
    deployment_id: String,
    node_id: String,
    epoch: i64,
    next_seq: u64,
}

/// Outcome of one delivery attempt.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    Acked,
    /// The control plane expects this seq next (it missed earlier ones).
    Gap(u64),
    Failed(String),
}

impl Outbox {
    /// Opens the outbox at `path`, keeping reports a previous process left unsent.
    pub fn open(path: PathBuf, deployment_id: String, node_id: String, epoch: i64) -> Self {
        let queue = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<VecDeque<Report>>(&bytes).ok())
            .unwrap_or_default();
        if !queue.is_empty() {
            tracing::info!(
                reports = queue.len(),
                "resending metering reports left by the previous run"
            );
        }
        Self {
            path,
            queue,
            deployment_id,
            node_id,
            epoch,
            next_seq: 1,
        }
    }

    /// Queues `minutes` as the next report of this epoch and persists the outbox.
    pub fn push(&mut self, minutes: Vec<MinuteRecord>) {
        if minutes.is_empty() {
            return;
        }
        self.queue.push_back(Report {
            deployment_id: self.deployment_id.clone(),
            node_id: self.node_id.clone(),
            epoch: self.epoch,
            seq: self.next_seq,
            minutes,
        });
        self.next_seq += 1;
        self.persist();
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn persist(&self) {
        let tmp = self.path.with_extension("tmp");
        let write = serde_json::to_vec(&self.queue)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(err) = write {
            tracing::error!(error = %err, path = %self.path.display(), "cannot persist the metering outbox");
        }
    }

    /// Sends queued reports in order until one fails; returns how many were acknowledged.
    pub async fn flush(&mut self, http: &reqwest::Client, target: &Target) -> usize {
        let mut acked = 0;
        while let Some(report) = self.queue.front() {
            match deliver(http, target, report).await {
                Delivery::Acked => {
                    self.queue.pop_front();
                    acked += 1;
                    self.persist();
                }
                Delivery::Gap(expected) if expected > report.seq => {
                    // Already applied earlier (its ack was lost): drop our copy.
                    self.queue.pop_front();
                    self.persist();
                }
                Delivery::Gap(expected) => {
                    // The control plane never got reports before this one and we no longer
                    // hold them (e.g. its database was restored): renumber what we hold so
                    // nothing more is lost.
                    tracing::warn!(
                        expected,
                        seq = report.seq,
                        "metering sequence gap; renumbering"
                    );
                    let (epoch, mut seq) = (report.epoch, expected);
                    for r in self.queue.iter_mut().filter(|r| r.epoch == epoch) {
                        r.seq = seq;
                        seq += 1;
                    }
                    if epoch == self.epoch {
                        self.next_seq = seq;
                    }
                    self.persist();
                }
                Delivery::Failed(reason) => {
                    tracing::warn!(%reason, queued = self.queue.len(), "metering report not delivered; will retry");
                    break;
                }
            }
        }
        acked
    }
}

async fn deliver(http: &reqwest::Client, target: &Target, report: &Report) -> Delivery {
    let response = match http
        .post(&target.url)
        .bearer_auth(&target.token)
        .json(report)
        .send()
        .await
    {
        Ok(response) => response,
        Err(err) => return Delivery::Failed(err.to_string()),
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() {
        return Delivery::Acked;
    }
    if status == reqwest::StatusCode::CONFLICT && body["code"] == "seq_gap" {
        if let Some(expected) = body["expected_seq"].as_u64() {
            return Delivery::Gap(expected);
        }
    }
    Delivery::Failed(format!("HTTP {status}: {body}"))
}

/// Retry pause after a failed delivery, doubling up to the reporting interval.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    (Duration::from_millis(200) * 2u32.saturating_pow(failures.min(10))).min(interval)
}
