//! Rules and resources as stored (and as the API shows them, secrets masked).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// A fresh id: `prefix` and 8 random hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{:08x}", rand::random::<u32>())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
