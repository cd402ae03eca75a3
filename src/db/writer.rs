//! The single writer: one thread owns the write connection and applies queued writes in submission
//! order, many per transaction (group commit); callers are answered only after the commit.
//!
//! Because this thread is the only writer, it keeps the state of recently active requests in memory
//! ([`RequestCache`]) and applies events without reading the row back. A write that fails before it
//! writes anything (unknown request) fails alone; a database error aborts the whole transaction, every
//! caller of the batch gets the error, and the cache is dropped so it cannot outlive the rollback.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use tokio::sync::oneshot;

use actors::store::StoreError;
use actors::{Channel, Status};

/// Most writes committed in one transaction; bounds the latency one commit adds to its callers.
const MAX_BATCH: usize = 1024;
/// Requests whose state the writer remembers (oldest forgotten first).
const CACHE_CAPACITY: usize = 200_000;

/// The writer thread's state.
struct WriterState {
    conn: SqliteConnection,
    requests: RequestCache,
}

/// What the writer needs to know about a request to apply an event.
#[derive(Debug, Clone)]
pub(crate) struct CachedRequest {
    pub status: Status,
    pub channel: Option<Channel>,
    pub channel_index: Option<i32>,
    pub channel_status: Option<String>,
    pub phone: String,
    pub session_id: Option<String>,
    pub webhook_url: Option<String>,
    pub plan: Vec<Channel>,
}

/// Bounded map of request id → state, evicting the oldest insertions.
#[derive(Default)]
pub(crate) struct RequestCache {
    entries: HashMap<String, CachedRequest>,
    order: VecDeque<String>,
}

impl RequestCache {
    pub fn get(&self, id: &str) -> Option<&CachedRequest> {
        self.entries.get(id)
    }

    pub fn put(&mut self, id: String, state: CachedRequest) {
        if self.entries.insert(id.clone(), state).is_none() {
            self.order.push_back(id);
            while self.order.len() > CACHE_CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    /// Forgets a request (deleted by retention).
    pub fn remove(&mut self, id: &str) {
        self.entries.remove(id);
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

/// A write to apply on the writer thread.
pub(crate) type WriteFn =
    Box<dyn FnOnce(&mut SqliteConnection, &mut RequestCache) -> Result<(), WriteError> + Send>;

/// How a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Refused before writing anything (e.g. unknown request): only this caller fails.
    Refused(StoreError),
    /// The database failed mid-write: the whole batch is rolled back.
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for WriteError {
    fn from(err: diesel::result::Error) -> Self {
        WriteError::Database(err)
    }
}

struct Job {
    write: WriteFn,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: SqliteConnection) -> std::io::Result<Writer> {
        let (jobs, rx) = std::sync::mpsc::channel();
        let state = WriterState {
            conn,
            requests: RequestCache::default(),
        };
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(state, rx))?;
        Ok(Writer { jobs })
    }

    /// Queues a write; the receiver resolves once it is committed (or failed).
    pub(crate) fn submit(&self, write: WriteFn) -> oneshot::Receiver<Result<(), StoreError>> {
        let (done, rx) = oneshot::channel();
        if let Err(err) = self.jobs.send(Job { write, done }) {
            // The writer thread is gone (shutdown): answer the caller at once.
            let _ = err
                .0
                .done
                .send(Err(StoreError::Unavailable("writer stopped".into())));
        }
        rx
    }
}

fn run(mut state: WriterState, rx: Receiver<Job>) {
    // Group commit without waiting: whatever queued up while the previous commit ran goes into the
    // next one. (A short wait to gather bigger batches was measured and made things slower.)
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(job) => batch.push(job),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut state, &mut batch);
    }
    tracing::debug!("database writer stopped");
}

fn commit_batch(state: &mut WriterState, batch: &mut Vec<Job>) {
    let mut senders = Vec::with_capacity(batch.len());
    let mut outcomes: Vec<Result<(), StoreError>> = Vec::with_capacity(batch.len());
    let WriterState { conn, requests } = state;
    let committed = conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
        for job in batch.drain(..) {
            senders.push(job.done);
            match (job.write)(conn, requests) {
                Ok(()) => outcomes.push(Ok(())),
                Err(WriteError::Refused(err)) => outcomes.push(Err(err)),
                Err(WriteError::Database(err)) => return Err(err),
            }
        }
        Ok(())
    });
    if let Err(err) = committed {
        tracing::error!(error = %err, writes = senders.len(), "database transaction failed; batch rolled back");
        // Jobs never reached (after the failing one) are answered too.
        senders.extend(batch.drain(..).map(|job| job.done));
        requests.clear();
        let failure = StoreError::Unavailable(err.to_string());
        outcomes = senders.iter().map(|_| Err(failure.clone())).collect();
    }
    for (done, outcome) in senders.into_iter().zip(outcomes) {
        let _ = done.send(outcome);
    }
}
