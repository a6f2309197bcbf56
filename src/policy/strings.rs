//! Label names and values as the firing set keeps them: each stored once, numbered, and
//! counted by what holds it, so the last alert to go takes its strings with it. A storm
//! of distinct alerts that come and go leaves nothing behind, and no pass over what is
//! left is ever needed to find what is dead.

use hashbrown::HashTable;
use std::hash::BuildHasher;

#[derive(Debug, Clone, Default)]
pub(super) struct Strings {
    /// The numbers of the stored strings, found by the string's hash.
    numbers: HashTable<u32>,
    /// By number: the string and how many hold it; `None` while the number is free.
    stored: Vec<Option<(Box<str>, u32)>>,
    free: Vec<u32>,
}

fn hash(s: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(s)
}

fn text(stored: &[Option<(Box<str>, u32)>], n: u32) -> &str {
    match stored.get(n as usize) {
        Some(Some((text, _))) => text,
        _ => "",
    }
}

impl Strings {
    /// How many distinct strings are held.
    pub fn len(&self) -> usize {
        self.stored.len() - self.free.len()
    }

    /// One past the highest number in use.
    pub fn numbers_end(&self) -> usize {
        self.stored.len()
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        // Only numbers in use are in the table: a released one leaves it.
        self.numbers
            .find(hash(s), |n| text(&self.stored, *n) == s)
            .copied()
    }

    pub fn resolve(&self, n: u32) -> &str {
        text(&self.stored, n)
    }

    /// Takes a hold on `s`, storing it if nothing holds it yet.
    pub fn hold(&mut self, s: &str) -> u32 {
        if let Some(n) = self.get(s) {
            self.hold_again(n);
            return n;
        }
        let entry = Some((Box::from(s), 1));
        let n = match self.free.pop() {
            Some(n) => {
                self.stored[n as usize] = entry;
                n
            }
            None => {
                self.stored.push(entry);
                (self.stored.len() - 1) as u32
            }
        };
        let stored = &self.stored;
        self.numbers
            .insert_unique(hash(s), n, |m| hash(text(stored, *m)));
        n
    }

    /// One more hold on a string already held.
    pub fn hold_again(&mut self, n: u32) {
        if let Some(Some((_, holds))) = self.stored.get_mut(n as usize) {
            *holds += 1;
        }
    }

    /// Gives up a hold; the last one takes the string.
    pub fn release(&mut self, n: u32) {
        let h = match self.stored.get_mut(n as usize) {
            Some(Some((text, holds))) => {
                *holds -= 1;
                if *holds > 0 {
                    return;
                }
                hash(text)
            }
            _ => return,
        };
        if let Ok(entry) = self.numbers.find_entry(h, |m| *m == n) {
            entry.remove();
        }
        self.stored[n as usize] = None;
        self.free.push(n);
    }

    /// Every string held, with its number.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        self.stored
            .iter()
            .enumerate()
            .filter_map(|(n, e)| e.as_ref().map(|(text, _)| (n as u32, &**text)))
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
        // Its number serves the next string; the other keeps its own.
        let c = strings.hold("host-3");
        assert_eq!(
            (c, strings.resolve(c), strings.get("host-2")),
            (a, "host-3", Some(b))
        );
        let held: Vec<(u32, &str)> = strings.iter().collect();
        assert_eq!(held, vec![(a, "host-3"), (b, "host-2")]);
    }
}
