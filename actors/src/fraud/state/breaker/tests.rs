use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn settings() -> BreakerSettings {
    BreakerSettings {
        // Short, so a few simulated hours converge.
        baseline_half_life_ms: HOUR,
        ..BreakerSettings::default()
    }
}

/// Feeds `buckets` buckets from `start` with `sends` and `verified` each (spread inside the bucket,
/// checking after each send) and returns the states seen (consecutive repeats collapsed), the last
/// check and the time after the last bucket.
fn run(
    p: &mut PrefixState,
    start: i64,
    buckets: i64,
    sends: u32,
    verified: u32,
    s: &BreakerSettings,
) -> (Vec<BreakerState>, BreakerCheck, i64) {
    let mut seen = Vec::new();
    let mut last = None;
    for b in 0..buckets {
        let t0 = start + b * BUCKET_MS;
        for i in 0..sends {
            let t = t0 + i64::from(i) * 1_000;
            p.record_send(t, s);
            if i < verified {
                p.record_verified(t + 500, s);
            }
            let c = p.check(t + 600, s);
            if seen.last() != Some(&c.state) {
                seen.push(c.state);
            }
            last = Some(c);
        }
    }
    let end = start + buckets * BUCKET_MS;
    (seen, last.unwrap_or_else(|| p.check(end, s)), end)
}

#[test]
fn opens_on_volume_with_collapsed_verification() {
    let s = settings();
    let mut p = PrefixState::default();
    for i in 0..19 {
        p.record_send(i * 1_000, &s);
        assert_eq!(p.check(i * 1_000, &s).state, BreakerState::Closed);
    }
    p.record_send(19_000, &s);
    let c = p.check(19_000, &s);
    assert_eq!(c.state, BreakerState::Opened);
    assert_eq!((c.sends, c.verified), (20, 0));
    assert_eq!(c.open_until_ms, Some(19_000 + HOUR));
    assert_eq!(p.check(30_000, &s).state, BreakerState::Open);
}

#[test]
fn healthy_verification_never_opens() {
    let s = settings();
    let mut p = PrefixState::default();
    let (seen, _, _) = run(&mut p, 0, 24, 40, 30, &s);
    assert_eq!(seen, vec![BreakerState::Closed]);
    assert!(!p.is_open(2 * HOUR));
}

#[test]
fn cooldown_then_reopen_or_close() {
    let s = settings();
    let mut p = PrefixState::default();
    // Pumped without a pause for 70 minutes: opens, and is still tripped when the cooldown ends.
    let (seen, _, t) = run(&mut p, 0, 14, 25, 1, &s);
    use BreakerState::{Closed, Open, Opened, Reopened};
    assert_eq!(seen, vec![Closed, Opened, Open, Reopened, Open]);
    // After the next cooldown, the traffic is healthy: the first send re-evaluates and closes it.
    let (seen, _, _) = run(&mut p, t + HOUR, 3, 25, 20, &s);
    assert_eq!(seen, vec![Closed]);
}

#[test]
fn a_learned_rate_makes_a_half_collapse_count_but_only_with_a_spike() {
    let s = settings();
    let mut p = PrefixState::default();
    // Six hours of 10 sends per bucket, 9 verified: baseline ≈ 30 per window at 90 %.
    let (_, _, t) = run(&mut p, 0, 72, 10, 9, &s);
    let c = p.check(t, &s);
    let rate = c.baseline_verify_rate.unwrap();
    assert!((rate - 0.9).abs() < 0.01, "{c:?}");
    assert!((c.baseline_sends - 30.0).abs() < 2.0, "{c:?}");
    assert!((c.verify_floor - 0.45).abs() < 0.01);
    // Same volume, 30 % verified: no spike, stays closed.
    let mut same = p.clone();
    let (seen, c, _) = run(&mut same, t, 3, 10, 3, &s);
    assert_eq!(seen, vec![BreakerState::Closed], "{c:?}");
    // Four times the volume at 30 %: above 10 % but under half the usual rate → opens.
    let (seen, c, _) = run(&mut p, t, 3, 40, 12, &s);
    assert!(seen.contains(&BreakerState::Opened), "{c:?}");
}

#[test]
fn traffic_seen_while_open_is_not_learned() {
    let s = settings();
    let mut p = PrefixState::default();
    let (_, _, t) = run(&mut p, 0, 72, 10, 9, &s);
    let before = p.check(t, &s).baseline_sends;
    // Two hours of a 10× pump with nothing verified: open throughout.
    let (seen, _, t) = run(&mut p, t, 24, 100, 0, &s);
    use BreakerState::{Closed, Open, Opened, Reopened};
    assert_eq!(seen, vec![Closed, Opened, Open, Reopened, Open]);
    let after = p.check(t, &s);
    assert!(
        (after.baseline_sends - before).abs() < 1.0,
        "{before} → {after:?}"
    );
    assert!(after.baseline_verify_rate.unwrap() > 0.85);
}

#[test]
fn idle_prefixes_are_forgotten() {
    let s = settings();
    let mut p = PrefixState::default();
    run(&mut p, 0, 3, 5, 5, &s);
    assert!(!p.prune(20 * MIN, &s));
    // The baseline (15 sends) decays under 0.5 in about five half-lives.
    assert!(p.prune(8 * HOUR, &s));
}
