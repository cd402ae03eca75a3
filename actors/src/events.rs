//! The one path every event takes: stored (status machine, webhook outbox) → published to the
//! [`Broadcaster`] → its webhook handed to the
//! [`WebhookSender`]. Used by request actors and the
//! dispatcher alike, so a late callback and a live one are treated the same.
//!
//! Order: events are submitted to the store at once (the writer applies them in submission order),
//! and the events of one request are published in that same order. Two events committed in one batch
//! would otherwise be published in whatever order their tasks wake up, and a client could get
//! `otp.failed` before `otp.sending`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::broadcaster::{Broadcaster, Publish};
use crate::ids::RequestId;
use crate::store::{NewEvent, RecordedEvent, Store, StoreError};
use crate::webhook::sender::{Enqueue, WebhookSender};

/// The last event of each request still being published: the next one waits for it.
#[derive(Default)]
struct PublishOrder {
    next_ticket: u64,
    tails: HashMap<RequestId, (u64, oneshot::Receiver<()>)>,
}

/// Where stored events go next.
#[derive(Clone)]
pub struct EventSink {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Live feed.
    pub broadcaster: Addr<Broadcaster>,
    /// Client webhooks.
    pub webhooks: Addr<WebhookSender>,
    order: Arc<Mutex<PublishOrder>>,
}

impl EventSink {
    /// A sink over the store, the live feed and the webhook sender.
    pub fn new(
        store: Arc<dyn Store>,
        broadcaster: Addr<Broadcaster>,
        webhooks: Addr<WebhookSender>,
    ) -> Self {
        Self {
            store,
            broadcaster,
            webhooks,
            order: Arc::default(),
        }
    }

    /// Stores the event and, once it is durable and the request's previous event has been
    /// published, publishes it and queues its webhook. The future must be driven to completion
    /// (spawned or returned as a message response); if it is dropped, the request's next event
    /// simply stops waiting for it.
    pub fn record(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<Arc<RecordedEvent>, StoreError>> + 'static {
        let request_id = event.request_id;
        let stored = self.store.record_event(event);
        let (done, tail) = oneshot::channel();
        let (ticket, previous) = {
            let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
            let ticket = order.next_ticket;
            order.next_ticket += 1;
            let previous = order
                .tails
                .insert(request_id, (ticket, tail))
                .map(|(_, rx)| rx);
            (ticket, previous)
        };
        let order = Arc::clone(&self.order);
        let broadcaster = self.broadcaster.clone();
        let webhooks = self.webhooks.clone();
        async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let result = stored.await.map(Arc::new);
            if let Ok(recorded) = &result {
                if !recorded.duplicate {
                    if let Some(item) = recorded.webhook.clone() {
                        webhooks.do_send(Enqueue(item));
                    }
                    broadcaster.do_send(Publish(Arc::clone(recorded)));
                }
            }
            let _ = done.send(());
            // Forget the request once its last event is out (unless a newer one queued behind).
            let mut order = order.lock().unwrap_or_else(|e| e.into_inner());
            if order
                .tails
                .get(&request_id)
                .is_some_and(|(t, _)| *t == ticket)
            {
                order.tails.remove(&request_id);
            }
            result
        }
    }

    /// Requests with an event still being published (for tests: it must drain to zero).
    pub fn in_flight_requests(&self) -> usize {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tails
            .len()
    }
}
