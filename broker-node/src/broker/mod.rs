//! The MQTT broker: connections, sessions and message flow, around the routing engine.
//!
//! [`Broker`] is the node's one handle on it. Each client connection is served by
//! [`connection::serve`]; a session lives in its connection's task while connected and in
//! a [`parked`] task while not, and moves between them (and between connections, on
//! takeover) through its `Slot`. Messages go out through `crate::engine` and come back
//! through each subscribing session's link; retained messages, the inbound log and
//! persistent sessions are kept in `crate::store`. `docs/engine.md` has the picture.

pub mod connection;
pub mod events;
mod handshake;
pub mod message;
pub mod parked;
pub mod registry;
mod retained;
pub mod session;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::engine::Engine;
use crate::metering::Meter;
use crate::mqtt::QoS;
use crate::security::Security;
use crate::store::{Op, Store};
use message::{engine_topic, now_ms, Message};
use session::Session;

/// Largest MQTT packet the node accepts (EMQX's default `max_packet_size`).
pub const MAX_PACKET_SIZE: usize = 1024 * 1024;

/// How long inbound-log entries are kept: long enough for every session's task to have
/// taken its messages into its own queue.
const INBOUND_RETENTION: Duration = Duration::from_secs(60);

/// A token bucket of PUBLISHes per second for the whole node.
pub type Throttle = governor::DefaultDirectRateLimiter;

/// The throttle for `max_tps` messages per second (bursts up to one second's worth).
pub fn throttle(max_tps: u64) -> Option<Arc<Throttle>> {
    let per_second = std::num::NonZeroU32::new(u32::try_from(max_tps).unwrap_or(u32::MAX))?;
    Some(Arc::new(governor::RateLimiter::direct(
        governor::Quota::per_second(per_second),
    )))
}

/// What the node is configured with.
pub struct Options {
    pub max_sessions: Option<u64>,
    pub max_tps: Option<u64>,
    /// Whether packets are counted; off only to measure what counting costs.
    pub counting: bool,
    /// How long a connection may take to send CONNECT.
    pub connect_timeout: Duration,
}

/// The broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Shared>,
}

/// What every connection and session task shares.
pub struct Shared {
    pub engine: Engine,
    pub store: Store,
    pub meter: Arc<Meter>,
    pub security: Security,
    pub events: events::Events,
    /// Data integrations: told of every published message and event (never waits).
    pub rules: crate::rules::Rules,
    /// Connected clients, for the deployment API.
    pub clients: registry::Clients,
    /// Sessions' subscriptions, for the deployment API.
    pub subscriptions: registry::Subscriptions,
    pub throttle: Option<Arc<Throttle>>,
    pub max_sessions: Option<u64>,
    pub counting: bool,
    pub connect_timeout: Duration,
    retained: retained::Retained,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    next_owner: AtomicU64,
    next_inbound: AtomicU64,
    inbound_log: Mutex<VecDeque<(u64, u64)>>,
    /// Sessions that outlive their connection: while there are none, nothing needs the
    /// inbound log.
    persistent_sessions: AtomicUsize,
    shutting_down: AtomicBool,
}

/// Where a session lives: whichever task owns it takes [`Control`] messages.
#[derive(Default)]
struct Slot {
    owner: tokio::sync::Mutex<Option<Owner>>,
}

struct Owner {
    id: u64,
    control: flume::Sender<Control>,
}

/// What a session's owner is asked to do.
pub enum Control {
    /// Another connection takes the session over: hand it (and stop serving it).
    Takeover {
        reply: oneshot::Sender<Option<Box<Session>>>,
    },
    /// The deployment API ends the session (and its connection).
    End,
    /// The node is stopping: disconnect the client, keep the session.
    Shutdown,
    /// The deployment API closes the connection (the session stays, if persistent).
    Kick,
    /// The deployment API subscribes or unsubscribes in the client's name.
    Command(Box<registry::Command>),
}

/// A session's claim on its client id: the owner id and its control inbox.
pub struct Claim {
    pub owner: u64,
    pub control: flume::Receiver<Control>,
    /// The inbox's sender, for the client registry.
    pub sender: flume::Sender<Control>,
}

impl std::ops::Deref for Broker {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.inner
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot read the session store: {0}")]
    Restore(#[from] Box<redb::Error>),
    #[error("rule store: {0}")]
    Rules(#[source] crate::rules::store::StoreError),
    #[error("secret key (SKYPORT_BROKER_SECRET_KEY, else DATA_DIR/secret-key): {0:#}")]
    SecretKey(anyhow::Error),
}

/// The key sealing secrets at rest (rule resources' passwords and tokens):
/// `SKYPORT_BROKER_SECRET_KEY` (base64 of 32 bytes; in a cluster, from the deployment's
/// Secret), else `DATA_DIR/secret-key`, generated on first start.
fn secret_key(data_dir: &std::path::Path) -> Result<skyport_secret_key::SecretKey, StartError> {
    let given = std::env::var("SKYPORT_BROKER_SECRET_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(skyport_secret_key::SecretString::from);
    skyport_secret_key::SecretKey::given_or_from_dir(given.as_ref(), data_dir)
        .map_err(StartError::SecretKey)
}

impl Broker {
    /// Starts the engine (sized for the tier's sessions) and opens the session store in
    /// `data_dir`, then the broker over them; the task returned publishes events and
    /// trims the inbound log.
    pub fn open(
        data_dir: &std::path::Path,
        meter: Arc<Meter>,
        security: Security,
        options: Options,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), StartError> {
        /// Engine links beyond the tier's sessions; without a tier limit, the engine is
        /// sized for a million sessions.
        const SPARE_LINKS: usize = 64;
        const DEFAULT_MAX_SESSIONS: u64 = 1_000_000;
        let links = options.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS) as usize + SPARE_LINKS;
        let engine = Engine::start(links)?;
        let store = Store::open(&data_dir.join("sessions.redb"))?;
        let rules = crate::rules::Rules::open(&data_dir.join("rules.redb"), secret_key(data_dir)?)
            .map_err(StartError::Rules)?;
        Ok(Self::start(engine, store, rules, meter, security, options)?)
    }

    /// A broker over `engine` and `store`, with persistent sessions and retained
    /// messages read back from the store.
    fn start(
        engine: Engine,
        store: Store,
        rules: crate::rules::Rules,
        meter: Arc<Meter>,
        security: Security,
        options: Options,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), Box<redb::Error>> {
        let (events, event_rx) = events::Events::channel();
        let broker = Self {
            inner: Arc::new(Shared {
                engine,
                store,
                meter,
                security,
                events,
                rules,
                clients: registry::Clients::default(),
                subscriptions: registry::Subscriptions::default(),
                throttle: options.max_tps.and_then(throttle),
                max_sessions: options.max_sessions,
                counting: options.counting,
                connect_timeout: options.connect_timeout,
                retained: retained::Retained::default(),
                slots: Mutex::default(),
                next_owner: AtomicU64::new(1),
                next_inbound: AtomicU64::new(1),
                inbound_log: Mutex::default(),
                persistent_sessions: AtomicUsize::new(0),
                shutting_down: AtomicBool::new(false),
            }),
        };
        broker.restore()?;
        let background = tokio::spawn({
            let broker = broker.clone();
            async move {
                tokio::join!(
                    events::publish_all(broker.clone(), event_rx),
                    broker.trim_inbound_log()
                );
            }
        });
        Ok((broker, background))
    }

    fn new_owner(&self) -> u64 {
        self.next_owner.fetch_add(1, Ordering::Relaxed)
    }

    /// Claims `client_id`'s session for a new owner, taking it from the current one (a
    /// connection or a parked session), which gives it up.
    pub async fn claim(&self, client_id: &str) -> (Option<Box<Session>>, Claim) {
        loop {
            let slot = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots.entry(client_id.to_owned()).or_default().clone()
            };
            let mut owner = slot.owner.lock().await;
            let current = {
                let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                slots.get(client_id).is_some_and(|s| Arc::ptr_eq(s, &slot))
            };
            if !current {
                // The slot was released meanwhile; take the new one.
                continue;
            }
            let mut previous = None;
            if let Some(old) = owner.take() {
                let (reply, answer) = oneshot::channel();
                if old.control.send(Control::Takeover { reply }).is_ok() {
                    previous = tokio::time::timeout(Duration::from_secs(10), answer)
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten();
                }
            }
            // flume: no block of slots allocated up front, unlike tokio's channels (every
            // session has an inbox, and most never get a message).
            let (control, inbox) = flume::unbounded();
            let id = self.new_owner();
            *owner = Some(Owner {
                id,
                control: control.clone(),
            });
            return (
                previous,
                Claim {
                    owner: id,
                    control: inbox,
                    sender: control,
                },
            );
        }
    }

    /// Gives `client_id`'s slot up (the session ended), unless another owner took it.
    pub async fn release(&self, client_id: &str, owner_id: u64) {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.get(client_id).cloned()
        };
        let Some(slot) = slot else {
            return;
        };
        let mut owner = slot.owner.lock().await;
        if owner.as_ref().is_some_and(|o| o.id == owner_id) {
            *owner = None;
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if slots.get(client_id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(client_id);
            }
        }
    }

    /// Asks the owner of `client_id`'s session to end it; `false` if there is none.
    pub async fn end_session(&self, client_id: &str) -> bool {
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.get(client_id).cloned()
        };
        let Some(slot) = slot else {
            return false;
        };
        let owner = slot.owner.lock().await;
        owner
            .as_ref()
            .is_some_and(|o| o.control.send(Control::End).is_ok())
    }

    /// Asks every session's owner to let its client go (planned stop); waits up to
    /// `within` for the connections to close.
    pub async fn shutdown(&self, within: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = {
            let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.values().cloned().collect()
        };
        for slot in slots {
            if let Some(owner) = slot.owner.lock().await.as_ref() {
                let _ = owner.control.send(Control::Shutdown);
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        while !self.clients.list().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Sets how long `session` outlives its connection, keeping count of persistent ones.
    pub fn set_expiry(&self, session: &mut Session, expiry: u32) {
        let was = session.persistent();
        session.expiry = expiry;
        match (was, session.persistent()) {
            (false, true) => self.count_persistent(1),
            (true, false) => self.count_persistent(-1),
            _ => {}
        }
    }

    /// A session started or stopped outliving its connection.
    pub fn count_persistent(&self, delta: isize) {
        if delta > 0 {
            self.persistent_sessions.fetch_add(1, Ordering::SeqCst);
        } else if delta < 0 {
            let _ =
                self.persistent_sessions
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }

    /// The inbound-log sequence the next logged message will get (a subscription made now
    /// sees only later ones).
    pub fn inbound_position(&self) -> u64 {
        self.next_inbound.load(Ordering::SeqCst)
    }

    /// Publishes `message`: updates the retained store, logs it for persistent sessions
    /// when it is QoS 1/2 (the caller commits `ops` durably before acknowledging), and
    /// routes it.
    pub fn publish(&self, message: Message, ops: &mut Vec<Op>) {
        let origin = message.origin;
        let routed = self.prepare(message, ops);
        if let Err(e) = self.engine.publish_all(origin, vec![routed]) {
            tracing::error!(error = %e, "cannot route a message");
        }
    }

    /// Does all of [`Self::publish`] but the routing; returns the engine's topic and
    /// envelope, for `Engine::publish_all`.
    pub fn prepare(&self, mut message: Message, ops: &mut Vec<Op>) -> (Bytes, Bytes) {
        if message.retain {
            self.retained.set(&message, ops);
        }
        if message.qos != QoS::AtMostOnce && self.persistent_sessions.load(Ordering::SeqCst) > 0 {
            let seq = self.next_inbound.fetch_add(1, Ordering::SeqCst);
            message.inbound = Some(seq);
            ops.push(Op::PutInbound {
                seq,
                message: message.to_stored(),
            });
            self.inbound_log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back((seq, now_ms()));
        }
        (engine_topic(&message.topic), message.envelope())
    }

    /// Publishes a message for the deployment API (`/mqtt/publish`): paced by the tier's
    /// rate, durable like a client's, counted once as HTTP-published.
    pub async fn publish_http(&self, topic: String, payload: Bytes, qos: u8, retain: bool) {
        if let Some(throttle) = &self.throttle {
            throttle.until_ready().await;
        }
        let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
        let message = Message::published(topic, payload, qos, retain, Default::default(), 0);
        self.rules.on_publish(&message, "", None, None);
        let mut ops = Vec::new();
        self.publish(message, &mut ops);
        self.commit(ops).await;
        self.meter.http_published(1);
    }

    /// Writes `ops`, waiting for the disk only when they log QoS 1/2 messages or QoS 2
    /// packet ids (which are acknowledged once durable).
    pub async fn commit(&self, ops: Vec<Op>) {
        if ops
            .iter()
            .any(|op| matches!(op, Op::PutInbound { .. } | Op::PutIncoming { .. }))
        {
            self.store.write_durable(ops).await;
        } else {
            self.store.write(ops);
        }
    }

    /// Publishes a message of the node's own (events): QoS 0, not retained, not counted.
    pub fn publish_internal(&self, topic: String, payload: Bytes) {
        let message = Message::published(
            topic,
            payload,
            QoS::AtMostOnce,
            false,
            Default::default(),
            0,
        );
        let mut ops = Vec::new();
        self.publish(message, &mut ops);
    }

    /// Retained messages matching `filter`.
    pub fn retained_matching(&self, filter: &str) -> Vec<Message> {
        self.retained.matching(filter)
    }

    /// Drops inbound-log entries every session has had time to take.
    async fn trim_inbound_log(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let horizon = now_ms().saturating_sub(INBOUND_RETENTION.as_millis() as u64);
            let below = {
                let mut log = self.inbound_log.lock().unwrap_or_else(|e| e.into_inner());
                let mut below = None;
                while log.front().is_some_and(|(_, at)| *at < horizon) {
                    below = log.pop_front().map(|(seq, _)| seq + 1);
                }
                below
            };
            if let Some(below) = below {
                self.store.write(vec![Op::TrimInbound { below }]);
            }
        }
    }

    /// Reads persistent sessions and retained messages back from the store, replays the
    /// inbound log to sessions that had not yet taken its messages (a crash), and parks
    /// each session until its client returns.
    fn restore(&self) -> Result<(), Box<redb::Error>> {
        let loaded = self.store.load()?;
        for (topic, stored) in &loaded.retained {
            if let Some(message) = Message::from_stored(stored) {
                self.retained.restore(topic.clone(), message);
            }
        }
        let inbound: Vec<(u64, Message)> = loaded
            .inbound
            .iter()
            .filter_map(|(seq, stored)| {
                let mut message = Message::from_stored(stored)?;
                message.inbound = Some(*seq);
                Some((*seq, message))
            })
            .collect();
        if let Some((last, _)) = inbound.last() {
            self.next_inbound.store(last + 1, Ordering::SeqCst);
            let mut log = self.inbound_log.lock().unwrap_or_else(|e| e.into_inner());
            log.extend(inbound.iter().map(|(seq, _)| (*seq, now_ms())));
        }
        let mut queues = loaded.queues;
        let mut incoming = loaded.incoming;
        let limit = self.security.settings().sessions.max_queued_messages;
        let now = now_ms();
        let mut restored = 0;
        for (client_id, record) in loaded.sessions {
            let Ok(record) = serde_json::from_slice::<session::SessionRecord>(&record) else {
                tracing::warn!(%client_id, "unreadable session record; dropped");
                self.store.write(vec![Op::DeleteSession { client_id }]);
                continue;
            };
            let rows = queues.remove(&client_id).unwrap_or_default();
            let disconnected_at = if record.disconnected_at == 0 {
                now
            } else {
                record.disconnected_at
            };
            let expires_at = disconnected_at + u64::from(record.expiry) * 1000;
            if record.expiry == 0 || expires_at <= now {
                self.store.write(vec![Op::DeleteSession { client_id }]);
                continue;
            }
            let unreleased = incoming.remove(&client_id).unwrap_or_default();
            let mut session = Session::restore(client_id.clone(), record, rows, unreleased);
            let mut ops = Vec::new();
            let mut replayed = 0;
            for (seq, message) in &inbound {
                if loaded.taken.contains(&(*seq, client_id.clone())) {
                    continue;
                }
                let matching: Vec<u32> = session
                    .subscriptions
                    .iter()
                    .filter(|(_, s)| {
                        !s.is_shared()
                            && session
                                .subscribed_at
                                .get(&s.filter)
                                .is_none_or(|at| seq >= at)
                            && crate::mqtt::topic::matches(&message.topic, s.matching_filter())
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in matching {
                    if session.accept(message.clone(), id, false, limit, &mut ops)
                        == session::Accepted::Queued
                    {
                        replayed += 1;
                    }
                }
            }
            self.store.write(ops);
            if replayed > 0 {
                tracing::info!(%client_id, replayed, "messages replayed from the inbound log");
            }
            let remaining = Duration::from_millis(expires_at - now);
            self.meter
                .session_restored(&client_id, std::time::Instant::now() + remaining);
            for subscription in session.subscriptions.values() {
                self.subscriptions
                    .subscribed(&client_id, &subscription.filter, subscription.qos);
            }
            if let Err(e) = parked::attach_engine(self, &mut session) {
                tracing::error!(%client_id, error = %e, "cannot resubscribe a restored session");
            }
            let id = self.new_owner();
            let (control, inbox) = flume::unbounded();
            let slot = Arc::new(Slot {
                owner: tokio::sync::Mutex::new(Some(Owner {
                    id,
                    control: control.clone(),
                })),
            });
            self.slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(client_id.clone(), slot);
            self.count_persistent(1);
            parked::park(
                self.clone(),
                Box::new(session),
                Claim {
                    owner: id,
                    control: inbox,
                    sender: control,
                },
                None,
                remaining,
            );
            restored += 1;
        }
        if restored > 0 {
            tracing::info!(sessions = restored, "persistent sessions restored");
        }
        Ok(())
    }
}
