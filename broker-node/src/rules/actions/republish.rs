//! `republish`: the rule's output published again on this deployment. Messages
//! republished here do not run rules again (no loops).

use serde_json::{Map, Value};

use super::{param, payload};
use crate::broker::message::Message;
use crate::broker::Broker;
use crate::mqtt::QoS;
use crate::rules::template::Template;

pub struct Republish {
    topic: Template,
    /// `None`: the input's QoS.
    qos: Option<QoS>,
    payload: Template,
    retain: bool,
}

impl Republish {
    pub fn prepare(params: &Map<String, Value>) -> Result<Self, String> {
        let topic = param(params, "target_topic", "")?;
        if topic.is_empty() {
            return Err("missing target_topic".to_owned());
        }
        if topic.contains(['+', '#']) {
            return Err(format!("target_topic {topic:?} has wildcards"));
        }
        let qos = match params.get("target_qos") {
            None | Some(Value::Null) => Some(QoS::AtMostOnce),
            Some(v) => match v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            {
                Some(-1) => None,
                Some(n @ 0..=2) => QoS::from_u8(n as u8),
                _ => return Err(format!("target_qos must be -1, 0, 1 or 2; got {v}")),
            },
        };
        let retain = match params.get("retain") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => return Err(format!("retain must be a boolean; got {other}")),
        };
        Ok(Self {
            topic: Template::parse(&topic).map_err(|e| format!("target_topic: {e}"))?,
            qos,
            payload: Template::parse(&param(params, "payload_tmpl", "${payload}")?)
                .map_err(|e| format!("payload_tmpl: {e}"))?,
            retain,
        })
    }

    pub async fn deliver(&self, broker: &Broker, batch: &[Map<String, Value>]) {
        let mut ops = Vec::new();
        for output in batch {
            let topic = self.topic.render(output);
            if !crate::mqtt::topic::valid_topic_name(&topic) || topic.starts_with('$') {
                tracing::debug!(%topic, "republish: not a topic name; skipped");
                continue;
            }
            let payload = payload(&self.payload, output);
            let qos = self.qos.unwrap_or_else(|| {
                output
                    .get("qos")
                    .and_then(Value::as_u64)
                    .and_then(|q| QoS::from_u8(q as u8))
                    .unwrap_or(QoS::AtMostOnce)
            });
            let message = Message::published(
                topic,
                payload.into(),
                qos,
                self.retain,
                Default::default(),
                0,
            );
            broker.publish(message, &mut ops);
        }
        broker.commit(ops).await;
    }
}
