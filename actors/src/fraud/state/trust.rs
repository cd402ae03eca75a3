//! Trust: a score in [-1, 1] per subnet and per IP, learned from verification outcomes. Neutral is 0,
//! and every score fades back toward 0 with a half-life, so a network that behaved badly last month
//! (or a user whose dynamic IP was reassigned) is not punished forever. Decay is applied lazily: the
//! stored value is the score at `at_ms`, and reads compute what it has decayed to since.

use serde::{Deserialize, Serialize};

/// A trust score this close to neutral is forgotten (its key is dropped).
pub(crate) const FORGET_BELOW: f64 = 0.01;

/// A trust score as of a moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Trust {
    value: f64,
    at_ms: i64,
}

impl Trust {
    /// The score at `now_ms`: `value × 0.5^(elapsed / half_life)`. A half-life of 0 or less
    /// disables decay.
    pub(crate) fn at(&self, now_ms: i64, half_life_ms: i64) -> f64 {
        if half_life_ms <= 0 {
            return self.value;
        }
        let elapsed = now_ms.saturating_sub(self.at_ms).max(0) as f64;
        self.value * 0.5f64.powf(elapsed / half_life_ms as f64)
    }

    /// Decays to `now_ms`, then adds `delta`, staying inside [-1, 1].
    pub(crate) fn adjust(&mut self, delta: f64, now_ms: i64, half_life_ms: i64) {
        let current = self.at(now_ms, half_life_ms);
        self.value = clamp(current + delta);
        // A late, out-of-order outcome must not move the reference time backwards, which would
        // make the stored value decay a second time over the same interval.
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// A score learned from one outcome.
    pub(crate) fn new(delta: f64, now_ms: i64) -> Trust {
        Trust {
            value: clamp(delta),
            at_ms: now_ms,
        }
    }

    /// When it was last updated.
    pub(crate) fn at_ms(&self) -> i64 {
        self.at_ms
    }

    /// True when it has decayed close enough to neutral to be forgotten.
    pub(crate) fn is_negligible(&self, now_ms: i64, half_life_ms: i64) -> bool {
        self.at(now_ms, half_life_ms).abs() < FORGET_BELOW
    }

    /// Restored values come from storage: keep them finite and in range.
    pub(crate) fn sanitized(self) -> Option<Trust> {
        self.value.is_finite().then(|| Trust {
            value: clamp(self.value),
            at_ms: self.at_ms,
        })
    }
}

fn clamp(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn decays_by_half_each_half_life() {
        let t = Trust::new(-0.8, 0);
        assert!((t.at(DAY, DAY) + 0.4).abs() < 1e-9);
        assert!((t.at(2 * DAY, DAY) + 0.2).abs() < 1e-9);
        assert!(
            (t.at(DAY, 0) + 0.8).abs() < 1e-9,
            "half-life 0 disables decay"
        );
        assert!(t.is_negligible(7 * DAY, DAY));
    }

    #[test]
    fn adjust_decays_first_and_clamps() {
        let mut t = Trust::new(-0.8, 0);
        t.adjust(0.2, DAY, DAY);
        assert!((t.at(DAY, DAY) + 0.2).abs() < 1e-9);
        for _ in 0..20 {
            t.adjust(-0.15, DAY, DAY);
        }
        assert!((t.at(DAY, DAY) + 1.0).abs() < 1e-9);
        // Out of order: does not move the reference time back.
        t.adjust(0.0, 0, DAY);
        assert_eq!(t.at_ms(), DAY);
    }
}
