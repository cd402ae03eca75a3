//! The fraud engine's in-memory state: per-phone accepted requests, per-subnet velocity, trust and
//! catches, per-IP trust and per-prefix breakers, plus the [`FraudSnapshot`] that carries them across
//! a restart. Every map drops a key once nothing live is left in it, on access where cheap and in
//! `FraudState::prune_shard` (the actor prunes one shard of every map at a time, all of them once a
//! minute); a hard cap per map evicts the stalest keys if an attacker rotating addresses outruns
//! that. The maps are `Shards` so that pruning and snapshots of a large state run in steps small
//! enough not to hold evaluations up (see `shards`).

mod breaker;
mod shards;
mod subnet;
mod trust;
mod window;

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub(crate) use breaker::{BreakerCheck, BreakerState, PrefixState};
pub(crate) use shards::Shards;
pub use shards::SHARDS;
pub(crate) use subnet::SubnetState;
pub use subnet::{ip_scope, subnet_of, IpScope};
pub(crate) use trust::Trust;
pub(crate) use window::{Timestamps, HOUR_MS, MINUTE_MS};

use crate::fraud::engine::FraudSettings;
use crate::ipnet::IpNet;

/// Version of the [`FraudSnapshot`] layout (bucket widths included); another version is ignored on
/// restore rather than misread.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The live fraud state, serialisable (JSON) for the database. Taken with
/// [`crate::fraud::engine::FraudEngine::snapshot`], which leaves out everything already expired;
/// opaque on purpose: only the engine reads it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FraudSnapshot {
    version: u32,
    taken_at_ms: i64,
    phones: Vec<(String, Timestamps)>,
    /// Keyed by the subnet as text (`203.0.113.0/24`).
    subnets: Vec<(String, SubnetState)>,
    ips: Vec<(IpAddr, Trust)>,
    prefixes: Vec<(String, PrefixState)>,
}

impl FraudSnapshot {
    /// Adds the entries of `part` (another shard's, [`FraudEngine::snapshot_shard`](crate::fraud::engine::FraudEngine::snapshot_shard));
    /// the result was taken when its latest part was.
    pub fn absorb(&mut self, part: FraudSnapshot) {
        self.version = part.version;
        self.taken_at_ms = self.taken_at_ms.max(part.taken_at_ms);
        self.phones.extend(part.phones);
        self.subnets.extend(part.subnets);
        self.ips.extend(part.ips);
        self.prefixes.extend(part.prefixes);
    }

    /// When it was taken (ms since the epoch).
    pub fn taken_at_ms(&self) -> i64 {
        self.taken_at_ms
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty()
            && self.subnets.is_empty()
            && self.ips.is_empty()
            && self.prefixes.is_empty()
    }
}

/// How many keys each map holds (tests, metrics, benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FraudStats {
    /// Phones with accepted requests in the last hour.
    pub phones: usize,
    /// Subnets with traffic, trust or a recent catch.
    pub subnets: usize,
    /// IPs with learned trust.
    pub ips: usize,
    /// Destination prefixes with counters or a learned baseline.
    pub prefixes: usize,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct FraudState {
    pub(crate) phones: Shards<String, Timestamps>,
    pub(crate) subnets: Shards<IpNet, SubnetState>,
    pub(crate) ips: Shards<IpAddr, Trust>,
    pub(crate) prefixes: Shards<String, PrefixState>,
}

impl FraudState {
    /// The accepted requests of `phone`, pruned to the last hour (`None` if there are none).
    pub(crate) fn phone_window(&mut self, phone: &str, now_ms: i64) -> Option<&Timestamps> {
        let window = self.phones.get_mut(phone)?;
        window.prune(now_ms, HOUR_MS);
        Some(&*window)
    }

    /// Counts an accepted request to `phone` (allocates the key only the first time).
    pub(crate) fn record_phone(&mut self, phone: &str, now_ms: i64) {
        match self.phones.get_mut(phone) {
            Some(window) => window.push(now_ms),
            None => {
                let mut window = Timestamps::default();
                window.push(now_ms);
                self.phones.insert(phone.to_owned(), window);
            }
        }
    }

    /// The state of `net`, created empty if needed.
    pub(crate) fn subnet(&mut self, net: IpNet) -> &mut SubnetState {
        self.subnets.entry(net).or_default()
    }

    /// Runs `f` on the state of a destination prefix, created empty if needed (the key is
    /// allocated only then: `entry` would allocate on every request).
    pub(crate) fn with_prefix<R>(&mut self, key: &str, f: impl FnOnce(&mut PrefixState) -> R) -> R {
        if let Some(p) = self.prefixes.get_mut(key) {
            return f(p);
        }
        let mut p = PrefixState::default();
        let out = f(&mut p);
        self.prefixes.insert(key.to_owned(), p);
        out
    }

    /// Adds `delta` to the trust of `ip` and of its subnet `net`.
    pub(crate) fn learn(&mut self, ip: IpAddr, net: IpNet, delta: f64, now_ms: i64, hl: i64) {
        let subnet = self.subnet(net);
        match subnet.trust.as_mut() {
            Some(t) => t.adjust(delta, now_ms, hl),
            None => subnet.trust = Some(Trust::new(delta, now_ms)),
        }
        match self.ips.get_mut(&ip) {
            Some(t) => t.adjust(delta, now_ms, hl),
            None => {
                self.ips.insert(ip, Trust::new(delta, now_ms));
            }
        }
    }

    /// Drops everything expired and every key left empty, then enforces the per-map cap.
    pub(crate) fn prune(&mut self, now_ms: i64, s: &FraudSettings) {
        for shard in 0..SHARDS {
            self.prune_shard(shard, now_ms, s);
        }
    }

    /// [`FraudState::prune`] for shard `shard` of every map; the cap applies per shard (the keys
    /// spread evenly, so a shard holds its share of it).
    pub(crate) fn prune_shard(&mut self, shard: usize, now_ms: i64, s: &FraudSettings) {
        let hl = s.reputation.half_life_ms;
        self.phones.shard_mut(shard).retain(|_, w| {
            w.prune(now_ms, HOUR_MS);
            !w.is_empty()
        });
        self.subnets
            .shard_mut(shard)
            .retain(|_, st| !st.prune(now_ms, hl, s.caught_ttl_ms));
        self.ips
            .shard_mut(shard)
            .retain(|_, t| !t.is_negligible(now_ms, hl));
        self.prefixes
            .shard_mut(shard)
            .retain(|_, p| !p.prune(now_ms, &s.breaker));
        let cap = s.max_tracked_keys.div_ceil(SHARDS);
        let last_phone = |w: &Timestamps| w.last().unwrap_or(i64::MIN);
        evict_stalest(self.phones.shard_mut(shard), cap, last_phone);
        evict_stalest(
            self.subnets.shard_mut(shard),
            cap,
            SubnetState::last_seen_ms,
        );
        evict_stalest(self.ips.shard_mut(shard), cap, Trust::at_ms);
    }

    /// Everything live, for a restart.
    pub(crate) fn snapshot(&self, now_ms: i64, s: &FraudSettings) -> FraudSnapshot {
        let mut whole = FraudSnapshot::default();
        for shard in 0..SHARDS {
            whole.absorb(self.snapshot_shard(shard, now_ms, s));
        }
        whole
    }

    /// The live part of shard `shard` of every map; [`FraudSnapshot::absorb`] puts the parts
    /// together.
    pub(crate) fn snapshot_shard(
        &self,
        shard: usize,
        now_ms: i64,
        s: &FraudSettings,
    ) -> FraudSnapshot {
        let hl = s.reputation.half_life_ms;
        let live = |mut w: Timestamps| {
            w.prune(now_ms, HOUR_MS);
            (!w.is_empty()).then_some(w)
        };
        FraudSnapshot {
            version: SNAPSHOT_VERSION,
            taken_at_ms: now_ms,
            phones: self
                .phones
                .shard(shard)
                .iter()
                .filter_map(|(k, w)| Some((k.clone(), live(w.clone())?)))
                .collect(),
            subnets: self
                .subnets
                .shard(shard)
                .iter()
                .filter_map(|(net, st)| {
                    let mut st = st.clone();
                    (!st.prune(now_ms, hl, s.caught_ttl_ms)).then(|| (net.to_string(), st))
                })
                .collect(),
            ips: self
                .ips
                .shard(shard)
                .iter()
                .filter(|(_, t)| !t.is_negligible(now_ms, hl))
                .map(|(ip, t)| (*ip, *t))
                .collect(),
            prefixes: self
                .prefixes
                .shard(shard)
                .iter()
                .filter_map(|(k, p)| {
                    let mut p = p.clone();
                    (!p.prune(now_ms, &s.breaker)).then(|| (k.clone(), p))
                })
                .collect(),
        }
    }

    /// The state a snapshot describes. Another layout version, unparsable subnets and non-finite
    /// numbers are dropped (a damaged snapshot must not stop the gateway).
    pub(crate) fn restore(snap: FraudSnapshot) -> FraudState {
        if snap.version != SNAPSHOT_VERSION {
            tracing::warn!(
                version = snap.version,
                expected = SNAPSHOT_VERSION,
                "fraud snapshot has another layout version; starting empty"
            );
            return FraudState::default();
        }
        let subnets = snap.subnets.into_iter().filter_map(|(net, mut st)| {
            st.trust = st.trust.and_then(Trust::sanitized);
            Some((net.parse::<IpNet>().ok()?, st))
        });
        FraudState {
            phones: snap.phones.into_iter().collect(),
            subnets: subnets.collect(),
            ips: snap
                .ips
                .into_iter()
                .filter_map(|(ip, t)| Some((ip, t.sanitized()?)))
                .collect(),
            prefixes: snap
                .prefixes
                .into_iter()
                .map(|(k, p)| (k, p.sanitized()))
                .collect(),
        }
    }

    /// Key counts.
    pub(crate) fn stats(&self) -> FraudStats {
        FraudStats {
            phones: self.phones.len(),
            subnets: self.subnets.len(),
            ips: self.ips.len(),
            prefixes: self.prefixes.len(),
        }
    }
}

/// Keeps at most `cap` keys (0 = no cap), dropping those last seen longest ago.
fn evict_stalest<K, V>(map: &mut HashMap<K, V>, cap: usize, last_seen: impl Fn(&V) -> i64) {
    if cap == 0 || map.len() <= cap {
        return;
    }
    let mut excess = map.len() - cap;
    let mut seen: Vec<i64> = map.values().map(&last_seen).collect();
    let (_, &mut cutoff, _) = seen.select_nth_unstable(excess - 1);
    map.retain(|_, v| {
        if excess > 0 && last_seen(v) <= cutoff {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_drops_the_stalest() {
        let mut m: HashMap<u32, i64> = (0..10).map(|i| (i, i64::from(i) * 10)).collect();
        evict_stalest(&mut m, 7, |v| *v);
        let mut left: Vec<u32> = m.keys().copied().collect();
        left.sort_unstable();
        assert_eq!(left, vec![3, 4, 5, 6, 7, 8, 9]);
        evict_stalest(&mut m, 0, |v| *v);
        assert_eq!(m.len(), 7);
    }

    const T0: i64 = 1_800_000_000_000;

    /// A state with `n` phones, phone `i` last seen at `T0 + i` seconds, each with a subnet.
    fn state_with(n: usize) -> FraudState {
        let mut st = FraudState::default();
        for i in 0..n {
            let t = T0 + i64::try_from(i).unwrap() * 1000;
            st.record_phone(&format!("+4477009{i:05}"), t);
            let net: IpNet = format!("198.51.{}.0/24", i % 256).parse().unwrap();
            st.subnet(net).hour.add(t);
        }
        st
    }

    #[test]
    fn the_cap_keeps_the_newest_keys_of_each_shard() {
        let settings = FraudSettings {
            max_tracked_keys: 2 * SHARDS,
            ..FraudSettings::default()
        };
        let before = state_with(10 * SHARDS);
        let mut st = state_with(0);
        st.phones = before.phones.clone();
        st.prune(T0 + 400 * 1000, &settings);
        // Last-seen times of a shard's phones, newest first.
        let newest_first = |state: &FraudState, shard: usize| {
            let mut seen: Vec<i64> = state
                .phones
                .shard(shard)
                .values()
                .filter_map(Timestamps::last)
                .collect();
            seen.sort_unstable_by(|a, b| b.cmp(a));
            seen
        };
        for shard in 0..SHARDS {
            let newest_two: Vec<i64> = newest_first(&before, shard).into_iter().take(2).collect();
            assert_eq!(newest_first(&st, shard), newest_two, "shard {shard}");
        }
        assert!(st.phones.len() <= 2 * SHARDS);
    }

    #[test]
    fn shard_steps_add_up_to_the_whole() {
        let settings = FraudSettings::default();
        let now = T0 + 500 * 1000;
        let st = state_with(300);
        let mut parts = FraudSnapshot::default();
        for shard in (0..SHARDS).rev() {
            parts.absorb(st.snapshot_shard(shard, now, &settings));
        }
        let whole = st.snapshot(now, &settings);
        let sorted = |snap: &FraudSnapshot| {
            let mut phones: Vec<&String> = snap.phones.iter().map(|(k, _)| k).collect();
            phones.sort();
            let mut subnets: Vec<&String> = snap.subnets.iter().map(|(k, _)| k).collect();
            subnets.sort();
            (
                phones.into_iter().cloned().collect::<Vec<_>>(),
                subnets.into_iter().cloned().collect::<Vec<_>>(),
            )
        };
        assert_eq!(sorted(&parts), sorted(&whole));
        assert_eq!((parts.phones.len(), parts.subnets.len()), (300, 256));
        assert_eq!(parts.taken_at_ms(), now);

        // Pruning shard by shard ends where one whole prune does: an hour later, only what an
        // hour keeps.
        let later = T0 + 3_700 * 1000;
        let mut stepped = state_with(300);
        for shard in 0..SHARDS {
            stepped.prune_shard(shard, later, &settings);
        }
        let mut whole = state_with(300);
        whole.prune(later, &settings);
        assert_eq!(stepped.stats(), whole.stats());
        assert!(stepped.stats().phones < 300);
    }
}
