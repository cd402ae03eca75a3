//! ASN and country lookups over the MaxMind test databases in `tests/fixtures/mmdb/`, and their
//! reload: missing and corrupt files never stop the gateway, a replaced file is picked up, a corrupt
//! replacement keeps the old database, and lookups running during reloads always get an answer
//! from one whole database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actors::fraud::{IpInfo, IpLookup};
use otp_gateway::fraud::{spawn_reloader, MaxMindLookup, ReloadOutcome};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mmdb")
        .join(name)
}

fn asn_fixture() -> PathBuf {
    fixture("GeoLite2-ASN-Test.mmdb")
}

fn country_fixture() -> PathBuf {
    fixture("GeoLite2-Country-Test.mmdb")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixtures_lookup() -> MaxMindLookup {
    MaxMindLookup::open(asn_fixture(), country_fixture())
}

/// Replaces `dest` the way operators are told to: write a temp file in the same directory, give it
/// a modification time of its own, rename it over the live path.
fn replace_atomically(dest: &Path, bytes: &[u8], generation: u64) {
    let tmp = dest.with_extension(format!("tmp{generation}"));
    std::fs::write(&tmp, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&tmp).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + generation))
        .unwrap();
    drop(file);
    std::fs::rename(&tmp, dest).unwrap();
}

fn google() -> IpInfo {
    IpInfo {
        asn: Some(15169),
        asn_org: Some("Google Inc.".into()),
        country: None,
    }
}

#[test]
fn asn_lookup_finds_number_and_organisation() {
    let lookup = fixtures_lookup();
    assert!(lookup.asn_loaded());
    let info = lookup.lookup(ip("1.0.0.1"));
    assert_eq!(info.asn, Some(15169));
    assert_eq!(info.asn_org.as_deref(), Some("Google Inc."));
    let info = lookup.lookup(ip("1.128.0.1"));
    assert_eq!(info.asn, Some(1221));
    assert_eq!(info.asn_org.as_deref(), Some("Telstra Pty Ltd"));
    assert_eq!(lookup.lookup(ip("12.81.92.1")).asn, Some(7018));
}

#[test]
fn country_lookup_finds_iso_codes() {
    let lookup = fixtures_lookup();
    assert!(lookup.country_loaded());
    for (addr, country) in [
        ("81.2.69.160", "GB"),
        ("2.125.160.217", "GB"),
        ("216.160.83.56", "US"),
        ("89.160.20.112", "SE"),
    ] {
        assert_eq!(
            lookup.lookup(ip(addr)).country.as_deref(),
            Some(country),
            "{addr}"
        );
    }
}

#[test]
fn one_lookup_combines_both_databases() {
    // The ASN test data and the country test data do not overlap, so look at each half separately
    // through the same lookup: the ASN half of a country address is empty and vice versa.
    let lookup = fixtures_lookup();
    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());
    assert_eq!(
        lookup.lookup(ip("81.2.69.160")),
        IpInfo {
            asn: None,
            asn_org: None,
            country: Some("GB".into())
        }
    );
}

#[test]
fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
    let lookup = fixtures_lookup();
    assert_eq!(lookup.lookup(ip("::ffff:1.0.0.1")), google());
    assert_eq!(
        lookup.lookup(ip("::ffff:89.160.20.112")).country.as_deref(),
        Some("SE")
    );
}

#[test]
fn unknown_and_ipv6_addresses_are_empty() {
    let lookup = fixtures_lookup();
    for addr in [
        "10.0.0.1",
        "127.0.0.1",
        "192.0.2.1",
        "2001:db8::1",
        "::1",
        "fe80::1",
    ] {
        assert_eq!(lookup.lookup(ip(addr)), IpInfo::default(), "{addr}");
    }
}

#[test]
fn missing_files_give_empty_results_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let lookup = MaxMindLookup::open(dir.path().join("asn.mmdb"), dir.path().join("nope/c.mmdb"));
    assert!(!lookup.asn_loaded());
    assert!(!lookup.country_loaded());
    assert_eq!(lookup.lookup(ip("1.0.0.1")), IpInfo::default());
    assert_eq!(lookup.lookup(ip("81.2.69.160")), IpInfo::default());
    let report = lookup.reload_if_changed();
    assert_eq!(report.asn, ReloadOutcome::Missing);
    assert_eq!(report.country, ReloadOutcome::Missing);
    assert!(!report.any_reloaded());
}

#[test]
fn a_directory_instead_of_a_file_is_just_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let lookup = MaxMindLookup::open(dir.path(), dir.path());
    assert!(!lookup.asn_loaded());
    assert_eq!(lookup.lookup(ip("1.0.0.1")), IpInfo::default());
}

#[test]
fn corrupt_file_opens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    let country = dir.path().join("country.mmdb");
    std::fs::write(&asn, b"this is not a MaxMind database").unwrap();
    // A truncated real database: the metadata at the end is gone.
    let bytes = std::fs::read(country_fixture()).unwrap();
    std::fs::write(&country, &bytes[..bytes.len() / 2]).unwrap();

    let lookup = MaxMindLookup::open(&asn, &country);
    assert!(!lookup.asn_loaded());
    assert!(!lookup.country_loaded());
    assert_eq!(lookup.lookup(ip("1.0.0.1")), IpInfo::default());
    assert_eq!(lookup.lookup(ip("81.2.69.160")), IpInfo::default());
    // Unchanged corrupt files are not re-read (and not re-logged) on every poll.
    let report = lookup.reload_if_changed();
    assert_eq!(report.asn, ReloadOutcome::Unchanged);
    assert_eq!(report.country, ReloadOutcome::Unchanged);
}

#[test]
fn a_file_that_appears_later_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    let lookup = MaxMindLookup::open(&asn, dir.path().join("country.mmdb"));
    assert!(!lookup.asn_loaded());

    replace_atomically(&asn, &std::fs::read(asn_fixture()).unwrap(), 1);
    let report = lookup.reload_if_changed();
    assert_eq!(report.asn, ReloadOutcome::Reloaded);
    assert_eq!(report.country, ReloadOutcome::Missing);
    assert!(lookup.asn_loaded());
    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());
}

#[test]
fn unchanged_files_are_not_reloaded() {
    let lookup = fixtures_lookup();
    let report = lookup.reload_if_changed();
    assert_eq!(report.asn, ReloadOutcome::Unchanged);
    assert_eq!(report.country, ReloadOutcome::Unchanged);
}

#[test]
fn replaced_file_is_picked_up_by_reload() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    replace_atomically(&asn, &std::fs::read(asn_fixture()).unwrap(), 1);
    let lookup = MaxMindLookup::open(&asn, dir.path().join("country.mmdb"));
    assert_eq!(lookup.lookup(ip("1.0.0.1")).asn, Some(15169));

    // The operator puts a different database at the ASN path: the answers change with it.
    replace_atomically(&asn, &std::fs::read(country_fixture()).unwrap(), 2);
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Reloaded);
    assert!(lookup.asn_loaded());
    assert_eq!(lookup.lookup(ip("1.0.0.1")), IpInfo::default());

    // And back.
    replace_atomically(&asn, &std::fs::read(asn_fixture()).unwrap(), 3);
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Reloaded);
    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Unchanged);
}

#[test]
fn copy_with_same_length_but_new_mtime_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    let bytes = std::fs::read(asn_fixture()).unwrap();
    std::fs::write(&asn, &bytes).unwrap();
    let lookup = MaxMindLookup::open(&asn, dir.path().join("country.mmdb"));
    // Rewritten in place with the same length; only the modification time tells.
    std::fs::write(&asn, &bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&asn).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890))
        .unwrap();
    drop(file);
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Reloaded);
    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());
}

#[test]
fn corrupt_replacement_keeps_the_old_reader() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    let country = dir.path().join("country.mmdb");
    replace_atomically(&asn, &std::fs::read(asn_fixture()).unwrap(), 1);
    replace_atomically(&country, &std::fs::read(country_fixture()).unwrap(), 1);
    let lookup = MaxMindLookup::open(&asn, &country);

    replace_atomically(&asn, b"garbage garbage garbage", 2);
    let bytes = std::fs::read(country_fixture()).unwrap();
    replace_atomically(&country, &bytes[..bytes.len() - 100], 2);
    let report = lookup.reload_if_changed();
    assert_eq!(report.asn, ReloadOutcome::Failed);
    assert_eq!(report.country, ReloadOutcome::Failed);
    assert!(lookup.asn_loaded());
    assert!(lookup.country_loaded());
    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());
    assert_eq!(
        lookup.lookup(ip("216.160.83.56")).country.as_deref(),
        Some("US")
    );
    // The failure is remembered: the same corrupt file is not retried on every poll.
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Unchanged);

    // Deleting the file also keeps the loaded database.
    std::fs::remove_file(&asn).unwrap();
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Missing);
    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());

    // A valid file afterwards is loaded again.
    replace_atomically(&asn, &std::fs::read(asn_fixture()).unwrap(), 3);
    assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Reloaded);
    assert_eq!(lookup.lookup(ip("1.128.0.1")).asn, Some(1221));
}

#[test]
fn lookups_during_reloads_always_see_a_whole_database() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    let country = dir.path().join("country.mmdb");
    let asn_bytes = std::fs::read(asn_fixture()).unwrap();
    let country_bytes = std::fs::read(country_fixture()).unwrap();
    replace_atomically(&asn, &asn_bytes, 0);
    replace_atomically(&country, &country_bytes, 0);
    let lookup = Arc::new(MaxMindLookup::open(&asn, &country));
    let stop = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..4)
        .map(|_| {
            let lookup = Arc::clone(&lookup);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut lookups = 0u64;
                while !stop.load(Ordering::Relaxed) || lookups < 1_000 {
                    assert_eq!(lookup.lookup(ip("1.0.0.1")), google());
                    assert_eq!(lookup.lookup(ip("1.128.0.1")).asn, Some(1221));
                    assert_eq!(
                        lookup.lookup(ip("89.160.20.112")).country.as_deref(),
                        Some("SE")
                    );
                    lookups += 1;
                }
                lookups
            })
        })
        .collect();

    let mut reloads = 0;
    for generation in 1..=20u64 {
        // A fresh copy of the same data, then (every third round) a corrupt file that must be
        // refused while the readers keep going.
        replace_atomically(&asn, &asn_bytes, generation * 2);
        replace_atomically(&country, &country_bytes, generation * 2);
        let report = lookup.reload_if_changed();
        assert_eq!(report.asn, ReloadOutcome::Reloaded);
        assert_eq!(report.country, ReloadOutcome::Reloaded);
        reloads += 2;
        if generation % 3 == 0 {
            replace_atomically(&asn, &asn_bytes[..asn_bytes.len() / 3], generation * 2 + 1);
            assert_eq!(lookup.reload_if_changed().asn, ReloadOutcome::Failed);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    let total: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(total >= 4_000);
    assert_eq!(reloads, 40);
    assert!(lookup.asn_loaded() && lookup.country_loaded());
}

#[test]
fn reloader_thread_picks_up_changes_and_ends_with_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn.mmdb");
    let lookup = Arc::new(MaxMindLookup::open(&asn, dir.path().join("country.mmdb")));
    let handle = spawn_reloader(Arc::clone(&lookup), Duration::from_millis(10)).unwrap();
    assert_eq!(lookup.lookup(ip("1.0.0.1")), IpInfo::default());

    replace_atomically(&asn, &std::fs::read(asn_fixture()).unwrap(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lookup.lookup(ip("1.0.0.1")) != google() {
        assert!(
            std::time::Instant::now() < deadline,
            "reloader never loaded the new file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    drop(lookup);
    handle.join().unwrap();
}

#[test]
fn usable_as_a_shared_ip_lookup() {
    let lookup: Arc<dyn IpLookup> = Arc::new(fixtures_lookup());
    let other = Arc::clone(&lookup);
    let info = std::thread::spawn(move || other.lookup(ip("1.128.0.1")))
        .join()
        .unwrap();
    assert_eq!(info.asn, Some(1221));
}

#[test]
fn ipv6_ranges_in_the_databases_are_found() {
    // The test databases are IPv6 databases with a few IPv6 ranges of their own.
    let lookup = fixtures_lookup();
    let info = lookup.lookup(ip("2600:6000::1"));
    assert_eq!(info.asn, Some(237));
    assert_eq!(info.asn_org.as_deref(), Some("Merit Network Inc."));
    assert_eq!(
        lookup.lookup(ip("2a02:d040::1")).country.as_deref(),
        Some("SE")
    );
}
