//! The ban list (`/api/v4/banned`), as EMQX 4: a client id, username or peer address is
//! refused at CONNECT until the ban expires. Times are Unix seconds, as in EMQX's API.
//!
//! Expired bans stop applying at once and are dropped from listings; they leave the file
//! at the next change of the list.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::Persisted;
use super::{ClientInfo, SecurityError, MAX_NAME_BYTES};

/// How long a ban lasts when the request gives no `until`: five minutes, as EMQX.
pub const DEFAULT_BAN_SECS: i64 = 300;
/// Most bans a node keeps.
pub const MAX_BANS: usize = 100_000;

const FILE: &str = "banned.json";

/// What a ban's `who` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BanKind {
    #[serde(rename = "clientid")]
    ClientId,
    #[serde(rename = "username")]
    Username,
    #[serde(rename = "peerhost")]
    PeerHost,
}

impl BanKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "clientid" => Some(Self::ClientId),
            "username" => Some(Self::Username),
            "peerhost" => Some(Self::PeerHost),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientId => "clientid",
            Self::Username => "username",
            Self::PeerHost => "peerhost",
        }
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub who: String,
    #[serde(rename = "as")]
    pub kind: BanKind,
    pub reason: String,
    pub by: String,
    /// When the ban was made (Unix seconds).
    pub at: i64,
    /// When it ends (Unix seconds).
    pub until: i64,
}

/// Why the ban list could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum BanError {
    #[error("who must not be empty")]
    EmptyWho,
    #[error("who is {len} bytes long; at most {MAX_NAME_BYTES} are allowed")]
    WhoTooLong { len: usize },
    #[error("{who:?} is not an IP address (a peerhost ban takes one, e.g. 192.0.2.7)")]
    BadPeerHost { who: String },
    #[error("until ({until}) is not after now ({now}): the ban would never apply")]
    AlreadyExpired { until: i64, now: i64 },
    #[error("at most {MAX_BANS} bans can be kept")]
    TooMany,
    #[error("no ban on {kind} {who:?}")]
    NotFound { kind: &'static str, who: String },
    #[error("cannot save the ban list: {0}")]
    Io(#[from] std::io::Error),
}

/// The list, indexed for allocation-free lookups at CONNECT.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Ban>", into = "Vec<Ban>")]
struct BanIndex {
    clientid: HashMap<String, Ban>,
    username: HashMap<String, Ban>,
    peerhost: HashMap<IpAddr, Ban>,
}

impl From<Vec<Ban>> for BanIndex {
    fn from(bans: Vec<Ban>) -> Self {
        let mut index = Self::default();
        for ban in bans {
            index.insert(ban);
        }
        index
    }
}

impl From<BanIndex> for Vec<Ban> {
    fn from(index: BanIndex) -> Self {
        let mut bans: Vec<Ban> = index
            .clientid
            .into_values()
            .chain(index.username.into_values())
            .chain(index.peerhost.into_values())
            .collect();
        bans.sort_by(|a, b| (a.at, a.kind.as_str(), &a.who).cmp(&(b.at, b.kind.as_str(), &b.who)));
        bans
    }
}

impl BanIndex {
    fn insert(&mut self, ban: Ban) {
        match ban.kind {
            BanKind::ClientId => {
                self.clientid.insert(ban.who.clone(), ban);
            }
            BanKind::Username => {
                self.username.insert(ban.who.clone(), ban);
            }
            BanKind::PeerHost => {
                // Entries that do not parse were refused on the way in; skip any other.
                if let Ok(ip) = ban.who.parse() {
                    self.peerhost.insert(ip, ban);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.clientid.len() + self.username.len() + self.peerhost.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn prune(&mut self, now: i64) {
        self.clientid.retain(|_, b| b.until > now);
        self.username.retain(|_, b| b.until > now);
        self.peerhost.retain(|_, b| b.until > now);
    }
}

/// The node's bans, persisted in `<dir>/security/banned.json`.
pub struct Bans {
    table: Persisted<BanIndex>,
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Bans {
    pub fn open(dir: &Path) -> Result<Self, SecurityError> {
        Ok(Self {
            table: Persisted::open(dir, FILE)?,
        })
    }

    /// Whether `client` is banned at `now`. Nearly free when the list is empty.
    pub fn is_banned(&self, client: &ClientInfo, now: i64) -> bool {
        let index = self.table.load();
        if index.is_empty() {
            return false;
        }
        let active = |ban: Option<&Ban>| ban.is_some_and(|b| b.until > now);
        active(index.clientid.get(&client.client_id))
            || client
                .username
                .as_deref()
                .is_some_and(|name| active(index.username.get(name)))
            || active(index.peerhost.get(&canonical_ip(client.peer.ip())))
    }

    /// Bans in force at `now`, oldest first.
    pub fn list(&self, now: i64) -> Vec<Ban> {
        let mut index = BanIndex::clone(&self.table.load());
        index.prune(now);
        index.into()
    }

    /// Adds or replaces the ban on `ban.kind`/`ban.who`; `ban.who` of a peerhost ban is
    /// normalised (e.g. `::ffff:10.0.0.1` → `10.0.0.1`). Blocking (file I/O).
    pub fn add(&self, mut ban: Ban, now: i64) -> Result<Ban, BanError> {
        if ban.who.is_empty() {
            return Err(BanError::EmptyWho);
        }
        if ban.who.len() > MAX_NAME_BYTES {
            return Err(BanError::WhoTooLong { len: ban.who.len() });
        }
        if ban.kind == BanKind::PeerHost {
            let ip: IpAddr = ban.who.parse().map_err(|_| BanError::BadPeerHost {
                who: ban.who.clone(),
            })?;
            ban.who = canonical_ip(ip).to_string();
        }
        if ban.until <= now {
            return Err(BanError::AlreadyExpired {
                until: ban.until,
                now,
            });
        }
        self.table.update(|index| {
            index.prune(now);
            index.insert(ban.clone());
            if index.len() > MAX_BANS {
                return Err(BanError::TooMany);
            }
            Ok(ban)
        })
    }

    /// Lifts the ban on `kind`/`who`. Blocking (file I/O).
    pub fn remove(&self, kind: BanKind, who: &str, now: i64) -> Result<(), BanError> {
        let not_found = || BanError::NotFound {
            kind: kind.as_str(),
            who: who.to_owned(),
        };
        self.table.update(|index| {
            index.prune(now);
            let removed = match kind {
                BanKind::ClientId => index.clientid.remove(who).is_some(),
                BanKind::Username => index.username.remove(who).is_some(),
                BanKind::PeerHost => {
                    let ip: IpAddr = who.parse().map_err(|_| not_found())?;
                    index.peerhost.remove(&canonical_ip(ip)).is_some()
                }
            };
            if removed {
                Ok(())
            } else {
                Err(not_found())
            }
        })
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of IPv4 clients) as IPv4.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Transport;

    fn client(id: &str, username: Option<&str>, peer: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.to_owned(),
            username: username.map(str::to_owned),
            peer: peer.parse().unwrap(),
            transport: Transport::Mqtt,
            listener_port: 1883,
        }
    }

    fn ban(kind: BanKind, who: &str, at: i64, until: i64) -> Ban {
        Ban {
            who: who.to_owned(),
            kind,
            reason: "test".into(),
            by: "tester".into(),
            at,
            until,
        }
    }

    #[test]
    fn bans_apply_until_they_expire_and_persist() {
        let dir = std::env::temp_dir().join(format!("skyport-bans-{}", std::process::id()));
        let bans = Bans::open(&dir).unwrap();
        let now = 1_000;
        bans.add(ban(BanKind::ClientId, "c1", now, now + 10), now)
            .unwrap();
        bans.add(ban(BanKind::Username, "bob", now, now + 100), now)
            .unwrap();
        bans.add(
            ban(BanKind::PeerHost, "::ffff:10.0.0.9", now, now + 100),
            now,
        )
        .unwrap();

        let bans = Bans::open(&dir).unwrap();
        assert!(bans.is_banned(&client("c1", None, "127.0.0.1:1"), now));
        assert!(!bans.is_banned(&client("c1", None, "127.0.0.1:1"), now + 10));
        assert!(bans.is_banned(&client("x", Some("bob"), "127.0.0.1:1"), now + 10));
        assert!(bans.is_banned(&client("x", None, "10.0.0.9:4000"), now));
        assert!(bans.is_banned(&client("x", None, "[::ffff:10.0.0.9]:4000"), now));
        assert!(!bans.is_banned(&client("x", Some("alice"), "10.0.0.8:1"), now));

        assert_eq!(bans.list(now).len(), 3);
        let later = bans.list(now + 50);
        assert_eq!(later.len(), 2);
        assert!(later.iter().any(|b| b.who == "10.0.0.9"), "{later:?}");

        bans.remove(BanKind::Username, "bob", now + 50).unwrap();
        assert!(matches!(
            bans.remove(BanKind::Username, "bob", now + 50),
            Err(BanError::NotFound { .. })
        ));
        // The expired client id ban was pruned by the change.
        let raw = std::fs::read_to_string(dir.join("security/banned.json")).unwrap();
        assert!(!raw.contains("\"c1\""), "{raw}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_bans_are_refused() {
        let dir = std::env::temp_dir().join(format!("skyport-bans-bad-{}", std::process::id()));
        let bans = Bans::open(&dir).unwrap();
        assert!(matches!(
            bans.add(ban(BanKind::PeerHost, "not-an-ip", 0, 10), 0),
            Err(BanError::BadPeerHost { .. })
        ));
        assert!(matches!(
            bans.add(ban(BanKind::ClientId, "", 0, 10), 0),
            Err(BanError::EmptyWho)
        ));
        assert!(matches!(
            bans.add(ban(BanKind::ClientId, "c", 0, 5), 5),
            Err(BanError::AlreadyExpired { .. })
        ));
        assert!(bans.list(0).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
