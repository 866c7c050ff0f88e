//! The running rule set: the rule thread that evaluates SQL on each input and fills the
//! actions' buffers, and one task per action that empties its buffer into its sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::actions::Action;
use super::buffer::Buffer;
use super::eval::{self, Ctx, Outcome};
use super::input::Input;
use super::model::{ActionRecord, RuleRecord};
use super::sql::Statement;
use crate::broker::Broker;

/// First and longest wait before a failed delivery is tried again.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The rules the rule thread runs (swapped whole on every change).
#[derive(Default)]
pub struct Live {
    pub rules: Vec<Arc<LiveRule>>,
}

impl Live {
    /// Whether any enabled rule selects from a message topic matching `topic`.
    pub fn selects_topic(&self, topic: &str) -> bool {
        self.rules.iter().any(|r| {
            r.record.enabled
                && r.statement
                    .sources
                    .iter()
                    .any(|s| !s.starts_with("$events/") && crate::mqtt::topic::matches(topic, s))
        })
    }

    /// Whether any enabled rule selects event `name`.
    pub fn selects_event(&self, name: &str) -> bool {
        self.rules.iter().any(|r| {
            r.record.enabled
                && r.statement
                    .sources
                    .iter()
                    .any(|s| s.strip_prefix("$events/") == Some(name))
        })
    }
}

/// A rule in force.
pub struct LiveRule {
    pub record: RuleRecord,
    pub statement: Statement,
    pub actions: Vec<Arc<LiveAction>>,
    pub metrics: Arc<RuleMetrics>,
}

/// Counters of one rule.
#[derive(Debug, Default)]
pub struct RuleMetrics {
    /// FROM and WHERE held: the actions got the output.
    pub matched: AtomicU64,
    /// FROM held, WHERE did not.
    pub no_result: AtomicU64,
    /// The statement failed on the input (e.g. a function's argument had the wrong type).
    pub failed: AtomicU64,
    /// Matched per second over the last second, and the highest seen (f64 bits).
    pub speed: AtomicU64,
    pub speed_max: AtomicU64,
    last_matched: AtomicU64,
}

impl RuleMetrics {
    /// Updates the speeds; called once a second.
    pub fn tick(&self) {
        let now = self.matched.load(Ordering::Relaxed);
        let speed = now.saturating_sub(self.last_matched.swap(now, Ordering::Relaxed)) as f64;
        self.speed.store(speed.to_bits(), Ordering::Relaxed);
        if speed > f64::from_bits(self.speed_max.load(Ordering::Relaxed)) {
            self.speed_max.store(speed.to_bits(), Ordering::Relaxed);
        }
    }
}

/// An action in force: its record, buffer and delivery task.
pub struct LiveAction {
    pub record: ActionRecord,
    pub action: Arc<Action>,
    pub buffer: Arc<Buffer>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveAction {
    /// Starts delivering `buffer` through `action`.
    pub fn start(record: ActionRecord, action: Action, buffer: Buffer, broker: Broker) -> Self {
        let action = Arc::new(action);
        let buffer = Arc::new(buffer);
        let task = tokio::spawn(deliver_all(
            broker,
            record.id.clone(),
            action.clone(),
            buffer.clone(),
        ));
        Self {
            record,
            action,
            buffer,
            task,
        }
    }
}

impl Drop for LiveAction {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Empties `buffer` into the sink, in order, retrying with back-off while it fails.
async fn deliver_all(broker: Broker, id: String, action: Arc<Action>, buffer: Arc<Buffer>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let batch = buffer.peek(action.batch_size()).await;
        let Some(&(last, _)) = batch.last() else {
            continue;
        };
        let (seqs, outputs): (Vec<u64>, Vec<Map<String, Value>>) = batch
            .iter()
            .filter_map(|(seq, data)| Some((*seq, serde_json::from_slice(data).ok()?)))
            .unzip();
        let count = batch.len() as u64;
        match action.deliver(&broker, &outputs, &seqs).await {
            Ok(()) => {
                buffer.ack(last);
                buffer.counters.success.fetch_add(count, Ordering::Relaxed);
                backoff = BACKOFF_MIN;
            }
            Err(failure) if failure.retry => {
                buffer.counters.retried.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(action = %id, error = %failure.message, retry_in_ms = backoff.as_millis() as u64,
                    "rule action failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(failure) => {
                buffer.ack(last);
                buffer.counters.failed.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(action = %id, error = %failure.message, "rule action refused its input");
                backoff = BACKOFF_MIN;
            }
        }
    }
}

/// The rule thread: evaluates every input against the rules in force.
pub fn run_rules(live: &arc_swap::ArcSwap<Live>, inputs: &flume::Receiver<Input>) {
    while let Ok(input) = inputs.recv() {
        let live = live.load();
        let mut ctx: Option<Ctx> = None;
        for rule in &live.rules {
            if !rule.record.enabled || !rule.statement.sources.iter().any(|s| input.selected_by(s))
            {
                continue;
            }
            let ctx = ctx.get_or_insert_with(|| Ctx::new(input.fields()));
            match eval::run(&rule.statement, ctx) {
                Ok(Outcome::Selected(output)) => {
                    rule.metrics.matched.fetch_add(1, Ordering::Relaxed);
                    let data = Bytes::from(Value::Object(output).to_string());
                    for action in &rule.actions {
                        action.buffer.push(data.clone());
                    }
                }
                Ok(Outcome::Skipped) => {
                    rule.metrics.no_result.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    rule.metrics.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(rule = %rule.record.id, error = %e, "rule failed on an input");
                }
            }
        }
    }
}
