//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside whichever commit
//! crosses the threshold, copying the WAL into the database file and syncing it while every queued
//! write waits. Here the writer's connection has auto-checkpoint off and this thread, on its own
//! connection, runs a PASSIVE checkpoint (which never blocks writers or readers) at a fixed interval,
//! so the WAL stays small and commits stay short.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;

/// How often the WAL is checkpointed.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Stops the checkpoint thread when dropped.
pub struct CheckpointGuard(Arc<AtomicBool>);

impl Drop for CheckpointGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts the checkpoint thread for the database at `path`.
pub fn start(path: &Path) -> std::io::Result<CheckpointGuard> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let url = path.to_string_lossy().into_owned();
    std::thread::Builder::new().name("db-checkpoint".into()).spawn(move || {
        let mut conn = match SqliteConnection::establish(&url) {
            Ok(conn) => conn,
            Err(err) => {
                tracing::error!(error = %err, "checkpoint connection failed; the WAL will grow until restart");
                return;
            }
        };
        let _ = conn.batch_execute("PRAGMA busy_timeout = 5000;");
        while !stopped.load(Ordering::Relaxed) {
            std::thread::park_timeout(CHECKPOINT_INTERVAL);
            if let Err(err) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::warn!(error = %err, "WAL checkpoint failed");
            }
        }
    })?;
    Ok(CheckpointGuard(stop))
}
