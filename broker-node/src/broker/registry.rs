//! The node's connected clients, as the deployment API lists and kicks them.
//!
//! Each accepted connection registers itself after its CONNACK and leaves when it ends; a
//! takeover (same client id) replaces the entry, and the old connection's departure does
//! not remove the new one's. The API reaches a connection through its [`Control`] inbox.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::Control;

use crate::mqtt::Version;
use crate::security::Transport;

/// What the API shows of one connected client.
#[derive(Debug, Clone)]
pub struct Connected {
    pub client_id: String,
    pub username: Option<String>,
    pub peer: SocketAddr,
    pub transport: Transport,
    pub version: Version,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub connected_at: DateTime<Utc>,
}

struct Entry {
    connection: u64,
    info: Connected,
    control: flume::Sender<Control>,
}

/// What the deployment API asks a connection to do in its client's name. The answer is
/// the reason codes, one per filter (none for an MQTT 3.1.1 UNSUBSCRIBE).
#[derive(Debug)]
pub enum Command {
    Subscribe {
        filters: Vec<(String, u8)>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// Queues stored messages for the client's subscription to `filter` (data
    /// integrations' offline messages); the reply has one 0 per message queued (empty:
    /// no such subscription).
    Deliver {
        filter: String,
        messages: Vec<super::message::Message>,
        reply: oneshot::Sender<Vec<u8>>,
    },
}

/// Why a command did not get its answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the client is not connected")]
    NotConnected,
    #[error("the connection ended before the broker answered")]
    NoAnswer,
}

/// How long a command may wait for its answer.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clients {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
    next: Arc<AtomicU64>,
}

/// A connection's place in the registry; leaving it (drop) removes the entry.
pub struct Registration {
    clients: Clients,
    client_id: String,
    connection: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.clients.lock();
        if map
            .get(&self.client_id)
            .is_some_and(|e| e.connection == self.connection)
        {
            map.remove(&self.client_id);
        }
    }
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an accepted connection, reachable through `control`.
    pub fn register(&self, info: Connected, control: flume::Sender<Control>) -> Registration {
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let client_id = info.client_id.clone();
        self.lock().insert(
            client_id.clone(),
            Entry {
                connection,
                info,
                control,
            },
        );
        Registration {
            clients: self.clone(),
            client_id,
            connection,
        }
    }

    /// Has the client's connection carry out a command built by `make` around the reply
    /// channel, and waits for the answer.
    pub async fn command(
        &self,
        client_id: &str,
        make: impl FnOnce(oneshot::Sender<Vec<u8>>) -> Command,
    ) -> Result<Vec<u8>, CommandError> {
        let sender = self
            .lock()
            .get(client_id)
            .map(|entry| entry.control.clone())
            .ok_or(CommandError::NotConnected)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Control::Command(Box::new(make(reply))))
            .map_err(|_| CommandError::NotConnected)?;
        match tokio::time::timeout(COMMAND_TIMEOUT, answer).await {
            Ok(Ok(codes)) => Ok(codes),
            _ => Err(CommandError::NoAnswer),
        }
    }

    /// Every connected client, by client id.
    pub fn list(&self) -> Vec<Connected> {
        let mut all: Vec<Connected> = self.lock().values().map(|e| e.info.clone()).collect();
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        all
    }

    pub fn get(&self, client_id: &str) -> Option<Connected> {
        self.lock().get(client_id).map(|e| e.info.clone())
    }

    /// Closes the client's connection; `false` when it is not connected.
    pub fn kick(&self, client_id: &str) -> bool {
        match self.lock().get(client_id) {
            Some(entry) => entry.control.send(Control::Kick).is_ok(),
            None => false,
        }
    }
}

/// Each session's subscriptions (filter → QoS), as the clients asked for them and the
/// ACL allowed: kept while a persistent session is offline, forgotten when it ends.
#[derive(Clone, Default)]
pub struct Subscriptions {
    inner: Arc<Mutex<HashMap<String, std::collections::BTreeMap<String, u8>>>>,
}

impl Subscriptions {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, std::collections::BTreeMap<String, u8>>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribed(&self, client_id: &str, filter: &str, qos: u8) {
        self.lock()
            .entry(client_id.to_owned())
            .or_default()
            .insert(filter.to_owned(), qos);
    }

    pub fn unsubscribed(&self, client_id: &str, filter: &str) {
        if let Some(filters) = self.lock().get_mut(client_id) {
            filters.remove(filter);
        }
    }

    /// The session ended (clean start, clean disconnect, expiry, kick).
    pub fn forget(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    /// Every (client id, filter, QoS), sorted.
    pub fn list(&self) -> Vec<(String, String, u8)> {
        let mut all: Vec<(String, String, u8)> = self
            .lock()
            .iter()
            .flat_map(|(id, filters)| {
                filters
                    .iter()
                    .map(move |(filter, qos)| (id.clone(), filter.clone(), *qos))
            })
            .collect();
        all.sort();
        all
    }
}
