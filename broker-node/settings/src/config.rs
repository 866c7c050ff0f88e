//! The broker node's configuration file (`config.json`): written by the control plane,
//! read once by the node at start (`skyport_broker::config::Config::load`, which also
//! resolves relative paths and validates).
//!
//! The file is JSON. Unknown fields are ignored so that an older broker keeps starting
//! when a newer control plane adds settings; settings that are not set are left out.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything a broker node needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The deployment this node serves (used in logs and, later, reports).
    pub deployment_id: String,
    pub listeners: Listeners,
    /// Server certificate for the `tls` and `wss` listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub limits: Limits,
    /// Where to report metering; absent = count only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering: Option<MeteringTarget>,
    /// The hot-reloaded security settings (default: [`crate::security::FILE_NAME`] next to
    /// this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_file: Option<PathBuf>,
    /// Where the node keeps its state: built-in users, ACL rules, bans, the metering
    /// outbox (default: this file's directory). On Kubernetes, the session-data volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// The file's text: pretty JSON with the keys of every object in sorted order, so the
    /// text (and the hash the control plane keeps of it) depends on the settings only.
    pub fn to_json_pretty(&self) -> String {
        // serde_json's `Value` keeps object keys sorted (no `preserve_order`).
        serde_json::to_value(self)
            .and_then(|value| serde_json::to_string_pretty(&value))
            .expect("a broker config is plain data")
    }
}

/// The control plane's metering ingest endpoint, for this deployment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteringTarget {
    pub url: String,
    /// Bearer token of this deployment's node (a secret: not printed by `Debug`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the token instead (on Kubernetes, a mounted Secret); relative to
    /// the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
}

fn default_interval_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for MeteringTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteringTarget")
            .field("url", &self.url)
            .field("interval_ms", &self.interval_ms)
            .finish_non_exhaustive()
    }
}

/// Addresses to listen on; an absent or `null` MQTT listener is disabled (a disabled one
/// is written as `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listeners {
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    #[serde(default)]
    pub tls: Option<SocketAddr>,
    #[serde(default)]
    pub ws: Option<SocketAddr>,
    #[serde(default)]
    pub wss: Option<SocketAddr>,
    /// The deployment HTTP API (health, readiness, `/api/v4`).
    pub api: SocketAddr,
}

/// PEM files; relative paths are resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Tier limits: `max_sessions` refuses CONNECTs beyond the quota, `max_tps` paces client
/// PUBLISHes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tps: Option<u64>,
    /// How long a new connection may take (TLS and WebSocket handshakes, then CONNECT)
    /// before it is closed; 10 s by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// The deployment's plan (`serverless`, `dedicated`, `premium`): which rule actions
    /// and how many rules the node accepts. Unset: no plan limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Messages each rule action's buffer holds before the oldest are dropped (default
    /// 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_buffer_messages: Option<u64>,
    /// Bytes each rule action's buffer holds before the oldest are dropped (default
    /// 64 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_buffer_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Config {
        Config {
            deployment_id: "0192abcd".into(),
            listeners: Listeners {
                tcp: None,
                tls: Some("0.0.0.0:8883".parse().unwrap()),
                ws: None,
                wss: Some("0.0.0.0:8084".parse().unwrap()),
                api: "0.0.0.0:8081".parse().unwrap(),
            },
            tls: Some(TlsFiles {
                cert_file: "tls/tls.crt".into(),
                key_file: "tls/tls.key".into(),
            }),
            limits: Limits {
                max_sessions: Some(1_000),
                max_tps: Some(500),
                ..Limits::default()
            },
            metering: Some(MeteringTarget {
                url: "http://cp:8080".into(),
                token: None,
                token_file: Some("/etc/skyport/security/node-token".into()),
                interval_ms: 10_000,
            }),
            security_file: None,
            data_dir: Some("/var/lib/skyport".into()),
        }
    }

    #[test]
    fn written_config_reads_back() {
        let config = sample();
        let back: Config = serde_json::from_str(&config.to_json_pretty()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn unset_settings_are_left_out_and_disabled_listeners_are_null() {
        let json: serde_json::Value = serde_json::from_str(&sample().to_json_pretty()).unwrap();
        assert_eq!(json["listeners"]["tcp"], serde_json::Value::Null);
        assert!(json["listeners"].as_object().unwrap().contains_key("ws"));
        assert!(!json.as_object().unwrap().contains_key("security_file"));
        assert!(!json["limits"]
            .as_object()
            .unwrap()
            .contains_key("connect_timeout_ms"));
        assert!(!json["metering"].as_object().unwrap().contains_key("token"));
    }

    #[test]
    fn keys_are_sorted() {
        let text = sample().to_json_pretty();
        let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
        assert!(at("data_dir") < at("deployment_id"));
        assert!(at("deployment_id") < at("limits"));
        assert!(at("limits") < at("listeners"));
        assert!(at("api") < at("tcp"));
    }

    #[test]
    fn metering_token_is_not_debug_printed() {
        let mut target = sample().metering.unwrap();
        target.token = Some("smt_secret".into());
        assert!(!format!("{target:?}").contains("smt_secret"));
    }
}
