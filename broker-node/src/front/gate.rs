//! Per-connection authorization of the packets a client sends.
//!
//! The engine never sees what the ACL refuses: a denied PUBLISH is answered by the front
//! (v5: reason code 0x87 in PUBACK/PUBREC; v3.1.1: a plain acknowledgement, or a
//! disconnect when the deployment asks for it) and dropped; a SUBSCRIBE is trimmed to its
//! allowed filters and the engine's SUBACK is widened back, with 0x80 (v3.1.1) or 0x87
//! (v5) for each refused filter.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::events::{self, Events};
use super::packet::{self, kind, reason, Publish, Subscribe};
use super::proxy::Version;
use crate::security::{Action, ClientInfo, Security};

/// What to do with one packet from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Pass it to the engine unchanged.
    Forward,
    /// Pass these bytes to the engine instead.
    Replace(Vec<u8>),
    /// Drop it and send these bytes (possibly none) to the client.
    Answer(Vec<u8>),
    /// Drop it, send these bytes to the client, then close the connection.
    Close(Vec<u8>),
}

/// One client connection's authorization state.
pub struct Gate {
    security: Security,
    /// The tier's publish rate, shared by the node's connections.
    throttle: Option<std::sync::Arc<super::proxy::Throttle>>,
    events: Events,
    subscriptions: super::clients::Subscriptions,
    client: ClientInfo,
    version: Version,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// v5 topic aliases the client set up (alias → topic).
    aliases: HashMap<u16, Vec<u8>>,
    /// SUBSCRIBEs sent to the engine trimmed: for each of the client's filters, `None`
    /// if the engine saw it, else the code refusing it.
    trimmed: HashMap<u16, Vec<Option<u8>>>,
    /// QoS 2 PUBLISHes refused but acknowledged with PUBREC (v3.1.1): their PUBREL is
    /// answered here, as the engine never saw them.
    refused_qos2: HashSet<u16>,
    /// Whether the client subscribed to `$events/…` (deliveries under the internal
    /// prefix reach it renamed; other connections never see them).
    events: bool,
    /// Whether the client said goodbye with DISCONNECT.
    disconnected: bool,
    /// SUBSCRIBEs and UNSUBSCRIBEs the node sent in the client's name (deployment API),
    /// by packet id: their acknowledgements go to the API, never to the client.
    injected: HashMap<u16, tokio::sync::oneshot::Sender<Vec<u8>>>,
    /// Saved messages delivered after a restart, by packet id (QoS): the client's
    /// acknowledgements end here, as the engine never sent them.
    delivered: HashMap<u16, u8>,
    /// The packet id the next injected packet tries first. Injected ids count down from
    /// 65535 while clients usually count up from 1, so the two rarely meet; an id in
    /// flight either way is never reused here.
    next_injected: u16,
}

impl State {
    /// A packet id for a packet of the node's own on this connection.
    fn node_pkid(&mut self) -> u16 {
        let mut pkid = if self.next_injected == 0 {
            u16::MAX
        } else {
            self.next_injected
        };
        while self.injected.contains_key(&pkid)
            || self.trimmed.contains_key(&pkid)
            || self.delivered.contains_key(&pkid)
        {
            pkid = pkid.checked_sub(1).filter(|p| *p > 0).unwrap_or(u16::MAX);
        }
        self.next_injected = pkid.checked_sub(1).filter(|p| *p > 0).unwrap_or(u16::MAX);
        pkid
    }
}

impl Gate {
    pub fn new(
        security: Security,
        client: ClientInfo,
        version: Version,
        throttle: Option<std::sync::Arc<super::proxy::Throttle>>,
        events: Events,
        subscriptions: super::clients::Subscriptions,
    ) -> Self {
        Self {
            security,
            throttle,
            events,
            subscriptions,
            client,
            version,
            state: Mutex::new(State::default()),
        }
    }

    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// Whether the client ended with a DISCONNECT of its own.
    pub fn said_goodbye(&self) -> bool {
        self.state().disconnected
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides a packet from the client.
    pub async fn inbound(&self, packet: &[u8]) -> Inbound {
        match packet::packet_kind(packet) {
            kind::PUBLISH => self.publish(packet).await,
            kind::SUBSCRIBE => self.subscribe(packet).await,
            kind::UNSUBSCRIBE => self.unsubscribe(packet),
            kind::DISCONNECT => {
                self.state().disconnected = true;
                Inbound::Forward
            }
            kind::PUBACK | kind::PUBREC | kind::PUBCOMP => self
                .saved_ack(packet::packet_kind(packet), packet)
                .unwrap_or(Inbound::Forward),
            kind::PUBREL => {
                let pkid = packet::pkid_of(packet);
                match pkid {
                    Some(pkid) if self.state().refused_qos2.remove(&pkid) => {
                        Inbound::Answer(packet::ack(kind::PUBCOMP, pkid, self.version, 0))
                    }
                    _ => Inbound::Forward,
                }
            }
            _ => Inbound::Forward,
        }
    }

    /// Rewrites a packet from the engine when it answers something the gate changed;
    /// an empty answer drops the packet.
    pub fn outbound(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let packet_kind = packet::packet_kind(packet);
        if packet_kind == kind::PUBLISH {
            let public = events::to_public(packet::publish_topic(packet)?)?;
            if !self.state().events {
                return Some(Vec::new());
            }
            return packet::with_topic(packet, &public);
        }
        if packet_kind != kind::SUBACK && packet_kind != kind::UNSUBACK {
            return None;
        }
        let mut state = self.state();
        if !state.injected.is_empty() {
            let pkid = packet::pkid_of(packet)?;
            if let Some(reply) = state.injected.remove(&pkid) {
                let _ = reply.send(packet::ack_codes(packet, self.version).unwrap_or_default());
                return Some(Vec::new());
            }
        }
        if packet_kind != kind::SUBACK || state.trimmed.is_empty() {
            return None;
        }
        let codes = state.trimmed.remove(&packet::pkid_of(packet)?)?;
        packet::splice_suback(packet, self.version, &codes)
    }

    /// The packet carrying out an API command in the client's name (the ACL does not
    /// apply: the deployment owner asked), remembering where its answer goes.
    pub fn command(&self, command: super::clients::Command) -> Vec<u8> {
        use super::clients::Command;
        let mut state = self.state();
        let pkid = state.node_pkid();
        let (bytes, reply) = match command {
            Command::Subscribe { filters, reply } => {
                let mut entries = Vec::with_capacity(filters.len());
                for (filter, qos) in &filters {
                    self.events.subscribed(&self.client, filter, *qos);
                    self.subscriptions
                        .subscribed(&self.client.client_id, filter, *qos);
                    let engine_filter = match events::to_internal(filter) {
                        Some(internal) => {
                            state.events = true;
                            internal
                        }
                        None => filter.clone(),
                    };
                    entries.push((engine_filter, Some(*qos)));
                }
                let entries: Vec<(&str, Option<u8>)> =
                    entries.iter().map(|(f, q)| (f.as_str(), *q)).collect();
                (
                    packet::subscription_request(pkid, self.version, &entries),
                    reply,
                )
            }
            Command::Unsubscribe { filters, reply } => {
                let mut entries = Vec::with_capacity(filters.len());
                for filter in &filters {
                    self.events.unsubscribed(&self.client, filter);
                    self.subscriptions
                        .unsubscribed(&self.client.client_id, filter);
                    entries.push(events::to_internal(filter).unwrap_or_else(|| filter.clone()));
                }
                let entries: Vec<(&str, Option<u8>)> =
                    entries.iter().map(|f| (f.as_str(), None)).collect();
                (
                    packet::subscription_request(pkid, self.version, &entries),
                    reply,
                )
            }
        };
        state.injected.insert(pkid, reply);
        bytes
    }

    /// The PUBLISH delivering a message saved across a restart (see [`crate::sessions`]),
    /// with a packet id of the node's whose acknowledgements the gate answers.
    pub fn saved_delivery(&self, message: &crate::publisher::Message) -> Vec<u8> {
        let pkid = (message.qos > 0).then(|| {
            let mut state = self.state();
            let pkid = state.node_pkid();
            state.delivered.insert(pkid, message.qos);
            pkid
        });
        packet::publish(
            &message.topic,
            &message.payload,
            message.qos,
            message.retain,
            pkid,
            self.version,
        )
    }

    /// The client's acknowledgement of a saved message: answered here.
    fn saved_ack(&self, packet_kind: u8, packet: &[u8]) -> Option<Inbound> {
        let pkid = packet::pkid_of(packet)?;
        let mut state = self.state();
        let qos = *state.delivered.get(&pkid)?;
        Some(match (packet_kind, qos) {
            (kind::PUBACK, 1) | (kind::PUBCOMP, 2) => {
                state.delivered.remove(&pkid);
                Inbound::Answer(Vec::new())
            }
            (kind::PUBREC, 2) => Inbound::Answer(packet::ack(kind::PUBREL, pkid, self.version, 0)),
            _ => return None,
        })
    }

    async fn publish(&self, packet: &[u8]) -> Inbound {
        let Some(publish) = Publish::parse(packet, self.version) else {
            // Malformed: let the engine refuse it by the protocol's rules.
            return Inbound::Forward;
        };
        let topic = match (publish.topic, publish.topic_alias) {
            (topic, Some(alias)) if !topic.is_empty() => {
                self.state().aliases.insert(alias, topic.to_vec());
                topic.to_vec()
            }
            (topic, None) => topic.to_vec(),
            (_, Some(alias)) => match self.state().aliases.get(&alias) {
                Some(topic) => topic.clone(),
                None => return Inbound::Forward, // unknown alias: a protocol error
            },
        };
        let topic = String::from_utf8_lossy(&topic);
        if topic.is_empty() || topic.contains(['+', '#', '\0']) {
            // A protocol violation (MQTT 4.7.1, 3.3.2.1) that rumqttd would route as is.
            tracing::debug!(client_id = %self.client.client_id, %topic, "invalid topic name; closing");
            return Inbound::Close(match self.version {
                Version::V5 => packet::disconnect(reason::TOPIC_NAME_INVALID),
                Version::V3_1 | Version::V3_1_1 => Vec::new(),
            });
        }
        // Only the broker publishes events.
        if !events::is_reserved(&topic)
            && self
                .security
                .authorize(&self.client, Action::Publish, &topic)
                .await
        {
            if let Some(throttle) = &self.throttle {
                // Over the tier's rate, wait: the client's further packets stay unread.
                throttle.until_ready().await;
            }
            return Inbound::Forward;
        }
        tracing::debug!(client_id = %self.client.client_id, %topic, "publish denied");
        let v5 = self.version == Version::V5;
        let answer = match (publish.qos, publish.pkid) {
            (1, Some(pkid)) => {
                packet::ack(kind::PUBACK, pkid, self.version, reason::NOT_AUTHORIZED)
            }
            (2, Some(pkid)) => {
                if !v5 {
                    self.state().refused_qos2.insert(pkid);
                }
                packet::ack(kind::PUBREC, pkid, self.version, reason::NOT_AUTHORIZED)
            }
            _ => Vec::new(),
        };
        if self.security.settings().authorization.disconnect_on_deny {
            return Inbound::Close(if v5 {
                packet::disconnect(reason::NOT_AUTHORIZED)
            } else {
                Vec::new()
            });
        }
        Inbound::Answer(answer)
    }

    async fn subscribe(&self, packet: &[u8]) -> Inbound {
        let Some(subscribe) = Subscribe::parse(packet, self.version) else {
            return Inbound::Forward;
        };
        // For each filter: `None` goes to the engine, `Some(code)` is refused here.
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        for (filter, _) in &subscribe.filters {
            let judged = shared_topic(filter);
            let code = if crate::security::topic::validate_filter(judged).is_err() {
                // rumqttd does not check filters: a malformed one would be stored as is.
                tracing::debug!(client_id = %self.client.client_id, %filter, "invalid topic filter");
                Some(match self.version {
                    Version::V5 => reason::TOPIC_FILTER_INVALID,
                    Version::V3_1 | Version::V3_1_1 => reason::V3_SUBACK_FAILURE,
                })
            } else if !judged.starts_with(events::INTERNAL)
                && self
                    .security
                    .authorize(&self.client, Action::Subscribe, judged)
                    .await
            {
                None
            } else {
                tracing::debug!(client_id = %self.client.client_id, %filter, "subscribe denied");
                Some(self.refused_filter_code())
            };
            codes.push(code);
        }
        let keep: Vec<bool> = codes.iter().map(Option::is_none).collect();
        if keep.iter().all(|k| !*k) {
            let refused: Vec<u8> = codes.iter().flatten().copied().collect();
            return Inbound::Answer(packet::suback_refusing(
                subscribe.pkid,
                self.version,
                &refused,
            ));
        }
        let mut renamed = false;
        for ((filter, range), allowed) in subscribe.filters.iter().zip(&keep) {
            if *allowed {
                let qos = packet[range.end - 1] & 0x03;
                self.events.subscribed(&self.client, filter, qos);
                self.subscriptions
                    .subscribed(&self.client.client_id, filter, qos);
                if events::to_internal(filter).is_some() {
                    renamed = true;
                    self.state().events = true;
                }
            }
        }
        let trimmed = !keep.iter().all(|k| *k);
        if !trimmed && !renamed {
            return Inbound::Forward;
        }
        let rewritten = subscribe.rewrite_entries(packet, &keep, events::to_internal);
        if trimmed {
            self.state().trimmed.insert(subscribe.pkid, codes);
        }
        Inbound::Replace(rewritten)
    }

    fn unsubscribe(&self, packet: &[u8]) -> Inbound {
        let Some((renamed, filters)) =
            packet::rename_unsubscribe(packet, self.version, events::to_internal)
        else {
            return Inbound::Forward;
        };
        for filter in &filters {
            self.events.unsubscribed(&self.client, filter);
            self.subscriptions
                .unsubscribed(&self.client.client_id, filter);
        }
        match renamed {
            Some(renamed) => Inbound::Replace(renamed),
            None => Inbound::Forward,
        }
    }

    fn refused_filter_code(&self) -> u8 {
        match self.version {
            Version::V5 => reason::NOT_AUTHORIZED,
            Version::V3_1 | Version::V3_1_1 => reason::V3_SUBACK_FAILURE,
        }
    }
}

/// The topic filter a shared subscription (`$share/<group>/<filter>`, `$queue/<filter>`)
/// subscribes to: what the ACL judges.
fn shared_topic(filter: &str) -> &str {
    if let Some(rest) = filter.strip_prefix("$share/") {
        rest.split_once('/').map_or(rest, |(_, topic)| topic)
    } else {
        filter.strip_prefix("$queue/").unwrap_or(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_subscriptions_are_judged_by_their_filter() {
        assert_eq!(shared_topic("$share/g1/a/b"), "a/b");
        assert_eq!(shared_topic("$queue/a/#"), "a/#");
        assert_eq!(shared_topic("a/+"), "a/+");
    }
}
