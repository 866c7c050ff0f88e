//! A session whose client is away: its task keeps taking the session's deliveries into
//! its queue, publishes the will when the Will Delay Interval passes, and ends the session
//! when it expires — unless a connection claims it first.

use std::time::Duration;

use tokio::time::Instant;

use super::message::Message;
use super::session::{Accepted, Session};
use super::{Broker, Claim, Control};
use crate::engine::{Delivery, EngineError};
use crate::store::Op;

/// A will waiting for its delay to pass [MQTT-3.1.3-9].
#[derive(Debug)]
pub struct PendingWill {
    pub message: Message,
    pub due: Instant,
}

/// Gives `session` a link to the engine with its subscriptions, if it has any and no link.
pub fn attach_engine(broker: &Broker, session: &mut Session) -> Result<(), EngineError> {
    if session.subscriber.is_some() || session.subscriptions.is_empty() {
        return Ok(());
    }
    let (mut subscriber, deliveries) = broker.engine.subscriber()?;
    for (id, subscription) in &session.subscriptions {
        subscriber.subscribe(&super::message::engine_filter(&subscription.filter), *id)?;
    }
    session.subscriber = Some(subscriber);
    session.deliveries = Some(deliveries);
    Ok(())
}

/// Waits for the next batch of deliveries on the session's link (forever without one).
pub async fn next_deliveries(session: &mut Session, out: &mut Vec<Delivery>) -> bool {
    match session.deliveries.as_mut() {
        Some(deliveries) => deliveries.next_batch(out).await,
        None => std::future::pending().await,
    }
}

/// Offers a batch of deliveries to `session`, counting and announcing what the full queue
/// drops; returns the store operations to write.
pub fn take_deliveries(
    broker: &Broker,
    session: &mut Session,
    batch: &mut Vec<Delivery>,
    online: bool,
) -> Vec<Op> {
    let limit = broker.security.settings().sessions.max_queued_messages;
    let mut ops = Vec::new();
    for delivery in batch.drain(..) {
        let Some(topic) = super::message::public_topic(&delivery.topic) else {
            continue;
        };
        let Some(message) = Message::from_envelope(topic, delivery.payload) else {
            continue;
        };
        if let Accepted::DroppedOldest(dropped) =
            session.accept(message, delivery.subscription, online, limit, &mut ops)
        {
            broker.meter.dropped(1);
            broker.events.message_dropped(&session.client_id, &dropped);
        }
    }
    ops
}

/// Parks `session` for `expires_in`, with an optional will to publish after its delay.
pub fn park(
    broker: Broker,
    session: Box<Session>,
    claim: Claim,
    will: Option<PendingWill>,
    expires_in: Duration,
) {
    tokio::spawn(run(broker, session, claim, will, expires_in));
}

async fn run(
    broker: Broker,
    mut session: Box<Session>,
    claim: Claim,
    mut will: Option<PendingWill>,
    expires_in: Duration,
) {
    let expires = Instant::now() + expires_in;
    let mut batch = Vec::new();
    loop {
        let will_due = will.as_ref().map(|w| w.due);
        tokio::select! {
            alive = next_deliveries(&mut session, &mut batch) => {
                if !alive {
                    session.deliveries = None;
                    continue;
                }
                let ops = take_deliveries(&broker, &mut session, &mut batch, false);
                broker.store.write(ops);
            }
            control = claim.control.recv_async() => match control.ok() {
                Some(Control::Takeover { reply }) => {
                    // Reconnected within the Will Delay Interval: no will [MQTT-3.1.3-9].
                    let _ = reply.send(Some(session));
                    return;
                }
                Some(Control::End) | None => {
                    end(&broker, session, claim, will.take()).await;
                    return;
                }
                Some(Control::Command(command)) => drop(command),
                Some(Control::Shutdown | Control::Kick) => {}
            },
            () = sleep_until(will_due) => {
                if let Some(will) = will.take() {
                    publish_will(&broker, will.message).await;
                }
            }
            () = tokio::time::sleep_until(expires) => {
                tracing::info!(client_id = %session.client_id, "persistent session expired");
                end(&broker, session, claim, will.take()).await;
                return;
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Publishes a will (the session ended or its delay passed).
pub async fn publish_will(broker: &Broker, message: Message) {
    let mut ops = Vec::new();
    broker.publish(message, &mut ops);
    broker.commit(ops).await;
}

/// Ends a session for good: its will (if still pending) goes out, its subscriptions and
/// messages go, and it stops counting.
pub async fn end(
    broker: &Broker,
    mut session: Box<Session>,
    mut claim: Claim,
    will: Option<PendingWill>,
) {
    // A connection claiming the session meanwhile gets none (and needs no answer later).
    while let Ok(control) = claim.control.try_recv() {
        if let Control::Takeover { reply } = control {
            let _ = reply.send(None);
        }
    }
    // A takeover sent from now on finds its reply dropped, which also answers "none".
    drop(std::mem::replace(&mut claim.control, flume::bounded(0).1));
    if let Some(will) = will {
        publish_will(broker, will.message).await;
    }
    let persistent = session.persistent();
    session.clear_messages();
    let ops = session.delete_ops();
    broker.store.write(ops);
    // Dropping the link removes its subscriptions from the engine.
    session.subscriber = None;
    session.deliveries = None;
    broker.meter.forget_session(&session.client_id);
    broker.subscriptions.forget(&session.client_id);
    if persistent {
        broker.count_persistent(-1);
    }
    broker.release(&session.client_id, claim.owner).await;
}
