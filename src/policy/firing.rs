//! The alerts firing now, behind a rule's `firing(...)`. Compact, because a storm puts
//! hundreds of thousands in it: label names and values are stored once and shared
//! (interned, and freed with the last alert that holds them), alerts are keyed by a
//! hash of their fingerprint, and they are grouped by alertname so that
//! `firing('alertname="X", ...')` looks only at alerts named X.

use super::image::ns;
use super::shards::{shard_of, Shards};
use super::strings::{DenseNumbers, Strings};
use crate::alertmanager::Matchers;
use crate::event::{Event, Fingerprint, Labels, Status};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Times as [`ns`]: 8 bytes where a `DateTime` takes 12, in a set that holds
/// hundreds of thousands of them.
#[derive(Debug, Clone)]
struct FiringAlert {
    starts_at: i64,
    last_seen: i64,
    /// Shared, so that copying a shard for a snapshot copies no labels.
    labels: Arc<[(u32, u32)]>,
}

/// Alerts by the interned value of their `alertname` (an alert without one is under
/// the empty string), then by key.
type Groups = HashMap<u32, HashMap<u64, FiringAlert>>;

/// Each alert holds its label names and values in `strings`, each group its alertname.
#[derive(Debug, Clone, Default)]
pub struct FiringSet {
    strings: Strings,
    /// In shards by key, so that a checkpoint can share them (see `shards`).
    alerts: Shards<Groups>,
    len: usize,
    /// Every alert (name, key) in the order it was last seen as of its entry, oldest
    /// first, so that the bound and the ttl touch only what they remove. An alert seen
    /// since its entry is moved to the back when its entry comes up; the entry of one
    /// that left is dropped then.
    order: VecDeque<(i64, u32, u64)>,
}

fn release_labels(strings: &mut Strings, alert: &FiringAlert) {
    for (name, value) in alert.labels.iter() {
        strings.release(*name);
        strings.release(*value);
    }
}

/// The firing set as it was, sharing what has not changed since (see `shards`).
#[derive(Debug, Clone)]
pub struct FiringSnapshot {
    strings: Strings,
    alerts: Shards<Groups>,
    len: usize,
}

/// The firing set in a checkpoint (see [`FiringSnapshot::image`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FiringImage {
    strings: Vec<String>,
    alerts: Vec<(u64, i64, i64, u32)>,
    labels: Vec<u32>,
}

/// A fingerprint as a number: Alertmanager's are 16 hex digits; any other text is hashed.
pub fn fingerprint_key(fingerprint: &Fingerprint) -> u64 {
    match u64::from_str_radix(&fingerprint.0, 16) {
        Ok(n) if fingerprint.0.len() == 16 => n,
        _ => {
            use std::hash::{Hash, Hasher};
            let mut hasher = siphasher::sip::SipHasher13::new();
            fingerprint.0.hash(&mut hasher);
            hasher.finish()
        }
    }
}

impl FiringSet {
    pub fn len(&self) -> usize {
        self.len
    }

    /// How many distinct label names and values are stored.
    pub fn strings(&self) -> usize {
        self.strings.len()
    }

    /// A firing event enters (or refreshes) the set; a resolved one leaves it. Past
    /// `bound` alerts, the one seen least recently goes; returns how many went.
    pub fn observe(&mut self, event: &Event, bound: usize) -> usize {
        let key = fingerprint_key(&event.fingerprint);
        match event.status {
            Status::Firing => {
                self.insert_labels(key, &event.labels, event.starts_at, event.received_at)
            }
            Status::Resolved => {
                let name = event.labels.get("alertname").map_or("", String::as_str);
                if let Some(name) = self.strings.get(name) {
                    self.remove(name, key);
                }
            }
        }
        let mut evicted = 0;
        while self.len > bound && self.evict_oldest() {
            evicted += 1;
        }
        evicted
    }

    fn last_seen(&self, name: u32, key: u64) -> Option<i64> {
        self.alerts
            .get(shard_of(key))
            .get(&name)
            .and_then(|group| group.get(&key))
            .map(|a| a.last_seen)
    }

    /// Removes the alert seen least recently, if there is one.
    fn evict_oldest(&mut self) -> bool {
        while let Some((at, name, key)) = self.order.pop_front() {
            match self.last_seen(name, key) {
                None => {}
                Some(seen) if seen > at => self.order.push_back((seen, name, key)),
                Some(_) => {
                    self.remove(name, key);
                    return true;
                }
            }
        }
        false
    }

    fn insert_labels(
        &mut self,
        key: u64,
        labels: &Labels,
        starts_at: DateTime<Utc>,
        last_seen: DateTime<Utc>,
    ) {
        let (starts_at, last_seen) = (ns(starts_at), ns(last_seen));
        let name = labels.get("alertname").map_or("", String::as_str);
        let name = self.group_of(name, key);
        let FiringSet {
            strings,
            alerts,
            len,
            order,
        } = self;
        let Some(group) = alerts.get_mut(shard_of(key)).get_mut(&name) else {
            return;
        };
        if let Some(alert) = group.get_mut(&key) {
            alert.starts_at = starts_at;
            alert.last_seen = alert.last_seen.max(last_seen);
            return;
        }
        let labels = labels
            .iter()
            .map(|(k, v)| (strings.hold(k), strings.hold(v)))
            .collect();
        group.insert(
            key,
            FiringAlert {
                starts_at,
                last_seen,
                labels,
            },
        );
        *len += 1;
        order.push_back((last_seen, name, key));
    }

    /// The number of the group of alerts named `name` in the shard of `key`, made
    /// (holding the name) if there is none.
    fn group_of(&mut self, name: &str, key: u64) -> u32 {
        let shard = shard_of(key);
        match self.strings.get(name) {
            Some(n) if self.alerts.get(shard).contains_key(&n) => n,
            _ => {
                let n = self.strings.hold(name);
                self.alerts.get_mut(shard).insert(n, HashMap::new());
                n
            }
        }
    }

    fn remove(&mut self, name: u32, key: u64) {
        let shard = shard_of(key);
        // A shard a snapshot shares is copied only for an alert that is in it.
        let held = self.alerts.get(shard).get(&name);
        if !held.is_some_and(|group| group.contains_key(&key)) {
            return;
        }
        let groups = self.alerts.get_mut(shard);
        if let Some(group) = groups.get_mut(&name) {
            if let Some(alert) = group.remove(&key) {
                self.len -= 1;
                release_labels(&mut self.strings, &alert);
            }
            if group.is_empty() {
                groups.remove(&name);
                self.strings.release(name);
            }
        }
    }

    /// When the alert with this fingerprint began firing, if it is firing.
    pub fn since(&self, fingerprint: &Fingerprint) -> Option<DateTime<Utc>> {
        let key = fingerprint_key(fingerprint);
        self.alerts
            .get(shard_of(key))
            .values()
            .find_map(|group| group.get(&key))
            .map(|a| DateTime::from_timestamp_nanos(a.starts_at))
    }

    /// Whether an alert matching `matchers` was seen since `cutoff`. An `alertname`
    /// equality narrows the search to that name's alerts.
    pub fn any(&self, matchers: &Matchers, cutoff: DateTime<Utc>) -> bool {
        let cutoff = ns(cutoff);
        let matches = |alert: &FiringAlert| {
            alert.last_seen >= cutoff
                && matchers.matches_lookup(|name| {
                    let name = self.strings.get(name)?;
                    alert
                        .labels
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| self.strings.resolve(*v))
                })
        };
        match matchers.required_value("alertname") {
            Some(alertname) => self.strings.get(alertname).is_some_and(|name| {
                self.alerts.iter().any(|(_, groups)| {
                    groups
                        .get(&name)
                        .is_some_and(|group| group.values().any(matches))
                })
            }),
            None => self
                .alerts
                .iter()
                .any(|(_, groups)| groups.values().any(|group| group.values().any(matches))),
        }
    }

    /// Drops alerts not seen since `cutoff`; then, while more than `bound` remain, the
    /// ones seen least recently. Returns how many the bound evicted. Both take entries
    /// off the front of `order` only, so their cost is what they remove.
    pub fn prune(&mut self, cutoff: DateTime<Utc>, bound: usize) -> usize {
        let cutoff = ns(cutoff);
        while let Some(&(at, name, key)) = self.order.front() {
            if at >= cutoff {
                break;
            }
            self.order.pop_front();
            match self.last_seen(name, key) {
                None => {}
                Some(seen) if seen >= cutoff => self.order.push_back((seen, name, key)),
                Some(_) => self.remove(name, key),
            }
        }
        let mut evicted = 0;
        while self.len > bound && self.evict_oldest() {
            evicted += 1;
        }
        // Entries of alerts that were resolved wait for their turn to be dropped; once
        // they outnumber the alerts, the order is made again, at a cost paid by them.
        if self.order.len() > 2 * self.len + 1024 {
            self.reorder();
        }
        evicted
    }

    /// `order` made again from the alerts: one entry each, by last seen.
    fn reorder(&mut self) {
        let mut order: Vec<(i64, u32, u64)> = self
            .alerts
            .iter()
            .flat_map(|(_, groups)| groups.iter())
            .flat_map(|(name, group)| group.iter().map(|(key, a)| (a.last_seen, *name, *key)))
            .collect();
        order.sort_unstable();
        self.order = order.into();
    }

    /// The set as it is now, for a checkpoint to take its image of at leisure: the
    /// shards are shared, not copied.
    pub fn snapshot(&self) -> FiringSnapshot {
        FiringSnapshot {
            strings: self.strings.clone(),
            alerts: self.alerts.clone(),
            len: self.len,
        }
    }

    /// The set a checkpoint stored.
    pub fn from_image(image: FiringImage) -> Result<FiringSet, String> {
        let mut set = FiringSet::default();
        // A hold on each string while the alerts take theirs, given up at the end.
        let ids: Vec<u32> = image.strings.iter().map(|s| set.strings.hold(s)).collect();
        let id = |n: u32| {
            ids.get(n as usize)
                .copied()
                .ok_or("a label number past the strings")
        };
        let alertname = set.strings.get("alertname");
        let mut at = 0usize;
        for (key, starts_at, last_seen, count) in image.alerts {
            let end = at + 2 * count as usize;
            let pairs = image.labels.get(at..end).ok_or("labels cut short")?;
            at = end;
            let labels: Arc<[(u32, u32)]> = pairs
                .chunks_exact(2)
                .map(|p| Ok((id(p[0])?, id(p[1])?)))
                .collect::<Result<_, &str>>()?;
            for (name, value) in labels.iter() {
                set.strings.hold_again(*name);
                set.strings.hold_again(*value);
            }
            let name = labels
                .iter()
                .find(|(k, _)| Some(*k) == alertname)
                .map_or(String::new(), |(_, v)| set.strings.resolve(*v).to_string());
            let name = set.group_of(&name, key);
            let alert = FiringAlert {
                starts_at,
                last_seen,
                labels,
            };
            let replaced = set
                .alerts
                .get_mut(shard_of(key))
                .get_mut(&name)
                .and_then(|group| group.insert(key, alert));
            match replaced {
                Some(old) => release_labels(&mut set.strings, &old),
                None => set.len += 1,
            }
        }
        for n in ids {
            set.strings.release(n);
        }
        set.reorder();
        Ok(set)
    }
}

impl FiringSnapshot {
    /// The set as a checkpoint stores it: every string once, and per alert its key,
    /// start and last seen (ns) and its label count; the labels, as pairs of string
    /// numbers, one after another in `labels`.
    pub fn image(&self) -> FiringImageOf<'_> {
        // Numbers freed and taken again leave holes; the image numbers strings densely.
        let (strings, dense) = self.strings.dense();
        let label_numbers = self.alerts().map(|(_, a)| 2 * a.labels.len()).sum();
        FiringImageOf {
            snapshot: self,
            strings,
            dense,
            label_numbers,
        }
    }

    fn alerts(&self) -> impl Iterator<Item = (&u64, &FiringAlert)> + '_ {
        self.alerts
            .iter()
            .flat_map(|(_, groups)| groups.values().flatten())
    }
}

/// A snapshot's firing set, written as the [`FiringImage`] it is read back as.
pub struct FiringImageOf<'a> {
    snapshot: &'a FiringSnapshot,
    strings: Vec<&'a str>,
    dense: DenseNumbers,
    label_numbers: usize,
}

impl serde::Serialize for FiringImageOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct Alerts<'a>(&'a FiringSnapshot);
        impl serde::Serialize for Alerts<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len))?;
                for (key, alert) in self.0.alerts() {
                    seq.serialize_element(&(
                        *key,
                        alert.starts_at,
                        alert.last_seen,
                        alert.labels.len() as u32,
                    ))?;
                }
                seq.end()
            }
        }
        struct Labels<'a>(&'a FiringImageOf<'a>);
        impl serde::Serialize for Labels<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let of = self.0;
                let mut seq = serializer.serialize_seq(Some(of.label_numbers))?;
                for (_, alert) in of.snapshot.alerts() {
                    for (name, value) in alert.labels.iter() {
                        seq.serialize_element(&of.dense.of(*name))?;
                        seq.serialize_element(&of.dense.of(*value))?;
                    }
                }
                seq.end()
            }
        }
        let mut image = serializer.serialize_struct("FiringImage", 3)?;
        image.serialize_field("strings", &self.strings)?;
        image.serialize_field("alerts", &Alerts(self.snapshot))?;
        image.serialize_field("labels", &Labels(self))?;
        image.end()
    }
}
