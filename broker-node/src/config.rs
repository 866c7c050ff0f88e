//! The broker node's configuration file, written by the control plane.
//!
//! The file is JSON, its format `skyport_settings::config` (shared with the control
//! plane). Unknown fields are ignored so that an older broker keeps starting when a newer
//! control plane adds settings. This module reads, resolves and validates it.

use std::path::{Path, PathBuf};

/// The file's contents, as the control plane writes them (`skyport-settings`).
pub use skyport_settings::config::Config as ConfigFile;
pub use skyport_settings::config::{Limits, Listeners, MeteringTarget, TlsFiles};

/// Everything a broker node needs to start: the file, its relative paths made absolute,
/// and where it was read from. Derefs to the [`ConfigFile`].
#[derive(Debug, Clone)]
pub struct Config {
    pub file: ConfigFile,
    /// The config file's directory.
    pub dir: PathBuf,
}

impl std::ops::Deref for Config {
    type Target = ConfigFile;

    fn deref(&self) -> &ConfigFile {
        &self.file
    }
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
        let mut file: ConfigFile =
            serde_path_to_error::deserialize(de).map_err(|source| ConfigError::Parse {
                path: PathBuf::new(),
                source,
            })?;
        let token_file = file.metering.as_mut().and_then(|m| m.token_file.as_mut());
        for path in [
            file.security_file.as_mut(),
            file.data_dir.as_mut(),
            token_file,
        ]
        .into_iter()
        .flatten()
        {
            *path = base.join(&*path);
        }
        if let Some(tls) = &mut file.tls {
            tls.cert_file = base.join(&tls.cert_file);
            tls.key_file = base.join(&tls.key_file);
        }
        let config = Config {
            file,
            dir: base.to_path_buf(),
        };
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
