//! The one path every event takes: stored (status machine, webhook outbox) → published to the
//! [`Broadcaster`](crate::broadcaster::Broadcaster) → its webhook handed to the
//! [`WebhookSender`](crate::webhook::sender::WebhookSender). Used by request actors and the
//! dispatcher alike, so a late callback and a live one are treated the same.

use std::sync::Arc;

use actix::prelude::*;

use crate::broadcaster::{Broadcaster, Publish};
use crate::store::{NewEvent, RecordedEvent, Store, StoreError};
use crate::webhook::sender::{Enqueue, WebhookSender};

/// Where stored events go next.
#[derive(Clone)]
pub struct EventSink {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Live feed.
    pub broadcaster: Addr<Broadcaster>,
    /// Client webhooks.
    pub webhooks: Addr<WebhookSender>,
}

impl EventSink {
    /// Stores the event and, once it is durable, publishes it and queues its webhook.
    pub fn record(
        &self,
        event: NewEvent,
    ) -> impl std::future::Future<Output = Result<Arc<RecordedEvent>, StoreError>> + 'static {
        let stored = self.store.record_event(event);
        let broadcaster = self.broadcaster.clone();
        let webhooks = self.webhooks.clone();
        async move {
            let recorded = Arc::new(stored.await?);
            if !recorded.duplicate {
                if let Some(item) = recorded.webhook.clone() {
                    webhooks.do_send(Enqueue(item));
                }
                broadcaster.do_send(Publish(Arc::clone(&recorded)));
            }
            Ok(recorded)
        }
    }
}
