//! The single writer: one thread owns the write connection and applies queued writes in submission
//! order, many per transaction (group commit). Each write runs in its own savepoint so one bad write
//! cannot undo its neighbours; callers are answered only after the transaction commits.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use tokio::sync::oneshot;

use actors::store::StoreError;

/// Most writes committed in one transaction; bounds the latency one commit adds to its callers.
const MAX_BATCH: usize = 512;

/// A write to apply; `apply` runs on the writer thread inside a savepoint.
pub(crate) type WriteFn = Box<dyn FnOnce(&mut SqliteConnection) -> Result<(), StoreError> + Send>;

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
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx))?;
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

fn run(mut conn: SqliteConnection, rx: Receiver<Job>) {
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
        commit_batch(&mut conn, &mut batch);
    }
    tracing::debug!("database writer stopped");
}

fn commit_batch(conn: &mut SqliteConnection, batch: &mut Vec<Job>) {
    let mut outcomes: Vec<Result<(), StoreError>> = Vec::with_capacity(batch.len());
    let mut writes: Vec<(WriteFn, oneshot::Sender<Result<(), StoreError>>)> =
        batch.drain(..).map(|job| (job.write, job.done)).collect();
    let mut senders = Vec::with_capacity(writes.len());
    let committed = conn.immediate_transaction::<_, diesel::result::Error, _>(|conn| {
        for (write, done) in writes.drain(..) {
            senders.push(done);
            let outcome = conn.transaction::<_, SavepointAbort, _>(|conn| {
                write(conn).map_err(SavepointAbort::Store)
            });
            outcomes.push(outcome.map_err(SavepointAbort::into_store_error));
        }
        Ok(())
    });
    if let Err(err) = committed {
        tracing::error!(error = %err, writes = senders.len(), "database commit failed");
        let failure = StoreError::Unavailable(err.to_string());
        outcomes = senders.iter().map(|_| Err(failure.clone())).collect();
    }
    for (done, outcome) in senders.into_iter().zip(outcomes) {
        let _ = done.send(outcome);
    }
}

/// Error type of one savepoint: the store error it carries, or Diesel's own.
#[derive(Debug)]
enum SavepointAbort {
    Store(StoreError),
    Diesel(diesel::result::Error),
}

impl From<diesel::result::Error> for SavepointAbort {
    fn from(err: diesel::result::Error) -> Self {
        SavepointAbort::Diesel(err)
    }
}

impl SavepointAbort {
    fn into_store_error(self) -> StoreError {
        match self {
            SavepointAbort::Store(err) => err,
            SavepointAbort::Diesel(err) => StoreError::Unavailable(err.to_string()),
        }
    }
}
