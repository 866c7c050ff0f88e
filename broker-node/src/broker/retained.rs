//! Retained messages [MQTT-3.3.1-5..-8]: the last retained message per topic, kept in
//! memory for matching and in the session store across restarts.

use std::collections::HashMap;
use std::sync::RwLock;

use super::message::{now_ms, Message};
use crate::mqtt::topic::matches;
use crate::store::Op;

#[derive(Default)]
pub struct Retained {
    messages: RwLock<HashMap<String, Message>>,
}

impl Retained {
    /// Records a message published with RETAIN: an empty payload removes the topic's
    /// retained message, anything else replaces it.
    pub fn set(&self, message: &Message, ops: &mut Vec<Op>) {
        let mut messages = self.messages.write().unwrap_or_else(|e| e.into_inner());
        if message.payload.is_empty() {
            if messages.remove(&*message.topic).is_some() {
                ops.push(Op::DeleteRetained {
                    topic: message.topic.to_string(),
                });
            }
        } else {
            let mut kept = message.clone();
            kept.inbound = None;
            ops.push(Op::PutRetained {
                topic: kept.topic.to_string(),
                message: kept.to_stored(),
            });
            messages.insert(kept.topic.to_string(), kept);
        }
    }

    /// A retained message read back from the store.
    pub fn restore(&self, topic: String, message: Message) {
        self.messages
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic, message);
    }

    /// The unexpired retained messages matching `filter`.
    pub fn matching(&self, filter: &str) -> Vec<Message> {
        let now = now_ms();
        self.messages
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|m| !m.expired(now) && matches(&m.topic, filter))
            .cloned()
            .collect()
    }
}
