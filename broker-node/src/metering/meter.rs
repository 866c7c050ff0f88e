//! Exact counters of what the metering rules bill (product §5), updated by the front as
//! packets pass, with no sampling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of one interval; taken (and reset) by the aggregator every second. Part of
/// the report format, so defined with it in `skyport-settings`.
pub use skyport_settings::metering::Counts;

/// Live counters shared by every connection of the node.
#[derive(Debug, Default)]
pub struct Meter {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    retained_out: AtomicU64,
    http_published: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dropped: AtomicU64,
    sessions: Mutex<Sessions>,
    /// Everything taken so far (for the node's own metrics; updated once a second).
    taken: Mutex<Counts>,
}

/// Sessions as the metering rules define them: connected clients, plus disconnected
/// clients whose persistent session has not expired.
#[derive(Debug, Default)]
struct Sessions {
    /// Connections per client id (a takeover briefly has two).
    connected: HashMap<String, u32>,
    /// Persistent sessions of disconnected clients, with their expiry.
    offline: HashMap<String, Instant>,
}

/// How a connected client's session ends when it disconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// Clean session (v3) or session expiry 0 (v5): gone at disconnect.
    AtDisconnect,
    /// Kept for this long after disconnect.
    After(Duration),
}

/// Totals of sessions at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub connected: u64,
    pub offline_persistent: u64,
}

impl SessionCounts {
    pub fn total(&self) -> u64 {
        self.connected + self.offline_persistent
    }
}

impl Meter {
    /// A PUBLISH received from a client.
    pub fn publish_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A PUBLISH delivered to a subscriber; `retained` when sent because of a new
    /// subscription (RETAIN flag set on the way out).
    pub fn publish_out(&self, retained: bool) {
        self.publishes_out(retained, 1);
    }

    /// `count` PUBLISHes sent at once (one counter update per batch on the hot path).
    pub fn publishes_out(&self, retained: bool, count: u64) {
        if retained {
            self.retained_out.fetch_add(count, Ordering::Relaxed);
        } else {
            self.messages_out.fetch_add(count, Ordering::Relaxed);
        }
    }

    pub fn http_published(&self, messages: u64) {
        self.http_published.fetch_add(messages, Ordering::Relaxed);
    }

    pub fn bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn bytes_out(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn dropped(&self, messages: u64) {
        self.dropped.fetch_add(messages, Ordering::Relaxed);
    }

    /// The counters, each read by `read` (a load, or a swap that resets it).
    fn read(&self, read: impl Fn(&AtomicU64) -> u64) -> Counts {
        Counts {
            messages_in: read(&self.messages_in),
            messages_out: read(&self.messages_out),
            retained_out: read(&self.retained_out),
            http_published: read(&self.http_published),
            bytes_in: read(&self.bytes_in),
            bytes_out: read(&self.bytes_out),
            dropped: read(&self.dropped),
        }
    }

    /// Takes the counters accumulated since the last call, resetting them.
    pub fn take(&self) -> Counts {
        let counts = self.read(|c| c.swap(0, Ordering::Relaxed));
        self.taken.lock().expect("totals lock").add(&counts);
        counts
    }

    /// Totals since the node started, without resetting anything.
    pub fn totals(&self) -> Counts {
        let mut totals = *self.taken.lock().expect("totals lock");
        totals.add(&self.read(|c| c.load(Ordering::Relaxed)));
        totals
    }

    /// A client's CONNECT was accepted: its session is connected (and no longer offline).
    pub fn session_connected(&self, client_id: &str) {
        let mut s = self.sessions.lock().expect("sessions lock");
        s.offline.remove(client_id);
        *s.connected.entry(client_id.to_owned()).or_default() += 1;
    }

    /// A client's connection ended; its session stays counted while it persists.
    pub fn session_disconnected(&self, client_id: &str, end: SessionEnd, now: Instant) {
        let mut s = self.sessions.lock().expect("sessions lock");
        if let Some(n) = s.connected.get_mut(client_id) {
            *n -= 1;
            if *n == 0 {
                s.connected.remove(client_id);
            }
        }
        if s.connected.contains_key(client_id) {
            return;
        }
        match end {
            SessionEnd::AtDisconnect => {
                s.offline.remove(client_id);
            }
            SessionEnd::After(ttl) => {
                s.offline.insert(client_id.to_owned(), now + ttl);
            }
        }
    }

    /// Whether `client_id` may open a session under a limit of `max` sessions: it already
    /// holds one (connected, or offline and persistent), or there is room for another.
    pub fn admits(&self, client_id: &str, max: u64, now: Instant) -> bool {
        let s = self.sessions.lock().expect("sessions lock");
        let live = |expires: &Instant| *expires > now;
        s.connected.contains_key(client_id)
            || s.offline.get(client_id).is_some_and(live)
            || ((s.connected.len() + s.offline.values().filter(|e| live(e)).count()) as u64) < max
    }

    /// A persistent session restored after a restart: offline until its client returns,
    /// expiring at `expires`.
    pub fn session_restored(&self, client_id: &str, expires: Instant) {
        let mut s = self.sessions.lock().expect("sessions lock");
        if !s.connected.contains_key(client_id) {
            s.offline.insert(client_id.to_owned(), expires);
        }
    }

    /// Whether `client_id` holds an offline persistent session (and is not connected).
    pub fn is_offline(&self, client_id: &str) -> bool {
        let s = self.sessions.lock().expect("sessions lock");
        !s.connected.contains_key(client_id) && s.offline.contains_key(client_id)
    }

    /// Forgets `client_id`'s offline session (it was ended on purpose).
    pub fn forget_session(&self, client_id: &str) -> bool {
        let mut s = self.sessions.lock().expect("sessions lock");
        s.offline.remove(client_id).is_some()
    }

    /// Offline persistent sessions the engine still holds: client id and when each
    /// expires (an expired one stays listed until the node has ended it).
    pub fn offline_sessions(&self) -> Vec<(String, Instant)> {
        let s = self.sessions.lock().expect("sessions lock");
        s.offline.iter().map(|(id, at)| (id.clone(), *at)).collect()
    }

    /// Offline sessions that expired by `now` and are still to be ended.
    pub fn expired(&self, now: Instant) -> Vec<String> {
        let s = self.sessions.lock().expect("sessions lock");
        s.offline
            .iter()
            .filter(|(id, expires)| **expires <= now && !s.connected.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Session totals at `now` (expired offline sessions no longer count; the expiry task
    /// ends and removes them).
    pub fn sessions(&self, now: Instant) -> SessionCounts {
        let s = self.sessions.lock().expect("sessions lock");
        SessionCounts {
            connected: s.connected.len() as u64,
            offline_persistent: s.offline.values().filter(|e| **e > now).count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_connected_and_offline_persistent_sessions() {
        let m = Meter::default();
        let now = Instant::now();
        m.session_connected("a");
        m.session_connected("b");
        m.session_disconnected("b", SessionEnd::After(Duration::from_secs(60)), now);
        assert!(
            !m.admits("c", 2, now),
            "a and b's offline session fill the quota"
        );
        assert!(
            m.admits("a", 2, now) && m.admits("b", 2, now),
            "holders come back"
        );
        assert!(
            m.admits("c", 2, now + Duration::from_secs(61)),
            "b's session expired"
        );
    }

    #[test]
    fn totals_survive_takes() {
        let m = Meter::default();
        m.publish_in();
        m.take();
        m.publish_in();
        m.bytes_out(7);
        assert_eq!(m.totals().messages_in, 2);
        assert_eq!(m.totals().bytes_out, 7);
        assert_eq!(m.take().messages_in, 1, "totals do not reset the interval");
    }

    #[test]
    fn take_resets_and_counts_exactly() {
        let m = Meter::default();
        m.publish_in();
        m.publish_out(false);
        m.publish_out(false);
        m.publish_out(true);
        m.http_published(3);
        m.bytes_in(7);
        m.bytes_out(9);
        let c = m.take();
        assert_eq!(c.tps_messages(), 1 + 2 + 1 + 3);
        assert_eq!((c.bytes_in, c.bytes_out), (7, 9));
        assert_eq!(m.take(), Counts::default());
    }

    #[test]
    fn sessions_follow_the_persistence_rules() {
        let m = Meter::default();
        let t0 = Instant::now();
        m.session_connected("a");
        m.session_connected("b");
        assert_eq!(m.sessions(t0).total(), 2);
        m.session_disconnected("a", SessionEnd::AtDisconnect, t0);
        m.session_disconnected("b", SessionEnd::After(Duration::from_secs(60)), t0);
        let counts = m.sessions(t0);
        assert_eq!((counts.connected, counts.offline_persistent), (0, 1));
        // Reconnecting moves it back to connected, counted once.
        m.session_connected("b");
        assert_eq!(m.sessions(t0).total(), 1);
        m.session_disconnected("b", SessionEnd::After(Duration::from_secs(60)), t0);
        assert_eq!(
            m.sessions(t0 + Duration::from_secs(61)).total(),
            0,
            "expired"
        );
    }
}
