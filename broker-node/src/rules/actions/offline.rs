//! `offline_msg_to_redis`: EMQX's offline-message staging. On a message input
//! (`message.publish`, QoS 1 or 2) the message is appended to the Redis list
//! `mqtt:offline:<topic>` (and the topic to the set `mqtt:offline:topics`). On a
//! `session.subscribed` input, the stored messages of every topic the new subscription's
//! filter matches are queued for that client's session, then removed from Redis: a
//! message is removed once the session has it (for a persistent session, in the node's
//! session store). `docs/integrations.md` has the two rules to create.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::Failure;
use crate::broker::message::Message;
use crate::broker::registry::{Command, CommandError};
use crate::broker::Broker;
use crate::mqtt::QoS;
use crate::rules::resource::Resource;

/// Set of the topics that have stored messages.
const TOPICS: &str = "mqtt:offline:topics";

fn list_key(topic: &str) -> String {
    format!("mqtt:offline:{topic}")
}

pub struct Offline {
    pub resource: Arc<Resource>,
    /// Seconds a stored message list lives (0: forever).
    ttl: u64,
}

impl Offline {
    pub fn prepare(params: &Map<String, Value>, resource: Arc<Resource>) -> Result<Self, String> {
        let ttl = crate::rules::resource::unsigned(params, "ttl", 7 * 24 * 3600)?;
        Ok(Self { resource, ttl })
    }

    pub async fn deliver(
        &self,
        broker: &Broker,
        batch: &[Map<String, Value>],
    ) -> Result<(), Failure> {
        let mut conn = self.resource.redis().await.map_err(Failure::retry)?;
        let failed = |e: redis::RedisError| {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_connection_refusal()
            {
                Failure::retry(self.resource.redis_failed(e))
            } else {
                Failure::refused(format!("Redis: {e}"))
            }
        };
        for output in batch {
            let text = |k: &str| {
                output
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            match output.get("event").and_then(Value::as_str) {
                Some("message.publish") => {
                    let qos = output.get("qos").and_then(Value::as_u64).unwrap_or(0);
                    if qos == 0 {
                        continue;
                    }
                    let topic = text("topic");
                    let stored = json!({
                        "id": text("id"),
                        "topic": topic,
                        "qos": qos,
                        "payload": base64::engine::general_purpose::STANDARD.encode(text("payload")),
                        "ts": output.get("timestamp"),
                    });
                    let mut pipe = redis::pipe();
                    pipe.atomic()
                        .rpush(list_key(&topic), stored.to_string())
                        .ignore()
                        .sadd(TOPICS, &topic)
                        .ignore();
                    if self.ttl > 0 {
                        pipe.expire(list_key(&topic), self.ttl as i64).ignore();
                    }
                    pipe.query_async::<()>(&mut conn).await.map_err(failed)?;
                }
                Some("session.subscribed") => {
                    let (client_id, filter) = (text("clientid"), text("topic"));
                    let topics: Vec<String> = redis::cmd("SMEMBERS")
                        .arg(TOPICS)
                        .query_async(&mut conn)
                        .await
                        .map_err(failed)?;
                    for topic in topics
                        .iter()
                        .filter(|t| crate::mqtt::topic::matches(t, &filter))
                    {
                        let key = list_key(topic);
                        let rows: Vec<String> = redis::cmd("LRANGE")
                            .arg(&key)
                            .arg(0)
                            .arg(-1)
                            .query_async(&mut conn)
                            .await
                            .map_err(failed)?;
                        if rows.is_empty() {
                            continue;
                        }
                        let messages = rows.iter().filter_map(|row| stored_message(row)).collect();
                        let delivered = broker
                            .clients
                            .command(&client_id, |reply| Command::Deliver {
                                filter: filter.clone(),
                                messages,
                                reply,
                            })
                            .await;
                        match delivered {
                            Ok(codes) if !codes.is_empty() => {
                                // Only the rows delivered: messages stored meanwhile stay.
                                redis::cmd("LTRIM")
                                    .arg(&key)
                                    .arg(rows.len())
                                    .arg(-1)
                                    .query_async::<()>(&mut conn)
                                    .await
                                    .map_err(failed)?;
                            }
                            // The client left or unsubscribed: the messages stay for later.
                            Ok(_)
                            | Err(CommandError::NotConnected)
                            | Err(CommandError::NoAnswer) => {}
                        }
                    }
                }
                _ => {
                    return Err(Failure::refused(
                        "offline_msg_to_redis takes messages and $events/session_subscribed \
                         (SELECT * keeps the event field it needs)",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A message stored by [`Offline::deliver`].
fn stored_message(row: &str) -> Option<Message> {
    let value: Value = serde_json::from_str(row).ok()?;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(value["payload"].as_str()?)
        .ok()?;
    Some(Message::published(
        value["topic"].as_str()?.to_owned(),
        payload.into(),
        QoS::from_u8(value["qos"].as_u64()? as u8)?,
        false,
        Default::default(),
        0,
    ))
}
