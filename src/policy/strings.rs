//! Label names and values as the firing set keeps them: each stored once, numbered, and
//! counted by what holds it, so the last alert to go takes its strings with it. A storm
//! of distinct alerts that come and go leaves nothing behind, and no pass over what is
//! left is ever needed to find what is dead.

use super::shards::{shard_of, Shards};
use compact_str::CompactString;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Each string copied when its shard is: a storm's round holds and releases strings
/// in shards all over, so each is small.
const SHARDS: usize = 4096;
/// A string's number is its shard's number above its index in the shard. 20 bits of
/// index are a million strings per shard, 4.3 billion in all: more than memory holds.
const INDEX_BITS: u32 = 20;
const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

#[derive(Debug, Clone, Default)]
pub(super) struct Strings {
    shards: Shards<Shard, SHARDS>,
    len: usize,
}

/// The strings whose hash falls in one shard.
#[derive(Debug, Clone, Default)]
struct Shard {
    /// The indexes of the stored strings, found by the string's hash.
    numbers: HashTable<u32>,
    /// By index: the string and how many hold it; `None` while the index is free.
    /// Strings of up to 24 bytes (most label values: hosts, pods, ports) are kept in
    /// the slot itself, 24 bytes, where a shared one took 24 more and a slot of 24:
    /// a storm's distinct instances are most of the strings.
    stored: Vec<Option<(CompactString, u32)>>,
    free: Vec<u32>,
}

fn hash(s: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(s)
}

fn text(stored: &[Option<(CompactString, u32)>], index: u32) -> &str {
    match stored.get(index as usize) {
        Some(Some((text, _))) => text,
        _ => "",
    }
}

fn split(n: u32) -> (usize, u32) {
    ((n >> INDEX_BITS) as usize, n & INDEX_MASK)
}

fn join(shard: usize, index: u32) -> u32 {
    ((shard as u32) << INDEX_BITS) | index
}

impl Shard {
    fn find(&self, h: u64, s: &str) -> Option<u32> {
        // Only indexes in use are in the table: a released one leaves it.
        self.numbers
            .find(h, |i| text(&self.stored, *i) == s)
            .copied()
    }

    fn holds(&mut self, index: u32) -> Option<&mut u32> {
        match self.stored.get_mut(index as usize) {
            Some(Some((_, holds))) => Some(holds),
            _ => None,
        }
    }
}

/// The numbers of the strings held, renumbered from 0 without holes, in the order
/// [`Strings::dense`] lists the strings.
pub(super) struct DenseNumbers(Vec<Vec<u32>>);

impl DenseNumbers {
    pub fn of(&self, n: u32) -> u32 {
        let (shard, index) = split(n);
        self.0
            .get(shard)
            .and_then(|s| s.get(index as usize))
            .copied()
            .unwrap_or(u32::MAX)
    }
}

impl Strings {
    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        let h = hash(s);
        let shard = shard_of(h) % SHARDS;
        self.shards
            .get(shard)
            .find(h, s)
            .map(|index| join(shard, index))
    }

    pub fn resolve(&self, n: u32) -> &str {
        let (shard, index) = split(n);
        text(&self.shards.get(shard).stored, index)
    }

    /// Takes a hold on `s`, storing it if nothing holds it yet.
    pub fn hold(&mut self, s: &str) -> u32 {
        let h = hash(s);
        let number = shard_of(h) % SHARDS;
        let shard = self.shards.get_mut(number);
        if let Some(index) = shard.find(h, s) {
            if let Some(holds) = shard.holds(index) {
                *holds += 1;
            }
            return join(number, index);
        }
        let entry = Some((CompactString::from(s), 1));
        let index = match shard.free.pop() {
            Some(index) => {
                shard.stored[index as usize] = entry;
                index
            }
            None => {
                shard.stored.push(entry);
                (shard.stored.len() - 1) as u32
            }
        };
        let stored = &shard.stored;
        shard
            .numbers
            .insert_unique(h, index, |i| hash(text(stored, *i)));
        self.len += 1;
        join(number, index)
    }

    /// `more` holds on a string already held.
    pub fn hold_more(&mut self, n: u32, more: u32) {
        let (shard, index) = split(n);
        if let Some(holds) = self.shards.get_mut(shard).holds(index) {
            *holds += more;
        }
    }

    /// Gives up a hold; the last one takes the string.
    pub fn release(&mut self, n: u32) {
        let (number, index) = split(n);
        let shard = self.shards.get_mut(number);
        let h = match shard.stored.get_mut(index as usize) {
            Some(Some((text, holds))) => {
                *holds -= 1;
                if *holds > 0 {
                    return;
                }
                hash(text)
            }
            _ => return,
        };
        if let Ok(entry) = shard.numbers.find_entry(h, |i| *i == index) {
            entry.remove();
        }
        shard.stored[index as usize] = None;
        shard.free.push(index);
        self.len -= 1;
    }

    /// Every string held, once, and their numbers as indexes into that list. Strings
    /// held more than once (label names, shared values) come first: they are most of
    /// the numbers an image holds, and small numbers are short in it.
    pub fn dense(&self) -> (Vec<&str>, DenseNumbers) {
        let mut strings = Vec::with_capacity(self.len);
        let mut numbers: Vec<Vec<u32>> = self
            .shards
            .iter()
            .map(|(_, shard)| vec![u32::MAX; shard.stored.len()])
            .collect();
        for shared in [true, false] {
            for ((_, shard), numbers) in self.shards.iter().zip(numbers.iter_mut()) {
                for (entry, number) in shard.stored.iter().zip(numbers.iter_mut()) {
                    if let Some((text, holds)) = entry {
                        if (*holds > 1) == shared {
                            *number = strings.len() as u32;
                            strings.push(&**text);
                        }
                    }
                }
            }
        }
        (strings, DenseNumbers(numbers))
    }
}

#[cfg(test)]
mod tests {
    use super::Strings;

    #[test]
    fn a_string_is_stored_once_and_goes_with_its_last_hold() {
        let mut strings = Strings::default();
        let a = strings.hold("host-1");
        assert_eq!(strings.hold("host-1"), a);
        let b = strings.hold("host-2");
        assert_eq!(
            (strings.len(), strings.resolve(a), strings.resolve(b)),
            (2, "host-1", "host-2")
        );
        strings.release(a);
        assert_eq!(strings.get("host-1"), Some(a), "one hold is left");
        strings.release(a);
        assert_eq!((strings.get("host-1"), strings.len()), (None, 1));
        // Its number serves the next string stored in its shard: the same one again.
        let snapshot = strings.clone();
        let c = strings.hold("host-1");
        assert_eq!(
            (c, strings.resolve(c), strings.get("host-2")),
            (a, "host-1", Some(b))
        );
        let (mut held, dense) = strings.dense();
        held.sort();
        assert_eq!(held, vec!["host-1", "host-2"]);
        assert_eq!(dense.of(a) + dense.of(b), 1, "numbered 0 and 1");
        // A snapshot keeps the strings as they were.
        strings.release(b);
        assert_eq!(
            (
                snapshot.len(),
                snapshot.get("host-2"),
                snapshot.get("host-1")
            ),
            (1, Some(b), None)
        );
        let (list, dense) = snapshot.dense();
        assert_eq!((list, dense.of(b)), (vec!["host-2"], 0));
    }
}
