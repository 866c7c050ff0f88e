//! Rules and resources as stored (and as the API shows them, secrets masked).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use skyport_secret_key::{ExposeSecret, SecretKey};

/// A stored rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleRecord {
    pub id: String,
    pub rawsql: String,
    pub actions: Vec<ActionRecord>,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    /// Unix ms.
    pub created_at: i64,
}

/// One action of a rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionRecord {
    pub id: String,
    pub name: String,
    pub params: Map<String, Value>,
}

/// A stored resource: a connection to an external service that actions use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub config: Map<String, Value>,
    #[serde(default)]
    pub description: String,
    /// Unix ms.
    pub created_at: i64,
}

/// Config keys whose values are secret: never shown after creation.
pub const SECRET_KEYS: &[&str] = &["password", "token", "secret"];

/// What GET shows of a secret.
pub const MASK: &str = "******";

impl ResourceRecord {
    /// The config with secrets masked, for answers.
    pub fn masked_config(&self) -> Map<String, Value> {
        let mut config = self.config.clone();
        for (key, value) in config.iter_mut() {
            if SECRET_KEYS.contains(&key.as_str()) && !value.is_null() {
                *value = Value::String(MASK.to_owned());
            }
        }
        config
    }
}

impl ResourceRecord {
    /// The record as stored: every non-empty secret sealed with `key`, bound to this
    /// resource and config key (a sealed value moved elsewhere does not open).
    pub fn sealed(&self, key: &SecretKey) -> Self {
        let mut record = self.clone();
        for (name, value) in record.config.iter_mut() {
            if let Value::String(text) = value {
                if SECRET_KEYS.contains(&name.as_str())
                    && !text.is_empty()
                    && !SecretKey::is_sealed(text)
                {
                    *text = key.seal(text.as_bytes(), &self.secret_context(name));
                }
            }
        }
        record
    }

    /// The record as read back: sealed secrets opened with `key`. Also says whether a
    /// secret was stored in the clear (written by an older node; to be sealed now).
    pub fn opened(mut self, key: &SecretKey) -> Result<(Self, bool), String> {
        let mut clear = false;
        let contexts: Vec<(String, String)> = self
            .config
            .keys()
            .filter(|k| SECRET_KEYS.contains(&k.as_str()))
            .map(|k| (k.clone(), self.secret_context(k)))
            .collect();
        for (name, context) in contexts {
            if let Some(Value::String(text)) = self.config.get_mut(&name) {
                if SecretKey::is_sealed(text) {
                    *text = key
                        .open(text, &context)
                        .map_err(|e| format!("config.{name}: {e}"))?
                        .expose_secret()
                        .to_owned();
                } else if !text.is_empty() {
                    clear = true;
                }
            }
        }
        Ok((self, clear))
    }

    fn secret_context(&self, name: &str) -> String {
        format!("resource {} config.{name}", self.id)
    }
}

/// A fresh id: `prefix` and 8 random hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
