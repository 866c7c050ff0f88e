//! Who may connect, publish and subscribe: authentication, authorization, bans, and the
//! hot-reloaded settings that configure them.
//!
//! [`Security`] is the one handle the rest of the node uses: the front asks it about
//! every CONNECT, PUBLISH and SUBSCRIBE, the deployment API manages its users, rules and
//! bans, and the settings watcher swaps its [`settings::SecuritySettings`] in place.

pub mod acl;
pub mod banned;
pub mod http;
pub mod settings;
mod store;
pub mod template;
pub mod topic;
pub mod users;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use acl::Acl;
use banned::Bans;
use http::{Answer, Denial, HttpAuthority};
use settings::{Decision, SecuritySettings, Source};
use template::Scope;
use users::{UserVerdict, Users};

/// Longest username, client id or ban subject the API accepts, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// What an app key may do through the deployment API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKeyAccess {
    ReadWrite,
    /// Reading only (`GET`): a console viewer's key.
    ReadOnly,
}

/// The transport a client came in on (`%r` in HTTP templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Mqtts => "mqtts",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

/// What is known about a client once its CONNECT has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub username: Option<String>,
    /// The client's address as the listener saw it.
    pub peer: SocketAddr,
    pub transport: Transport,
    /// The port of the listener the client connected to (`%p`).
    pub listener_port: u16,
}

/// The answer to a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectVerdict {
    Allow,
    /// Unknown user, wrong password, or anonymous while anonymous is off.
    BadCredentials,
    /// An authenticator refused the client for another reason.
    NotAuthorized,
    /// The client id, username or peer host is banned.
    Banned,
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    Subscribe,
}

/// Why the node's security state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("cannot open the security store in {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the security store {path} is corrupt: {source}")]
    Corrupt {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The node's authentication and authorization state. Cheap to clone.
#[derive(Clone)]
pub struct Security {
    inner: Arc<Inner>,
}

struct Inner {
    state: ArcSwap<State>,
    users: Users,
    acl: Acl,
    bans: Bans,
}

/// The settings in force, with their chains made ready to ask.
struct State {
    settings: Arc<SecuritySettings>,
    authentication: Vec<Link>,
    authorization: Vec<Link>,
    /// Whether some authorization source needs I/O (decides between the fast path and the
    /// full chain).
    authorization_is_async: bool,
}

enum Link {
    BuiltIn,
    Http(Arc<HttpAuthority>),
}

impl State {
    /// Prepares `settings`, keeping the HTTP sources of `previous` (with their connection
    /// pools and caches) that did not change, egress address included.
    fn build(settings: SecuritySettings, previous: Option<&State>) -> Self {
        let local_address = settings.network.egress_address;
        let links = |chain: &[Source], scope: Scope| -> Vec<Link> {
            chain
                .iter()
                .map(|source| match source {
                    Source::BuiltIn => Link::BuiltIn,
                    Source::Http(http) => {
                        let kept = previous.and_then(|p| {
                            p.authentication
                                .iter()
                                .chain(&p.authorization)
                                .find_map(|link| match link {
                                    Link::Http(h) if h.is_for(http, scope, local_address) => {
                                        Some(h.clone())
                                    }
                                    _ => None,
                                })
                        });
                        Link::Http(kept.unwrap_or_else(|| {
                            Arc::new(HttpAuthority::new(http, scope, local_address))
                        }))
                    }
                })
                .collect()
        };
        let authentication = links(&settings.authentication.chain, Scope::Authentication);
        let authorization = links(&settings.authorization.chain, Scope::Authorization);
        let authorization_is_async = authorization.iter().any(|l| matches!(l, Link::Http(_)));
        Self {
            settings: Arc::new(settings),
            authentication,
            authorization,
            authorization_is_async,
        }
    }

    fn no_match_allows(&self) -> bool {
        self.settings.authorization.no_match == Decision::Allow
    }
}

/// Lower-case hex SHA-256 of an app secret, as kept in [`settings::AppKey::secret_sha256`].
pub fn app_secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Security {
    /// Opens the node's users, ACL rules and bans kept under `dir` (in `dir/security/`),
    /// with default settings until [`Security::set_settings`] is called.
    pub fn open(dir: &Path) -> Result<Self, SecurityError> {
        Ok(Self {
            inner: Arc::new(Inner {
                state: ArcSwap::from_pointee(State::build(SecuritySettings::default(), None)),
                users: Users::open(dir)?,
                acl: Acl::open(dir)?,
                bans: Bans::open(dir)?,
            }),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<SecuritySettings> {
        self.inner.state.load().settings.clone()
    }

    /// Puts new settings in force for every later decision; connected clients stay.
    /// External HTTP sources get new connection pools and empty caches, unless their
    /// settings and the egress address are unchanged.
    pub fn set_settings(&self, settings: SecuritySettings) {
        let previous = self.inner.state.load_full();
        let state = State::build(settings, Some(&previous));
        self.inner.state.store(Arc::new(state));
    }

    /// The built-in users.
    pub fn users(&self) -> &Users {
        &self.inner.users
    }

    /// The built-in ACL rules.
    pub fn acl(&self) -> &Acl {
        &self.inner.acl
    }

    /// The ban list.
    pub fn bans(&self) -> &Bans {
        &self.inner.bans
    }

    /// Decides a CONNECT: bans first, then the authentication chain in order (built-in
    /// users, external HTTP), the first source that allows or denies deciding; when every
    /// source ignores the client (or the chain is empty), `allow_anonymous` decides.
    ///
    /// An HTTP source's 400 or 401 answer is [`ConnectVerdict::BadCredentials`]; any other
    /// refusal (status, timeout, unreachable service) is [`ConnectVerdict::NotAuthorized`].
    pub async fn authenticate(
        &self,
        client: &ClientInfo,
        password: Option<&[u8]>,
    ) -> ConnectVerdict {
        if self.inner.bans.is_banned(client, banned::now_secs()) {
            return ConnectVerdict::Banned;
        }
        let state = self.inner.state.load_full();
        for link in &state.authentication {
            match link {
                Link::BuiltIn => match self.inner.users.authenticate(client, password).await {
                    UserVerdict::Allow => return ConnectVerdict::Allow,
                    UserVerdict::Deny => return ConnectVerdict::BadCredentials,
                    UserVerdict::Ignore => {}
                },
                Link::Http(source) => {
                    let subject = http::Subject {
                        client,
                        password,
                        action: None,
                        topic: None,
                    };
                    match source.ask(&subject).await {
                        Answer::Allow => return ConnectVerdict::Allow,
                        Answer::Ignore => {}
                        Answer::Deny(Denial::Status(400 | 401)) => {
                            return ConnectVerdict::BadCredentials
                        }
                        Answer::Deny(_) => return ConnectVerdict::NotAuthorized,
                    }
                }
            }
        }
        if state.settings.authentication.allow_anonymous {
            ConnectVerdict::Allow
        } else {
            ConnectVerdict::BadCredentials
        }
    }

    /// Decides whether `client` may `action` on `topic` (a topic name for publish, a topic
    /// filter for subscribe): the authorization chain in order, first decision wins, else
    /// the chain's `no_match`.
    ///
    /// On the PUBLISH hot path: with only built-in rules it takes no lock and allocates
    /// nothing, and with no rules it is two atomic loads.
    pub async fn authorize(&self, client: &ClientInfo, action: Action, topic: &str) -> bool {
        match self.authorize_now(client, action, topic) {
            Ok(decision) => decision,
            Err(state) => self.authorize_chain(&state, client, action, topic).await,
        }
    }

    /// The decision when it needs no I/O; otherwise the state to run the full chain on.
    fn authorize_now(
        &self,
        client: &ClientInfo,
        action: Action,
        topic: &str,
    ) -> Result<bool, Arc<State>> {
        let state = self.inner.state.load();
        if state.authorization_is_async {
            return Err(arc_swap::Guard::into_inner(state));
        }
        for link in &state.authorization {
            if let Link::BuiltIn = link {
                if let Some(decision) = self.inner.acl.check(client, action, topic) {
                    return Ok(decision);
                }
            }
        }
        Ok(state.no_match_allows())
    }

    async fn authorize_chain(
        &self,
        state: &State,
        client: &ClientInfo,
        action: Action,
        topic: &str,
    ) -> bool {
        for link in &state.authorization {
            match link {
                Link::BuiltIn => {
                    if let Some(decision) = self.inner.acl.check(client, action, topic) {
                        return decision;
                    }
                }
                Link::Http(source) => {
                    let subject = http::Subject {
                        client,
                        password: None,
                        action: Some(action),
                        topic: Some(topic),
                    };
                    match source.ask(&subject).await {
                        Answer::Allow => return true,
                        Answer::Ignore => {}
                        Answer::Deny(_) => return false,
                    }
                }
            }
        }
        state.no_match_allows()
    }

    /// What `app_id:secret` may do, if it is one of the deployment's app keys. The
    /// secret's digest is compared in constant time.
    pub fn check_app_key(&self, app_id: &str, secret: &str) -> Option<AppKeyAccess> {
        let digest = Sha256::digest(secret.as_bytes());
        let settings = self.settings();
        let mut found = None;
        for key in settings.app_keys.iter().filter(|k| k.app_id == app_id) {
            if let Ok(stored) = hex::decode(&key.secret_sha256) {
                if bool::from(stored.as_slice().ct_eq(digest.as_slice())) {
                    found = Some(if key.read_only {
                        AppKeyAccess::ReadOnly
                    } else {
                        AppKeyAccess::ReadWrite
                    });
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;

/// A TCP client with `id` and `username`, for unit tests.
#[cfg(test)]
pub(crate) fn test_client(id: &str, username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: id.to_owned(),
        username: username.map(str::to_owned),
        peer: "127.0.0.1:5000".parse().expect("an address"),
        transport: Transport::Mqtt,
        listener_port: 1883,
    }
}
