//! [`FraudEngine`]: the rules of SPEC §8 over in-memory state. Synchronous and deterministic (the
//! time is always passed in), owned by [`crate::fraud::actor::FraudActor`].
//!
//! # How a request is judged ([`FraudEngine::evaluate`]), in order
//! 1. `enabled == false` → `Allow`, not enforced, score 0; nothing is counted or learned.
//! 2. Whitelisted phone (exact `+E164`) or IP inside a whitelisted network (IPv4 or IPv6) → `Allow`
//!    with `whitelisted: true`; no rule runs and the request is counted nowhere.
//! 3. `allowed_countries` non-empty and the destination country not in it (unknown counts as not
//!    allowed) → `CountryNotAllowed`. Not counted against the phone; counted in subnet velocity.
//! 4. Per-phone limits: if the *accepted* (allowed or shadow-banned) requests to the phone in the
//!    last 60 s reach `rate_limit_minute`, or those of the last 3600 s reach `rate_limit_hour` →
//!    `RateLimited`, `retry_after_secs` = whole seconds (≥ 1) until enough of them leave the window
//!    (the longer wait when both limits are hit). A rate-limited request is not counted against the
//!    phone, so a user retrying does not extend their own wait, but it does count in subnet velocity.
//!    The decision carries a 0-point `phone_rate_limit` note with the counts.
//! 5. Scored rules (names and defaults in [`crate::fraud::rules`] and [`RulePoints`]). IP
//!    rules run only for a public end-user IP (see [`IpScope`]); a loopback, private, link-local,
//!    CGNAT or unspecified IP gets a 0-point `non_public_ip` note instead and is counted nowhere, and
//!    without an IP they are skipped:
//!    * `subnet_velocity_minute` / `_hour`: requests from the IP's /24 (IPv4) or /64 (IPv6) in the
//!      last minute (1 s buckets) / hour (1 min buckets), this one included, above the subnet limit;
//!    * `low_reputation`: the worse of the subnet's and the IP's trust, points per
//!      [`crate::fraud::rules::reputation_points`];
//!    * `asn_blocklist`: the IP's ASN is listed; detail `{asn, org, category}`;
//!    * `geo_mismatch`: IP country and destination country both known and different;
//!    * `recently_caught`: a request from the subnet was shadow-banned in the last `caught_ttl_ms`.
//!      This is the only way a ban touches a subnet, and only as points: the next user of a caught
//!      subnet is judged on their own request (the predecessor banned whole /24s for 24 h).
//!
//!    Destination rules run for every request:
//!    * `irsf_prefix`: the longest listed prefix the number starts with; detail `{prefix, note}`;
//!    * `irsf_number_type`: premium rate, shared cost, UAN, personal, pager, voicemail;
//!    * `prefix_breaker`: the prefix (`+` and the first four digits) has an open breaker
//!      (see `state::breaker`; this request is counted as a send first).
//! 6. Score (sum of the points) ≥ `shadow_ban_threshold` → `ShadowBan`, and the subnet is marked
//!    caught; otherwise `Allow`. Both count against the phone.
//!
//! `monitor` mode computes the same decision and updates the same state; only `enforced` is false.
//!
//! # Learning ([`FraudEngine::feedback`])
//! Outcomes reported through `/webhooks/auth` move the trust of the request's IP and subnet
//! (verified +0.2, rejected −0.1, expired unverified −0.15, decaying toward 0 with a 24 h
//! half-life), and a verification counts for its prefix's breaker. Outcomes of whitelisted phones or
//! IPs, and of non-public IPs for trust, are ignored. Callers should not report the outcome of a
//! shadow-banned request: its user never got a code, so its expiry says nothing new and would only
//! feed the ban back into the subnet's trust.
//!
//! # Memory
//! See [`crate::fraud::state`]: windows are pruned on access and by [`FraudEngine::prune`], empty
//! keys are dropped, and each map is capped at `max_tracked_keys`.

mod lists;
mod settings;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use super::state::{FraudSnapshot, FraudStats, SHARDS as SNAPSHOT_PARTS};
pub use lists::{AsnEntry, FraudLists, IrsfPrefix};
pub use settings::{BreakerSettings, FraudSettings, ReputationSettings, RulePoints};

use super::rules;
use super::state::{ip_scope, subnet_of, FraudState, IpScope, HOUR_MS, MINUTE_MS};
use super::{Decision, DecisionInputs, FraudInput, IpInfo, RuleHit, Verdict};
use crate::ipnet::IpNet;
use lists::ListIndex;

/// A verification outcome reported for a delivered code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// The destination, `+E164`.
    pub phone: String,
    /// The end-user IP of the request, if it had one.
    pub ip: Option<IpAddr>,
    /// What happened.
    pub outcome: FeedbackOutcome,
    /// When, ms since the epoch.
    pub now_ms: i64,
}

/// What happened to a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackOutcome {
    /// The user entered it.
    Verified,
    /// The client reported a wrong code.
    Rejected,
    /// It expired without being verified.
    ExpiredUnverified,
}

/// The fraud engine (see the module docs).
#[derive(Debug)]
pub struct FraudEngine {
    settings: FraudSettings,
    lists: ListIndex,
    state: FraudState,
}

impl FraudEngine {
    /// An engine with empty state.
    pub fn new(settings: FraudSettings, lists: FraudLists) -> FraudEngine {
        FraudEngine {
            settings,
            lists: ListIndex::new(lists),
            state: FraudState::default(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &FraudSettings {
        &self.settings
    }

    /// Judges one request and updates the counters (see the module docs for the exact order).
    pub fn evaluate(&mut self, input: &FraudInput, ip_info: &IpInfo) -> Decision {
        let now = input.now_ms;
        let ip = input.ip.map(|ip| ip.to_canonical());
        let scope = ip.map(ip_scope);
        let subnet = ip
            .filter(|_| scope == Some(IpScope::Public))
            .and_then(subnet_of);
        let digits = phone_digits(&input.phone);
        let prefix = prefix_key(digits);
        let inputs = DecisionInputs {
            subnet: subnet.map(|n| n.to_string()),
            ip: ip.map(|ip| ip.to_string()),
            ip_info: ip_info.clone(),
            phone_country: input.phone_country.clone(),
            prefix: format!("+{prefix}"),
            number_kind: Some(input.number_kind),
        };
        let enforced = !self.settings.monitor;
        let decide = |verdict, hits: Vec<RuleHit>, whitelisted, enforced| Decision {
            verdict,
            enforced,
            score: total(&hits),
            hits,
            whitelisted,
            inputs,
        };
        if !self.settings.enabled {
            return decide(Verdict::Allow, Vec::new(), false, false);
        }
        if self.is_whitelisted(&input.phone, ip) {
            return decide(Verdict::Allow, Vec::new(), true, enforced);
        }
        if let Some(country) = self.refused_country(input.phone_country.as_deref()) {
            self.count_subnet(subnet, now);
            return decide(
                Verdict::CountryNotAllowed { country },
                Vec::new(),
                false,
                enforced,
            );
        }
        if let Some((retry_after_secs, note)) = self.phone_limit(&input.phone, now) {
            self.count_subnet(subnet, now);
            let verdict = Verdict::RateLimited { retry_after_secs };
            return decide(verdict, vec![note], false, enforced);
        }
        self.state.record_phone(&input.phone, now);
        let mut hits = Vec::new();
        match (ip, subnet, scope) {
            (Some(ip), Some(net), _) => self.ip_rules(ip, net, ip_info, input, &mut hits),
            (Some(_), None, Some(scope)) => hits.push(rules::non_public_ip(scope)),
            _ => {}
        }
        self.destination_rules(input, digits, prefix, &mut hits);
        let score = total(&hits);
        let verdict = if score >= self.settings.shadow_ban_threshold.max(1) {
            if let Some(net) = subnet {
                self.state.subnet(net).caught_at_ms = Some(now);
            }
            Verdict::ShadowBan
        } else {
            Verdict::Allow
        };
        decide(verdict, hits, false, enforced)
    }

    /// Learns from a verification outcome (see the module docs).
    pub fn feedback(&mut self, ev: Feedback) {
        if !self.settings.enabled {
            return;
        }
        let ip = ev.ip.map(|ip| ip.to_canonical());
        if self.is_whitelisted(&ev.phone, ip) {
            return;
        }
        let s = &self.settings;
        if ev.outcome == FeedbackOutcome::Verified {
            let prefix = prefix_key(phone_digits(&ev.phone));
            self.state
                .with_prefix(prefix, |p| p.record_verified(ev.now_ms, &s.breaker));
        }
        let Some(ip) = ip.filter(|&ip| ip_scope(ip).is_public()) else {
            return;
        };
        let Some(net) = subnet_of(ip) else {
            return;
        };
        let delta = match ev.outcome {
            FeedbackOutcome::Verified => s.reputation.verified_gain,
            FeedbackOutcome::Rejected => -s.reputation.rejected_loss,
            FeedbackOutcome::ExpiredUnverified => -s.reputation.expired_loss,
        };
        let hl = s.reputation.half_life_ms;
        self.state.learn(ip, net, delta, ev.now_ms, hl);
    }

    /// Swaps in new lists (the admin edited them); the learned state is kept.
    pub fn replace_lists(&mut self, lists: FraudLists) {
        self.lists = ListIndex::new(lists);
    }

    /// Drops expired entries and empty keys, and enforces the key cap (the actor calls it every
    /// minute).
    pub fn prune(&mut self, now_ms: i64) {
        self.state.prune(now_ms, &self.settings);
    }

    /// [`FraudEngine::prune`] for one of the [`SNAPSHOT_PARTS`] shards of the state (the actor
    /// prunes them in turn, so no single step holds up evaluations for long).
    pub fn prune_shard(&mut self, shard: usize, now_ms: i64) {
        self.state.prune_shard(shard, now_ms, &self.settings);
    }

    /// The live state, for the database (entries expired at `now_ms` are left out).
    pub fn snapshot(&self, now_ms: i64) -> FraudSnapshot {
        self.state.snapshot(now_ms, &self.settings)
    }

    /// Part `shard` (of [`SNAPSHOT_PARTS`]) of [`FraudEngine::snapshot`]; parts put together with
    /// [`FraudSnapshot::absorb`] make a whole snapshot.
    pub fn snapshot_shard(&self, shard: usize, now_ms: i64) -> FraudSnapshot {
        self.state.snapshot_shard(shard, now_ms, &self.settings)
    }

    /// Replaces the state with a snapshot's (after a restart).
    pub fn restore(&mut self, snapshot: FraudSnapshot) {
        self.state = FraudState::restore(snapshot);
    }

    /// Key counts per map.
    pub fn stats(&self) -> FraudStats {
        self.state.stats()
    }

    fn is_whitelisted(&self, phone: &str, ip: Option<IpAddr>) -> bool {
        self.lists.phone_whitelisted(phone) || ip.is_some_and(|ip| self.lists.ip_whitelisted(ip))
    }

    /// The country to refuse, if `allowed_countries` excludes the destination.
    fn refused_country(&self, country: Option<&str>) -> Option<String> {
        let allowed = &self.settings.allowed_countries;
        if allowed.is_empty() {
            return None;
        }
        match country {
            Some(c) if allowed.iter().any(|a| a.eq_ignore_ascii_case(c)) => None,
            Some(c) => Some(c.to_ascii_uppercase()),
            None => Some("unknown".to_string()),
        }
    }

    /// `(retry_after_secs, note)` when a per-phone limit is reached.
    fn phone_limit(&mut self, phone: &str, now: i64) -> Option<(u64, RuleHit)> {
        let s = &self.settings;
        let window = self.state.phone_window(phone, now)?;
        let minute = window.wait_until_below(now, MINUTE_MS, s.rate_limit_minute);
        let hour = window.wait_until_below(now, HOUR_MS, s.rate_limit_hour);
        let wait_ms = minute.max(hour)?;
        let secs = u64::try_from(wait_ms.saturating_add(999) / 1000)
            .unwrap_or(1)
            .max(1);
        let note = rules::phone_rate_limit(
            (window.count_within(now, MINUTE_MS), s.rate_limit_minute),
            (window.count_within(now, HOUR_MS), s.rate_limit_hour),
            secs,
        );
        Some((secs, note))
    }

    fn count_subnet(&mut self, subnet: Option<IpNet>, now: i64) {
        if let Some(net) = subnet {
            self.state.subnet(net).count_request(now);
        }
    }

    fn ip_rules(
        &mut self,
        ip: IpAddr,
        net: IpNet,
        info: &IpInfo,
        input: &FraudInput,
        hits: &mut Vec<RuleHit>,
    ) {
        let (s, now) = (&self.settings, input.now_ms);
        let points = &s.points;
        let hl = s.reputation.half_life_ms;
        let ip_trust = self.state.ips.get(&ip).map_or(0.0, |t| t.at(now, hl));
        let st = self.state.subnet(net);
        st.count_request(now);
        let (minute, hour) = (st.minute.count(now), st.hour.count(now));
        let subnet_trust = st.trust.map_or(0.0, |t| t.at(now, hl));
        hits.extend(rules::subnet_velocity(
            rules::SUBNET_VELOCITY_MINUTE,
            minute,
            s.subnet_limit_minute,
            60,
            points.subnet_minute,
        ));
        hits.extend(rules::subnet_velocity(
            rules::SUBNET_VELOCITY_HOUR,
            hour,
            s.subnet_limit_hour,
            3600,
            points.subnet_hour,
        ));
        hits.extend(rules::low_reputation(
            subnet_trust,
            ip_trust,
            points.low_reputation,
            s.reputation.min_distrust,
        ));
        if let Some(asn) = info.asn {
            let entry = self.lists.asn(asn);
            hits.extend(rules::asn_blocklist(asn, entry, points.asn_blocklist));
        }
        let phone_cc = input.phone_country.as_deref();
        hits.extend(rules::geo_mismatch(info, phone_cc, s.geo_mismatch_penalty));
        hits.extend(rules::recently_caught(
            st.caught_at_ms,
            now,
            s.caught_ttl_ms,
            points.recently_caught,
        ));
    }

    fn destination_rules(
        &mut self,
        input: &FraudInput,
        digits: &str,
        prefix: &str,
        hits: &mut Vec<RuleHit>,
    ) {
        let (s, now) = (&self.settings, input.now_ms);
        let matched = self.lists.irsf_match(digits);
        hits.extend(rules::irsf_prefix(matched, s.points.irsf_prefix));
        hits.extend(rules::irsf_number_type(
            input.number_kind,
            s.points.irsf_number_type,
        ));
        let check = self.state.with_prefix(prefix, |p| {
            p.record_send(now, &s.breaker);
            p.check(now, &s.breaker)
        });
        hits.extend(rules::prefix_breaker(
            prefix,
            &check,
            s.points.prefix_breaker,
        ));
    }
}

/// The score: the sum of the points.
fn total(hits: &[RuleHit]) -> u32 {
    hits.iter()
        .fold(0u32, |sum, h| sum.saturating_add(h.points))
}

/// The number's digits (`+E164` without the `+`).
fn phone_digits(phone: &str) -> &str {
    phone.strip_prefix('+').unwrap_or(phone)
}

/// The breaker's prefix key: the first four digits (fewer if the number is shorter).
fn prefix_key(digits: &str) -> &str {
    let len = digits
        .bytes()
        .take(4)
        .take_while(u8::is_ascii_digit)
        .count();
    digits.get(..len).unwrap_or_default()
}

#[cfg(test)]
mod tests;
