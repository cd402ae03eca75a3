//! Snapshots (restart) and pruning (memory).

use super::*;

#[test]
fn snapshot_round_trip_keeps_counters_reputation_catches_and_breakers() {
    let settings = FraudSettings::default();
    let mut a = engine(settings.clone());
    let now = T0 + 10 * SEC;
    // Phone at its minute limit.
    for i in 0..2 {
        eval(
            &mut a,
            &input("+447700900001", Some("198.51.100.1"), T0 + i * SEC),
        );
    }
    // A distrusted subnet, a caught subnet, an open breaker on +2327.
    for i in 0..4 {
        let fb = feedback(
            &phone(i),
            "203.0.113.9",
            FeedbackOutcome::ExpiredUnverified,
            T0,
        );
        a.feedback(fb);
    }
    eval(&mut a, &premium("+447700900099", Some("192.0.2.1"), T0));
    for i in 0..20 {
        eval(&mut a, &input(&format!("+23270{i:06}"), None, T0 + i));
    }
    let snap = a.snapshot(now);
    let json = serde_json::to_string(&snap).unwrap();
    let snap: FraudSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(snap.taken_at_ms(), now);

    let mut b = engine(settings);
    b.restore(snap);
    assert_eq!(a.stats(), b.stats());
    let d = eval(&mut b, &input("+447700900001", Some("198.51.100.1"), now));
    assert_eq!(
        d.verdict,
        Verdict::RateLimited {
            retry_after_secs: 50
        }
    );
    let d = eval(&mut b, &input("+447700900002", Some("203.0.113.10"), now));
    assert_eq!(hit(&d, "low_reputation").unwrap().points, 24);
    let d = eval(&mut b, &input("+447700900003", Some("192.0.2.2"), now));
    assert_eq!(hit(&d, "recently_caught").unwrap().points, 25);
    let d = eval(&mut b, &input("+232709999999", None, now));
    assert_eq!(hit(&d, "prefix_breaker").unwrap().detail["state"], "open");
}

#[test]
fn snapshots_leave_out_what_expired_and_ignore_other_versions() {
    let mut e = engine(FraudSettings::default());
    eval(&mut e, &input("+447700900001", Some("198.51.100.1"), T0));
    assert!(!e.snapshot(T0).is_empty());
    // Two days later: no phone window, no velocity, and the prefix baseline (one send) has decayed.
    assert!(e.snapshot(T0 + 48 * HOUR).is_empty());

    let mut json = serde_json::to_value(e.snapshot(T0)).unwrap();
    json["version"] = serde_json::json!(99);
    let mut other = engine(FraudSettings::default());
    other.restore(serde_json::from_value(json).unwrap());
    assert_eq!(other.stats(), FraudStats::default());
}

#[test]
fn pruning_drops_expired_keys_and_caps_maps() {
    let mut e = engine(FraudSettings::default());
    for i in 0..50 {
        let ip = format!("198.51.{i}.1");
        eval(&mut e, &input(&phone(i), Some(&ip), T0));
    }
    e.feedback(feedback(
        &phone(0),
        "203.0.113.9",
        FeedbackOutcome::Rejected,
        T0,
    ));
    let s = e.stats();
    assert_eq!((s.phones, s.subnets, s.ips), (50, 51, 1));
    e.prune(T0 + HOUR);
    let s = e.stats();
    // Only the subnet and IP with (decaying) trust are left.
    assert_eq!((s.phones, s.subnets, s.ips), (0, 1, 1));
    e.prune(T0 + 10 * 24 * HOUR);
    assert_eq!(e.stats(), FraudStats::default());

    // The cap is kept per shard (a 32nd of it each, rounded up): with a cap of 32, each shard keeps
    // only its newest key.
    let mut capped = engine(FraudSettings {
        max_tracked_keys: SNAPSHOT_PARTS,
        ..FraudSettings::default()
    });
    let keys = 3 * SNAPSHOT_PARTS;
    for i in 0..keys {
        let ip = format!("198.51.{i}.1");
        eval(
            &mut capped,
            &input(&phone(i), Some(&ip), T0 + i64::try_from(i).unwrap() * SEC),
        );
    }
    capped.prune(T0 + 96 * SEC);
    let s = capped.stats();
    assert!((1..=SNAPSHOT_PARTS).contains(&s.phones), "{s:?}");
    assert!((1..=SNAPSHOT_PARTS).contains(&s.subnets), "{s:?}");
    // The newest phone is kept (at its limit after one more), whatever shard it is in.
    let newest = keys - 1;
    for want_limited in [false, true] {
        let d = eval(&mut capped, &input(&phone(newest), None, T0 + 97 * SEC));
        assert_eq!(
            matches!(d.verdict, Verdict::RateLimited { .. }),
            want_limited
        );
    }
}
