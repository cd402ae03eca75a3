//! `Shards`: a hash map split into [`SHARDS`] smaller maps by key hash, so that periodic work over a
//! large state (pruning, snapshots) can be done one shard at a time between evaluations instead of
//! stalling the fraud actor for the whole map at once (0.7 s for a snapshot at 500k keys).

use std::borrow::Borrow;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// How many shards each map has: the periodic work per step is about 1/SHARDS of the whole.
pub const SHARDS: usize = 32;

/// See the module docs. Lookups cost one extra hash (picking the shard).
#[derive(Debug, Clone)]
pub(crate) struct Shards<K, V> {
    picker: RandomState,
    shards: Vec<HashMap<K, V>>,
}

impl<K, V> Default for Shards<K, V> {
    fn default() -> Self {
        Shards {
            picker: RandomState::new(),
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl<K: Hash + Eq, V> Shards<K, V> {
    fn index<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // Truncating the hash is fine: any bits pick a shard evenly.
        self.picker.hash_one(key) as usize % SHARDS
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.index(key)].get(key)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.index(key);
        self.shards[i].get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let i = self.index(&key);
        self.shards[i].insert(key, value)
    }

    pub(crate) fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        let i = self.index(&key);
        self.shards[i].entry(key)
    }

    /// Keys in all shards.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    /// Shard `i` (taken modulo [`SHARDS`]).
    pub(crate) fn shard(&self, i: usize) -> &HashMap<K, V> {
        &self.shards[i % SHARDS]
    }

    /// Shard `i` (taken modulo [`SHARDS`]), mutably.
    pub(crate) fn shard_mut(&mut self, i: usize) -> &mut HashMap<K, V> {
        &mut self.shards[i % SHARDS]
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for Shards<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Shards::default();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map_and_spreads_keys_over_the_shards() {
        let mut m: Shards<String, u32> = (0..3200).map(|i| (format!("k{i}"), i)).collect();
        assert_eq!(m.len(), 3200);
        assert_eq!(m.get("k17"), Some(&17));
        *m.get_mut("k17").unwrap() += 1;
        assert_eq!(m.get("k17"), Some(&18));
        assert_eq!(m.insert("k17".into(), 5), Some(18));
        *m.entry("new".into()).or_default() += 2;
        assert_eq!(m.get("new"), Some(&2));
        // Each key lives in exactly one shard, and no shard is left empty or holds most keys.
        let per_shard: Vec<usize> = (0..SHARDS).map(|i| m.shard(i).len()).collect();
        assert_eq!(per_shard.iter().sum::<usize>(), 3201);
        assert!(
            per_shard.iter().all(|&n| (40..=200).contains(&n)),
            "{per_shard:?}"
        );
        m.shard_mut(3).clear();
        assert_eq!(m.len(), 3201 - per_shard[3]);
    }
}
