//! Hot reload of `security.json` and the TLS material it names.
//!
//! The control plane rewrites the file (by rename; on Kubernetes the kubelet swaps the
//! mounted Secret) whenever app keys, authentication, authorization or certificates
//! change. The node polls a fingerprint of the file *and of every certificate file it
//! uses*, so a certificate replaced under the same name is noticed too. A version that
//! does not parse or whose certificates do not load is refused as a whole, and the one in
//! force stays: a bad write never leaves the node half-configured or open.
//!
//! A version in force reaches every part it configures: the security checks and their
//! HTTP clients (through [`Security`], egress address included), the TLS listeners (a new
//! [`ServerConfig`], custom domains included) and the internal endpoint's listeners
//! (through [`Reloader::internal_endpoint`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, TlsFiles};
use crate::front::tls::{self, DomainFiles, TlsError, TlsMaterial, TlsState};
use crate::security::settings::{InternalEndpoint, SecuritySettings, TlsType};
use crate::security::Security;

/// How often the files are looked at.
pub use crate::security::settings::POLL_INTERVAL;

/// Why a version of the settings was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    #[error("two-way TLS needs a client CA file")]
    ClientCaMissing,
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// One consistent version of the settings and the TLS configuration built from them.
struct Version {
    fingerprint: [u8; 32],
    settings: SecuritySettings,
    tls: Option<Arc<ServerConfig>>,
}

/// Asks the running [`Reloader`] to look at the files now rather than at its next poll
/// (the control plane calls `POST /reload` right after writing them).
#[derive(Clone, Debug)]
pub struct ReloadHandle(mpsc::Sender<oneshot::Sender<u64>>);

impl ReloadHandle {
    /// Looks at the files now; returns the revision in force afterwards (`None` when the
    /// reloader is gone).
    pub async fn reload_now(&self) -> Option<u64> {
        let (reply, answer) = oneshot::channel();
        self.0.send(reply).await.ok()?;
        answer.await.ok()
    }
}

/// Watches one node's settings and applies new versions.
pub struct Reloader {
    path: PathBuf,
    base: PathBuf,
    /// The Skyport-issued certificate from `config.json`, used without a custom one.
    default_tls: Option<TlsFiles>,
    security: Security,
    tls: Option<Arc<TlsState>>,
    /// The internal endpoint in force, for the task that binds its listeners.
    internal_endpoint: watch::Sender<Option<InternalEndpoint>>,
    applied: [u8; 32],
    /// Fingerprint of the last version refused, not to log it again every poll.
    refused: Option<[u8; 32]>,
    requests: mpsc::Receiver<oneshot::Sender<u64>>,
    handle: ReloadHandle,
}

impl Reloader {
    /// Loads the current settings (defaults when the file does not exist yet) and puts
    /// them in force. Fails when they cannot be used: the node must not start open.
    pub fn start(config: &Config, security: Security) -> Result<Self, ReloadError> {
        let path = config.security_file();
        let (requests_tx, requests) = mpsc::channel(16);
        let mut reloader = Self {
            base: path.parent().unwrap_or(&config.dir).to_path_buf(),
            path,
            default_tls: config.tls.clone(),
            security,
            tls: None,
            internal_endpoint: watch::Sender::new(None),
            applied: [0; 32],
            refused: None,
            requests,
            handle: ReloadHandle(requests_tx),
        };
        let version = reloader.read()?;
        reloader.tls = version.tls.clone().map(|c| Arc::new(TlsState::new(c)));
        reloader.apply(version);
        Ok(reloader)
    }

    /// The TLS configuration holder the listeners use (when any listener uses TLS).
    pub fn tls(&self) -> Option<Arc<TlsState>> {
        self.tls.clone()
    }

    /// Follows the internal endpoint of the settings in force (`None`: no endpoint).
    pub fn internal_endpoint(&self) -> watch::Receiver<Option<InternalEndpoint>> {
        self.internal_endpoint.subscribe()
    }

    /// A handle that makes the reloader look at the files now.
    pub fn handle(&self) -> ReloadHandle {
        self.handle.clone()
    }

    /// Polls for new versions forever, and on request.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reply = tokio::select! {
                _ = tick.tick() => None,
                Some(reply) = self.requests.recv() => Some(reply),
            };
            self.check();
            let revision = self.security.settings().revision;
            if let Some(reply) = reply {
                let _ = reply.send(revision);
            }
            // Requests that queued meanwhile are answered by this look too.
            while let Ok(reply) = self.requests.try_recv() {
                let _ = reply.send(revision);
            }
        }
    }

    /// Puts a new version of the files in force, if there is one and it is usable.
    fn check(&mut self) {
        let fingerprint = match self.fingerprint() {
            Ok(fingerprint) => fingerprint,
            Err(err) => {
                tracing::debug!(error = %err, "security settings unreadable; keeping the ones in force");
                return;
            }
        };
        if fingerprint == self.applied || Some(fingerprint) == self.refused {
            return;
        }
        match self.read() {
            Ok(version) => {
                self.refused = None;
                let revision = version.settings.revision;
                self.apply(version);
                tracing::info!(revision, "security settings reloaded");
            }
            Err(err) => {
                self.refused = Some(fingerprint);
                tracing::error!(error = %err, "new security settings refused; keeping the ones in force");
            }
        }
    }

    fn apply(&mut self, version: Version) {
        if let (Some(state), Some(config)) = (&self.tls, version.tls) {
            state.replace(config);
        }
        let endpoint = &version.settings.network.internal_endpoint;
        self.internal_endpoint.send_if_modified(|current| {
            let changed = current != endpoint;
            if changed {
                current.clone_from(endpoint);
            }
            changed
        });
        self.security.set_settings(version.settings);
        self.applied = version.fingerprint;
    }

    /// The settings file's bytes, or `None` when it does not exist.
    fn settings_bytes(&self) -> Result<Option<Vec<u8>>, ReloadError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ReloadError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn parse(&self, bytes: Option<&[u8]>) -> Result<SecuritySettings, ReloadError> {
        let Some(bytes) = bytes else {
            return Ok(SecuritySettings::default());
        };
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|source| ReloadError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    /// The certificate files a version uses; `None` without any server certificate (no
    /// listener serves TLS then, so custom domains have nothing to apply to).
    fn tls_material(
        &self,
        settings: &SecuritySettings,
    ) -> Result<Option<TlsMaterial>, ReloadError> {
        let (server, client_ca) = match &settings.tls {
            None => match &self.default_tls {
                Some(files) => (files.clone(), None),
                None => return Ok(None),
            },
            Some(custom) => {
                let files = TlsFiles {
                    cert_file: self.base.join(&custom.cert_file),
                    key_file: self.base.join(&custom.key_file),
                };
                let ca = match custom.tls_type {
                    TlsType::OneWay => None,
                    TlsType::TwoWay => Some(
                        self.base.join(
                            custom
                                .ca_file
                                .as_ref()
                                .ok_or(ReloadError::ClientCaMissing)?,
                        ),
                    ),
                };
                (files, ca)
            }
        };
        let domains = settings
            .network
            .domains
            .iter()
            .map(|d| DomainFiles {
                domain: d.domain.clone(),
                files: TlsFiles {
                    cert_file: self.base.join(&d.cert_file),
                    key_file: self.base.join(&d.key_file),
                },
            })
            .collect();
        Ok(Some(TlsMaterial {
            server,
            client_ca,
            domains,
        }))
    }

    fn fingerprint(&self) -> Result<[u8; 32], ReloadError> {
        let bytes = self.settings_bytes()?;
        let settings = self.parse(bytes.as_deref());
        let mut hash = Sha256::new();
        hash.update(bytes.as_deref().unwrap_or_default());
        // Unparseable settings are fingerprinted by their bytes alone.
        if let Ok(Some(material)) = settings.and_then(|s| self.tls_material(&s)) {
            for path in material.paths() {
                hash.update(read_or_empty(path));
            }
        }
        Ok(hash.finalize().into())
    }

    fn read(&self) -> Result<Version, ReloadError> {
        let fingerprint = self.fingerprint()?;
        let settings = self.parse(self.settings_bytes()?.as_deref())?;
        let tls = match self.tls_material(&settings)? {
            Some(material) => Some(tls::server_config(&material)?),
            None => None,
        };
        Ok(Version {
            fingerprint,
            settings,
            tls,
        })
    }
}

fn read_or_empty(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}
