//! `data_to_rabbit`: each output published to a RabbitMQ exchange with a routing key
//! template; a batch is published, then every publisher confirm awaited, so a batch
//! counts as delivered only once the broker has taken all of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use serde_json::{Map, Value};

use super::{param, payload, Failure};
use crate::rules::resource::{self, Connection, Resource};

/// How long a batch's publisher confirms may take before the connection is given up.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
use crate::rules::template::Template;

pub struct Rabbit {
    pub resource: Arc<Resource>,
    exchange: String,
    kind: ExchangeKind,
    durable: bool,
    routing_key: Template,
    payload: Template,
    persistent: bool,
    /// The connection generation the exchange was last declared on (0: never).
    declared: AtomicU64,
}

impl Rabbit {
    pub fn prepare(params: &Map<String, Value>, resource: Arc<Resource>) -> Result<Self, String> {
        let exchange = param(params, "exchange", "")?;
        let kind = match param(params, "exchange_type", "topic")?.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            other => {
                return Err(format!(
                    "exchange_type must be direct, fanout, topic or headers; got {other:?}"
                ))
            }
        };
        let persistent = match param(params, "delivery_mode", "non_persistent")?.as_str() {
            "non_persistent" => false,
            "persistent" => true,
            other => {
                return Err(format!(
                    "delivery_mode must be non_persistent or persistent; got {other:?}"
                ))
            }
        };
        Ok(Self {
            resource,
            exchange,
            kind,
            durable: resource::boolean(params, "durable", false)?,
            routing_key: Template::parse(&param(params, "routing_key", "")?)
                .map_err(|e| format!("routing_key: {e}"))?,
            payload: Template::parse(&param(params, "payload_tmpl", "")?)
                .map_err(|e| format!("payload_tmpl: {e}"))?,
            persistent,
            declared: AtomicU64::new(0),
        })
    }

    pub async fn deliver(&self, batch: &[Map<String, Value>]) -> Result<(), Failure> {
        let Connection::Rabbit(amqp) = &self.resource.conn else {
            return Err(Failure::refused("not a bridge_rabbit resource"));
        };
        let (channel, generation) = amqp.channel().await.map_err(Failure::retry)?;
        // A connection that stalls without breaking must not hold the batch forever.
        match tokio::time::timeout(CONFIRM_TIMEOUT, self.publish(&channel, generation, batch)).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::retry(amqp.failed(e).await)),
            Err(_) => Err(Failure::retry(
                amqp.failed("no publisher confirms within 30 s").await,
            )),
        }
    }

    /// Publishes `batch` on `channel` and waits for every confirm.
    async fn publish(
        &self,
        channel: &lapin::Channel,
        generation: u64,
        batch: &[Map<String, Value>],
    ) -> Result<(), String> {
        // The default exchange ("") exists always and cannot be declared.
        if !self.exchange.is_empty() && self.declared.load(Ordering::Relaxed) != generation {
            let options = ExchangeDeclareOptions {
                durable: self.durable,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    &self.exchange,
                    self.kind.clone(),
                    options,
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("declaring exchange {:?}: {e}", self.exchange))?;
            self.declared.store(generation, Ordering::Relaxed);
        }
        let mut properties = BasicProperties::default();
        if self.payload.is_empty() {
            properties = properties.with_content_type("application/json".into());
        }
        if self.persistent {
            properties = properties.with_delivery_mode(2);
        }
        let mut confirms = Vec::with_capacity(batch.len());
        for output in batch {
            let confirm = channel
                .basic_publish(
                    &self.exchange,
                    &self.routing_key.render(output),
                    BasicPublishOptions::default(),
                    payload(&self.payload, output).as_bytes(),
                    properties.clone(),
                )
                .await
                .map_err(|e| e.to_string())?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            if confirm.await.map_err(|e| e.to_string())?.is_nack() {
                return Err("the broker refused a message (nack)".to_owned());
            }
        }
        Ok(())
    }
}
