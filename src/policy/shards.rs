//! The large remembered sets (dedup episodes, firing alerts and their strings) split
//! into shards that a checkpoint can take as they are, in microseconds, by sharing
//! them. A shard still shared when it is next changed is copied first, so the cost of
//! a checkpoint's copy is paid a shard at a time by the rounds that change one, and a
//! round never waits for the whole set to be copied.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// How many shards a set has unless it says: a shard copied on a write is this much
/// of its set. A set of many small entries that a round touches all over (the
/// strings) has more, so that no round pays for much of it.
pub(super) const SHARDS: usize = 256;

/// A number from a 64-bit hash to pick a shard with (modulo the count): the top half
/// after a multiplicative mix, so that keys that differ only in low bits spread too.
pub(super) fn shard_of(hash: u64) -> usize {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize
}

#[derive(Debug)]
pub(super) struct Shards<S, const N: usize = SHARDS> {
    shards: Box<[Arc<S>]>,
}

impl<S: Default, const N: usize> Default for Shards<S, N> {
    fn default() -> Self {
        Shards {
            shards: (0..N).map(|_| Arc::new(S::default())).collect(),
        }
    }
}

/// Shares every shard: a snapshot, not a copy.
impl<S, const N: usize> Clone for Shards<S, N> {
    fn clone(&self) -> Self {
        Shards {
            shards: self.shards.clone(),
        }
    }
}

impl<S: Clone, const N: usize> Shards<S, N> {
    pub fn get(&self, shard: usize) -> &S {
        &self.shards[shard % N]
    }

    /// The shard to change, copied first if a snapshot still shares it.
    pub fn get_mut(&mut self, shard: usize) -> &mut S {
        Arc::make_mut(&mut self.shards[shard % N])
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &S)> + '_ {
        self.shards.iter().map(|s| &**s).enumerate()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut S> + '_ {
        self.shards.iter_mut().map(Arc::make_mut)
    }
}

/// A key that is a hash already (a dedup key, an alert's fingerprint).
pub(super) trait HashKey: Copy + Eq + Hash {
    fn shard(&self) -> usize;
}

impl HashKey for u64 {
    fn shard(&self) -> usize {
        shard_of(*self)
    }
}

impl HashKey for u128 {
    fn shard(&self) -> usize {
        shard_of(*self as u64 ^ (*self >> 64) as u64)
    }
}

/// A map in shards, by a key that is a hash.
#[derive(Debug)]
pub(super) struct ShardedMap<K, V> {
    shards: Shards<HashMap<K, V>>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: Shards::default(),
            len: 0,
        }
    }
}

impl<K, V> Clone for ShardedMap<K, V> {
    fn clone(&self) -> Self {
        ShardedMap {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K: HashKey, V: Clone> ShardedMap<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards.get(key.shard()).get(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        // Only a shard that holds the key is copied for it.
        if !self.contains_key(key) {
            return None;
        }
        self.shards.get_mut(key.shard()).get_mut(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shards.get_mut(key.shard()).insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        if !self.contains_key(key) {
            return None;
        }
        let old = self.shards.get_mut(key.shard()).remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut len = 0;
        for shard in self.shards.iter_mut() {
            shard.retain(|k, v| keep(k, v));
            len += shard.len();
        }
        self.len = len;
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flat_map(|(_, shard)| shard.iter())
    }
}

impl<K: HashKey, V: Clone> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = ShardedMap::default();
        for (k, v) in items {
            map.insert(k, v);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_what_was_there_while_the_set_changes() {
        let mut map: ShardedMap<u64, u32> = (0..10_000u64).map(|k| (k, 1)).collect();
        let snapshot = map.clone();
        for k in 0..5_000u64 {
            map.remove(&k);
        }
        if let Some(v) = map.get_mut(&9_999) {
            *v = 2;
        }
        map.insert(20_000, 3);
        map.retain(|k, _| *k != 9_998);
        assert_eq!(
            (map.len(), map.get(&9_999), map.get(&0)),
            (5_000, Some(&2), None)
        );
        assert_eq!(
            (snapshot.len(), snapshot.get(&9_999), snapshot.get(&0)),
            (10_000, Some(&1), Some(&1))
        );
        assert_eq!(snapshot.iter().count(), 10_000);
        assert_eq!(map.iter().count(), 5_000);
        // Keys spread over the shards, so a write copies a small part of the set.
        let used = snapshot
            .shards
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .count();
        assert!(used > SHARDS * 9 / 10, "{used} shards used");
    }
}
