//! Actions: what a rule does with its output. Each is prepared once from its `params`
//! (templates parsed, its resource looked up) and then delivers batches of outputs
//! taken from its buffer. One file per sink (`insert.rs` serves both SQL databases).

mod insert;
mod nats;
mod offline;
mod rabbit;
mod redis;
mod republish;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::resource::{self, Resource};
use super::template::Template;
use crate::broker::Broker;

/// A prepared action.
pub enum Action {
    Republish(republish::Republish),
    WebHook(webhook::WebHook),
    Redis(redis::Redis),
    /// `data_to_pgsql` and `data_to_mysql`.
    Insert(insert::Insert),
    Rabbit(rabbit::Rabbit),
    Nats(nats::Nats),
    Offline(offline::Offline),
}

/// Why a batch was not delivered.
#[derive(Debug)]
pub struct Failure {
    /// Whether trying again may help (the service is down), or the batch is refused.
    pub retry: bool,
    pub message: String,
}

impl Failure {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            retry: true,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            retry: false,
            message: message.into(),
        }
    }
}

/// Why an action cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("unknown action {0:?}; GET /actions lists them")]
    Unknown(String),
    #[error("action {name}: missing $resource")]
    MissingResource { name: String },
    #[error("action {name}: no resource {id:?}")]
    NoSuchResource { name: String, id: String },
    #[error("action {name}: resource {id} is a {kind}; this action takes {takes}")]
    WrongResource {
        name: String,
        id: String,
        kind: String,
        takes: &'static str,
    },
    #[error("action {name}: {message}")]
    Params { name: String, message: String },
}

/// One entry of `GET /actions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionInfo {
    pub name: &'static str,
    /// What it runs on: `$any` (messages and events).
    #[serde(rename = "for")]
    pub for_: &'static str,
    /// Resource types it needs (empty: none).
    pub types: Vec<&'static str>,
    pub title: &'static str,
    pub description: &'static str,
    /// Its params: name → `{type, required, default, description}`.
    #[schema(value_type = Object)]
    pub params: Value,
}

/// The action catalogue.
pub fn catalogue() -> Vec<ActionInfo> {
    vec![
        ActionInfo {
            name: "republish",
            for_: "$any",
            types: vec![],
            title: "Republish",
            description: "Publish the rule's output to an MQTT topic of this deployment",
            params: json!({
                "target_topic": {"type": "string", "required": true, "description": "Topic template, e.g. out/${clientid}"},
                "target_qos": {"type": "number", "required": false, "default": 0, "description": "0, 1, 2, or -1 for the input's QoS"},
                "payload_tmpl": {"type": "string", "required": false, "default": "${payload}", "description": "Payload template; empty: the output as JSON"},
                "retain": {"type": "boolean", "required": false, "default": false, "description": "Publish retained"},
            }),
        },
        ActionInfo {
            name: "data_to_webserver",
            for_: "$any",
            types: vec![resource::WEB_HOOK],
            title: "Data to web server",
            description: "Send each output to an HTTP endpoint",
            params: json!({
                "$resource": {"type": "string", "required": true, "description": "A web_hook resource id"},
                "method": {"type": "string", "required": false, "default": "the resource's", "description": "HTTP method"},
                "path": {"type": "string", "required": false, "default": "", "description": "Path template appended to the resource's URL"},
                "headers": {"type": "object", "required": false, "default": {}, "description": "Extra headers (values are templates)"},
                "body": {"type": "string", "required": false, "default": "", "description": "Body template; empty: the output as JSON"},
            }),
        },
        ActionInfo {
            name: "data_to_redis",
            for_: "$any",
            types: vec![resource::REDIS],
            title: "Data to Redis",
            description: "Run a Redis command per output (batches pipelined in MULTI/EXEC)",
            params: json!({
                "$resource": {"type": "string", "required": true, "description": "A backend_redis_single resource id"},
                "cmd": {"type": "string", "required": true, "description": "Command template, arguments split on spaces, e.g. HSET dev:${clientid} temp ${temp}"},
            }),
        },
        ActionInfo {
            name: "data_to_pgsql",
            for_: "$any",
            types: vec![resource::PGSQL],
            title: "Data to PostgreSQL",
            description: "Insert each output (batched into one multi-row INSERT)",
            params: insert_params(resource::PGSQL),
        },
        ActionInfo {
            name: "data_to_mysql",
            for_: "$any",
            types: vec![resource::MYSQL],
            title: "Data to MySQL",
            description:
                "Insert each output into MySQL or MariaDB (batched into one multi-row INSERT)",
            params: insert_params(resource::MYSQL),
        },
        ActionInfo {
            name: "data_to_rabbit",
            for_: "$any",
            types: vec![resource::RABBIT],
            title: "Data to RabbitMQ",
            description: "Publish each output to a RabbitMQ exchange (with publisher confirms)",
            params: json!({
                "$resource": {"type": "string", "required": true, "description": "A bridge_rabbit resource id"},
                "exchange": {"type": "string", "required": true, "description": "Exchange name (declared by the action; \"\" is the default exchange)"},
                "exchange_type": {"type": "string", "required": false, "default": "topic", "description": "direct, fanout, topic or headers"},
                "durable": {"type": "boolean", "required": false, "default": false, "description": "Declare the exchange durable"},
                "routing_key": {"type": "string", "required": false, "default": "", "description": "Routing key template, e.g. devices.${clientid}"},
                "delivery_mode": {"type": "string", "required": false, "default": "non_persistent", "description": "non_persistent or persistent"},
                "payload_tmpl": {"type": "string", "required": false, "default": "", "description": "Payload template; empty: the output as JSON"},
            }),
        },
        ActionInfo {
            name: "data_to_nats",
            for_: "$any",
            types: vec![resource::NATS],
            title: "Data to NATS",
            description:
                "Publish each output on a NATS subject (optionally acknowledged by JetStream)",
            params: json!({
                "$resource": {"type": "string", "required": true, "description": "A bridge_nats resource id"},
                "subject": {"type": "string", "required": true, "description": "Subject template, e.g. devices.${clientid}"},
                "payload_tmpl": {"type": "string", "required": false, "default": "", "description": "Payload template; empty: the output as JSON"},
                "jetstream": {"type": "boolean", "required": false, "default": false, "description": "Publish through JetStream: each message acknowledged by a stream, de-duplicated by message id"},
            }),
        },
        ActionInfo {
            name: "offline_msg_to_redis",
            for_: "$any",
            types: vec![resource::REDIS],
            title: "Offline messages in Redis",
            description:
                "Stores QoS 1/2 messages in Redis; on $events/session_subscribed, delivers \
                the stored messages the new subscription matches to that client and removes them",
            params: json!({
                "$resource": {"type": "string", "required": true, "description": "A backend_redis_single resource id"},
                "ttl": {"type": "number", "required": false, "default": 604800, "description": "Seconds a topic's stored messages live (0: forever)"},
            }),
        },
    ]
}

impl Action {
    /// Prepares action `name` from `params` against the node's resources.
    pub fn prepare(
        name: &str,
        params: &Map<String, Value>,
        resources: &HashMap<String, Arc<Resource>>,
    ) -> Result<Self, ActionError> {
        let bad = |message: String| ActionError::Params {
            name: name.to_owned(),
            message,
        };
        let resource = |takes: &'static str| -> Result<Arc<Resource>, ActionError> {
            let id = match params.get("$resource") {
                Some(Value::String(id)) => id.clone(),
                _ => {
                    return Err(ActionError::MissingResource {
                        name: name.to_owned(),
                    })
                }
            };
            let found = resources
                .get(&id)
                .cloned()
                .ok_or_else(|| ActionError::NoSuchResource {
                    name: name.to_owned(),
                    id: id.clone(),
                })?;
            if found.record.kind != takes {
                return Err(ActionError::WrongResource {
                    name: name.to_owned(),
                    id,
                    kind: found.record.kind.clone(),
                    takes,
                });
            }
            Ok(found)
        };
        Ok(match name {
            "republish" => Self::Republish(republish::Republish::prepare(params).map_err(bad)?),
            "data_to_webserver" => Self::WebHook(
                webhook::WebHook::prepare(params, resource(resource::WEB_HOOK)?).map_err(bad)?,
            ),
            "data_to_redis" => {
                Self::Redis(redis::Redis::prepare(params, resource(resource::REDIS)?).map_err(bad)?)
            }
            "data_to_pgsql" => Self::Insert(
                insert::Insert::prepare(params, resource(resource::PGSQL)?).map_err(bad)?,
            ),
            "data_to_mysql" => Self::Insert(
                insert::Insert::prepare(params, resource(resource::MYSQL)?).map_err(bad)?,
            ),
            "data_to_rabbit" => Self::Rabbit(
                rabbit::Rabbit::prepare(params, resource(resource::RABBIT)?).map_err(bad)?,
            ),
            "data_to_nats" => {
                Self::Nats(nats::Nats::prepare(params, resource(resource::NATS)?).map_err(bad)?)
            }
            "offline_msg_to_redis" => Self::Offline(
                offline::Offline::prepare(params, resource(resource::REDIS)?).map_err(bad)?,
            ),
            other => return Err(ActionError::Unknown(other.to_owned())),
        })
    }

    /// The resource it uses, if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Self::Republish(_) => None,
            Self::WebHook(a) => Some(&a.resource.record.id),
            Self::Redis(a) => Some(&a.resource.record.id),
            Self::Insert(a) => Some(&a.resource.record.id),
            Self::Rabbit(a) => Some(&a.resource.record.id),
            Self::Nats(a) => Some(&a.resource.record.id),
            Self::Offline(a) => Some(&a.resource.record.id),
        }
    }

    /// How many outputs one delivery takes.
    pub fn batch_size(&self) -> usize {
        match self {
            Self::Republish(_) => 100,
            Self::WebHook(_) => 1,
            Self::Redis(_) => 500,
            Self::Insert(a) => a.batch_size,
            Self::Rabbit(_) | Self::Nats(_) => 500,
            Self::Offline(_) => 100,
        }
    }

    /// Delivers `batch` (rule outputs, oldest first; `seqs` their buffer sequence
    /// numbers) as one unit.
    pub async fn deliver(
        &self,
        broker: &Broker,
        batch: &[Map<String, Value>],
        seqs: &[u64],
    ) -> Result<(), Failure> {
        match self {
            Self::Republish(a) => {
                a.deliver(broker, batch).await;
                Ok(())
            }
            Self::WebHook(a) => a.deliver(batch).await,
            Self::Redis(a) => a.deliver(batch).await,
            Self::Insert(a) => a.deliver(batch).await,
            Self::Rabbit(a) => a.deliver(batch).await,
            Self::Nats(a) => a.deliver(batch, seqs).await,
            Self::Offline(a) => a.deliver(broker, batch).await,
        }
    }
}

/// A string param (`default` when absent).
fn param(params: &Map<String, Value>, key: &str, default: &str) -> Result<String, String> {
    resource::string(params, key, Some(default))
}

/// A payload from `template`; an empty template gives the whole output as JSON.
fn payload(template: &Template, output: &Map<String, Value>) -> String {
    if template.is_empty() {
        Value::Object(output.clone()).to_string()
    } else {
        template.render(output)
    }
}

/// The parameters of an SQL insert action on a resource of `resource_type`.
fn insert_params(resource_type: &str) -> serde_json::Value {
    json!({
        "$resource": {"type": "string", "required": true, "description": format!("A {resource_type} resource id")},
        "sql": {"type": "string", "required": true, "description": "INSERT … VALUES (${a}, ${b}) template; values are bound as quoted literals"},
        "batch_size": {"type": "number", "required": false, "default": 100, "description": "Rows per INSERT, 1 to 1000"},
    })
}
