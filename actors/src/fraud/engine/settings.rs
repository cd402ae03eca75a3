//! Tunables of the fraud engine. The `FRAUD_*` environment variables map onto [`FraudSettings`];
//! the rest keep their documented defaults unless the wiring overrides them.

/// 24 hours, in ms.
const DAY_MS: i64 = 86_400_000;

/// Everything the engine can be tuned with. `Default` is the configuration defaults of SPEC §1.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudSettings {
    /// `FRAUD_ENABLED`: when false every request is allowed, unrecorded.
    pub enabled: bool,
    /// `FRAUD_MODE=monitor`: decide and learn as usual, but mark decisions not enforced.
    pub monitor: bool,
    /// `FRAUD_RATE_LIMIT_MINUTE`: accepted requests per phone per minute (0 = no limit).
    pub rate_limit_minute: u32,
    /// `FRAUD_RATE_LIMIT_HOUR`: accepted requests per phone per hour (0 = no limit).
    pub rate_limit_hour: u32,
    /// `FRAUD_SUBNET_LIMIT_MINUTE`: requests per subnet per minute above which
    /// `subnet_velocity_minute` fires (0 = rule off).
    pub subnet_limit_minute: u32,
    /// `FRAUD_SUBNET_LIMIT_HOUR`: the same per hour, for `subnet_velocity_hour`.
    pub subnet_limit_hour: u32,
    /// `FRAUD_SHADOW_BAN_THRESHOLD`: a score at or above it is a shadow ban (0 is taken as 1).
    pub shadow_ban_threshold: u32,
    /// `FRAUD_GEO_MISMATCH_PENALTY`: points of `geo_mismatch` (0 = rule off).
    pub geo_mismatch_penalty: u32,
    /// `FRAUD_ALLOWED_COUNTRIES`: ISO alpha-2 destination countries; empty = all.
    pub allowed_countries: Vec<String>,
    /// Points of the other rules.
    pub points: RulePoints,
    /// Trust learning.
    pub reputation: ReputationSettings,
    /// The prefix breaker.
    pub breaker: BreakerSettings,
    /// How long a shadow ban marks its subnet for `recently_caught` (default 24 h).
    pub caught_ttl_ms: i64,
    /// Most keys per map (phones, subnets, IPs) before the stalest are evicted; 0 = no cap. Kept
    /// per shard of the map (a 32nd each, rounded up, so at least one per shard), where keys
    /// spread evenly by hash.
    /// Default 500 000: a few hundred MB at worst.
    pub max_tracked_keys: usize,
}

impl Default for FraudSettings {
    fn default() -> FraudSettings {
        FraudSettings {
            enabled: true,
            monitor: false,
            rate_limit_minute: 2,
            rate_limit_hour: 5,
            subnet_limit_minute: 10,
            subnet_limit_hour: 60,
            shadow_ban_threshold: 50,
            geo_mismatch_penalty: 20,
            allowed_countries: Vec::new(),
            points: RulePoints::default(),
            reputation: ReputationSettings::default(),
            breaker: BreakerSettings::default(),
            caught_ttl_ms: DAY_MS,
            max_tracked_keys: 500_000,
        }
    }
}

/// Points per rule (the geo mismatch penalty is [`FraudSettings::geo_mismatch_penalty`]). A rule
/// given 0 points is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePoints {
    /// `subnet_velocity_minute` (30).
    pub subnet_minute: u32,
    /// `subnet_velocity_hour` (20).
    pub subnet_hour: u32,
    /// `low_reputation`, at trust −1 (40); scaled down linearly with the distrust.
    pub low_reputation: u32,
    /// `asn_blocklist` (30).
    pub asn_blocklist: u32,
    /// `irsf_prefix` (50).
    pub irsf_prefix: u32,
    /// `irsf_number_type` (50).
    pub irsf_number_type: u32,
    /// `prefix_breaker` (40).
    pub prefix_breaker: u32,
    /// `recently_caught` (25).
    pub recently_caught: u32,
}

impl Default for RulePoints {
    fn default() -> RulePoints {
        RulePoints {
            subnet_minute: 30,
            subnet_hour: 20,
            low_reputation: 40,
            asn_blocklist: 30,
            irsf_prefix: 50,
            irsf_number_type: 50,
            prefix_breaker: 40,
            recently_caught: 25,
        }
    }
}

/// How verification outcomes move trust (see `state::trust`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReputationSettings {
    /// Added on a verified code (0.2).
    pub verified_gain: f64,
    /// Removed on a rejected code (0.1): a typo is weak evidence.
    pub rejected_loss: f64,
    /// Removed when a code expired unverified (0.15): the pattern of codes sent to numbers nobody
    /// reads, which is how toll fraud looks from here.
    pub expired_loss: f64,
    /// Trust halves toward neutral every this many ms (24 h; 0 = no decay).
    pub half_life_ms: i64,
    /// `low_reputation` fires only below −this (0.1), so one stray expiry costs nothing.
    pub min_distrust: f64,
}

impl Default for ReputationSettings {
    fn default() -> ReputationSettings {
        ReputationSettings {
            verified_gain: 0.2,
            rejected_loss: 0.1,
            expired_loss: 0.15,
            half_life_ms: DAY_MS,
            min_distrust: 0.1,
        }
    }
}

/// The prefix breaker (see `state::breaker` for the rule these feed).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Sends in the recent window needed before it may trip (20).
    pub min_sends: u32,
    /// Recent sends must be at least this multiple of the learned volume (3.0).
    pub spike_factor: f64,
    /// A verification rate below this has collapsed, whatever the baseline (0.10).
    pub min_verify_rate: f64,
    /// Or below this fraction of the learned verification rate (0.5).
    pub collapse_ratio: f64,
    /// How long it stays open before it is re-evaluated (1 h).
    pub cooldown_ms: i64,
    /// Half-life of the learned baseline (24 h).
    pub baseline_half_life_ms: i64,
}

impl Default for BreakerSettings {
    fn default() -> BreakerSettings {
        BreakerSettings {
            min_sends: 20,
            spike_factor: 3.0,
            min_verify_rate: 0.10,
            collapse_ratio: 0.5,
            cooldown_ms: 3_600_000,
            baseline_half_life_ms: DAY_MS,
        }
    }
}
