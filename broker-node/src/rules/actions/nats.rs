//! `data_to_nats`: each output published on a NATS subject template. Core NATS: a batch
//! is published and flushed. JetStream (`jetstream: true`): every message is
//! acknowledged by the stream, and carries a `Nats-Msg-Id` so a batch sent again after a
//! lost answer is stored once (within the stream's duplicate window).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use serde_json::{Map, Value};

use super::{param, payload, Failure};
use crate::rules::resource::{self, Connection, Resource};
use crate::rules::template::Template;

/// How long JetStream may take to acknowledge a message.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Nats {
    pub resource: Arc<Resource>,
    subject: Template,
    payload: Template,
    jetstream: bool,
    /// Makes message ids unique to this action while it runs (buffer sequence numbers
    /// alone start again after a restart with an empty buffer).
    nonce: u64,
}

impl Nats {
    pub fn prepare(params: &Map<String, Value>, resource: Arc<Resource>) -> Result<Self, String> {
        let subject = param(params, "subject", "")?;
        if subject.is_empty() {
            return Err("missing subject".to_owned());
        }
        Ok(Self {
            resource,
            subject: Template::parse(&subject).map_err(|e| format!("subject: {e}"))?,
            payload: Template::parse(&param(params, "payload_tmpl", "")?)
                .map_err(|e| format!("payload_tmpl: {e}"))?,
            jetstream: resource::boolean(params, "jetstream", false)?,
            nonce: rand::random(),
        })
    }

    /// Delivers `batch`; `seqs` are the outputs' buffer sequence numbers.
    pub async fn deliver(&self, batch: &[Map<String, Value>], seqs: &[u64]) -> Result<(), Failure> {
        let Connection::Nats(nats) = &self.resource.conn else {
            return Err(Failure::refused("not a bridge_nats resource"));
        };
        let client = nats.connected().await.map_err(Failure::retry)?;
        let messages = batch.iter().zip(seqs).filter_map(|(output, seq)| {
            let subject = self.subject.render(output);
            if !valid_subject(&subject) {
                tracing::debug!(%subject, "data_to_nats: not a subject; skipped");
                return None;
            }
            Some((subject, payload(&self.payload, output), *seq))
        });
        if !self.jetstream {
            for (subject, payload, _) in messages {
                client
                    .publish(subject, payload.into())
                    .await
                    .map_err(|e| Failure::retry(format!("NATS: {e}")))?;
            }
            return client
                .flush()
                .await
                .map_err(|e| Failure::retry(format!("NATS: {e}")));
        }
        let mut context = jetstream::new(client);
        context.set_timeout(ACK_TIMEOUT);
        let mut acks = Vec::with_capacity(batch.len());
        for (subject, payload, seq) in messages {
            let message = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("skyport-{:016x}-{seq}", self.nonce));
            acks.push(
                context
                    .send_publish(subject, message)
                    .await
                    .map_err(jetstream_failure)?,
            );
        }
        for ack in acks {
            ack.await.map_err(jetstream_failure)?;
        }
        Ok(())
    }
}

/// No stream takes the subject: a configuration error, not retried; anything else
/// (timeouts, a broken connection) is.
fn jetstream_failure(e: jetstream::context::PublishError) -> Failure {
    match e.kind() {
        jetstream::context::PublishErrorKind::StreamNotFound => {
            Failure::refused(format!("NATS JetStream: {e}"))
        }
        _ => Failure::retry(format!("NATS JetStream: {e}")),
    }
}

/// A subject one can publish on: dot-separated non-empty tokens, no wildcards, no
/// whitespace.
fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">" && !t.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::valid_subject;

    #[test]
    fn subjects_are_checked() {
        assert!(valid_subject("a.b-c.d"));
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a"] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
    }
}
