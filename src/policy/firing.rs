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
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// 24 bytes, of which a storm holds hundreds of thousands: the time as [`ns`] (8 bytes
/// where a `DateTime` takes 12).
#[derive(Debug, Clone)]
struct FiringAlert {
    last_seen: i64,
    labels: Held,
}

/// When an alert began firing (ns) and its labels as pairs of string numbers, in one
/// allocation shared by the snapshots that hold it (a shard copied for one copies no
/// labels). The start rides in what rounding the labels to jemalloc's size classes
/// leaves free, rather than in the alert's map entry.
#[derive(Debug, Clone)]
struct Held(Arc<[u64]>);

impl Held {
    fn new(starts_at: i64, pairs: impl Iterator<Item = (u32, u32)>) -> Held {
        let pairs = pairs.map(|(name, value)| (u64::from(name) << 32) | u64::from(value));
        Held(std::iter::once(starts_at as u64).chain(pairs).collect())
    }

    /// The same labels with another start.
    fn starting(&self, starts_at: i64) -> Held {
        Held::new(starts_at, self.iter())
    }

    fn starts_at(&self) -> i64 {
        self.0.first().map_or(0, |n| *n as i64)
    }

    fn len(&self) -> usize {
        self.0.len().saturating_sub(1)
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().skip(1).map(|p| ((p >> 32) as u32, *p as u32))
    }
}

/// Alerts by the interned value of their `alertname` (an alert without one is under
/// the empty string), then by key. By key in a B-tree, not a hash map: as alerts come
/// and go a hash map's deleted slots make it double and stay at half its capacity, 2.6
/// entries of room per alert; B-tree nodes stay about 70% full (measured by
/// `bench/firing_memory.rs`).
type Groups = HashMap<u32, BTreeMap<u64, FiringAlert>>;

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
    order: VecDeque<Seen>,
}

/// An entry of the order: the alert and the second (since the epoch) it was last seen
/// in as of the entry, 16 bytes where a time in ns made it 24. Whole seconds are all
/// the bound and the ttl need; compared with a last seen in whole seconds too, so an
/// entry moved back is due the next time it comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    second: u32,
    name: u32,
    key: u64,
}

fn second(ns: i64) -> u32 {
    ns.div_euclid(1_000_000_000).clamp(0, u32::MAX as i64) as u32
}

fn release_labels(strings: &mut Strings, alert: &FiringAlert) {
    for (name, value) in alert.labels.iter() {
        strings.release(name);
        strings.release(value);
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
    strings: Texts,
    alerts: Vec<(u64, i64, i64, u32)>,
    labels: Vec<u32>,
}

/// A fingerprint as a number: Alertmanager's are 16 hex digits; any other text is hashed.
fn fingerprint_key(fingerprint: &Fingerprint) -> u64 {
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

/// Where a checkpoint's firing set does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiringImageError {
    #[error("a label number past the strings")]
    LabelPastStrings,
    #[error("labels cut short")]
    LabelsCutShort,
    #[error("an alert stored twice")]
    AlertTwice,
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
        while let Some(entry) = self.order.pop_front() {
            let Seen { name, key, .. } = entry;
            match self.last_seen(name, key).map(second) {
                None => {}
                Some(seen) if seen > entry.second => self.order.push_back(Seen {
                    second: seen,
                    ..entry
                }),
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
            if alert.labels.starts_at() != starts_at {
                alert.labels = alert.labels.starting(starts_at);
            }
            alert.last_seen = alert.last_seen.max(last_seen);
            return;
        }
        let pairs = labels
            .iter()
            .map(|(k, v)| (strings.hold(k), strings.hold(v)));
        let labels = Held::new(starts_at, pairs);
        group.insert(key, FiringAlert { last_seen, labels });
        *len += 1;
        order.push_back(Seen {
            second: second(last_seen),
            name,
            key,
        });
    }

    /// The number of the group of alerts named `name` in the shard of `key`, made
    /// (holding the name) if there is none.
    fn group_of(&mut self, name: &str, key: u64) -> u32 {
        let shard = shard_of(key);
        match self.strings.get(name) {
            Some(n) if self.alerts.get(shard).contains_key(&n) => n,
            _ => {
                let n = self.strings.hold(name);
                self.alerts.get_mut(shard).insert(n, BTreeMap::new());
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
            .map(|a| DateTime::from_timestamp_nanos(a.labels.starts_at()))
    }

    /// Whether the alert with this fingerprint was last heard of at or after `cutoff`.
    pub fn seen_since(&self, fingerprint: &Fingerprint, cutoff: DateTime<Utc>) -> bool {
        let key = fingerprint_key(fingerprint);
        self.alerts
            .get(shard_of(key))
            .values()
            .find_map(|group| group.get(&key))
            .is_some_and(|a| a.last_seen >= ns(cutoff))
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
                        .map(|(_, v)| self.strings.resolve(v))
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
        // An entry of the cutoff's own second waits for the next prune.
        while let Some(&entry) = self.order.front() {
            if entry.second >= second(cutoff) {
                break;
            }
            self.order.pop_front();
            let Seen { name, key, .. } = entry;
            match self.last_seen(name, key) {
                None => {}
                Some(seen) if seen >= cutoff => self.order.push_back(Seen {
                    second: second(seen),
                    ..entry
                }),
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
        let mut order: Vec<Seen> = self
            .alerts
            .iter()
            .flat_map(|(_, groups)| groups.iter())
            .flat_map(|(name, group)| {
                group.iter().map(|(key, a)| Seen {
                    second: second(a.last_seen),
                    name: *name,
                    key: *key,
                })
            })
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

    /// The set a checkpoint stored. Each string is stored once and then held as many
    /// times as the alerts (and groups) hold it, counted on the way, rather than one
    /// hold at a time in shards all over: this is most of the work of a start.
    pub fn from_image(image: FiringImage) -> Result<FiringSet, FiringImageError> {
        let mut set = FiringSet::default();
        let texts = &image.strings;
        let ids: Vec<u32> = texts.iter().map(|s| set.strings.hold(s)).collect();
        if image.labels.iter().any(|n| *n as usize >= ids.len()) {
            return Err(FiringImageError::LabelPastStrings);
        }
        let mut holds = vec![0u32; ids.len()];
        let alertname = texts.iter().position(|s| s == "alertname");
        let mut at = 0usize;
        for (key, starts_at, last_seen, count) in image.alerts {
            let end = at + 2 * count as usize;
            let pairs = image
                .labels
                .get(at..end)
                .ok_or(FiringImageError::LabelsCutShort)?;
            at = end;
            for n in pairs {
                holds[*n as usize] += 1;
            }
            let labels = Held::new(
                starts_at,
                pairs
                    .chunks_exact(2)
                    .map(|p| (ids[p[0] as usize], ids[p[1] as usize])),
            );
            let named = pairs
                .chunks_exact(2)
                .find(|p| Some(p[0] as usize) == alertname)
                .map(|p| p[1] as usize);
            let shard = shard_of(key);
            let name = match named {
                Some(n) => {
                    if !set.alerts.get(shard).contains_key(&ids[n]) {
                        set.alerts.get_mut(shard).insert(ids[n], BTreeMap::new());
                        holds[n] += 1;
                    }
                    ids[n]
                }
                None => set.group_of("", key),
            };
            let alert = FiringAlert { last_seen, labels };
            let group = set.alerts.get_mut(shard).entry(name).or_default();
            if group.insert(key, alert).is_some() {
                return Err(FiringImageError::AlertTwice);
            }
            set.len += 1;
        }
        // The hold each string was stored with is given up: one no alert holds goes.
        for (n, more) in ids.into_iter().zip(holds) {
            set.strings.hold_more(n, more);
            set.strings.release(n);
        }
        set.reorder();
        Ok(set)
    }
}

/// Strings as a checkpoint reads them: one text and where each ends, written and read
/// as the list of strings it is, without an allocation per string.
#[derive(Debug, Default)]
struct Texts {
    text: String,
    ends: Vec<usize>,
}

impl Texts {
    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.text.get(start..end).unwrap_or(""))
    }
}

impl serde::Serialize for Texts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Texts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Seq;
        struct Append<'a>(&'a mut String);
        impl<'de> serde::de::Visitor<'de> for Seq {
            type Value = Texts;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Texts, A::Error> {
                let mut texts = Texts::default();
                // As serde's own lists do: a length read from a file is not trusted
                // with an allocation of its size.
                texts
                    .ends
                    .reserve(seq.size_hint().unwrap_or(0).min(1 << 16));
                while seq.next_element_seed(Append(&mut texts.text))?.is_some() {
                    texts.ends.push(texts.text.len());
                }
                Ok(texts)
            }
        }
        impl<'de> serde::de::DeserializeSeed<'de> for Append<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_str(self)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Append<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
                self.0.push_str(s);
                Ok(())
            }
        }
        deserializer.deserialize_seq(Seq)
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
                        alert.labels.starts_at(),
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
                        seq.serialize_element(&of.dense.of(name))?;
                        seq.serialize_element(&of.dense.of(value))?;
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
