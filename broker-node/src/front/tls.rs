//! rustls server configuration for the `tls` and `wss` listeners, swappable while they
//! run: a new certificate (or client CA, or set of custom domains) applies to the next
//! handshake, and connections already up keep theirs.
//!
//! The certificate is chosen per handshake by SNI: a client naming one of the
//! deployment's custom domains gets that domain's certificate, any other client the
//! default one (the custom certificate, or Skyport's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
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
    #[error("custom domain {domain:?} is not usable: {reason}")]
    Domain {
        domain: String,
        reason: &'static str,
    },
}

/// Every file a TLS configuration is built from, with paths resolved.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The default certificate, for clients naming no custom domain.
    pub server: TlsFiles,
    /// With a client CA, clients must present a certificate chaining to it (two-way TLS).
    pub client_ca: Option<PathBuf>,
    pub domains: Vec<DomainFiles>,
}

/// The certificate of one custom domain.
#[derive(Debug, Clone)]
pub struct DomainFiles {
    /// A host name, or `*.` and a host name for any one label under it.
    pub domain: String,
    pub files: TlsFiles,
}

impl TlsMaterial {
    /// Every file read by [`server_config`], in a fixed order (for fingerprints).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        [&self.server.cert_file, &self.server.key_file]
            .into_iter()
            .chain(&self.client_ca)
            .chain(
                self.domains
                    .iter()
                    .flat_map(|d| [&d.files.cert_file, &d.files.key_file]),
            )
            .map(PathBuf::as_path)
    }
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

/// Builds a configuration offering TLS 1.2 and 1.3 only, serving each custom domain's
/// certificate by SNI and the default one otherwise. Every certificate must load and
/// match its key, or nothing is built.
pub fn server_config(material: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = SniResolver::load(material, &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::Rustls {
            cert: material.server.cert_file.clone(),
            key: material.server.key_file.clone(),
            source,
        })?;
    let builder = match &material.client_ca {
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
    Ok(Arc::new(builder.with_cert_resolver(Arc::new(resolver))))
}

/// Picks the certificate for a handshake from the server name the client asked for.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` entries, keyed by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl SniResolver {
    fn load(material: &TlsMaterial, provider: &CryptoProvider) -> Result<Self, TlsError> {
        let mut resolver = Self {
            default: Arc::new(certified_key(&material.server, provider)?),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        for domain in &material.domains {
            let invalid = |reason| TlsError::Domain {
                domain: domain.domain.clone(),
                reason,
            };
            let name = domain.domain.to_ascii_lowercase();
            let (table, host) = match name.strip_prefix("*.") {
                Some(parent) => (&mut resolver.wildcard, parent),
                None => (&mut resolver.exact, name.as_str()),
            };
            if DnsName::try_from(host).is_err() {
                return Err(invalid("not a host name"));
            }
            if table.contains_key(host) {
                return Err(invalid("listed twice"));
            }
            let key = certified_key(&domain.files, provider)?;
            table.insert(host.to_owned(), Arc::new(key));
        }
        Ok(resolver)
    }

    /// The certificate for `server_name`: an exact domain, else a wildcard one level up,
    /// else the default. Names compare ASCII case-insensitively.
    fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return key;
        }
        name.split_once('.')
            .filter(|(label, _)| !label.is_empty())
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

/// Loads a chain and its key, refusing a key that does not belong to the leaf.
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(&files.cert_file)?;
    let key = read_key(&files.key_file)?;
    let rustls_error = |source| TlsError::Rustls {
        cert: files.cert_file.clone(),
        key: files.key_file.clone(),
        source,
    };
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(rustls_error)?;
    let certified = CertifiedKey::new(certs, key);
    certified.keys_match().map_err(rustls_error)?;
    Ok(certified)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(provider: &CryptoProvider) -> Arc<CertifiedKey> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["unit.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        Arc::new(CertifiedKey::from_der(vec![cert.der().clone()], der, provider).unwrap())
    }

    #[test]
    fn sni_picks_the_exact_domain_then_a_one_label_wildcard_then_the_default() {
        let provider = rustls::crypto::ring::default_provider();
        let (default, exact, wildcard) = (key(&provider), key(&provider), key(&provider));
        let resolver = SniResolver {
            default: default.clone(),
            exact: HashMap::from([("mqtt.example.com".to_owned(), exact.clone())]),
            wildcard: HashMap::from([("example.com".to_owned(), wildcard.clone())]),
        };
        let picks = |name: Option<&str>, expected: &Arc<CertifiedKey>| {
            assert!(Arc::ptr_eq(resolver.pick(name), expected), "{name:?}");
        };
        picks(Some("mqtt.example.com"), &exact);
        picks(Some("MQTT.Example.COM"), &exact);
        picks(Some("eu.example.com"), &wildcard);
        picks(Some("a.eu.example.com"), &default);
        picks(Some("example.com"), &default);
        picks(Some(".example.com"), &default);
        picks(Some("localhost"), &default);
        picks(None, &default);
    }
}
