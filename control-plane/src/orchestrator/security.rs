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

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use skyport_broker::security::settings::{
    AppKey, Authentication, Authorization, CustomTls, SecuritySettings, TlsType,
};

use super::OrchestratorError;
use crate::domain::Id;
use crate::encryption::SecretKey;
use crate::store::Store;

/// File names of the custom TLS material, relative to `security.json`'s directory.
#[derive(Clone, Copy, Debug)]
pub struct TlsFileNames {
    pub cert: &'static str,
    pub key: &'static str,
    pub ca: &'static str,
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
    pub app_keys: Vec<AppKey>,
    pub authentication: Authentication,
    pub authorization: Authorization,
    pub tls: Option<CustomTlsMaterial>,
}

/// One file to deliver next to `security.json`.
pub struct SecurityFile {
    pub name: &'static str,
    pub contents: SecretString,
}

impl BrokerSecurity {
    /// The settings file's content, naming the TLS files by `names`.
    pub fn settings(&self, names: TlsFileNames) -> SecuritySettings {
        SecuritySettings {
            app_keys: self.app_keys.clone(),
            authentication: self.authentication.clone(),
            authorization: self.authorization.clone(),
            tls: self.tls.as_ref().map(|tls| CustomTls {
                tls_type: tls.tls_type,
                cert_file: names.cert.into(),
                key_file: names.key.into(),
                ca_file: tls.ca_pem.as_ref().map(|_| names.ca.into()),
            }),
            network: Default::default(),
        }
    }

    /// `security.json`, pretty-printed.
    pub fn settings_json(&self, names: TlsFileNames) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(&self.settings(names)).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// The TLS files `security.json` names (none without a custom certificate).
    pub fn tls_files(&self, names: TlsFileNames) -> Vec<SecurityFile> {
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let mut files = vec![
            SecurityFile {
                name: names.cert,
                contents: tls.cert_pem.clone().into(),
            },
            SecurityFile {
                name: names.key,
                contents: tls.key_pem.expose_secret().into(),
            },
        ];
        if let Some(ca) = &tls.ca_pem {
            files.push(SecurityFile {
                name: names.ca,
                contents: ca.clone().into(),
            });
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

    /// The deployment's current security, with its custom private key decrypted.
    pub async fn load(&self, deployment_id: Id) -> Result<BrokerSecurity, OrchestratorError> {
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
        Ok(BrokerSecurity {
            app_keys: record.app_keys,
            authentication: record.authentication.unwrap_or_default(),
            authorization: record.authorization.unwrap_or_default(),
            tls,
        })
    }

    /// [`SecuritySource::load`], or the defaults when there is no source (tests, renders).
    pub async fn load_or_default(
        source: Option<&SecuritySource>,
        deployment_id: Id,
    ) -> Result<BrokerSecurity, OrchestratorError> {
        match source {
            Some(source) => source.load(deployment_id).await,
            None => Ok(BrokerSecurity::default()),
        }
    }
}
