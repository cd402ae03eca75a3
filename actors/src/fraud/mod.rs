//! The fraud engine (SPEC §8): decides, before anything is sent, whether a dispatch goes ahead,
//! is refused (per-phone rate limit → 429, country not allowed → 422) or is shadow-banned (same
//! answer and events as a real delivery, nothing reaches DIDWW). Everything is in memory: counters,
//! reputations and breakers live in [`engine::FraudEngine`], owned by the [`actor::FraudActor`],
//! and are snapshotted to the database so a restart neither forgets an attacker nor punishes a
//! user twice.
//!
//! Every decision lists each rule that fired with its points and the inputs it used
//! ([`Decision`]), so an operator can see why.

pub mod actor;
pub mod admission;
pub mod engine;
pub mod rules;
pub mod state;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Channel;

/// What libphonenumber says a destination is (the types that matter for fraud).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberKind {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberKind {
    /// Types legitimate OTP traffic never needs and IRSF schemes use (premium rate, shared cost,
    /// UAN, personal numbers, pagers, voicemail access).
    pub fn is_irsf_type(self) -> bool {
        matches!(
            self,
            NumberKind::PremiumRate
                | NumberKind::SharedCost
                | NumberKind::Uan
                | NumberKind::PersonalNumber
                | NumberKind::Pager
                | NumberKind::Voicemail
        )
    }
}

/// What the IP databases say about the end user's IP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpInfo {
    /// Autonomous system number (`ASN_DB_PATH`).
    pub asn: Option<u32>,
    /// Its organisation.
    pub asn_org: Option<String>,
    /// ISO 3166 alpha-2 country (`GEOIP_DB_PATH`), upper case.
    pub country: Option<String>,
}

/// Looks up IP facts (the MaxMind databases live outside this crate).
pub trait IpLookup: Send + Sync {
    /// Facts about `ip`; empty when unknown or when no database is loaded.
    fn lookup(&self, ip: IpAddr) -> IpInfo;
}

/// One dispatch to judge.
#[derive(Debug, Clone)]
pub struct FraudInput {
    /// Destination, `+E164`.
    pub phone: String,
    /// Destination country (ISO alpha-2, upper case), from libphonenumber.
    pub phone_country: Option<String>,
    /// Destination number type, from libphonenumber.
    pub number_kind: NumberKind,
    /// The end user's IP: only the request's explicit `ip` field. The API caller's own address
    /// (usually the customer's backend, often in a cloud) is never scored as the end user.
    pub ip: Option<IpAddr>,
    /// First channel of the plan (for savings).
    pub channel: Channel,
    /// Now, ms since the epoch.
    pub now_ms: i64,
}

/// What happens to the dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Deliver.
    Allow,
    /// 429 `rate_limited`: the per-phone limit; retry after this many seconds.
    RateLimited {
        /// Seconds until the oldest counted request leaves the window.
        retry_after_secs: u64,
    },
    /// 422 `country_not_allowed`.
    CountryNotAllowed {
        /// The destination's country (or `"unknown"`).
        country: String,
    },
    /// Score at or above `FRAUD_SHADOW_BAN_THRESHOLD`: simulate, send nothing.
    ShadowBan,
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    /// Stable rule name (`subnet_velocity_minute`, `asn_blocklist`, `irsf_prefix`, …).
    pub rule: String,
    /// Points added.
    pub points: u32,
    /// What it saw (counts, limits, ASN and organisation, countries, prefix, trust score, …).
    pub detail: Value,
}

/// The inputs the decision used, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionInputs {
    /// `/24` or `/64` of the end-user IP, as text (`203.0.113.0/24`).
    pub subnet: Option<String>,
    /// The end-user IP.
    pub ip: Option<String>,
    /// IP facts.
    pub ip_info: IpInfo,
    /// Destination country.
    pub phone_country: Option<String>,
    /// Destination prefix used by the prefix rules (`+` and the first digits).
    pub prefix: String,
    /// Destination number type.
    pub number_kind: Option<NumberKind>,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What the engine concluded.
    pub verdict: Verdict,
    /// False in `FRAUD_MODE=monitor` (recorded, not applied) and when fraud is disabled.
    pub enforced: bool,
    /// Sum of the hits' points.
    pub score: u32,
    /// Every rule that fired.
    pub hits: Vec<RuleHit>,
    /// The phone or IP was on the whitelist: no rule ran.
    pub whitelisted: bool,
    /// What the rules looked at.
    pub inputs: DecisionInputs,
}

impl Decision {
    /// The verdict that is actually applied (`Allow` when not enforced).
    pub fn applied(&self) -> &Verdict {
        if self.enforced {
            &self.verdict
        } else {
            &Verdict::Allow
        }
    }
}
