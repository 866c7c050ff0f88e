//! `security.json`: the part of a broker's configuration that changes while it runs.
//!
//! The control plane writes it next to `config.json` (atomically, by rename; on Kubernetes
//! it is a mounted Secret); the node notices a new version within a second and swaps it in
//! without dropping connections. Everything a deployment owner sets through the control
//! plane's API lives here: app keys for the deployment API, the authentication and
//! authorization chains, and custom TLS material. (Built-in users, ACL rules and bans are
//! managed through the node's own `/api/v4` and kept in its data directory.)
//!
//! The control plane builds this with the same types, so the two cannot drift. The
//! broker re-exports them as `skyport_broker::security::settings`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use serde::{Deserialize, Serialize};

/// File name of the settings, in the config file's directory.
pub const FILE_NAME: &str = "security.json";

/// How often a running node looks for a new version of the file (and of the TLS files it
/// names).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The hot-reloaded security settings of one deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySettings {
    /// The deployment revision these settings are at (the control plane's generation
    /// counter, monotonic per deployment). The node reports the revision in force on
    /// `/readyz`, so the control plane knows when a write has reached it.
    pub revision: u64,
    /// Keys accepted by the deployment API (HTTP Basic `app_id:app_secret`).
    pub app_keys: Vec<AppKey>,
    pub authentication: Authentication,
    pub authorization: Authorization,
    /// Custom server certificate; `None` keeps the Skyport-issued one from `config.json`.
    pub tls: Option<CustomTls>,
    /// Networking add-ons: custom domains, NAT gateway, internal endpoint.
    pub network: NetworkSettings,
    /// How long persistent sessions last and how much they queue.
    pub sessions: SessionSettings,
}

/// Persistent sessions of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionSettings {
    /// How long an MQTT 3.1.1 persistent session (`clean_session=false`) outlives its
    /// connection.
    pub session_expiry_secs: u64,
    /// The most an MQTT 5 client's `session_expiry_interval` is honoured for.
    pub max_session_expiry_secs: u64,
    /// Most messages kept for one offline session; beyond it the oldest are dropped.
    pub max_queued_messages: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            session_expiry_secs: 2 * 3600,
            max_session_expiry_secs: 2 * 3600,
            max_queued_messages: 1_000,
        }
    }
}

/// A deployment's networking add-ons, applied while the node runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSettings {
    /// Custom domains served on the TLS listeners by SNI, each with its own certificate.
    /// A client naming any other server (or none) gets the default certificate.
    pub domains: Vec<DomainTls>,
    /// NAT gateway: the source address of every outbound connection the node opens for
    /// the deployment (external authentication and authorization requests).
    pub egress_address: Option<IpAddr>,
    /// A second, private entry point on the same ports as the public listeners.
    pub internal_endpoint: Option<InternalEndpoint>,
}

/// The certificate served to clients that ask for `domain` by SNI. Paths are relative
/// to the settings file's directory unless absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainTls {
    /// Lower-case ASCII (punycode) host name; `*.example.com` matches one label.
    pub domain: String,
    /// Certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// Unencrypted private key (PEM).
    pub key_file: PathBuf,
}

/// Listeners on `address`, one per public listener and on the same port, that accept
/// connections only from peers inside `allowed_cidrs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternalEndpoint {
    pub address: IpAddr,
    pub allowed_cidrs: Vec<IpNet>,
}

/// One deployment API key; only a hash of the secret is ever written down.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AppKey {
    pub app_id: String,
    /// Lower-case hex SHA-256 of the secret (secrets are 256-bit random, so a fast hash is
    /// enough; passwords chosen by people use argon2 instead).
    pub secret_sha256: String,
    /// A read-only key (a console viewer's): it may read through the deployment API but
    /// change nothing. Absent means false, so files written before it existed still load.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppKey")
            .field("app_id", &self.app_id)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// How CONNECTs are authenticated: sources tried in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Authentication {
    /// Connections that no source accepts or refuses (all said "ignore", or the chain is
    /// empty) are let in when this is true, refused otherwise.
    pub allow_anonymous: bool,
    pub chain: Vec<Source>,
}

impl Default for Authentication {
    fn default() -> Self {
        Self {
            allow_anonymous: false,
            chain: vec![Source::BuiltIn],
        }
    }
}

/// How PUBLISH and SUBSCRIBE are authorized: sources tried in order, first decision wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Authorization {
    /// The decision when no source matches.
    pub no_match: Decision,
    /// Whether a client whose PUBLISH is denied is also disconnected (MQTT 3.1.1 has no
    /// way to tell it otherwise).
    pub disconnect_on_deny: bool,
    pub chain: Vec<Source>,
}

impl Default for Authorization {
    fn default() -> Self {
        Self {
            no_match: Decision::Allow,
            disconnect_on_deny: false,
            chain: vec![Source::BuiltIn],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

/// One link of an authentication or authorization chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Built-in users (authentication) or ACL rules (authorization) of the node.
    BuiltIn,
    /// The deployment owner's HTTP service.
    Http(HttpSource),
}

/// An external HTTP authenticator or authorizer, as EMQX's `emqx_auth_http`.
///
/// `url`, header values and body values are templates: `%u` username, `%c` client id,
/// `%a` peer address, `%r` protocol (`mqtt`, `mqtts`, `ws`, `wss`), `%P` password, `%p`
/// the listener's port, and for authorization `%A` action (`publish`/`subscribe`) and `%t`
/// topic. The answer 200 allows, 200 with body `ignore` defers to the next source,
/// anything else (other status, error, timeout) denies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpSource {
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    /// Request parameters: the query string for GET; for POST a form body, or a JSON
    /// object when `headers` sets `content-type: application/json`.
    #[serde(default)]
    pub body: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long a decision is reused for the same request; 0 disables the cache.
    #[serde(default = "default_cache_ttl_ms")]
    pub cache_ttl_ms: u64,
    /// Most idle connections kept open to the service.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

pub fn default_timeout_ms() -> u64 {
    5_000
}

pub fn default_cache_ttl_ms() -> u64 {
    60_000
}

pub fn default_pool_size() -> usize {
    8
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpMethod {
    Get,
    #[default]
    Post,
}

/// A custom server certificate, and for two-way TLS the CA client certificates must
/// chain to. Paths are relative to the settings file's directory unless absolute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomTls {
    pub tls_type: TlsType,
    /// Certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// Unencrypted private key (PEM).
    pub key_file: PathBuf,
    /// Client CA bundle (PEM); required for two-way TLS.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsType {
    #[serde(rename = "one-way")]
    OneWay,
    #[serde(rename = "two-way")]
    TwoWay,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let settings: SecuritySettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, SecuritySettings::default());
        assert!(!settings.authentication.allow_anonymous);
        assert_eq!(settings.authorization.no_match, Decision::Allow);
    }

    #[test]
    fn full_file_parses() {
        let json = r#"{
            "app_keys": [{"app_id": "a1", "secret_sha256": "00ff"}],
            "authentication": {"allow_anonymous": true, "chain": [
                {"type": "http", "url": "http://127.0.0.1:9/auth?u=%u", "method": "get"},
                {"type": "built_in"}]},
            "authorization": {"no_match": "deny", "chain": [{"type": "built_in"}]},
            "tls": {"tls_type": "two-way", "cert_file": "tls/custom.pem",
                    "key_file": "tls/custom.key", "ca_file": "tls/client-ca.pem"}
        }"#;
        let settings: SecuritySettings = serde_json::from_str(json).unwrap();
        let Source::Http(http) = &settings.authentication.chain[0] else {
            panic!("http first");
        };
        assert_eq!(http.method, HttpMethod::Get);
        assert_eq!(http.timeout_ms, 5_000);
        assert_eq!(settings.tls.unwrap().tls_type, TlsType::TwoWay);
        assert!(!format!("{:?}", settings.app_keys).contains("00ff"));
    }
}
