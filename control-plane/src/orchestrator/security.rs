//! A deployment's broker security as orchestrators deliver it: the hot-reloaded
//! `security.json` (the broker's own [`SecuritySettings`] type) and the custom TLS files
//! it names.
//!
//! Orchestrators load it themselves at every apply through a [`SecuritySource`] (the
//! store, plus the secret key that decrypts custom private keys), so
//! [`super::Orchestrator::apply`] keeps taking just the deployment: a security change
//! bumps the deployment's generation, the reconciler calls `apply`, and the orchestrator
//! writes the new file next to the running broker, which picks it up without a restart.
//! Security is deliberately outside the configuration hash that restarts (local) or rolls
//! (Kubernetes) the broker.

use std::net::IpAddr;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use skyport_settings::security::{
    AppKey, Authentication, Authorization, CustomTls, DomainTls, InternalEndpoint, NetworkSettings,
    SecuritySettings, SessionSettings, TlsType,
};

use super::OrchestratorError;
use crate::encryption::SecretKey;
use crate::store::{Deployment, Store};

/// File names of the custom TLS material, relative to `security.json`'s directory.
#[derive(Clone, Copy, Debug)]
pub struct TlsFileNames {
    pub cert: &'static str,
    pub key: &'static str,
    pub ca: &'static str,
    /// Prefix of each custom domain's `<prefix><domain>.pem` and `.key`.
    pub domain_prefix: &'static str,
}

impl TlsFileNames {
    /// The certificate and key file names of `domain` (`*` spelled `_wildcard`, so the
    /// name is a valid file name and Secret key).
    pub fn domain(&self, domain: &str) -> (String, String) {
        let stem = domain.replace('*', "_wildcard");
        (
            format!("{}{stem}.pem", self.domain_prefix),
            format!("{}{stem}.key", self.domain_prefix),
        )
    }
}

/// An active custom domain with its decrypted private key.
#[derive(Clone)]
pub struct DomainMaterial {
    pub domain: String,
    pub cert_pem: String,
    pub key_pem: SecretString,
}

/// How the broker itself takes part in the networking add-ons. Locally it binds the
/// egress and internal addresses itself; on Kubernetes the platform does (a NAT'd node
/// pool or egress gateway, an internal load balancer), so the pod is not told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkDelivery {
    InProcess,
    Platform,
}

/// A custom certificate with its decrypted private key.
#[derive(Clone)]
pub struct CustomTlsMaterial {
    pub tls_type: TlsType,
    /// Leaf first, then the chain.
    pub cert_pem: String,
    pub key_pem: SecretString,
    pub ca_pem: Option<String>,
}

/// Everything a broker's security configuration is made of.
#[derive(Clone, Default)]
pub struct BrokerSecurity {
    /// The deployment generation these settings are at: the revision the broker reports
    /// back once it has them in force.
    pub revision: i64,
    pub app_keys: Vec<AppKey>,
    pub authentication: Authentication,
    pub authorization: Authorization,
    pub tls: Option<CustomTlsMaterial>,
    /// Active custom domains, served by SNI.
    pub domains: Vec<DomainMaterial>,
    /// The NAT gateway's egress addresses (empty: no NAT gateway).
    pub egress_addresses: Vec<IpAddr>,
    /// The internal endpoint, when the deployment has one.
    pub internal_endpoint: Option<crate::store::InternalEndpointRecord>,
    /// Persistent-session settings.
    pub sessions: SessionSettings,
}

/// One file to deliver next to `security.json`.
pub struct SecurityFile {
    pub name: String,
    pub contents: SecretString,
}

impl BrokerSecurity {
    /// The settings file's content, naming the TLS files by `names`.
    pub fn settings(&self, names: TlsFileNames, delivery: NetworkDelivery) -> SecuritySettings {
        SecuritySettings {
            revision: u64::try_from(self.revision).unwrap_or_default(),
            app_keys: self.app_keys.clone(),
            authentication: self.authentication.clone(),
            authorization: self.authorization.clone(),
            tls: self.tls.as_ref().map(|tls| CustomTls {
                tls_type: tls.tls_type,
                cert_file: names.cert.into(),
                key_file: names.key.into(),
                ca_file: tls.ca_pem.as_ref().map(|_| names.ca.into()),
            }),
            network: NetworkSettings {
                domains: self
                    .domains
                    .iter()
                    .map(|d| {
                        let (cert, key) = names.domain(&d.domain);
                        DomainTls {
                            domain: d.domain.clone(),
                            cert_file: cert.into(),
                            key_file: key.into(),
                        }
                    })
                    .collect(),
                egress_address: match delivery {
                    NetworkDelivery::InProcess => self.egress_addresses.first().copied(),
                    NetworkDelivery::Platform => None,
                },
                internal_endpoint: match delivery {
                    NetworkDelivery::InProcess => {
                        self.internal_endpoint.as_ref().and_then(|internal| {
                            Some(InternalEndpoint {
                                address: internal.address?,
                                allowed_cidrs: internal.allowed_cidrs.clone(),
                            })
                        })
                    }
                    NetworkDelivery::Platform => None,
                },
            },
            sessions: self.sessions,
        }
    }

    /// `security.json`, pretty-printed.
    pub fn settings_json(&self, names: TlsFileNames, delivery: NetworkDelivery) -> Vec<u8> {
        let mut json =
            serde_json::to_vec_pretty(&self.settings(names, delivery)).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// The TLS files `security.json` names: the custom certificate's, and each active
    /// domain's.
    pub fn tls_files(&self, names: TlsFileNames) -> Vec<SecurityFile> {
        let mut files = Vec::new();
        let mut add = |name: String, contents: &str| {
            files.push(SecurityFile {
                name,
                contents: contents.into(),
            })
        };
        if let Some(tls) = &self.tls {
            add(names.cert.into(), &tls.cert_pem);
            add(names.key.into(), tls.key_pem.expose_secret());
            if let Some(ca) = &tls.ca_pem {
                add(names.ca.into(), ca);
            }
        }
        for domain in &self.domains {
            let (cert, key) = names.domain(&domain.domain);
            add(cert, &domain.cert_pem);
            add(key, domain.key_pem.expose_secret());
        }
        files
    }
}

/// Where orchestrators read deployments' security from.
#[derive(Clone)]
pub struct SecuritySource {
    store: Arc<dyn Store>,
    key: Arc<SecretKey>,
}

impl SecuritySource {
    pub fn new(store: Arc<dyn Store>, key: Arc<SecretKey>) -> Self {
        Self { store, key }
    }

    /// The deployment's current security at its current generation, with its custom
    /// private key decrypted.
    pub async fn load(&self, deployment: &Deployment) -> Result<BrokerSecurity, OrchestratorError> {
        let deployment_id = deployment.id;
        let record = self
            .store
            .broker_security(deployment_id)
            .await
            .map_err(|e| OrchestratorError::Security(format!("loading security settings: {e}")))?;
        let tls = match record.tls {
            Some(tls) => Some(CustomTlsMaterial {
                tls_type: tls.tls_type,
                key_pem: self
                    .key
                    .open(&tls.key_ciphertext, &deployment_id.to_string())
                    .map_err(|e| OrchestratorError::Security(e.to_string()))?,
                cert_pem: tls.cert_pem,
                ca_pem: tls.ca_pem,
            }),
            None => None,
        };
        let network = self
            .store
            .network(deployment_id)
            .await
            .map_err(|e| OrchestratorError::Security(format!("loading networking: {e}")))?;
        let mut domains = Vec::new();
        for domain in network.domains {
            if domain.status != crate::store::DomainStatus::Active {
                continue;
            }
            domains.push(DomainMaterial {
                key_pem: self
                    .key
                    .open(&domain.key_ciphertext, &deployment_id.to_string())
                    .map_err(|e| OrchestratorError::Security(e.to_string()))?,
                domain: domain.domain,
                cert_pem: domain.cert_pem,
            });
        }
        Ok(BrokerSecurity {
            revision: deployment.generation,
            app_keys: record.app_keys,
            authentication: record.authentication.unwrap_or_default(),
            authorization: record.authorization.unwrap_or_default(),
            tls,
            domains,
            egress_addresses: network
                .nat_gateway
                .map(|nat| nat.egress_addresses)
                .unwrap_or_default(),
            internal_endpoint: network.internal_endpoint,
            sessions: record.sessions.unwrap_or_default(),
        })
    }

    /// [`SecuritySource::load`], or the defaults when there is no source (tests, renders).
    pub async fn load_or_default(
        source: Option<&SecuritySource>,
        deployment: &Deployment,
    ) -> Result<BrokerSecurity, OrchestratorError> {
        match source {
            Some(source) => source.load(deployment).await,
            None => Ok(BrokerSecurity {
                revision: deployment.generation,
                ..BrokerSecurity::default()
            }),
        }
    }
}
