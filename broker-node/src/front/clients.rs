//! The node's connected clients, as the deployment API lists and kicks them.
//!
//! Each accepted connection registers itself after its CONNACK and leaves when it ends; a
//! takeover (same client id) replaces the entry, and the old connection's departure does
//! not remove the new one's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::proxy::Version;
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
    kick: Arc<Notify>,
}

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
    /// Notified when the API kicks this client.
    pub kicked: Arc<Notify>,
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

    /// Registers a connection whose CONNECT the engine accepted.
    pub fn register(&self, info: Connected) -> Registration {
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let kick = Arc::new(Notify::new());
        let client_id = info.client_id.clone();
        self.lock().insert(
            client_id.clone(),
            Entry {
                connection,
                info,
                kick: kick.clone(),
            },
        );
        Registration {
            clients: self.clone(),
            client_id,
            connection,
            kicked: kick,
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
            Some(entry) => {
                entry.kick.notify_one();
                true
            }
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
