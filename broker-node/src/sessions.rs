//! Persistent sessions across a planned restart of the node.
//!
//! rumqttd keeps sessions in memory only, so the node carries them over itself:
//!
//! 1. On SIGTERM the listeners close and every client is disconnected (v5: DISCONNECT
//!    0x8B, server shutting down); persistent sessions become offline.
//! 2. For each offline persistent session the node resumes it in the engine in the
//!    client's name and takes the messages queued for it, acknowledging them, until the
//!    engine is quiet. The sessions (client id, time left before expiry, subscriptions)
//!    and their queued messages are written to `sessions.json` in the data directory
//!    (the deployment's volume), atomically.
//! 3. On start, before the listeners open, each unexpired session is re-created in the
//!    engine with its subscriptions (so messages published from then on queue for it),
//!    counted again as an offline session, and its saved messages wait in [`Pending`].
//! 4. When the client reconnects without a clean start, the front delivers the saved
//!    messages first, in order, then the engine's; a clean start discards them.
//!
//! A crash (no SIGTERM: SIGKILL, out of memory) loses offline sessions, their
//! subscriptions and queues alike: they are written at a planned stop only.
//!
//! While the node runs, a keeper does step 2 every few seconds for every offline
//! persistent session, into [`Pending`]: that is where the offline queue limit
//! (`limits.max_queued_messages`, 1,000 by default) applies — beyond it the oldest
//! message is dropped, counted in the `dropped` metric and announced on
//! `$events/message_dropped` — and what a restart saves. A client's CONNECT waits for a
//! pass over its own session to finish, so nothing is taken from under it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::front::clients::Subscriptions;
use crate::front::events;
use crate::metering::Meter;
use crate::publisher::{Message, Publisher};

/// File name of the journal, in the data directory.
pub const FILE_NAME: &str = "sessions.json";
/// How long the engine must stay quiet before a session's queue counts as drained.
const DRAIN_QUIET: Duration = Duration::from_millis(200);
/// Sessions drained at once.
const DRAIN_CONCURRENCY: usize = 64;

/// Messages kept by the node for offline persistent sessions, delivered when their
/// clients return. Cheap to clone.
#[derive(Clone, Default)]
pub struct Pending {
    inner: Arc<Mutex<HashMap<String, VecDeque<Message>>>>,
    /// One lock per client id: held by a keeper pass over the session, and by the
    /// client's CONNECT until it is in.
    passes: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Message>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The messages waiting for `client_id`, removed.
    pub fn take(&self, client_id: &str) -> Vec<Message> {
        self.lock()
            .remove(client_id)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// Drops what waits for `client_id` (its session ended).
    pub fn forget(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    /// Appends `messages` for `client_id`; returns those dropped (the oldest) to keep at
    /// most `limit`.
    pub fn push(&self, client_id: &str, messages: Vec<Message>, limit: usize) -> Vec<Message> {
        if messages.is_empty() {
            return Vec::new();
        }
        let mut all = self.lock();
        let queue = all.entry(client_id.to_owned()).or_default();
        queue.extend(messages);
        let excess = queue.len().saturating_sub(limit.max(1));
        queue.drain(..excess).collect()
    }

    /// Exclusive access to `client_id`'s session against keeper passes; held until the
    /// returned guard drops.
    pub async fn pass(&self, client_id: &str) -> Pass {
        let lock = self
            .passes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(client_id.to_owned())
            .or_default()
            .clone();
        Pass {
            guard: Some(lock.lock_owned().await),
            passes: self.passes.clone(),
            client_id: client_id.to_owned(),
        }
    }
}

/// A held pass over one session. Its lock leaves the table with its last user, so the
/// table only holds the sessions being worked on, not every client id ever seen.
pub struct Pass {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    passes: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    client_id: String,
}

impl Drop for Pass {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut passes = self.passes.lock().unwrap_or_else(|e| e.into_inner());
        // Others clone the lock only under this table's mutex: one reference left (the
        // table's) means no one holds or awaits it.
        if passes
            .get(&self.client_id)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            passes.remove(&self.client_id);
        }
    }
}

/// How often the keeper takes offline sessions' queued messages from the engine.
pub const KEEPER_INTERVAL: Duration = Duration::from_secs(2);
/// How long the engine must stay quiet during a keeper pass.
const KEEPER_QUIET: Duration = Duration::from_millis(50);

/// Takes, every [`KEEPER_INTERVAL`], the messages the engine queued for each offline
/// persistent session into `pending`, enforcing the queue limit.
pub async fn run_keeper(
    publisher: Publisher,
    meter: Arc<Meter>,
    pending: Pending,
    events: events::Events,
    security: crate::security::Security,
) {
    let mut tick = tokio::time::interval(KEEPER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let limit = security.settings().sessions.max_queued_messages;
        let passes = meter
            .offline_sessions()
            .into_iter()
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(client_id, _)| {
                let (publisher, meter, pending, events) = (&publisher, &meter, &pending, &events);
                async move {
                    let _pass = pending.pass(&client_id).await;
                    // The client may have come back while the pass waited.
                    if !meter.is_offline(&client_id) {
                        return;
                    }
                    match publisher.drain_session(&client_id, KEEPER_QUIET).await {
                        Ok(messages) => {
                            let dropped = pending.push(&client_id, messages, limit);
                            if !dropped.is_empty() {
                                meter.dropped(dropped.len() as u64);
                                tracing::debug!(%client_id, dropped = dropped.len(), "offline queue full");
                            }
                            for message in &dropped {
                                let public = Message {
                                    topic: events::to_public(message.topic.as_bytes())
                                        .unwrap_or_else(|| message.topic.clone()),
                                    ..message.clone()
                                };
                                events.message_dropped(&client_id, &public);
                            }
                        }
                        Err(err) => {
                            tracing::debug!(%client_id, error = %err, "keeper pass failed");
                        }
                    }
                }
            });
        futures::stream::iter(passes)
            .buffer_unordered(DRAIN_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// Unix time of the save, in milliseconds: expiry keeps running while the node is down.
    saved_at_ms: u64,
    sessions: Vec<SavedSession>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedSession {
    client_id: String,
    /// Time left before the session expires, at `saved_at_ms`.
    expires_in_ms: u64,
    /// Filters as the client named them (`$events/…` included) with their QoS.
    subscriptions: Vec<(String, u8)>,
    messages: Vec<SavedMessage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedMessage {
    topic: String,
    payload_base64: String,
    qos: u8,
    retain: bool,
}

/// What the journal needs from the running node.
pub struct Node<'a> {
    pub data_dir: &'a Path,
    /// Most messages kept per session.
    pub limit: usize,
    pub meter: &'a Meter,
    pub subscriptions: &'a Subscriptions,
    pub publisher: &'a Publisher,
    pub pending: &'a Pending,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Saves every offline persistent session with its queued messages; returns how many.
pub async fn save(node: Node<'_>) -> std::io::Result<usize> {
    let now = Instant::now();
    let by_client: HashMap<String, Vec<(String, u8)>> = node.subscriptions.list().into_iter().fold(
        HashMap::new(),
        |mut map, (client, filter, qos)| {
            map.entry(client).or_default().push((filter, qos));
            map
        },
    );
    // Sessions are drained a few dozen at a time: the node has a grace period to stop.
    let drains = node
        .meter
        .offline_sessions()
        .into_iter()
        .filter(|(_, expires)| *expires > now)
        .map(|(client_id, expires)| async move {
            let _pass = node.pending.pass(&client_id).await;
            match node.publisher.drain_session(&client_id, DRAIN_QUIET).await {
                Ok(drained) => {
                    let dropped = node.pending.push(&client_id, drained, node.limit);
                    node.meter.dropped(dropped.len() as u64);
                }
                Err(err) => {
                    tracing::error!(%client_id, error = %err, "cannot take a session's queued messages; saving what was kept");
                }
            }
            let messages = node.pending.take(&client_id);
            (client_id, expires, messages)
        });
    let drained: Vec<_> = futures::stream::iter(drains)
        .buffer_unordered(DRAIN_CONCURRENCY)
        .collect()
        .await;
    let sessions: Vec<SavedSession> = drained
        .into_iter()
        .map(|(client_id, expires, messages)| SavedSession {
            expires_in_ms: (expires - now).as_millis() as u64,
            subscriptions: by_client.get(&client_id).cloned().unwrap_or_default(),
            messages: messages
                .into_iter()
                .map(|m| SavedMessage {
                    topic: events::to_public(m.topic.as_bytes()).unwrap_or(m.topic),
                    payload_base64: base64::engine::general_purpose::STANDARD.encode(&m.payload),
                    qos: m.qos,
                    retain: m.retain,
                })
                .collect(),
            client_id,
        })
        .collect();
    let journal = Journal {
        saved_at_ms: unix_ms(),
        sessions,
    };
    let bytes = serde_json::to_vec(&journal).map_err(std::io::Error::other)?;
    let target = path(node.data_dir);
    let tmp = target.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &target)?;
    Ok(journal.sessions.len())
}

/// Restores the sessions a previous run saved, then removes the journal; returns how
/// many. A journal that cannot be read is set aside (renamed) rather than trusted.
pub async fn restore(node: Node<'_>) -> usize {
    let file = path(node.data_dir);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(err) => {
            tracing::error!(path = %file.display(), error = %err, "cannot read saved sessions");
            return 0;
        }
    };
    let journal: Journal = match serde_json::from_slice(&bytes) {
        Ok(journal) => journal,
        Err(err) => {
            tracing::error!(path = %file.display(), error = %err, "saved sessions are unreadable; set aside");
            let _ = std::fs::rename(&file, file.with_extension("json.unreadable"));
            return 0;
        }
    };
    let down_for = Duration::from_millis(unix_ms().saturating_sub(journal.saved_at_ms));
    let now = Instant::now();
    let mut restored = 0;
    for session in journal.sessions {
        let Some(left) = Duration::from_millis(session.expires_in_ms).checked_sub(down_for) else {
            continue; // expired while the node was down
        };
        let engine_filters: Vec<(String, u8)> = session
            .subscriptions
            .iter()
            .map(|(filter, qos)| (events::to_internal(filter).unwrap_or(filter.clone()), *qos))
            .collect();
        if let Err(err) = node
            .publisher
            .restore_session(&session.client_id, &engine_filters)
            .await
        {
            tracing::error!(client_id = %session.client_id, error = %err, "cannot restore a session");
            continue;
        }
        for (filter, qos) in &session.subscriptions {
            node.subscriptions
                .subscribed(&session.client_id, filter, *qos);
        }
        node.meter.session_restored(&session.client_id, now + left);
        let messages = session
            .messages
            .into_iter()
            .filter_map(|m| {
                Some(Message {
                    payload: base64::engine::general_purpose::STANDARD
                        .decode(m.payload_base64)
                        .ok()?,
                    topic: m.topic,
                    qos: m.qos,
                    retain: m.retain,
                })
            })
            .collect();
        let dropped = node.pending.push(&session.client_id, messages, node.limit);
        node.meter.dropped(dropped.len() as u64);
        restored += 1;
    }
    if let Err(err) = std::fs::remove_file(&file) {
        tracing::warn!(path = %file.display(), error = %err, "cannot remove the restored sessions file");
    }
    restored
}
