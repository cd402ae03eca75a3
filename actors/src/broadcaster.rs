//! `Broadcaster`: the fan-out point of every stored event to live subscribers (the admin WebSocket
//! sessions). Started once by the gateway, lives as long as the system. It handles [`Subscribe`],
//! [`Unsubscribe`] and [`Publish`], and sends each subscriber the [`LiveUpdate`]s of the topics it
//! asked for. Publishing with no subscribers costs one message.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use crate::store::RecordedEvent;

/// What a subscriber wants to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `otp-request:updated`: status changes of requests.
    Requests,
    /// `otp-event`: every channel event.
    Events,
}

/// One update sent to subscribers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct LiveUpdate {
    /// Which topic it belongs to.
    pub topic: Topic,
    /// The stored event it comes from.
    pub event: Arc<RecordedEvent>,
}

/// Adds (or replaces) a subscriber's topic set.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    /// Caller-chosen subscriber id (unique per session).
    pub id: u64,
    /// Topic to add.
    pub topic: Topic,
    /// Where updates go.
    pub recipient: Recipient<LiveUpdate>,
}

/// Removes a topic, or the whole subscriber when `topic` is `None`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// Subscriber id.
    pub id: u64,
    /// Topic to drop; `None` drops the subscriber.
    pub topic: Option<Topic>,
}

/// A stored event to fan out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Arc<RecordedEvent>);

/// Number of live subscribers (for tests and metrics).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountSubscribers;

struct Subscriber {
    recipient: Recipient<LiveUpdate>,
    requests: bool,
    events: bool,
}

/// The broadcaster actor.
#[derive(Default)]
pub struct Broadcaster {
    subscribers: HashMap<u64, Subscriber>,
}

impl Actor for Broadcaster {
    type Context = Context<Self>;
}

impl Handler<Subscribe> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        let entry = self.subscribers.entry(msg.id).or_insert(Subscriber {
            recipient: msg.recipient.clone(),
            requests: false,
            events: false,
        });
        entry.recipient = msg.recipient;
        match msg.topic {
            Topic::Requests => entry.requests = true,
            Topic::Events => entry.events = true,
        }
    }
}

impl Handler<Unsubscribe> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        match msg.topic {
            None => {
                self.subscribers.remove(&msg.id);
            }
            Some(topic) => {
                if let Some(sub) = self.subscribers.get_mut(&msg.id) {
                    match topic {
                        Topic::Requests => sub.requests = false,
                        Topic::Events => sub.events = false,
                    }
                }
            }
        }
    }
}

impl Handler<Publish> for Broadcaster {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        if self.subscribers.is_empty() || msg.0.duplicate {
            return;
        }
        let event = msg.0;
        // A subscriber whose mailbox is closed (session gone) is dropped; a full one skips an update.
        self.subscribers.retain(|_, sub| {
            let mut alive = true;
            if sub.events {
                alive &= deliver(&sub.recipient, Topic::Events, &event);
            }
            if alive && sub.requests && event.status_changed {
                alive &= deliver(&sub.recipient, Topic::Requests, &event);
            }
            alive
        });
    }
}

/// Sends one update; false when the subscriber is gone.
fn deliver(recipient: &Recipient<LiveUpdate>, topic: Topic, event: &Arc<RecordedEvent>) -> bool {
    let update = LiveUpdate {
        topic,
        event: Arc::clone(event),
    };
    !matches!(recipient.try_send(update), Err(SendError::Closed(_)))
}

impl Handler<CountSubscribers> for Broadcaster {
    type Result = usize;
    fn handle(&mut self, _: CountSubscribers, _: &mut Context<Self>) -> usize {
        self.subscribers.len()
    }
}
