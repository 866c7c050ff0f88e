//! Built-in users (`/api/v4/auth_username`, `/api/v4/auth_clientid`): two tables, as EMQX
//! 4's `emqx_auth_mnesia`, one keyed by username and one by client id.
//!
//! Passwords are kept only as argon2id PHC strings (OWASP's m=19 MiB, t=2, p=1), which
//! carry their own parameters, so stronger settings later still verify old hashes.
//! Verifying is deliberately slow and memory-hungry, so it runs on the blocking pool and
//! at most [`Users::verify_concurrency`] at a time: a CONNECT flood cannot exhaust memory
//! or starve the async runtime.

use std::collections::BTreeMap;
use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::store::Persisted;
use super::{ClientInfo, SecurityError, MAX_NAME_BYTES};

/// Most users one request may add.
pub const MAX_USERS_PER_REQUEST: usize = 10_000;
/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

const FILE: &str = "users.json";

/// Which table a user lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Username,
    ClientId,
}

impl UserKind {
    /// The field name in EMQX's API bodies.
    pub fn field(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::ClientId => "clientid",
        }
    }
}

/// Why the user tables could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the {field} must not be empty")]
    EmptyName { field: &'static str },
    #[error("the {field} is {len} bytes long; at most {MAX_NAME_BYTES} are allowed")]
    NameTooLong { field: &'static str, len: usize },
    #[error("the password must not be empty")]
    EmptyPassword,
    #[error("the password is {len} bytes long; at most {MAX_PASSWORD_BYTES} are allowed")]
    PasswordTooLong { len: usize },
    #[error("{field} {name:?} appears more than once in the request")]
    Duplicate { field: &'static str, name: String },
    #[error("{field} {name:?} already exists")]
    Exists { field: &'static str, name: String },
    #[error("{field} {name:?} does not exist")]
    NotFound { field: &'static str, name: String },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot save the users: {0}")]
    Io(#[from] std::io::Error),
}

/// What the built-in source says about a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerdict {
    Allow,
    /// The client is a known user but the password is missing or wrong.
    Deny,
    /// Neither its username nor its client id is a known user: next source.
    Ignore,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Tables {
    /// Username → argon2 PHC string.
    username: BTreeMap<String, String>,
    /// Client id → argon2 PHC string.
    clientid: BTreeMap<String, String>,
}

impl Tables {
    fn get(&self, kind: UserKind) -> &BTreeMap<String, String> {
        match kind {
            UserKind::Username => &self.username,
            UserKind::ClientId => &self.clientid,
        }
    }

    fn get_mut(&mut self, kind: UserKind) -> &mut BTreeMap<String, String> {
        match kind {
            UserKind::Username => &mut self.username,
            UserKind::ClientId => &mut self.clientid,
        }
    }
}

/// The node's built-in users, persisted in `<dir>/security/users.json`.
pub struct Users {
    table: Persisted<Tables>,
    verify_permits: Semaphore,
}

fn hasher() -> Argon2<'static> {
    // argon2 0.5's defaults are OWASP's recommendation: m=19 MiB, t=2, p=1.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

/// Hashes `password` into a PHC string with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn verify_password(phc: &str, password: &[u8]) -> bool {
    PasswordHash::new(phc)
        .map(|hash| hasher().verify_password(password, &hash).is_ok())
        .unwrap_or(false)
}

fn check_name(kind: UserKind, name: &str) -> Result<(), UserError> {
    if name.is_empty() {
        return Err(UserError::EmptyName {
            field: kind.field(),
        });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(UserError::NameTooLong {
            field: kind.field(),
            len: name.len(),
        });
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::PasswordTooLong {
            len: password.len(),
        });
    }
    Ok(())
}

/// Hashes every password, spreading the work over the machine's cores.
fn hash_all(passwords: &[&str]) -> Result<Vec<String>, UserError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = passwords.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = passwords
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| hash_password(p))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut hashes = Vec::with_capacity(passwords.len());
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| UserError::Hash("a hashing thread panicked".into()))??;
            hashes.extend(part);
        }
        Ok(hashes)
    })
}

impl Users {
    pub fn open(dir: &Path) -> Result<Self, SecurityError> {
        Ok(Self {
            table: Persisted::open(dir, FILE)?,
            verify_permits: Semaphore::new(Self::verify_concurrency()),
        })
    }

    /// Most password verifications running at once: one per core.
    pub fn verify_concurrency() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Names in `kind`'s table, sorted.
    pub fn names(&self, kind: UserKind) -> Vec<String> {
        self.table.load().get(kind).keys().cloned().collect()
    }

    pub fn contains(&self, kind: UserKind, name: &str) -> bool {
        self.table.load().get(kind).contains_key(name)
    }

    /// Adds `(name, password)` pairs, all or nothing: any invalid, repeated or existing
    /// name fails the whole request. Blocking (hashing and file I/O).
    pub fn add(&self, kind: UserKind, users: &[(String, String)]) -> Result<(), UserError> {
        let mut seen = std::collections::HashSet::new();
        for (name, password) in users {
            check_name(kind, name)?;
            check_password(password)?;
            if !seen.insert(name.as_str()) {
                return Err(UserError::Duplicate {
                    field: kind.field(),
                    name: name.clone(),
                });
            }
        }
        let existing = |tables: &Tables| {
            users
                .iter()
                .find(|(name, _)| tables.get(kind).contains_key(name))
                .map(|(name, _)| UserError::Exists {
                    field: kind.field(),
                    name: name.clone(),
                })
        };
        // Fail fast before the slow hashing; checked again under the writer lock.
        if let Some(err) = existing(&self.table.load()) {
            return Err(err);
        }
        let passwords: Vec<&str> = users.iter().map(|(_, p)| p.as_str()).collect();
        let hashes = hash_all(&passwords)?;
        self.table.update(|tables| {
            if let Some(err) = existing(tables) {
                return Err(err);
            }
            let table = tables.get_mut(kind);
            for ((name, _), hash) in users.iter().zip(hashes) {
                table.insert(name.clone(), hash);
            }
            Ok(())
        })
    }

    /// Replaces an existing user's password. Blocking (hashing and file I/O).
    pub fn set_password(
        &self,
        kind: UserKind,
        name: &str,
        password: &str,
    ) -> Result<(), UserError> {
        check_password(password)?;
        let not_found = || UserError::NotFound {
            field: kind.field(),
            name: name.to_owned(),
        };
        if !self.contains(kind, name) {
            return Err(not_found());
        }
        let hash = hash_password(password)?;
        self.table
            .update(|tables| match tables.get_mut(kind).get_mut(name) {
                Some(slot) => {
                    *slot = hash;
                    Ok(())
                }
                None => Err(not_found()),
            })
    }

    /// Deletes a user. Blocking (file I/O).
    pub fn remove(&self, kind: UserKind, name: &str) -> Result<(), UserError> {
        self.table
            .update(|tables| match tables.get_mut(kind).remove(name) {
                Some(_) => Ok(()),
                None => Err(UserError::NotFound {
                    field: kind.field(),
                    name: name.to_owned(),
                }),
            })
    }

    /// EMQX's built-in authentication: a client whose username is in the username table
    /// must give that user's password; otherwise one whose client id is in the client id
    /// table must give that one's; otherwise this source has no opinion.
    pub async fn authenticate(&self, client: &ClientInfo, password: Option<&[u8]>) -> UserVerdict {
        let phc = {
            let tables = self.table.load();
            let by_username = client
                .username
                .as_deref()
                .and_then(|name| tables.username.get(name));
            match by_username.or_else(|| tables.clientid.get(&client.client_id)) {
                Some(phc) => phc.clone(),
                None => return UserVerdict::Ignore,
            }
        };
        let Some(password) = password else {
            return UserVerdict::Deny;
        };
        let Ok(_permit) = self.verify_permits.acquire().await else {
            return UserVerdict::Deny;
        };
        let password = password.to_vec();
        match tokio::task::spawn_blocking(move || verify_password(&phc, &password)).await {
            Ok(true) => UserVerdict::Allow,
            _ => UserVerdict::Deny,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::security::test_client as client;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("skyport-users-{name}-{}", std::process::id()))
    }

    #[tokio::test]
    async fn users_survive_reopen_and_verify() {
        let dir = temp_dir("reopen");
        let users = Users::open(&dir).unwrap();
        users
            .add(UserKind::Username, &[("bob".into(), "secret".into())])
            .unwrap();
        users
            .add(UserKind::ClientId, &[("dev1".into(), "devpass".into())])
            .unwrap();
        drop(users);
        let users = Users::open(&dir).unwrap();
        let raw = std::fs::read_to_string(dir.join("security/users.json")).unwrap();
        assert!(
            raw.contains("$argon2id$") && !raw.contains("secret"),
            "{raw}"
        );

        let bob = client("any", Some("bob"));
        assert_eq!(
            users.authenticate(&bob, Some(b"secret")).await,
            UserVerdict::Allow
        );
        assert_eq!(
            users.authenticate(&bob, Some(b"wrong")).await,
            UserVerdict::Deny
        );
        assert_eq!(users.authenticate(&bob, None).await, UserVerdict::Deny);
        // The username table decides first, even when the client id is also a user.
        let both = client("dev1", Some("bob"));
        assert_eq!(
            users.authenticate(&both, Some(b"devpass")).await,
            UserVerdict::Deny
        );
        let dev = client("dev1", Some("stranger"));
        assert_eq!(
            users.authenticate(&dev, Some(b"devpass")).await,
            UserVerdict::Allow
        );
        let nobody = client("x", Some("stranger"));
        assert_eq!(
            users.authenticate(&nobody, Some(b"x")).await,
            UserVerdict::Ignore
        );

        users
            .set_password(UserKind::Username, "bob", "new")
            .unwrap();
        assert_eq!(
            users.authenticate(&bob, Some(b"new")).await,
            UserVerdict::Allow
        );
        users.remove(UserKind::Username, "bob").unwrap();
        assert_eq!(
            users.authenticate(&bob, Some(b"new")).await,
            UserVerdict::Ignore
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batches_are_all_or_nothing() {
        let dir = temp_dir("batch");
        let users = Users::open(&dir).unwrap();
        users
            .add(UserKind::Username, &[("a".into(), "p".into())])
            .unwrap();
        let err = users
            .add(
                UserKind::Username,
                &[("b".into(), "p".into()), ("a".into(), "p".into())],
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "username \"a\" already exists");
        let err = users
            .add(
                UserKind::Username,
                &[("c".into(), "p".into()), ("c".into(), "q".into())],
            )
            .unwrap_err();
        assert!(matches!(err, UserError::Duplicate { .. }));
        let err = users
            .add(UserKind::ClientId, &[("".into(), "p".into())])
            .unwrap_err();
        assert_eq!(err.to_string(), "the clientid must not be empty");
        assert_eq!(users.names(UserKind::Username), vec!["a".to_owned()]);
        assert!(users.names(UserKind::ClientId).is_empty());
        assert!(matches!(
            users.set_password(UserKind::ClientId, "zz", "p"),
            Err(UserError::NotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
