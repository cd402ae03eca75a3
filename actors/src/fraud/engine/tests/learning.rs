//! What the engine learns: trust from feedback, the prefix breaker, caught subnets.

use super::*;

fn trust_points(d: &Decision) -> Option<(u32, f64)> {
    let h = hit(d, "low_reputation")?;
    Some((h.points, h.detail["trust"].as_f64().unwrap()))
}

#[test]
fn reputation_falls_rises_and_decays() {
    let mut e = engine(FraudSettings::default());
    let ip = "203.0.113.5";
    e.feedback(feedback(&phone(0), ip, FeedbackOutcome::Rejected, T0));
    // −0.1 is not below the −0.1 threshold: one rejected code costs nothing.
    assert_eq!(
        trust_points(&eval(&mut e, &input(&phone(1), Some(ip), T0))),
        None
    );
    for _ in 0..3 {
        e.feedback(feedback(
            &phone(0),
            ip,
            FeedbackOutcome::ExpiredUnverified,
            T0,
        ));
    }
    // −0.55: round(40 × 0.55) = 22.
    let d = eval(&mut e, &input(&phone(2), Some(ip), T0));
    assert_eq!(trust_points(&d), Some((22, -0.55)));
    // A neighbour in the /24 inherits the subnet's trust.
    let d = eval(&mut e, &input(&phone(3), Some("203.0.113.77"), T0));
    assert_eq!(trust_points(&d), Some((22, -0.55)));
    assert_eq!(hit(&d, "low_reputation").unwrap().detail["ip_trust"], 0.0);
    // Verifications raise it: −0.15 → 6 points.
    for _ in 0..2 {
        e.feedback(feedback(&phone(0), ip, FeedbackOutcome::Verified, T0 + SEC));
    }
    let d = eval(&mut e, &input(&phone(4), Some(ip), T0 + SEC));
    assert_eq!(trust_points(&d).map(|(p, _)| p), Some(6));
    // One half-life later it is −0.075: above the threshold, no points.
    let d = eval(&mut e, &input(&phone(5), Some(ip), T0 + SEC + 24 * HOUR));
    assert_eq!(trust_points(&d), None);
}

#[test]
fn reputation_takes_the_worse_of_ip_and_subnet_and_is_capped() {
    let mut e = engine(FraudSettings::default());
    for _ in 0..3 {
        e.feedback(feedback(
            &phone(0),
            "203.0.113.1",
            FeedbackOutcome::ExpiredUnverified,
            T0,
        ));
        e.feedback(feedback(
            &phone(1),
            "203.0.113.2",
            FeedbackOutcome::Verified,
            T0,
        ));
    }
    // Subnet −0.45 + 0.6 = +0.15; IP .1 is −0.45, IP .2 is +0.6.
    let d = eval(&mut e, &input(&phone(2), Some("203.0.113.1"), T0));
    assert_eq!(trust_points(&d), Some((18, -0.45)));
    let d = eval(&mut e, &input(&phone(3), Some("203.0.113.2"), T0));
    assert_eq!(trust_points(&d), None);
    // Trust never goes below −1: at most the configured 40 points.
    for _ in 0..50 {
        e.feedback(feedback(
            &phone(0),
            "198.51.100.1",
            FeedbackOutcome::ExpiredUnverified,
            T0,
        ));
    }
    let d = eval(&mut e, &input(&phone(4), Some("198.51.100.1"), T0));
    assert_eq!(trust_points(&d), Some((40, -1.0)));
}

#[test]
fn prefix_breaker_opens_cools_down_and_closes() {
    let mut e = engine(FraudSettings::default());
    let pumped = |i: i64, now: i64| input(&format!("+23270{i:06}"), None, now);
    for i in 0..19 {
        let d = eval(&mut e, &pumped(i, T0 + i * SEC));
        assert!(d.hits.is_empty(), "{i}");
    }
    let d = eval(&mut e, &pumped(19, T0 + 19 * SEC));
    let h = hit(&d, "prefix_breaker").unwrap();
    assert_eq!(h.points, 40);
    assert_eq!(h.detail["prefix"], "+2327");
    assert_eq!(h.detail["state"], "opened");
    assert_eq!(
        (&h.detail["sends"], &h.detail["verified"]),
        (&20.into(), &0.into())
    );
    assert_eq!(
        d.verdict,
        Verdict::Allow,
        "40 points alone are below the threshold"
    );
    // Other prefixes are not affected; during the cooldown it stays open even with verifications.
    assert!(eval(&mut e, &input("+447700900001", None, T0 + 20 * SEC))
        .hits
        .is_empty());
    let t = T0 + 30 * MIN;
    e.feedback(feedback(
        "+232700000001",
        "198.51.100.1",
        FeedbackOutcome::Verified,
        t,
    ));
    assert_eq!(
        hit(&eval(&mut e, &pumped(100, t)), "prefix_breaker")
            .unwrap()
            .detail["state"],
        "open"
    );
    // After the cooldown, healthy traffic (every code verified) closes it.
    let t = T0 + HOUR + MIN;
    for i in 0..25 {
        let now = t + i * SEC;
        let d = eval(&mut e, &pumped(200 + i, now));
        assert!(hit(&d, "prefix_breaker").is_none(), "{i}: {:?}", d.hits);
        let phone = format!("+23270{:06}", 200 + i);
        e.feedback(feedback(
            &phone,
            "198.51.100.1",
            FeedbackOutcome::Verified,
            now + 500,
        ));
    }
}

#[test]
fn one_ban_adds_points_to_its_subnet_but_does_not_ban_the_next_user() {
    let mut e = engine(FraudSettings::default());
    let d = eval(&mut e, &premium(&phone(0), Some("203.0.113.7"), T0));
    assert_eq!(d.verdict, Verdict::ShadowBan);
    // A legitimate user of the same /24, even from abroad: 25 + 20 < 50.
    let abroad = IpInfo {
        country: Some("FR".into()),
        ..IpInfo::default()
    };
    let d = e.evaluate(&input(&phone(1), Some("203.0.113.8"), T0 + MIN), &abroad);
    assert_eq!((d.verdict.clone(), d.score), (Verdict::Allow, 45));
    let h = hit(&d, "recently_caught").unwrap();
    assert_eq!((h.points, &h.detail["ago_secs"]), (25, &60.into()));
    assert!(eval(&mut e, &input(&phone(2), Some("203.0.114.8"), T0))
        .hits
        .is_empty());
    // Allowed requests do not renew the mark: it expires 24 h after the ban.
    let d = eval(
        &mut e,
        &input(&phone(3), Some("203.0.113.9"), T0 + 24 * HOUR),
    );
    assert!(d.hits.is_empty(), "{:?}", d.hits);
}
