//! Data integrations: the rule engine. Rules written in EMQX's SQL select from published
//! messages and device events; their output goes to actions (republish, webhook, Redis,
//! PostgreSQL), each through a bounded buffer on the data volume, so a slow or down sink
//! never holds up MQTT traffic or other rules.
//!
//! The broker calls [`Rules::on_publish`] and [`Rules::on_event`]: cheap (one atomic
//! load when there are no rules), and they never wait: an input is handed to the rule
//! thread through a bounded queue (full: dropped and counted in `rules.inputs.dropped`).
//! `docs/integrations.md` is the user's guide.

pub mod actions;
pub mod buffer;
pub mod engine;
pub mod eval;
pub mod functions;
pub mod input;
pub mod model;
pub mod plan;
pub mod registry;
pub mod resource;
pub mod sql;
pub mod store;
pub mod template;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::broker::message::{now_ms, Message};
use crate::broker::Broker;
use engine::Live;
use input::Input;
use registry::Registry;
use store::RuleStore;

/// Inputs waiting for the rule thread; beyond this they are dropped and counted.
const INPUT_QUEUE: usize = 100_000;

/// The node's rule engine. Cheap to clone.
#[derive(Clone)]
pub struct Rules {
    inner: Arc<Inner>,
}

struct Inner {
    live: Arc<ArcSwap<Live>>,
    inputs: flume::Sender<Input>,
    pending: std::sync::Mutex<Option<flume::Receiver<Input>>>,
    store: RuleStore,
    settings: OnceLock<Settings>,
    registry: tokio::sync::Mutex<Registry>,
    broker: OnceLock<Broker>,
    inputs_dropped: AtomicU64,
    /// Seals resource secrets in the store.
    key: skyport_secret_key::SecretKey,
}

/// How the node's rule engine is configured.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub buffer: buffer::Limits,
    pub plan: Option<plan::Plan>,
}

impl Rules {
    /// Opens the rule store at `path`, whose resource secrets are sealed with `key`;
    /// nothing runs until [`Rules::start`].
    pub fn open(
        path: &std::path::Path,
        key: skyport_secret_key::SecretKey,
    ) -> Result<Self, store::StoreError> {
        let store = RuleStore::open(path)?;
        let (inputs, pending) = flume::bounded(INPUT_QUEUE);
        Ok(Self {
            inner: Arc::new(Inner {
                live: Arc::new(ArcSwap::from_pointee(Live::default())),
                inputs,
                pending: std::sync::Mutex::new(Some(pending)),
                store,
                settings: OnceLock::new(),
                registry: tokio::sync::Mutex::new(Registry::default()),
                broker: OnceLock::new(),
                inputs_dropped: AtomicU64::new(0),
                key,
            }),
        })
    }

    /// Loads the stored resources and rules (with their buffers) and starts running them
    /// for `broker`, configured by `settings`.
    pub async fn start(&self, broker: Broker, settings: Settings) {
        let _ = self.inner.broker.set(broker);
        let _ = self.inner.settings.set(settings);
        let Some(pending) = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let live = self.inner.live.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("rules".into())
            .spawn(move || engine::run_rules(&live, &pending))
        {
            tracing::error!(error = %e, "cannot start the rule thread; rules will not run");
            return;
        }
        self.restore().await;
        let live = self.inner.live.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                for rule in &live.load().rules {
                    rule.metrics.tick();
                }
            }
        });
    }

    /// A client (or the HTTP API) published `message`. Never waits.
    pub fn on_publish(
        &self,
        message: &Message,
        client_id: &str,
        username: Option<&str>,
        peer: Option<SocketAddr>,
    ) {
        let live = self.inner.live.load();
        if live.rules.is_empty() || !live.selects_topic(&message.topic) {
            return;
        }
        self.send(Input::Message {
            topic: message.topic.clone(),
            payload: message.payload.clone(),
            qos: message.qos as u8,
            retain: message.retain,
            clientid: client_id.to_owned(),
            username: username.map(str::to_owned),
            peer,
            at_ms: now_ms(),
        });
    }

    /// The node emitted device event `name` (`client_connected`, …). Never waits.
    pub fn on_event(&self, name: &str, payload: &serde_json::Value) {
        let live = self.inner.live.load();
        if live.rules.is_empty() || !live.selects_event(name) {
            return;
        }
        self.send(Input::Event {
            name: name.to_owned(),
            payload: payload.clone(),
        });
    }

    fn send(&self, input: Input) {
        if self.inner.inputs.try_send(input).is_err() {
            self.inner.inputs_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Inputs dropped because the rule thread was behind.
    pub fn inputs_dropped(&self) -> u64 {
        self.inner.inputs_dropped.load(Ordering::Relaxed)
    }

    /// Makes every buffered action input durable (planned stop).
    pub async fn sync(&self) {
        self.inner.store.sync().await;
    }

    fn settings(&self) -> Settings {
        self.inner.settings.get().cloned().unwrap_or_default()
    }

    /// The rules in force (for metrics).
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.inner.live.load()
    }
}
