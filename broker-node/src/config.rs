//! The broker node's configuration file, written by the control plane.
//!
//! The file is JSON. Unknown fields are ignored so that an older broker keeps
//! starting when a newer control plane adds settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything a broker node needs to start.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The deployment this node serves (used in logs and, later, reports).
    pub deployment_id: String,
    pub listeners: Listeners,
    /// Server certificate for the `tls` and `wss` listeners.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub limits: Limits,
    /// Where to report metering; absent = count only.
    #[serde(default)]
    pub metering: Option<MeteringTarget>,
    /// The hot-reloaded security settings (default: `security.json` next to this file).
    #[serde(default)]
    pub security_file: Option<PathBuf>,
    /// Where the node keeps its state: built-in users, ACL rules, bans, the metering
    /// outbox (default: this file's directory). On Kubernetes, the session-data volume.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The config file's directory.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The control plane's metering ingest endpoint, for this deployment.
#[derive(Clone, Deserialize)]
pub struct MeteringTarget {
    pub url: String,
    /// Bearer token of this deployment's node (a secret: not printed by `Debug`).
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token instead (on Kubernetes, a mounted Secret); relative to
    /// the config file's directory.
    #[serde(default)]
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

/// Addresses to listen on; an absent or `null` MQTT listener is disabled.
#[derive(Debug, Clone, Deserialize)]
pub struct Listeners {
    #[serde(default)]
    pub tcp: Option<SocketAddr>,
    #[serde(default)]
    pub tls: Option<SocketAddr>,
    #[serde(default)]
    pub ws: Option<SocketAddr>,
    #[serde(default)]
    pub wss: Option<SocketAddr>,
    /// The deployment HTTP API (health, readiness, later `/api/v4`).
    pub api: SocketAddr,
}

/// PEM files; relative paths are resolved against the config file's directory.
#[derive(Debug, Clone, Deserialize)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Tier limits: `max_sessions` refuses CONNECTs beyond the quota, `max_tps` paces client
/// PUBLISHes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Limits {
    #[serde(default)]
    pub max_sessions: Option<u64>,
    #[serde(default)]
    pub max_tps: Option<u64>,
    /// How long a new connection may take (TLS and WebSocket handshakes, then CONNECT)
    /// before it is closed; 10 s by default.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_path_to_error::Error<serde_json::Error>,
    },
    #[error("metering needs a token: neither \"token\" nor a readable \"token_file\" ({0})")]
    MeteringToken(String),
    #[error("the {listener} listener is enabled but the config has no \"tls\" section")]
    TlsMissing { listener: &'static str },
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_json(&text, base).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates JSON; relative TLS paths are resolved against `base`.
    pub fn from_json(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut config: Config =
            serde_path_to_error::deserialize(de).map_err(|source| ConfigError::Parse {
                path: PathBuf::new(),
                source,
            })?;
        config.dir = base.to_path_buf();
        let token_file = config.metering.as_mut().and_then(|m| m.token_file.as_mut());
        for path in [
            config.security_file.as_mut(),
            config.data_dir.as_mut(),
            token_file,
        ]
        .into_iter()
        .flatten()
        {
            *path = base.join(&*path);
        }
        if let Some(tls) = &mut config.tls {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        config.validate()?;
        Ok(config)
    }

    /// The metering pipeline's settings, when the node reports.
    pub fn metering_settings(&self) -> Result<Option<crate::metering::Settings>, ConfigError> {
        let Some(target) = self.metering.as_ref() else {
            return Ok(None);
        };
        let token = match (&target.token, &target.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|t| t.trim().to_owned())
                .map_err(|e| ConfigError::MeteringToken(format!("{}: {e}", file.display())))?,
            (None, None) => return Err(ConfigError::MeteringToken("none given".into())),
        };
        Ok(Some(crate::metering::Settings {
            url: target.url.clone(),
            token,
            interval: std::time::Duration::from_millis(target.interval_ms.max(100)),
            outbox: self.data_dir().join("metering-outbox.json"),
            deployment_id: self.deployment_id.clone(),
            node_id: std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
        }))
    }

    /// Where the node keeps its state.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| self.dir.clone())
    }

    /// The hot-reloaded security settings file.
    pub fn security_file(&self) -> PathBuf {
        self.security_file
            .clone()
            .unwrap_or_else(|| self.dir.join(crate::security::settings::FILE_NAME))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_none() {
            if self.listeners.tls.is_some() {
                return Err(ConfigError::TlsMissing { listener: "tls" });
            }
            if self.listeners.wss.is_some() {
                return Err(ConfigError::TlsMissing { listener: "wss" });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_with_unknown_fields_parses() {
        let json = r#"{
            "deployment_id": "0192abcd",
            "future_setting": {"x": 1},
            "listeners": {"tcp": "127.0.0.1:41001", "tls": "127.0.0.1:41002",
                          "ws": null, "api": "127.0.0.1:41005", "quic": "127.0.0.1:1"},
            "tls": {"cert_file": "server.pem", "key_file": "/abs/server.key"},
            "security_file": "/etc/skyport/security/security.json",
            "data_dir": "state",
            "limits": {"max_sessions": 1000, "max_tps": 500, "burst": 3}
        }"#;
        let config = Config::from_json(json, Path::new("/etc/skyport")).unwrap();
        assert_eq!(config.deployment_id, "0192abcd");
        assert_eq!(
            config.listeners.tcp,
            Some("127.0.0.1:41001".parse().unwrap())
        );
        assert_eq!(config.listeners.ws, None);
        assert_eq!(config.listeners.wss, None);
        let tls = config.tls.clone().unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/skyport/server.pem"));
        assert_eq!(tls.key_file, Path::new("/abs/server.key"));
        assert_eq!(
            config.security_file(),
            Path::new("/etc/skyport/security/security.json")
        );
        assert_eq!(config.data_dir(), Path::new("/etc/skyport/state"));
        assert_eq!(config.limits.max_sessions, Some(1000));
        assert_eq!(config.limits.max_tps, Some(500));
    }

    #[test]
    fn tls_listener_without_tls_section_is_refused() {
        let json =
            r#"{"deployment_id": "d", "listeners": {"wss": "127.0.0.1:1", "api": "127.0.0.1:2"}}"#;
        let err = Config::from_json(json, Path::new(".")).unwrap_err();
        assert!(
            matches!(err, ConfigError::TlsMissing { listener: "wss" }),
            "{err}"
        );
    }

    #[test]
    fn parse_error_names_the_field() {
        let json =
            r#"{"deployment_id": "d", "listeners": {"tcp": "nonsense", "api": "127.0.0.1:2"}}"#;
        let err = Config::from_json(json, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("listeners.tcp"), "{err}");
    }

    #[test]
    fn missing_api_listener_is_refused() {
        let json = r#"{"deployment_id": "d", "listeners": {"tcp": "127.0.0.1:1"}}"#;
        let err = Config::from_json(json, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("api"), "{err}");
    }
}
