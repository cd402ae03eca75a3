//! Which request sent which SMS, for routing DIDWW callbacks without a database read, plus the SMS
//! submissions whose answer is still on the wire.
//!
//! DIDWW may post the processing callback as soon as it answers 201, so a callback can reach us
//! before we have read the 201 that names its message id. A callback whose id is found neither here
//! nor in the database waits for the submissions that were already under way when it arrived (each
//! submission holds a numbered ticket), then looks again; later submissions cannot hold it up.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::Notify;

use crate::ids::ProviderMessageId;
use crate::store::ProviderMatch;

/// One SMS submission in flight.
#[derive(Debug)]
#[must_use = "finish the submission with ProviderIndex::submission_finished"]
pub struct Ticket(u64);

#[derive(Default)]
struct Tickets {
    next: u64,
    in_flight: BTreeSet<u64>,
}

/// Shared index of live SMS submissions.
#[derive(Default)]
pub struct ProviderIndex {
    entries: DashMap<ProviderMessageId, (ProviderMatch, Instant)>,
    tickets: Mutex<Tickets>,
    settled: Notify,
}

impl ProviderIndex {
    /// Marks the start of a submission.
    pub fn submission_started(&self) -> Ticket {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let number = tickets.next;
        tickets.next += 1;
        tickets.in_flight.insert(number);
        Ticket(number)
    }

    /// Marks the end of a submission; `accepted` carries the id DIDWW gave it.
    pub fn submission_finished(
        &self,
        ticket: Ticket,
        accepted: Option<(ProviderMessageId, ProviderMatch)>,
    ) {
        if let Some((id, owner)) = accepted {
            self.insert(id, owner);
        }
        self.tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight
            .remove(&ticket.0);
        self.settled.notify_waiters();
    }

    /// Records an id directly (a request resumed after a restart).
    pub fn insert(&self, id: ProviderMessageId, owner: ProviderMatch) {
        self.entries.insert(id, (owner, Instant::now()));
    }

    /// Forgets an id (its request actor stopped; later callbacks go through the database).
    pub fn forget(&self, id: &ProviderMessageId) {
        self.entries.remove(id);
    }

    /// Forgets entries older than `age`, whatever happened to their request; returns how many.
    /// A backstop: entries are normally forgotten when their request actor stops.
    pub fn prune(&self, age: Duration) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, (_, added)| added.elapsed() < age);
        before - self.entries.len()
    }

    /// Looks an id up.
    pub fn get(&self, id: &ProviderMessageId) -> Option<ProviderMatch> {
        self.entries.get(id).map(|e| e.value().0)
    }

    /// Waits until every submission that was in flight when this was called has finished, or
    /// `patience` passed.
    pub async fn wait_for_earlier_submissions(&self, patience: Duration) {
        let watermark = self.tickets.lock().unwrap_or_else(|e| e.into_inner()).next;
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let settled = self.settled.notified();
            let oldest = self
                .tickets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .in_flight
                .first()
                .copied();
            if oldest.is_none_or(|oldest| oldest >= watermark) {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RequestId;

    fn owner() -> ProviderMatch {
        ProviderMatch {
            request_id: RequestId::new_random(),
            attempt: 0,
        }
    }

    #[actix_rt::test]
    async fn waits_only_for_submissions_started_before() {
        let index = ProviderIndex::default();
        let early = index.submission_started();
        let waiter = index.wait_for_earlier_submissions(Duration::from_secs(5));
        let late = index.submission_started();
        // The late submission never finishes: the waiter must still return once `early` does.
        let id = ProviderMessageId::new("m-1");
        let finish = async {
            index.submission_finished(early, Some((id.clone(), owner())));
        };
        let ((), ()) = tokio::join!(waiter, finish);
        assert!(index.get(&id).is_some());
        index.submission_finished(late, None);
    }

    #[actix_rt::test]
    async fn no_wait_without_earlier_submissions() {
        let index = ProviderIndex::default();
        let started = tokio::time::Instant::now();
        index
            .wait_for_earlier_submissions(Duration::from_secs(5))
            .await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn prune_and_forget_bound_the_index() {
        let index = ProviderIndex::default();
        index.insert(ProviderMessageId::new("a"), owner());
        index.insert(ProviderMessageId::new("b"), owner());
        index.forget(&ProviderMessageId::new("a"));
        assert_eq!(index.len(), 1);
        assert_eq!(index.prune(Duration::ZERO), 1);
        assert!(index.is_empty());
    }
}
