//! Engine tests: the request flow here, each rule alone in `rules`, learning in `learning`,
//! snapshots and pruning in `persistence`. Time is always passed in, so nothing sleeps.

mod learning;
mod persistence;
mod rules;

use super::*;
use crate::domain::Channel;
use crate::fraud::{NumberKind, Verdict};

pub(super) const T0: i64 = 1_750_000_000_000;
pub(super) const SEC: i64 = 1_000;
pub(super) const MIN: i64 = 60 * SEC;
pub(super) const HOUR: i64 = 60 * MIN;

pub(super) fn engine(settings: FraudSettings) -> FraudEngine {
    FraudEngine::new(settings, FraudLists::default())
}

pub(super) fn input(phone: &str, ip: Option<&str>, now_ms: i64) -> FraudInput {
    FraudInput {
        phone: phone.to_string(),
        phone_country: Some("GB".into()),
        number_kind: NumberKind::Mobile,
        ip: ip.map(|ip| ip.parse().unwrap()),
        channel: Channel::Sms,
        now_ms,
    }
}

pub(super) fn premium(phone: &str, ip: Option<&str>, now_ms: i64) -> FraudInput {
    FraudInput {
        number_kind: NumberKind::PremiumRate,
        ..input(phone, ip, now_ms)
    }
}

pub(super) fn eval(e: &mut FraudEngine, input: &FraudInput) -> Decision {
    e.evaluate(input, &IpInfo::default())
}

pub(super) fn hit<'a>(d: &'a Decision, rule: &str) -> Option<&'a RuleHit> {
    d.hits.iter().find(|h| h.rule == rule)
}

pub(super) fn feedback(phone: &str, ip: &str, outcome: FeedbackOutcome, now_ms: i64) -> Feedback {
    Feedback {
        phone: phone.to_string(),
        ip: Some(ip.parse().unwrap()),
        outcome,
        now_ms,
    }
}

fn phone(i: usize) -> String {
    format!("+4477009{i:05}")
}

#[test]
fn disabled_allows_everything_and_counts_nothing() {
    let mut e = engine(FraudSettings {
        enabled: false,
        ..FraudSettings::default()
    });
    for i in 0..10 {
        let d = eval(
            &mut e,
            &premium("+447700900001", Some("203.0.113.7"), T0 + i),
        );
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(!d.enforced && !d.whitelisted);
        assert_eq!(d.score, 0);
        assert!(d.hits.is_empty());
    }
    let fb = feedback(
        "+447700900001",
        "203.0.113.7",
        FeedbackOutcome::Rejected,
        T0,
    );
    e.feedback(fb);
    assert_eq!(e.stats(), FraudStats::default());
}

#[test]
fn whitelisted_phone_bypasses_everything_and_is_not_counted() {
    let mut e = FraudEngine::new(
        FraudSettings::default(),
        FraudLists {
            whitelist_phones: ["+447700900001".to_string()].into(),
            ..FraudLists::default()
        },
    );
    for i in 0..10 {
        let d = eval(
            &mut e,
            &premium("+447700900001", Some("203.0.113.7"), T0 + i),
        );
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(d.whitelisted && d.enforced);
        assert!(d.hits.is_empty());
    }
    e.feedback(feedback(
        "+447700900001",
        "203.0.113.7",
        FeedbackOutcome::Rejected,
        T0,
    ));
    assert_eq!(e.stats(), FraudStats::default());
}

#[test]
fn whitelisted_networks_v4_and_v6_bypass_everything() {
    let mut e = FraudEngine::new(
        FraudSettings::default(),
        FraudLists {
            whitelist_nets: vec![
                "198.51.100.0/24".parse().unwrap(),
                "2001:db8:1::/48".parse().unwrap(),
            ],
            ..FraudLists::default()
        },
    );
    for (i, ip) in ["198.51.100.7", "::ffff:198.51.100.8", "2001:db8:1:77::5"]
        .iter()
        .enumerate()
    {
        let d = eval(&mut e, &premium(&phone(i), Some(ip), T0));
        assert!(d.whitelisted, "{ip}");
        assert_eq!((d.verdict, d.score), (Verdict::Allow, 0));
    }
    for (i, ip) in ["198.51.101.7", "2001:db8:2::5"].iter().enumerate() {
        let d = eval(&mut e, &premium(&phone(10 + i), Some(ip), T0));
        assert!(!d.whitelisted, "{ip}");
        assert_eq!(d.verdict, Verdict::ShadowBan);
    }
}

#[test]
fn monitor_mode_decides_and_learns_the_same_without_enforcing() {
    let mut enforce = engine(FraudSettings::default());
    let mut monitor = engine(FraudSettings {
        monitor: true,
        ..FraudSettings::default()
    });
    for i in 0..3 {
        let req = premium("+447700900001", Some("203.0.113.7"), T0 + i * SEC);
        let (a, b) = (eval(&mut enforce, &req), eval(&mut monitor, &req));
        assert_eq!(
            (&a.verdict, a.score, &a.hits),
            (&b.verdict, b.score, &b.hits)
        );
        assert!(a.enforced && !b.enforced);
        assert_eq!(b.applied(), &Verdict::Allow);
    }
    // The third was rate-limited in both: monitor mode counted the first two.
    let req = input("+447700900001", None, T0 + 3 * SEC);
    assert!(matches!(
        eval(&mut monitor, &req).verdict,
        Verdict::RateLimited { .. }
    ));
    assert_eq!(enforce.stats(), monitor.stats());
}

#[test]
fn allowed_countries_refuse_others_without_counting_the_phone() {
    let mut e = engine(FraudSettings {
        allowed_countries: vec!["GB".into(), "DE".into()],
        subnet_limit_minute: 3,
        ..FraudSettings::default()
    });
    let mut req = input("+447700900001", Some("203.0.113.7"), T0);
    req.phone_country = Some("FR".into());
    for _ in 0..3 {
        let d = eval(&mut e, &req);
        assert_eq!(
            d.verdict,
            Verdict::CountryNotAllowed {
                country: "FR".into()
            }
        );
    }
    req.phone_country = None;
    let d = eval(&mut e, &req);
    assert_eq!(
        d.verdict,
        Verdict::CountryNotAllowed {
            country: "unknown".into()
        }
    );
    // Not counted against the phone, but the subnet saw four requests.
    req.phone_country = Some("gb".into());
    let d = eval(&mut e, &req);
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(
        hit(&d, "subnet_velocity_minute").unwrap().detail["count"],
        5
    );
}

#[test]
fn per_phone_minute_limit_with_retry_after() {
    let mut e = engine(FraudSettings::default());
    let at = |s: i64| input("+447700900001", Some("203.0.113.7"), T0 + s * SEC);
    assert_eq!(eval(&mut e, &at(0)).verdict, Verdict::Allow);
    assert_eq!(eval(&mut e, &at(10)).verdict, Verdict::Allow);
    let d = eval(&mut e, &at(20));
    assert_eq!(
        d.verdict,
        Verdict::RateLimited {
            retry_after_secs: 40
        }
    );
    let note = hit(&d, "phone_rate_limit").unwrap();
    assert_eq!((note.points, d.score), (0, 0));
    assert_eq!(note.detail["minute"]["count"], 2);
    assert_eq!(note.detail["minute"]["limit"], 2);
    // Retrying does not extend the wait: the 20 s attempt was not counted.
    let d = eval(&mut e, &at(30));
    assert_eq!(
        d.verdict,
        Verdict::RateLimited {
            retry_after_secs: 30
        }
    );
    assert_eq!(eval(&mut e, &at(60)).verdict, Verdict::Allow);
    let d = eval(&mut e, &at(61));
    assert_eq!(
        d.verdict,
        Verdict::RateLimited {
            retry_after_secs: 9
        }
    );
    // Another phone is not affected.
    let other = input("+447700900002", Some("203.0.113.7"), T0 + 61 * SEC);
    assert_eq!(eval(&mut e, &other).verdict, Verdict::Allow);
}

#[test]
fn per_phone_hour_limit_and_sub_second_waits_round_up() {
    let mut e = engine(FraudSettings::default());
    let at = |ms: i64| input("+447700900001", None, T0 + ms);
    for i in 0..5 {
        assert_eq!(eval(&mut e, &at(i * 2 * MIN)).verdict, Verdict::Allow);
    }
    let d = eval(&mut e, &at(10 * MIN));
    assert_eq!(
        d.verdict,
        Verdict::RateLimited {
            retry_after_secs: 3000
        }
    );
    assert_eq!(
        hit(&d, "phone_rate_limit").unwrap().detail["hour"]["count"],
        5
    );
    let d = eval(&mut e, &at(HOUR - 1));
    assert_eq!(
        d.verdict,
        Verdict::RateLimited {
            retry_after_secs: 1
        }
    );
    assert_eq!(eval(&mut e, &at(HOUR)).verdict, Verdict::Allow);
}

#[test]
fn shadow_bans_count_against_the_phone() {
    let mut e = engine(FraudSettings::default());
    for i in 0..2 {
        let d = eval(&mut e, &premium("+447700900001", None, T0 + i));
        assert_eq!(d.verdict, Verdict::ShadowBan);
    }
    let d = eval(&mut e, &premium("+447700900001", None, T0 + 2));
    assert!(matches!(d.verdict, Verdict::RateLimited { .. }));
}

#[test]
fn rate_limited_requests_still_count_for_the_subnet() {
    let mut e = engine(FraudSettings {
        rate_limit_minute: 1,
        subnet_limit_minute: 3,
        ..FraudSettings::default()
    });
    for i in 0..3 {
        eval(
            &mut e,
            &input("+447700900001", Some("203.0.113.7"), T0 + i * SEC),
        );
    }
    let d = eval(
        &mut e,
        &input("+447700900002", Some("203.0.113.8"), T0 + 3 * SEC),
    );
    let h = hit(&d, "subnet_velocity_minute").unwrap();
    assert_eq!((h.points, &h.detail["count"]), (30, &serde_json::json!(4)));
}

#[test]
fn decision_inputs_are_filled() {
    let mut e = engine(FraudSettings::default());
    let info = IpInfo {
        asn: Some(64_496),
        asn_org: Some("Example ISP".into()),
        country: Some("GB".into()),
    };
    let d = e.evaluate(&input("+447700900001", Some("203.0.113.77"), T0), &info);
    let i = &d.inputs;
    assert_eq!(i.subnet.as_deref(), Some("203.0.113.0/24"));
    assert_eq!(i.ip.as_deref(), Some("203.0.113.77"));
    assert_eq!(i.ip_info, info);
    assert_eq!(i.phone_country.as_deref(), Some("GB"));
    assert_eq!(i.prefix, "+4477");
    assert_eq!(i.number_kind, Some(NumberKind::Mobile));
    let d = eval(
        &mut e,
        &input("+12125550100", Some("2001:db8:aa:bb:1:2:3:4"), T0),
    );
    assert_eq!(d.inputs.subnet.as_deref(), Some("2001:db8:aa:bb::/64"));
    assert_eq!(d.inputs.prefix, "+1212");
    let d = eval(&mut e, &input("+447700900002", Some("10.0.0.1"), T0));
    assert_eq!(d.inputs.subnet, None);
    assert_eq!(d.inputs.ip.as_deref(), Some("10.0.0.1"));
}
