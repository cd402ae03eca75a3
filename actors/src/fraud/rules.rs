//! The scored rules of SPEC §8, one function each: given what the engine measured, the [`RuleHit`]
//! (stable name, points, and in `detail` what it used) when the rule fires. A rule whose points are
//! configured as 0 is off. The counting lives in [`crate::fraud::state`]; the order and the verdict
//! in [`crate::fraud::engine`].

use serde_json::json;

use super::engine::{AsnEntry, IrsfPrefix};
use super::state::{BreakerCheck, BreakerState, IpScope};
use super::{IpInfo, NumberKind, RuleHit};

/// Requests from the subnet in the last minute above `FRAUD_SUBNET_LIMIT_MINUTE`.
pub const SUBNET_VELOCITY_MINUTE: &str = "subnet_velocity_minute";
/// Requests from the subnet in the last hour above `FRAUD_SUBNET_LIMIT_HOUR`.
pub const SUBNET_VELOCITY_HOUR: &str = "subnet_velocity_hour";
/// The subnet or IP has negative learned trust.
pub const LOW_REPUTATION: &str = "low_reputation";
/// The IP's ASN is on the blocklist.
pub const ASN_BLOCKLIST: &str = "asn_blocklist";
/// IP country and destination country differ.
pub const GEO_MISMATCH: &str = "geo_mismatch";
/// The destination starts with a listed high-risk prefix.
pub const IRSF_PREFIX: &str = "irsf_prefix";
/// The destination is of a type IRSF uses (premium rate, shared cost, …).
pub const IRSF_NUMBER_TYPE: &str = "irsf_number_type";
/// The destination prefix's breaker is open.
pub const PREFIX_BREAKER: &str = "prefix_breaker";
/// A request from the subnet was shadow-banned recently.
pub const RECENTLY_CAUGHT: &str = "recently_caught";
/// Note (0 points): the IP is loopback, private, link-local, CGNAT or unspecified, so no IP rule ran.
pub const NON_PUBLIC_IP: &str = "non_public_ip";
/// Note (0 points) on a rate-limited decision: the per-phone counts.
pub const PHONE_RATE_LIMIT: &str = "phone_rate_limit";

fn hit(rule: &str, points: u32, detail: serde_json::Value) -> Option<RuleHit> {
    Some(RuleHit {
        rule: rule.to_string(),
        points,
        detail,
    })
}

/// Three decimals are plenty for an operator, and keep stored JSON short.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `subnet_velocity_minute`/`_hour`: fires when `count` (this request included) is above `limit`.
pub(crate) fn subnet_velocity(
    rule: &str,
    count: u32,
    limit: u32,
    window_secs: u32,
    points: u32,
) -> Option<RuleHit> {
    if points == 0 || limit == 0 || count <= limit {
        return None;
    }
    hit(
        rule,
        points,
        json!({ "count": count, "limit": limit, "window_secs": window_secs }),
    )
}

/// The `low_reputation` curve: 0 while trust ≥ −`min_distrust`, then linear in the distrust,
/// `round(max_points × −trust)`, so −0.25 gives 10 of 40 points and −1 all 40.
pub fn reputation_points(trust: f64, max_points: u32, min_distrust: f64) -> u32 {
    if trust.is_nan() || trust >= -min_distrust {
        return 0;
    }
    // −trust ≤ 1, so the product fits u32.
    (f64::from(max_points) * (-trust).min(1.0)).round() as u32
}

/// `low_reputation`: the worse of the subnet's and the IP's trust, on [`reputation_points`].
pub(crate) fn low_reputation(
    subnet_trust: f64,
    ip_trust: f64,
    max_points: u32,
    min_distrust: f64,
) -> Option<RuleHit> {
    let trust = subnet_trust.min(ip_trust);
    let points = reputation_points(trust, max_points, min_distrust);
    if points == 0 {
        return None;
    }
    hit(
        LOW_REPUTATION,
        points,
        json!({
            "trust": round3(trust),
            "subnet_trust": round3(subnet_trust),
            "ip_trust": round3(ip_trust),
        }),
    )
}

/// `asn_blocklist`: the IP's ASN has an entry.
pub(crate) fn asn_blocklist(asn: u32, entry: Option<&AsnEntry>, points: u32) -> Option<RuleHit> {
    let entry = entry.filter(|_| points > 0)?;
    hit(
        ASN_BLOCKLIST,
        points,
        json!({ "asn": asn, "org": entry.org, "category": entry.category }),
    )
}

/// `geo_mismatch`: both countries known and different.
pub(crate) fn geo_mismatch(
    info: &IpInfo,
    phone_country: Option<&str>,
    penalty: u32,
) -> Option<RuleHit> {
    let (ip_cc, phone_cc) = (info.country.as_deref()?, phone_country?);
    if penalty == 0 || ip_cc.eq_ignore_ascii_case(phone_cc) {
        return None;
    }
    hit(
        GEO_MISMATCH,
        penalty,
        json!({ "ip_country": ip_cc, "phone_country": phone_cc }),
    )
}

/// `irsf_prefix`: the longest listed prefix the destination starts with.
pub(crate) fn irsf_prefix(matched: Option<&IrsfPrefix>, points: u32) -> Option<RuleHit> {
    let p = matched.filter(|_| points > 0)?;
    hit(
        IRSF_PREFIX,
        points,
        json!({ "prefix": format!("+{}", p.digits), "note": p.note }),
    )
}

/// `irsf_number_type`: see [`NumberKind::is_irsf_type`].
pub(crate) fn irsf_number_type(kind: NumberKind, points: u32) -> Option<RuleHit> {
    if points == 0 || !kind.is_irsf_type() {
        return None;
    }
    hit(IRSF_NUMBER_TYPE, points, json!({ "number_kind": kind }))
}

/// `prefix_breaker`: the breaker of `prefix` (digits, no `+`) is open after the check (see
/// `state::breaker` for when).
pub(crate) fn prefix_breaker(prefix: &str, c: &BreakerCheck, points: u32) -> Option<RuleHit> {
    if points == 0 || c.state == BreakerState::Closed {
        return None;
    }
    let rate = if c.sends > 0 {
        f64::from(c.verified) / f64::from(c.sends)
    } else {
        0.0
    };
    hit(
        PREFIX_BREAKER,
        points,
        json!({
            "prefix": format!("+{prefix}"),
            "state": c.state.as_str(),
            "sends": c.sends,
            "verified": c.verified,
            "verify_rate": round3(rate),
            "verify_floor": round3(c.verify_floor),
            "baseline_sends": round3(c.baseline_sends),
            "baseline_verify_rate": c.baseline_verify_rate.map(round3),
            "open_until_ms": c.open_until_ms,
        }),
    )
}

/// `recently_caught`: the subnet's last shadow ban is younger than `ttl_ms`.
pub(crate) fn recently_caught(
    caught_at_ms: Option<i64>,
    now_ms: i64,
    ttl_ms: i64,
    points: u32,
) -> Option<RuleHit> {
    let at = caught_at_ms?;
    let ago = now_ms.saturating_sub(at);
    if points == 0 || ago >= ttl_ms {
        return None;
    }
    hit(
        RECENTLY_CAUGHT,
        points,
        json!({ "caught_at_ms": at, "ago_secs": ago.max(0) / 1000 }),
    )
}

/// The 0-point note for a non-public IP.
pub(crate) fn non_public_ip(scope: IpScope) -> RuleHit {
    RuleHit {
        rule: NON_PUBLIC_IP.to_string(),
        points: 0,
        detail: json!({ "ip_scope": scope.as_str() }),
    }
}

/// The 0-point note of a rate-limited decision: `(count, limit)` per window.
pub(crate) fn phone_rate_limit(minute: (usize, u32), hour: (usize, u32), retry: u64) -> RuleHit {
    RuleHit {
        rule: PHONE_RATE_LIMIT.to_string(),
        points: 0,
        detail: json!({
            "minute": { "count": minute.0, "limit": minute.1 },
            "hour": { "count": hour.0, "limit": hour.1 },
            "retry_after_secs": retry,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reputation_curve() {
        assert_eq!(reputation_points(0.5, 40, 0.1), 0);
        assert_eq!(reputation_points(-0.1, 40, 0.1), 0);
        assert_eq!(reputation_points(-0.11, 40, 0.1), 4);
        assert_eq!(reputation_points(-0.25, 40, 0.1), 10);
        assert_eq!(reputation_points(-1.0, 40, 0.1), 40);
        assert_eq!(reputation_points(f64::NAN, 40, 0.1), 0);
    }

    #[test]
    fn zero_points_turn_rules_off() {
        assert!(subnet_velocity(SUBNET_VELOCITY_MINUTE, 50, 10, 60, 0).is_none());
        assert!(subnet_velocity(SUBNET_VELOCITY_MINUTE, 50, 0, 60, 30).is_none());
        assert!(irsf_number_type(NumberKind::PremiumRate, 0).is_none());
        let info = IpInfo {
            country: Some("DE".into()),
            ..IpInfo::default()
        };
        assert!(geo_mismatch(&info, Some("FR"), 0).is_none());
        assert!(geo_mismatch(&info, Some("de"), 20).is_none());
        assert!(geo_mismatch(&info, None, 20).is_none());
    }
}
