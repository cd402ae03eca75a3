//! IP facts for the fraud engine from MaxMind-format databases (SPEC §2 `ASN_DB_PATH`,
//! `GEOIP_DB_PATH`; §8 "reloaded when the file changes").
//!
//! [`MaxMindLookup`] holds two optional readers: an ASN database (GeoLite2-ASN or any file with
//! `autonomous_system_number` / `autonomous_system_organization` records) and a country database
//! (GeoLite2-Country, GeoIP2-Country or City: `country.iso_code`, falling back to
//! `registered_country.iso_code`). Both are optional: a missing, unreadable or invalid file logs one
//! warning and that half of the lookup answers empty, so the gateway always starts.
//!
//! # Replacing a database while the gateway runs
//!
//! Write the new file next to the old one and **rename** it over the old path (`mv` within the same
//! file system, or `cp new.mmdb /data/asn.mmdb.tmp && mv /data/asn.mmdb.tmp /data/asn.mmdb`). A
//! rename is atomic, so the reloader reads either the old or the new file, never half of one.
//! Copying straight onto the live path usually works too (the half-written file fails to open and
//! the old reader stays; the next poll picks up the finished file) but is not recommended.
//!
//! The reloader ([`spawn_reloader`]) polls (modification time, length and, on Unix, inode) of both
//! paths from its own thread; when they change it reads the whole file into memory there, checks it
//! and swaps the new reader in under a write lock held only for the pointer swap. Lookups clone an
//! `Arc` under the read lock and search without any lock, so they never wait for file I/O and a
//! lookup that started on the old database finishes on it. A new file that does not open as a
//! MaxMind DB is logged as an error and the old reader keeps serving.
//!
//! Files are read into memory (`Reader<Vec<u8>>`) rather than memory-mapped: mapping needs `unsafe`
//! (forbidden in this workspace) and a mapped file truncated in place would crash the process.

use std::fs::File;
use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use actors::fraud::{IpInfo, IpLookup};
use maxminddb::{MaxMindDbError, Reader};
use serde::Deserialize;

/// How often the gateway checks the database files for changes unless told otherwise.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// Which of the two databases a slot holds (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbKind {
    Asn,
    Country,
}

impl DbKind {
    fn as_str(self) -> &'static str {
        match self {
            DbKind::Asn => "asn",
            DbKind::Country => "country",
        }
    }

    fn env_var(self) -> &'static str {
        match self {
            DbKind::Asn => "ASN_DB_PATH",
            DbKind::Country => "GEOIP_DB_PATH",
        }
    }
}

/// What one reload attempt did with one database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file has the same modification time, length (and inode) as the last attempt.
    Unchanged,
    /// A new database was opened and swapped in (also the first successful load).
    Reloaded,
    /// The file does not exist or cannot be inspected; the previous reader (if any) keeps serving.
    Missing,
    /// The file changed but could not be read or is not a valid MaxMind DB; the previous reader
    /// (if any) keeps serving.
    Failed,
}

/// What [`MaxMindLookup::reload_if_changed`] did with each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadReport {
    /// The `ASN_DB_PATH` file.
    pub asn: ReloadOutcome,
    /// The `GEOIP_DB_PATH` file.
    pub country: ReloadOutcome,
}

impl ReloadReport {
    /// True when at least one database was swapped.
    pub fn any_reloaded(&self) -> bool {
        self.asn == ReloadOutcome::Reloaded || self.country == ReloadOutcome::Reloaded
    }
}

/// Identity of a file version as seen by `stat`. A rename changes the inode even when an operator
/// copied the file with its old modification time and the length happens to be equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    dev_ino: (u64, u64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            dev_ino: (meta.dev(), meta.ino()),
        }
    }
}

/// What the last reload attempt saw at the path; state changes are what get logged, so a file that
/// stays missing or stays corrupt is reported once, not on every poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Missing,
    File(FileStamp),
}

type Db = Reader<Vec<u8>>;

/// One database path and the reader currently serving it.
#[derive(Debug)]
struct Slot {
    kind: DbKind,
    path: PathBuf,
    /// Written only to swap the pointer; readers clone the `Arc` and release the lock at once.
    reader: RwLock<Option<Arc<Db>>>,
    /// Also serialises reloads of this slot.
    seen: Mutex<Seen>,
}

impl Slot {
    fn new(kind: DbKind, path: PathBuf) -> Self {
        Slot {
            kind,
            path,
            reader: RwLock::new(None),
            seen: Mutex::new(Seen::Nothing),
        }
    }

    fn current(&self) -> Option<Arc<Db>> {
        self.reader
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn loaded(&self) -> bool {
        self.reader
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn swap(&self, db: Arc<Db>) {
        let old = self
            .reader
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(db);
        // The old database (possibly megabytes) is freed here, outside the lock, or later by the
        // last lookup still holding it.
        drop(old);
    }

    fn reload_if_changed(&self) -> ReloadOutcome {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let kind = self.kind.as_str();
        let env = self.kind.env_var();
        let path = self.path.display();

        let stamp = match std::fs::metadata(&self.path) {
            Ok(meta) => FileStamp::of(&meta),
            Err(error) => {
                if *seen != Seen::Missing {
                    if self.loaded() {
                        tracing::warn!(
                            db = kind, path = %path, %error,
                            "IP database file disappeared; keeping the database already loaded"
                        );
                    } else {
                        tracing::warn!(
                            db = kind, path = %path, %error,
                            "IP database not found ({env}); {kind} lookups return nothing until the \
                             file appears"
                        );
                    }
                }
                *seen = Seen::Missing;
                return ReloadOutcome::Missing;
            }
        };
        if *seen == Seen::File(stamp) {
            return ReloadOutcome::Unchanged;
        }

        match load(&self.path) {
            Ok((read_stamp, db)) => {
                let meta = db.metadata();
                tracing::info!(
                    db = kind,
                    path = %path,
                    database_type = %meta.database_type,
                    build_epoch = meta.build_epoch,
                    bytes = read_stamp.len,
                    replaced = self.loaded(),
                    "IP database loaded"
                );
                self.swap(Arc::new(db));
                // The stamp of the handle actually read: if the file was replaced again between
                // `stat` and `open`, the next poll sees a difference and reloads.
                *seen = Seen::File(read_stamp);
                ReloadOutcome::Reloaded
            }
            Err(error) => {
                if self.loaded() {
                    tracing::error!(
                        db = kind, path = %path, %error,
                        "new IP database is not a valid MaxMind DB; keeping the previous one"
                    );
                } else {
                    tracing::warn!(
                        db = kind, path = %path, %error,
                        "IP database is not a valid MaxMind DB ({env}); {kind} lookups return \
                         nothing until it is replaced"
                    );
                }
                *seen = Seen::File(stamp);
                ReloadOutcome::Failed
            }
        }
    }
}

/// Why a file could not become a reader.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Db(#[from] MaxMindDbError),
}

/// Reads the file through one handle (so the stamp and the bytes belong to the same file even if it
/// is renamed over meanwhile) and checks it.
fn load(path: &Path) -> Result<(FileStamp, Db), LoadError> {
    let mut file = File::open(path)?;
    let stamp = FileStamp::of(&file.metadata()?);
    let mut buf = Vec::with_capacity(usize::try_from(stamp.len).unwrap_or(0));
    file.read_to_end(&mut buf)?;
    let db = Reader::from_source(buf)?;
    probe(&db)?;
    Ok((stamp, db))
}

/// `from_source` already validated the metadata and the layout of the search tree; a few real
/// lookups also walk the tree and decode records, which catches a damaged file cheaply. The full
/// `Reader::verify` is not used: it walks every network (slow on large files) and is documented as
/// stricter than the format, so it could refuse a database that reads fine.
fn probe(db: &Db) -> Result<(), MaxMindDbError> {
    for ip in [
        Ipv4Addr::new(1, 1, 1, 1),
        Ipv4Addr::new(8, 8, 8, 8),
        Ipv4Addr::new(81, 2, 69, 160),
        Ipv4Addr::new(223, 255, 255, 1),
    ] {
        db.lookup(IpAddr::V4(ip))?
            .decode::<serde::de::IgnoredAny>()?;
    }
    Ok(())
}

/// The fields of an ASN record the engine uses (strings borrowed from the database buffer).
#[derive(Deserialize)]
struct AsnRecord<'a> {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
    #[serde(borrow, default)]
    autonomous_system_organization: Option<&'a str>,
}

#[derive(Deserialize, Default)]
struct IsoOnly<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

/// The fields of a country/city record the engine uses.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    country: IsoOnly<'a>,
    #[serde(borrow, default)]
    registered_country: IsoOnly<'a>,
}

/// Decodes the record for `ip`, treating "no record" and every error as nothing. An IPv6 address
/// looked up in an IPv4-only database is an error in the reader but simply unknown here.
fn record<'de, T: Deserialize<'de>>(db: &'de Db, ip: IpAddr, kind: DbKind) -> Option<T> {
    match db.lookup(ip).and_then(|found| found.decode::<T>()) {
        Ok(found) => found,
        Err(MaxMindDbError::InvalidInput { .. }) => None,
        Err(error) => {
            tracing::debug!(db = kind.as_str(), %ip, %error, "IP database lookup failed");
            None
        }
    }
}

/// ASN and country lookups over the MaxMind-format files at `ASN_DB_PATH` and `GEOIP_DB_PATH`.
/// Share it as `Arc<MaxMindLookup>` (it is `Send + Sync`); see the module docs for reloading.
#[derive(Debug)]
pub struct MaxMindLookup {
    asn: Slot,
    country: Slot,
}

impl MaxMindLookup {
    /// Opens both databases. Never fails: a file that is missing, unreadable or not a MaxMind DB is
    /// logged once and its lookups answer empty until a valid file appears at that path and
    /// [`reload_if_changed`](Self::reload_if_changed) runs. Reads both files, so call it at start-up
    /// or from a blocking context, not from an async handler.
    pub fn open(asn_path: impl Into<PathBuf>, country_path: impl Into<PathBuf>) -> Self {
        let lookup = MaxMindLookup {
            asn: Slot::new(DbKind::Asn, asn_path.into()),
            country: Slot::new(DbKind::Country, country_path.into()),
        };
        lookup.reload_if_changed();
        lookup
    }

    /// Re-reads each file whose (modification time, length, inode) changed since the last attempt
    /// and swaps it in if it is a valid MaxMind DB; otherwise the reader already loaded keeps
    /// serving. Blocking (reads whole files): run it on the reloader thread.
    pub fn reload_if_changed(&self) -> ReloadReport {
        ReloadReport {
            asn: self.asn.reload_if_changed(),
            country: self.country.reload_if_changed(),
        }
    }

    /// True while an ASN database is loaded.
    pub fn asn_loaded(&self) -> bool {
        self.asn.loaded()
    }

    /// True while a country database is loaded.
    pub fn country_loaded(&self) -> bool {
        self.country.loaded()
    }

    /// The configured ASN database path.
    pub fn asn_path(&self) -> &Path {
        &self.asn.path
    }

    /// The configured country database path.
    pub fn country_path(&self) -> &Path {
        &self.country.path
    }
}

impl IpLookup for MaxMindLookup {
    /// Two tree searches and decodes of the needed fields only; allocates just the returned strings.
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as the IPv4 address.
    fn lookup(&self, ip: IpAddr) -> IpInfo {
        let ip = ip.to_canonical();
        let mut info = IpInfo::default();
        if let Some(db) = self.asn.current() {
            if let Some(rec) = record::<AsnRecord<'_>>(&db, ip, DbKind::Asn) {
                info.asn = rec.autonomous_system_number;
                info.asn_org = rec
                    .autonomous_system_organization
                    .filter(|org| !org.is_empty())
                    .map(str::to_owned);
            }
        }
        if let Some(db) = self.country.current() {
            if let Some(rec) = record::<CountryRecord<'_>>(&db, ip, DbKind::Country) {
                info.country = rec
                    .country
                    .iso_code
                    .or(rec.registered_country.iso_code)
                    .filter(|code| code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
                    .map(str::to_ascii_uppercase);
            }
        }
        info
    }
}

/// Starts a plain OS thread (`mmdb-reloader`) that calls
/// [`reload_if_changed`](MaxMindLookup::reload_if_changed) every `every`, so file reads never run on
/// the async threads. The thread holds only a weak reference: it ends at the first tick after the
/// last `Arc<MaxMindLookup>` is dropped (with the process otherwise).
pub fn spawn_reloader(
    lookup: Arc<MaxMindLookup>,
    every: Duration,
) -> std::io::Result<JoinHandle<()>> {
    let weak = Arc::downgrade(&lookup);
    drop(lookup);
    std::thread::Builder::new()
        .name("mmdb-reloader".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            match weak.upgrade() {
                Some(lookup) => {
                    lookup.reload_if_changed();
                }
                None => break,
            }
        })
}
