//! SQLite persistence through Diesel: connection pool with pragmas, embedded migrations, the batching
//! writer and the [`actors::store::Store`] implementation.
//!
//! Durability: WAL with `synchronous=NORMAL` makes every committed transaction survive a crash or
//! SIGKILL of the process (an OS crash or power loss may lose the last few commits); `/dispatch`
//! answers only after its row is committed.

mod checkpoint;
pub mod models;
pub mod queries;
mod retention;
pub mod schema;
pub mod store;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use store::DbStore;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT_MS: u32 = 5_000;
/// Read connections in the pool (WAL lets readers run beside the writer).
const READ_POOL_SIZE: u32 = 8;

/// A pool of read connections.
pub type ReadPool = Pool<ConnectionManager<SqliteConnection>>;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    /// The folder that should hold the database does not exist.
    #[error("DATABASE_PATH {path}: folder {dir} does not exist")]
    MissingDir { path: PathBuf, dir: PathBuf },
    /// SQLite refused to open or write the file.
    #[error("DATABASE_PATH {path}: cannot open for writing: {reason}")]
    Unwritable { path: PathBuf, reason: String },
    /// A migration failed.
    #[error("DATABASE_PATH {path}: migration failed: {reason}")]
    Migration { path: PathBuf, reason: String },
}

/// Pragmas applied to every connection.
#[derive(Debug, Clone, Copy)]
struct Pragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        apply_pragmas(conn).map_err(diesel::r2d2::Error::QueryError)?;
        // Pool connections only read: every write goes through the writer, whose request cache
        // would silently diverge from a row changed behind its back.
        conn.batch_execute("PRAGMA query_only = ON;")
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

fn apply_pragmas(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;
         PRAGMA temp_store = MEMORY;"
    ))
}

/// Opens (creating if needed) the database, checks it is writable, applies migrations and returns
/// the writer connection plus a read pool.
pub fn open(path: &Path) -> Result<(SqliteConnection, ReadPool), DbOpenError> {
    let unwritable = |reason: String| DbOpenError::Unwritable {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(DbOpenError::MissingDir {
            path: path.to_path_buf(),
            dir,
        });
    }
    let url = path.to_string_lossy().into_owned();
    let mut writer = SqliteConnection::establish(&url).map_err(|e| unwritable(e.to_string()))?;
    // busy_timeout first: another process (a previous instance still closing) may hold the lock.
    apply_pragmas(&mut writer).map_err(|e| unwritable(e.to_string()))?;
    // journal_mode is persistent in the file; setting it also proves we can write the header.
    writer
        .batch_execute("PRAGMA journal_mode = WAL;")
        .map_err(|e| unwritable(e.to_string()))?;
    writer
        .batch_execute("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS gateway_write_probe (x INTEGER); DROP TABLE gateway_write_probe; COMMIT;")
        .map_err(|e| unwritable(e.to_string()))?;
    // Checkpoints run on their own thread (see `checkpoint`), never inside a commit of the writer;
    // once checkpointed, the WAL file is truncated back to at most 64 MiB.
    writer
        .batch_execute("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;")
        .map_err(|e| unwritable(e.to_string()))?;
    writer
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| DbOpenError::Migration {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let pool = Pool::builder()
        .max_size(READ_POOL_SIZE)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .connection_customizer(Box::new(Pragmas))
        .build(ConnectionManager::<SqliteConnection>::new(url))
        .map_err(|e| unwritable(e.to_string()))?;
    Ok((writer, pool))
}
