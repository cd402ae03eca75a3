//! Sliding windows. The per-phone limits keep exact timestamps: only accepted requests are stored
//! and they stop being accepted at the hourly limit, so a phone never holds more than a handful.
//! Subnet velocity counts every request, however many an attacker sends, so it uses fixed-width
//! buckets instead: memory is bounded by the number of buckets, not by the request rate.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// One minute, in ms.
pub(crate) const MINUTE_MS: i64 = 60_000;
/// One hour, in ms.
pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Timestamps (ms since the epoch) of accepted requests, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Timestamps(VecDeque<i64>);

impl Timestamps {
    /// Records one request at `t`. Kept sorted even if the clock stepped back, because
    /// [`Timestamps::wait_until_below`] relies on the order.
    pub(crate) fn push(&mut self, t: i64) {
        if self.0.back().is_some_and(|&last| last > t) {
            let at = self.0.partition_point(|&x| x <= t);
            self.0.insert(at, t);
        } else {
            self.0.push_back(t);
        }
    }

    /// Drops entries that are `span_ms` old or older.
    pub(crate) fn prune(&mut self, now_ms: i64, span_ms: i64) {
        while self.0.front().is_some_and(|&t| t <= now_ms - span_ms) {
            self.0.pop_front();
        }
    }

    /// Entries inside `(now - span, ∞)`.
    pub(crate) fn count_within(&self, now_ms: i64, span_ms: i64) -> usize {
        self.0.len() - self.first_within(now_ms, span_ms)
    }

    /// Milliseconds until fewer than `limit` entries are inside the window, or `None` when that is
    /// already the case (or `limit` is 0, which disables the limit). With `n ≥ limit` entries inside,
    /// the `(n − limit + 1)`-th oldest of them has to leave: it does `span_ms` after it was recorded.
    pub(crate) fn wait_until_below(&self, now_ms: i64, span_ms: i64, limit: u32) -> Option<i64> {
        let limit = usize::try_from(limit).ok().filter(|&l| l > 0)?;
        let start = self.first_within(now_ms, span_ms);
        let inside = self.0.len() - start;
        if inside < limit {
            return None;
        }
        let leaving = self.0.get(start + inside - limit)?;
        Some(leaving + span_ms - now_ms)
    }

    /// True when nothing is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The newest entry.
    pub(crate) fn last(&self) -> Option<i64> {
        self.0.back().copied()
    }

    fn first_within(&self, now_ms: i64, span_ms: i64) -> usize {
        self.0.partition_point(|&t| t <= now_ms - span_ms)
    }
}

/// A request counter over the last `N` buckets of `WIDTH_MS` each (the current one included), so the
/// window it covers is between `(N − 1) × WIDTH_MS` and `N × WIDTH_MS` long. Stored as
/// `(bucket index = ms / WIDTH_MS, count)`, oldest first; empty buckets take no space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Buckets<const WIDTH_MS: i64, const N: i64>(VecDeque<(i64, u32)>);

/// Subnet requests per second over the last minute.
pub(crate) type MinuteCounter = Buckets<1_000, 60>;
/// Subnet requests per minute over the last hour.
pub(crate) type HourCounter = Buckets<60_000, 60>;

impl<const WIDTH_MS: i64, const N: i64> Buckets<WIDTH_MS, N> {
    fn index(t: i64) -> i64 {
        t.div_euclid(WIDTH_MS)
    }

    fn oldest_live(now_ms: i64) -> i64 {
        Self::index(now_ms) - N + 1
    }

    /// Counts one request at `now_ms`.
    pub(crate) fn add(&mut self, now_ms: i64) {
        let idx = Self::index(now_ms);
        match self.0.back_mut() {
            Some((last, count)) if *last == idx => *count = count.saturating_add(1),
            Some((last, _)) if *last > idx => {
                // The clock stepped back: find or insert the bucket so the order holds.
                let at = self.0.partition_point(|&(i, _)| i < idx);
                match self.0.get_mut(at) {
                    Some((i, count)) if *i == idx => *count = count.saturating_add(1),
                    _ => self.0.insert(at, (idx, 1)),
                }
            }
            _ => self.0.push_back((idx, 1)),
        }
    }

    /// Drops buckets that left the window.
    pub(crate) fn prune(&mut self, now_ms: i64) {
        let oldest = Self::oldest_live(now_ms);
        while self.0.front().is_some_and(|&(i, _)| i < oldest) {
            self.0.pop_front();
        }
    }

    /// Requests inside the window at `now_ms`.
    pub(crate) fn count(&self, now_ms: i64) -> u32 {
        let oldest = Self::oldest_live(now_ms);
        self.0
            .iter()
            .rev()
            .take_while(|&&(i, _)| i >= oldest)
            .fold(0u32, |sum, &(_, c)| sum.saturating_add(c))
    }

    /// True when no bucket is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Start (ms) of the newest bucket.
    pub(crate) fn last_ms(&self) -> Option<i64> {
        self.0.back().map(|&(i, _)| i.saturating_mul(WIDTH_MS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_wait_for_the_right_entry() {
        let mut w = Timestamps::default();
        for t in [1_000, 2_000, 30_000] {
            w.push(t);
        }
        // Three inside the minute, limit 2: two must leave, the second one (2 000) leaves at 62 000.
        assert_eq!(w.wait_until_below(40_000, MINUTE_MS, 2), Some(22_000));
        // Limit 3: only the oldest must leave.
        assert_eq!(w.wait_until_below(40_000, MINUTE_MS, 3), Some(21_000));
        assert_eq!(w.wait_until_below(40_000, MINUTE_MS, 4), None);
        assert_eq!(w.wait_until_below(40_000, MINUTE_MS, 0), None);
        assert_eq!(w.count_within(61_500, MINUTE_MS), 2);
        w.prune(62_000, MINUTE_MS);
        assert_eq!(w.count_within(62_000, MINUTE_MS), 1);
    }

    #[test]
    fn timestamps_stay_sorted_when_the_clock_steps_back() {
        let mut w = Timestamps::default();
        w.push(5_000);
        w.push(3_000);
        w.push(4_000);
        assert_eq!(w.0, VecDeque::from(vec![3_000, 4_000, 5_000]));
    }

    #[test]
    fn buckets_count_the_window_and_forget_the_rest() {
        let mut c = MinuteCounter::default();
        for t in [0, 500, 1_200, 59_999] {
            c.add(t);
        }
        assert_eq!(c.count(59_999), 4);
        // At 60 000 the bucket of second 0 left the window.
        assert_eq!(c.count(60_000), 2);
        c.prune(120_000);
        assert!(c.is_empty());
        c.add(10_000);
        c.add(5_000);
        c.add(10_500);
        assert_eq!(c.0, VecDeque::from(vec![(5, 1), (10, 2)]));
    }
}
