//! Which request sent which SMS, for routing DIDWW callbacks without a database read, plus a count of
//! submissions whose answer is still on the wire.
//!
//! DIDWW may post the processing callback as soon as it answers 201, so a callback can reach us
//! before we have read the 201 that names its message id. A callback that finds no entry while
//! submissions are in flight waits for them to finish before it is declared unknown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::ids::ProviderMessageId;
use crate::store::ProviderMatch;

/// Shared index of live SMS submissions.
#[derive(Default)]
pub struct ProviderIndex {
    entries: DashMap<ProviderMessageId, ProviderMatch>,
    in_flight: AtomicUsize,
    settled: Notify,
}

impl ProviderIndex {
    /// Marks the start of a submission.
    pub fn submission_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Marks the end of a submission; `accepted` carries the id DIDWW gave it.
    pub fn submission_finished(&self, accepted: Option<(ProviderMessageId, ProviderMatch)>) {
        if let Some((id, owner)) = accepted {
            self.entries.insert(id, owner);
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.settled.notify_waiters();
    }

    /// Forgets an id (its request actor stopped; later callbacks go through the database).
    pub fn forget(&self, id: &ProviderMessageId) {
        self.entries.remove(id);
    }

    /// Looks an id up.
    pub fn get(&self, id: &ProviderMessageId) -> Option<ProviderMatch> {
        self.entries.get(id).map(|e| *e.value())
    }

    /// Looks an id up, waiting up to `patience` for in-flight submissions to land first.
    pub async fn get_or_wait(
        &self,
        id: &ProviderMessageId,
        patience: Duration,
    ) -> Option<ProviderMatch> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let settled = self.settled.notified();
            if let Some(found) = self.get(id) {
                return Some(found);
            }
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return None;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return self.get(id);
            }
        }
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
