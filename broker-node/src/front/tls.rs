//! rustls server configuration for the `tls` and `wss` listeners, swappable while they
//! run: a new certificate (or client CA) applies to the next handshake, and connections
//! already up keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why the server certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("{path} is not valid PEM: {source}")]
    Pem {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("client CA {path} is not usable: {reason}")]
    ClientCa { path: PathBuf, reason: String },
    #[error("certificate {cert} and key {key} are not usable together: {source}")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The server configuration in force for new handshakes.
pub struct TlsState {
    current: ArcSwap<ServerConfig>,
}

impl TlsState {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            current: ArcSwap::new(config),
        }
    }

    /// An acceptor for one new connection, with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }

    /// Puts `config` in force for every later handshake.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        self.current.store(config);
    }
}

/// Builds a configuration offering TLS 1.2 and 1.3 only. With `client_ca`, every client
/// must present a certificate that chains to one of its certificates (two-way TLS).
pub fn server_config(
    files: &TlsFiles,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&files.cert_file)?;
    let key = read_key(&files.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rustls_error = |source| TlsError::Rustls {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        source,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|source| TlsError::ClientCa {
                    path: ca.to_owned(),
                    reason: source.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::ClientCa {
                    path: ca.to_owned(),
                    reason: source.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(rustls_error)?;
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}
