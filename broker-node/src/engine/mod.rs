//! The routing engine: rumqttd's router, in process.
//!
//! This is the only module that names rumqttd types. The node owns every MQTT connection
//! and session itself (see `docs/engine.md`); the router only matches topics and fans
//! messages out. It is used as a pure fan-out engine:
//!
//! - every message enters the router at QoS 0 with `retain` off, through one of a few
//!   shared *ingress* links (a publisher always uses the same one, so its messages keep
//!   their order); QoS, retain, properties and the publisher's identity travel in the
//!   payload envelope the broker writes (`broker::message`), which the router never reads;
//! - a session that subscribes gets one *subscriber* link; each of its filters is
//!   subscribed at QoS 0 with a router subscription identifier, so every delivery says
//!   which of the session's subscriptions it matched — except the link's first filter,
//!   whose deliveries come without one: the router allocates a property set for every
//!   delivery it tags, and most sessions hold a single filter;
//! - retained messages, QoS, acknowledgements, sessions and wills stay out of the router:
//!   its own handling of them is what the node replaces.
//!
//! - a message whose topic no subscription matches never enters the router
//!   ([`interest`]).
//!
//! Router link names are recycled (`l0`, `l1`, …): the router keeps per-name metrics
//! forever, so fresh names per session would leak.

mod interest;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use rumqttd::local::{LinkBuilder, LinkError, LinkRx, LinkTx};
use rumqttd::protocol::{
    Filter, Packet, Publish, QoS, RetainForwardRule, Subscribe, SubscribeProperties, Unsubscribe,
};
use rumqttd::{Notification, Router, RouterConfig};

/// How many shared ingress links carry publishes into the router.
const INGRESS_LINKS: usize = 4;

/// Why the engine refused a link.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the routing engine refused a link (connection limit {0} reached?)")]
    Link(usize),
    #[error("the routing engine stopped")]
    Stopped,
    #[error("the routing engine refused a link")]
    Refused,
}

type Connect = dyn Fn(&str) -> Result<(LinkTx, LinkRx), EngineError> + Send + Sync;

/// The router and the node's links to it. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    connect: Box<Connect>,
    ingress: Vec<Mutex<LinkTx>>,
    names: Mutex<Names>,
    interest: RwLock<interest::Interest>,
    max_links: usize,
}

#[derive(Default)]
struct Names {
    free: Vec<u32>,
    next: u32,
}

impl Engine {
    /// Starts the router on its own thread, sized for `max_links` subscriber links.
    pub fn start(max_links: usize) -> Result<Self, EngineError> {
        let max_links = max_links + INGRESS_LINKS;
        let config = RouterConfig {
            max_connections: max_links,
            max_outgoing_packet_count: 200,
            // Every filter's log keeps its latest messages in memory, in segments of
            // 256 KiB of topic and payload bytes (a few thousand messages; the segment's
            // vector of entries grows by doubling, so small segments keep reallocation and
            // page faults cheap), 64 of them: room for a session's task to fall about
            // 16 MiB behind its publishers before the oldest of the backlog is lost.
            // rumqttd's per-filter override cannot single out one filter (it applies to
            // every filter its key matches), so all logs share this.
            max_segment_size: 256 * 1024,
            max_segment_count: 64,
            ..RouterConfig::default()
        };
        let router_tx = Router::new(0, config).spawn();
        let connect: Box<Connect> = Box::new(move |name: &str| {
            let (tx, rx, _ack) = LinkBuilder::new(name, router_tx.clone())
                .clean_session(true)
                .dynamic_filters(false)
                .build()
                .map_err(|e| link_error(&e))?;
            Ok((tx, rx))
        });
        let mut ingress = Vec::with_capacity(INGRESS_LINKS);
        for i in 0..INGRESS_LINKS {
            let (tx, rx) = connect(&format!("ingress-{i}")).map_err(|_| EngineError::Stopped)?;
            // Ingress links never subscribe; their receiving side is not needed.
            drop(rx);
            ingress.push(Mutex::new(tx));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                connect,
                ingress,
                names: Mutex::default(),
                interest: RwLock::default(),
                max_links,
            }),
        })
    }

    /// Routes envelopes (engine topic, payload) to every subscription matching their
    /// topics: several messages of one publisher, in order, waking the router once.
    /// `publisher` picks the ingress link, so one publisher's messages stay in order.
    /// Messages no subscription can match are dropped here.
    pub fn publish_all(
        &self,
        publisher: u64,
        mut messages: Vec<(Bytes, Bytes)>,
    ) -> Result<(), EngineError> {
        {
            let interest = self
                .inner
                .interest
                .read()
                .unwrap_or_else(|e| e.into_inner());
            messages.retain(|(topic, _)| {
                std::str::from_utf8(topic).map_or(true, |topic| interest.matches(topic))
            });
        }
        let Some(last) = messages.len().checked_sub(1) else {
            return Ok(());
        };
        let link = &self.inner.ingress[(publisher % INGRESS_LINKS as u64) as usize];
        let mut link = link.lock().unwrap_or_else(|e| e.into_inner());
        let mut messages = messages.into_iter();
        {
            let mut queued = link.buffer();
            for (topic, payload) in messages.by_ref().take(last) {
                queued.push_back(Packet::Publish(Publish::new(topic, payload, false), None));
            }
        }
        let (topic, payload) = messages.next().expect("the last message");
        // Queuing the last one wakes the router for all of them.
        link_send(
            &mut link,
            Packet::Publish(Publish::new(topic, payload, false), None),
        )
    }

    /// A subscriber link for one session.
    pub fn subscriber(&self) -> Result<(Subscriber, Deliveries), EngineError> {
        let name = {
            let mut names = self.inner.names.lock().unwrap_or_else(|e| e.into_inner());
            names.free.pop().unwrap_or_else(|| {
                names.next += 1;
                names.next - 1
            })
        };
        // The router answers a new link at once; building it blocks on that answer.
        let connect = || (self.inner.connect)(&format!("l{name}"));
        let built = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(connect),
            _ => connect(),
        };
        match built {
            Ok((tx, rx)) => {
                let untagged = Arc::new(AtomicU32::new(0));
                Ok((
                    Subscriber {
                        tx,
                        name,
                        filters: HashSet::new(),
                        untagged: Untagged::Free,
                        untagged_id: untagged.clone(),
                        engine: self.clone(),
                    },
                    Deliveries {
                        rx,
                        cache: Vec::new(),
                        untagged,
                    },
                ))
            }
            Err(_) => {
                self.release(name);
                Err(EngineError::Link(self.inner.max_links))
            }
        }
    }

    fn interest(&self) -> std::sync::RwLockWriteGuard<'_, interest::Interest> {
        self.inner
            .interest
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, name: u32) {
        let mut names = self.inner.names.lock().unwrap_or_else(|e| e.into_inner());
        names.free.push(name);
    }
}

fn filter(path: &str) -> Filter {
    Filter {
        path: path.to_owned(),
        qos: QoS::AtMostOnce,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: RetainForwardRule::Never,
    }
}

/// The router refused a link: it is full (or gone).
fn link_error(error: &LinkError) -> EngineError {
    tracing::warn!(%error, "routing engine refused a link");
    EngineError::Refused
}

fn link_send(link: &mut LinkTx, packet: Packet) -> Result<(), EngineError> {
    // `LinkTx::send` only queues the packet and wakes the router; it never waits on I/O.
    futures::executor::block_on(link.send(packet))
        .map(|_| ())
        .map_err(|_| EngineError::Stopped)
}

/// The sending half of a session's subscriber link: its subscriptions. Closing it (drop)
/// removes the link and its subscriptions from the router.
pub struct Subscriber {
    tx: LinkTx,
    name: u32,
    /// The filters this link holds in the router (engine form).
    filters: HashSet<String>,
    /// Which filter is subscribed without a router subscription identifier.
    untagged: Untagged,
    /// The identifier its deliveries stand for (0: none), shared with [`Deliveries`].
    untagged_id: Arc<AtomicU32>,
    engine: Engine,
}

/// The link's one filter subscribed without an identifier: the first one. Once it is
/// unsubscribed the slot is never reused, so a delivery the router sent for it before the
/// unsubscribe cannot be taken for another subscription's.
enum Untagged {
    Free,
    Filter(String),
    Retired,
}

impl Subscriber {
    /// Subscribes `filter` (engine form); its deliveries carry `id`.
    pub fn subscribe(&mut self, filter_path: &str, id: u32) -> Result<(), EngineError> {
        // Interest first: a message published from now on is not dropped before the
        // router has the subscription.
        if self.filters.insert(filter_path.to_owned()) {
            self.engine.interest().add(filter_path);
        }
        let untagged = match &self.untagged {
            Untagged::Filter(untagged) => untagged == filter_path,
            Untagged::Free => {
                self.untagged = Untagged::Filter(filter_path.to_owned());
                true
            }
            Untagged::Retired => false,
        };
        let properties = if untagged {
            self.untagged_id.store(id, Ordering::Release);
            None
        } else {
            Some(SubscribeProperties {
                id: Some(id as usize),
                user_properties: Vec::new(),
            })
        };
        let subscribe = Subscribe {
            pkid: 1,
            filters: vec![filter(filter_path)],
        };
        link_send(&mut self.tx, Packet::Subscribe(subscribe, properties))
    }

    /// Removes the subscription to `filter` (engine form).
    pub fn unsubscribe(&mut self, filter_path: &str) -> Result<(), EngineError> {
        let unsubscribe = Unsubscribe {
            pkid: 1,
            filters: vec![filter_path.to_owned()],
        };
        let sent = link_send(&mut self.tx, Packet::Unsubscribe(unsubscribe, None));
        if matches!(&self.untagged, Untagged::Filter(f) if f == filter_path) {
            self.untagged = Untagged::Retired;
            self.untagged_id.store(0, Ordering::Release);
        }
        if self.filters.remove(filter_path) {
            self.engine.interest().remove(filter_path);
        }
        sent
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let disconnect = rumqttd::protocol::Disconnect {
            reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
        };
        let _ = link_send(&mut self.tx, Packet::Disconnect(disconnect, None));
        if !self.filters.is_empty() {
            let mut interest = self.engine.interest();
            for filter in self.filters.drain() {
                interest.remove(&filter);
            }
        }
        // The router handles events in order: this name's next link comes after the
        // disconnect above.
        self.engine.release(self.name);
    }
}

/// One message the router delivered to a subscriber link.
#[derive(Debug)]
pub struct Delivery {
    /// The engine's form of the topic.
    pub topic: Bytes,
    /// The envelope as published.
    pub payload: Bytes,
    /// The identifier of the subscription it matched.
    pub subscription: u32,
}

/// The receiving half of a session's subscriber link.
pub struct Deliveries {
    rx: LinkRx,
    cache: Vec<Delivery>,
    /// The subscription that deliveries without an identifier matched (0: none).
    untagged: Arc<AtomicU32>,
}

impl Deliveries {
    /// Waits for the next batch of deliveries and moves it into `out`; `false` once the
    /// link is gone.
    pub async fn next_batch(&mut self, out: &mut Vec<Delivery>) -> bool {
        loop {
            match self.rx.next().await {
                Ok(Some(notification)) => {
                    self.take(notification);
                    // Whatever else the router already handed over, without waiting (a
                    // deadline already past; one clock read for the whole batch).
                    let now = std::time::Instant::now();
                    while let Ok(Some(more)) = self.rx.recv_deadline(now) {
                        self.take(more);
                    }
                    if !self.cache.is_empty() {
                        out.append(&mut self.cache);
                        return true;
                    }
                }
                Ok(None) => {}
                Err(_) => return false,
            }
        }
    }

    fn take(&mut self, notification: Notification) {
        match notification {
            Notification::Forward(forward) => {
                let subscription = match forward
                    .properties
                    .as_ref()
                    .and_then(|p| p.subscription_identifiers.first())
                {
                    Some(&id) => id as u32,
                    None => self.untagged.load(Ordering::Acquire),
                };
                self.cache.push(Delivery {
                    topic: forward.publish.topic,
                    payload: forward.publish.payload,
                    subscription,
                });
            }
            Notification::Unschedule => {
                // The router paused this link because its buffer filled; ask for more.
                let _ = self.rx.ready();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next(deliveries: &mut Deliveries) -> Vec<(String, u32)> {
        let mut batch = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            deliveries.next_batch(&mut batch),
        )
        .await
        .expect("a delivery");
        let mut got: Vec<(String, u32)> = batch
            .into_iter()
            .map(|d| (String::from_utf8(d.topic.to_vec()).unwrap(), d.subscription))
            .collect();
        got.sort();
        got
    }

    /// Every delivery names the subscription it matched, the untagged first filter's
    /// included, and a retired untagged slot is never handed to another filter.
    #[tokio::test(flavor = "multi_thread")]
    async fn deliveries_name_their_subscription() {
        let engine = Engine::start(8).unwrap();
        let (mut subscriber, mut deliveries) = engine.subscriber().unwrap();
        subscriber.subscribe("a/#", 1).unwrap();
        subscriber.subscribe("a/b", 2).unwrap();
        // The router handles every link's packets in the order they reach it: the
        // subscriptions come before the publish.
        let message = |topic: &str| (Bytes::from(topic.to_owned()), Bytes::from_static(b"x"));
        engine.publish_all(1, vec![message("a/b")]).unwrap();
        let mut got = next(&mut deliveries).await;
        while got.len() < 2 {
            got.extend(next(&mut deliveries).await);
            got.sort();
        }
        assert_eq!(got, [("a/b".to_owned(), 1), ("a/b".to_owned(), 2)]);

        subscriber.unsubscribe("a/#").unwrap();
        subscriber.subscribe("x/#", 3).unwrap();
        engine
            .publish_all(1, vec![message("a/c"), message("x/1")])
            .unwrap();
        assert_eq!(next(&mut deliveries).await, [("x/1".to_owned(), 3)]);
    }
}
