//! Each scored rule alone: fires when it should, not when it should not, with its points and detail.

use serde_json::json;

use super::*;

fn lists() -> FraudLists {
    FraudLists {
        asn_blocklist: [(
            64_500,
            AsnEntry {
                org: "Example Hosting".into(),
                category: "hosting".into(),
            },
        )]
        .into(),
        irsf_prefixes: vec![
            IrsfPrefix {
                digits: "882".into(),
                note: "international networks".into(),
            },
            IrsfPrefix {
                digits: "88216".into(),
                note: "satellite".into(),
            },
        ],
        ..FraudLists::default()
    }
}

fn only_hit(d: &Decision) -> &RuleHit {
    assert_eq!(d.hits.len(), 1, "{:?}", d.hits);
    &d.hits[0]
}

#[test]
fn subnet_velocity_minute_counts_the_v4_slash_24() {
    let mut e = engine(FraudSettings::default());
    for i in 0..10 {
        let ip = format!("203.0.113.{i}");
        let d = eval(
            &mut e,
            &input(&phone(i), Some(&ip), T0 + i64::try_from(i).unwrap()),
        );
        assert!(d.hits.is_empty(), "{i}: {:?}", d.hits);
    }
    let d = eval(&mut e, &input(&phone(10), Some("203.0.113.200"), T0 + 10));
    let h = only_hit(&d);
    assert_eq!((h.rule.as_str(), h.points), ("subnet_velocity_minute", 30));
    assert_eq!(
        h.detail,
        json!({"count": 11, "limit": 10, "window_secs": 60})
    );
    assert_eq!(d.verdict, Verdict::Allow);
    // Another /24 is not affected, and a minute later the window is clear.
    assert!(
        eval(&mut e, &input(&phone(11), Some("203.0.114.1"), T0 + 11))
            .hits
            .is_empty()
    );
    let d = eval(
        &mut e,
        &input(&phone(12), Some("203.0.113.1"), T0 + MIN + SEC),
    );
    assert!(d.hits.is_empty(), "{:?}", d.hits);
}

#[test]
fn subnet_velocity_minute_counts_the_v6_slash_64() {
    let mut e = engine(FraudSettings::default());
    for i in 0..11 {
        let ip = format!("2001:db8:1:2::{i:x}");
        eval(&mut e, &input(&phone(i), Some(&ip), T0));
    }
    let d = eval(&mut e, &input(&phone(20), Some("2001:db8:1:2:ffff::1"), T0));
    assert_eq!(
        hit(&d, "subnet_velocity_minute").unwrap().detail["count"],
        12
    );
    let d = eval(&mut e, &input(&phone(21), Some("2001:db8:1:3::1"), T0));
    assert!(d.hits.is_empty());
}

#[test]
fn subnet_velocity_hour() {
    let mut e = engine(FraudSettings::default());
    for i in 0..60 {
        let d = eval(
            &mut e,
            &input(
                &phone(i),
                Some("198.51.100.1"),
                T0 + i64::try_from(i).unwrap() * 55 * SEC,
            ),
        );
        assert!(d.hits.is_empty(), "{i}: {:?}", d.hits);
    }
    let d = eval(
        &mut e,
        &input(&phone(60), Some("198.51.100.2"), T0 + 56 * MIN),
    );
    let h = only_hit(&d);
    assert_eq!((h.rule.as_str(), h.points), ("subnet_velocity_hour", 20));
    assert_eq!(
        h.detail,
        json!({"count": 61, "limit": 60, "window_secs": 3600})
    );
}

#[test]
fn asn_blocklist() {
    let mut e = FraudEngine::new(FraudSettings::default(), lists());
    let listed = IpInfo {
        asn: Some(64_500),
        ..IpInfo::default()
    };
    let d = e.evaluate(&input(&phone(0), Some("203.0.113.7"), T0), &listed);
    let h = only_hit(&d);
    assert_eq!((h.rule.as_str(), h.points), ("asn_blocklist", 30));
    assert_eq!(
        h.detail,
        json!({"asn": 64_500, "org": "Example Hosting", "category": "hosting"})
    );
    let other = IpInfo {
        asn: Some(64_501),
        ..IpInfo::default()
    };
    let d = e.evaluate(&input(&phone(1), Some("203.0.113.7"), T0), &other);
    assert!(d.hits.is_empty());
    assert!(eval(&mut e, &input(&phone(2), Some("203.0.113.7"), T0))
        .hits
        .is_empty());
}

#[test]
fn geo_mismatch() {
    let mut e = engine(FraudSettings::default());
    let de = IpInfo {
        country: Some("DE".into()),
        ..IpInfo::default()
    };
    let d = e.evaluate(&input(&phone(0), Some("203.0.113.7"), T0), &de);
    let h = only_hit(&d);
    assert_eq!((h.rule.as_str(), h.points), ("geo_mismatch", 20));
    assert_eq!(h.detail, json!({"ip_country": "DE", "phone_country": "GB"}));
    let gb = IpInfo {
        country: Some("GB".into()),
        ..IpInfo::default()
    };
    assert!(e
        .evaluate(&input(&phone(1), Some("203.0.113.7"), T0), &gb)
        .hits
        .is_empty());
    let mut unknown = input(&phone(2), Some("203.0.113.7"), T0);
    unknown.phone_country = None;
    assert!(e.evaluate(&unknown, &de).hits.is_empty());
    let mut off = engine(FraudSettings {
        geo_mismatch_penalty: 0,
        ..FraudSettings::default()
    });
    assert!(off
        .evaluate(&input(&phone(3), Some("203.0.113.7"), T0), &de)
        .hits
        .is_empty());
}

#[test]
fn irsf_prefix_longest_match() {
    let mut e = FraudEngine::new(FraudSettings::default(), lists());
    let d = eval(&mut e, &input("+882161234567", None, T0));
    let h = only_hit(&d);
    assert_eq!((h.rule.as_str(), h.points), ("irsf_prefix", 50));
    assert_eq!(h.detail, json!({"prefix": "+88216", "note": "satellite"}));
    assert_eq!(d.verdict, Verdict::ShadowBan);
    let d = eval(&mut e, &input("+882991234567", None, T0));
    assert_eq!(only_hit(&d).detail["prefix"], "+882");
    assert!(eval(&mut e, &input("+447700900001", None, T0))
        .hits
        .is_empty());
}

#[test]
fn irsf_number_type() {
    let mut e = engine(FraudSettings::default());
    let d = eval(&mut e, &premium(&phone(0), None, T0));
    let h = only_hit(&d);
    assert_eq!((h.rule.as_str(), h.points), ("irsf_number_type", 50));
    assert_eq!(h.detail, json!({"number_kind": "premium_rate"}));
    assert_eq!(d.verdict, Verdict::ShadowBan);
    for kind in [
        NumberKind::Mobile,
        NumberKind::FixedLine,
        NumberKind::TollFree,
        NumberKind::Voip,
    ] {
        let req = FraudInput {
            number_kind: kind,
            ..input(&phone(1), None, T0)
        };
        assert!(eval(&mut e, &req).hits.is_empty(), "{kind:?}");
        e.prune(T0 + HOUR);
    }
}

#[test]
fn non_public_ips_are_never_penalised() {
    // 300 unverified sends to +4477 would open its breaker, which is not what this is about.
    let mut settings = FraudSettings::default();
    settings.points.prefix_breaker = 0;
    let mut e = FraudEngine::new(settings, lists());
    // What a misconfigured lookup might claim: a blocklisted ASN abroad.
    let bad = IpInfo {
        asn: Some(64_500),
        asn_org: None,
        country: Some("US".into()),
    };
    let ips = [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.5", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.0.1", "link_local"),
        ("fe80::1", "link_local"),
        ("100.64.1.1", "cgnat"),
        ("0.0.0.0", "unspecified"),
    ];
    let mut n = 0;
    for (ip, scope) in ips {
        for _ in 0..30 {
            n += 1;
            let d = e.evaluate(&input(&phone(n), Some(ip), T0), &bad);
            assert_eq!((d.verdict.clone(), d.score), (Verdict::Allow, 0), "{ip}");
            let h = only_hit(&d);
            assert_eq!((h.rule.as_str(), h.points), ("non_public_ip", 0));
            assert_eq!(h.detail, json!({"ip_scope": scope}));
        }
        e.feedback(feedback(
            &phone(0),
            ip,
            FeedbackOutcome::ExpiredUnverified,
            T0,
        ));
    }
    assert_eq!((e.stats().subnets, e.stats().ips), (0, 0));
    // No IP at all: no IP rule, no note.
    assert!(e
        .evaluate(&input(&phone(999), None, T0), &bad)
        .hits
        .is_empty());
}
