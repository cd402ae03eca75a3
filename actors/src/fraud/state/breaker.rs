//! The per-prefix circuit breaker (IRSF "traffic pumping" detector). A destination prefix is the `+`
//! and the first four digits of the number (`+4475`, `+1212`, `+8821`): roughly the country code and
//! the next digits, computed from the digits alone so it needs no numbering-plan data.
//!
//! Per prefix it keeps the sends and verifications of the last [`RECENT_BUCKETS`] buckets of
//! [`BUCKET_MS`] (the "recent window", 10 to 15 minutes since the current bucket is partial) and a
//! learned baseline: every bucket leaving the recent window is folded into exponentially decayed
//! totals of sends and verifications (half-life `BreakerSettings::baseline_half_life_ms`). From them:
//! the baseline send volume per recent window, and the baseline verification rate (only once the
//! decayed send total reaches `min_sends`, so a few early sends do not define "normal").
//!
//! The breaker trips when, over the recent window, all of these hold:
//! * volume: sends ≥ `min_sends` (small samples say nothing about a rate);
//! * spike: sends ≥ `spike_factor` × the baseline volume (always true while nothing is learned);
//! * collapse: verified < sends × max(`min_verify_rate`, `collapse_ratio` × baseline rate), i.e.
//!   fewer than 10 % verified, or less than half the usual rate.
//!
//! It then stays open for `cooldown_ms`; the first send after that re-evaluates it (half-open):
//! still tripped → open for another cooldown, otherwise closed. Buckets seen while it is open are not
//! learned, so a sustained attack never becomes the prefix's "normal" volume or rate.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::fraud::engine::BreakerSettings;

/// Width of a breaker bucket: five minutes.
pub(crate) const BUCKET_MS: i64 = 5 * 60_000;
/// Buckets in the recent window (the current one included).
pub(crate) const RECENT_BUCKETS: i64 = 3;
/// A learned send total below this is forgotten.
const FORGET_BELOW: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Bucket {
    /// ms / [`BUCKET_MS`].
    idx: i64,
    sends: u32,
    verified: u32,
}

/// Where a breaker stands after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    /// Not tripped.
    Closed,
    /// Inside a cooldown that started earlier.
    Open,
    /// Tripped by this check.
    Opened,
    /// Re-evaluated after its cooldown and still tripped.
    Reopened,
}

impl BreakerState {
    /// Name used in rule details.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::Opened => "opened",
            BreakerState::Reopened => "reopened",
        }
    }
}

/// What a check saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BreakerCheck {
    pub(crate) state: BreakerState,
    /// Sends in the recent window.
    pub(crate) sends: u32,
    /// Verifications in the recent window.
    pub(crate) verified: u32,
    /// Learned sends per recent window.
    pub(crate) baseline_sends: f64,
    /// Learned verification rate, when enough was learned.
    pub(crate) baseline_verify_rate: Option<f64>,
    /// The verification rate below which the rate counts as collapsed.
    pub(crate) verify_floor: f64,
    /// End of the cooldown, when open.
    pub(crate) open_until_ms: Option<i64>,
}

/// One prefix's counters, baseline and breaker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PrefixState {
    recent: VecDeque<Bucket>,
    /// Σ sends × d^age over folded buckets (d = decay per bucket): an effective sample count.
    learned_sends: f64,
    learned_verified: f64,
    /// Newest bucket folded into the learned totals.
    folded_idx: Option<i64>,
    /// Oldest bucket ever folded: how long the baseline has been learning (a young baseline has
    /// summed fewer buckets and must not be mistaken for a low volume).
    #[serde(default)]
    first_idx: Option<i64>,
    open_until_ms: Option<i64>,
}

fn index(t: i64) -> i64 {
    t.div_euclid(BUCKET_MS)
}

/// Baseline decay per bucket. A half-life shorter than a bucket is taken as one bucket.
fn decay(s: &BreakerSettings) -> f64 {
    0.5f64.powf(BUCKET_MS as f64 / s.baseline_half_life_ms.max(BUCKET_MS) as f64)
}

fn powi(d: f64, steps: i64) -> f64 {
    // Beyond ~10⁵ buckets (a year) the factor is 0 for any sane half-life anyway.
    d.powi(i32::try_from(steps.clamp(0, 100_000)).unwrap_or(100_000))
}

impl PrefixState {
    /// Counts one send at `now_ms`.
    pub(crate) fn record_send(&mut self, now_ms: i64, s: &BreakerSettings) {
        self.record(now_ms, 1, 0, s);
    }

    /// Counts one verification at `now_ms`.
    pub(crate) fn record_verified(&mut self, now_ms: i64, s: &BreakerSettings) {
        self.record(now_ms, 0, 1, s);
    }

    fn record(&mut self, now_ms: i64, sends: u32, verified: u32, s: &BreakerSettings) {
        self.advance(now_ms, s);
        let idx = index(now_ms);
        let at = self.recent.partition_point(|b| b.idx < idx);
        match self.recent.get_mut(at) {
            Some(b) if b.idx == idx => {
                b.sends = b.sends.saturating_add(sends);
                b.verified = b.verified.saturating_add(verified);
            }
            // Older than everything kept, and already folded: too late to count.
            _ if self.folded_idx.is_some_and(|f| idx <= f) => {}
            _ => self.recent.insert(
                at,
                Bucket {
                    idx,
                    sends,
                    verified,
                },
            ),
        }
    }

    /// Folds buckets that left the recent window into the learned totals.
    fn advance(&mut self, now_ms: i64, s: &BreakerSettings) {
        let oldest = index(now_ms) - RECENT_BUCKETS + 1;
        while let Some(b) = self.recent.front().copied() {
            if b.idx >= oldest {
                break;
            }
            self.recent.pop_front();
            self.fold(b, s);
        }
    }

    fn fold(&mut self, b: Bucket, s: &BreakerSettings) {
        let previous = self.folded_idx;
        self.folded_idx = Some(previous.map_or(b.idx, |f| f.max(b.idx)));
        self.first_idx = Some(self.first_idx.map_or(b.idx, |f| f.min(b.idx)));
        if self.open_until_ms.is_some_and(|u| u > b.idx * BUCKET_MS) {
            // Frozen while open: neither learned nor decayed (see the module docs).
            return;
        }
        let k = powi(decay(s), previous.map_or(1, |f| (b.idx - f).max(1)));
        self.learned_sends = self.learned_sends * k + f64::from(b.sends);
        self.learned_verified = self.learned_verified * k + f64::from(b.verified);
    }

    /// The learned send total decayed to `now_ms` (it is stored as of the last folded bucket).
    fn learned_sends_now(&self, now_ms: i64, s: &BreakerSettings) -> f64 {
        let Some(folded) = self.folded_idx else {
            return 0.0;
        };
        if self.open_until_ms.is_some_and(|u| u > now_ms) {
            return self.learned_sends;
        }
        let gap = index(now_ms) - RECENT_BUCKETS - folded;
        self.learned_sends * powi(decay(s), gap)
    }

    /// Re-evaluates the breaker at `now_ms` (call after [`PrefixState::record_send`]).
    pub(crate) fn check(&mut self, now_ms: i64, s: &BreakerSettings) -> BreakerCheck {
        self.advance(now_ms, s);
        let (sends, verified) = self.recent.iter().fold((0u32, 0u32), |(a, b), x| {
            (a.saturating_add(x.sends), b.saturating_add(x.verified))
        });
        let d = decay(s);
        let learned = self.learned_sends_now(now_ms, s);
        // Steady traffic of r per bucket over n elapsed buckets sums to r·(1 − dⁿ)/(1 − d): divide
        // by the weight actually accumulated, not by its limit 1/(1 − d), or a baseline a few hours
        // old reads several times too low and any busy quarter of an hour looks like a spike.
        let elapsed = self
            .first_idx
            .map_or(0, |f| (index(now_ms) - RECENT_BUCKETS - f + 1).max(0));
        let weight = if elapsed == 0 {
            0.0
        } else if 1.0 - d < 1e-12 {
            // No decay at all: a plain sum over the elapsed buckets.
            elapsed as f64
        } else {
            (1.0 - powi(d, elapsed)) / (1.0 - d)
        };
        let baseline_sends = if weight > 0.0 {
            learned / weight * RECENT_BUCKETS as f64
        } else {
            0.0
        };
        let baseline_verify_rate = (learned >= f64::from(s.min_sends.max(1))
            && self.learned_sends > 0.0)
            .then(|| (self.learned_verified / self.learned_sends).min(1.0));
        let verify_floor = baseline_verify_rate.map_or(s.min_verify_rate, |r| {
            s.min_verify_rate.max(s.collapse_ratio * r)
        });
        let mut check = BreakerCheck {
            state: BreakerState::Closed,
            sends,
            verified,
            baseline_sends,
            baseline_verify_rate,
            verify_floor,
            open_until_ms: None,
        };
        if let Some(until) = self.open_until_ms.filter(|&u| now_ms < u) {
            check.state = BreakerState::Open;
            check.open_until_ms = Some(until);
            return check;
        }
        let tripped = sends >= s.min_sends.max(1)
            && f64::from(sends) >= s.spike_factor * baseline_sends
            && f64::from(verified) < f64::from(sends) * verify_floor;
        if tripped {
            check.state = if self.open_until_ms.is_some() {
                BreakerState::Reopened
            } else {
                BreakerState::Opened
            };
            let until = now_ms.saturating_add(s.cooldown_ms.max(0));
            self.open_until_ms = Some(until);
            check.open_until_ms = Some(until);
        } else {
            self.open_until_ms = None;
        }
        check
    }

    /// True while a cooldown runs.
    pub(crate) fn is_open(&self, now_ms: i64) -> bool {
        self.open_until_ms.is_some_and(|u| now_ms < u)
    }

    /// Folds what left the window; true when nothing worth keeping is left (no recent counts, a
    /// negligible baseline, no cooldown running).
    pub(crate) fn prune(&mut self, now_ms: i64, s: &BreakerSettings) -> bool {
        self.advance(now_ms, s);
        self.recent.is_empty()
            && self.learned_sends_now(now_ms, s) < FORGET_BELOW
            && !self.is_open(now_ms)
    }

    /// Restored values come from storage: keep the totals finite and non-negative.
    pub(crate) fn sanitized(mut self) -> PrefixState {
        for v in [&mut self.learned_sends, &mut self.learned_verified] {
            if !v.is_finite() || *v < 0.0 {
                *v = 0.0;
            }
        }
        self.recent.make_contiguous().sort_by_key(|b| b.idx);
        self
    }
}

#[cfg(test)]
mod tests;
