//! The alerts firing now, behind a rule's `firing(...)`. Compact, because a storm puts
//! hundreds of thousands in it: label names and values are stored once and shared
//! (interned), alerts are keyed by a hash of their fingerprint, and they are grouped by
//! alertname so that `firing('alertname="X", ...')` looks only at alerts named X.

use crate::alertmanager::Matchers;
use crate::event::{Event, Fingerprint, Labels, Status};
use chrono::{DateTime, Utc};
use lasso::{Rodeo, Spur};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct FiringAlert {
    starts_at: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    labels: Box<[(Spur, Spur)]>,
}

#[derive(Debug, Clone)]
pub struct FiringSet {
    strings: Rodeo,
    /// Alerts by the interned value of their `alertname` (an alert without one is
    /// under the empty string).
    by_alertname: HashMap<Spur, HashMap<u64, FiringAlert>>,
    len: usize,
    strings_after_rebuild: usize,
    /// Alerts that left since the strings were last rebuilt: only their strings can be
    /// dead.
    left_since_rebuild: usize,
}

impl Default for FiringSet {
    fn default() -> FiringSet {
        FiringSet {
            strings: Rodeo::new(),
            by_alertname: HashMap::new(),
            len: 0,
            strings_after_rebuild: 0,
            left_since_rebuild: 0,
        }
    }
}

/// The firing set in a checkpoint (see [`FiringSet::image`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct FiringImage {
    strings: Vec<String>,
    alerts: Vec<(u64, i64, i64, u32)>,
    labels: Vec<u32>,
}

/// An alert as the checkpoint and tests see it: fingerprint key, labels, start, last seen.
pub type FiringEntry = (u64, Labels, DateTime<Utc>, DateTime<Utc>);

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

    /// A firing event enters (or refreshes) the set; a resolved one leaves it.
    pub fn observe(&mut self, event: &Event) {
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
    }

    fn insert_labels(
        &mut self,
        key: u64,
        labels: &Labels,
        starts_at: DateTime<Utc>,
        last_seen: DateTime<Utc>,
    ) {
        let name = labels.get("alertname").map_or("", String::as_str);
        let name = self.strings.get_or_intern(name);
        let group = self.by_alertname.entry(name).or_default();
        if let Some(alert) = group.get_mut(&key) {
            alert.starts_at = starts_at;
            alert.last_seen = alert.last_seen.max(last_seen);
            return;
        }
        let labels = labels
            .iter()
            .map(|(k, v)| (self.strings.get_or_intern(k), self.strings.get_or_intern(v)))
            .collect();
        group.insert(
            key,
            FiringAlert {
                starts_at,
                last_seen,
                labels,
            },
        );
        self.len += 1;
    }

    fn remove(&mut self, name: Spur, key: u64) {
        if let Some(group) = self.by_alertname.get_mut(&name) {
            if group.remove(&key).is_some() {
                self.len -= 1;
                self.left_since_rebuild += 1;
            }
            if group.is_empty() {
                self.by_alertname.remove(&name);
            }
        }
    }

    /// When the alert with this fingerprint began firing, if it is firing.
    pub fn since(&self, fingerprint: &Fingerprint) -> Option<DateTime<Utc>> {
        let key = fingerprint_key(fingerprint);
        self.by_alertname
            .values()
            .find_map(|group| group.get(&key))
            .map(|a| a.starts_at)
    }

    /// Whether an alert matching `matchers` was seen since `cutoff`. An `alertname`
    /// equality narrows the search to that name's alerts.
    pub fn any(&self, matchers: &Matchers, cutoff: DateTime<Utc>) -> bool {
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
            Some(alertname) => self
                .strings
                .get(alertname)
                .and_then(|name| self.by_alertname.get(&name))
                .is_some_and(|group| group.values().any(matches)),
            None => self
                .by_alertname
                .values()
                .any(|group| group.values().any(matches)),
        }
    }

    /// Drops alerts not seen since `cutoff`; then, while more than `bound` remain, the
    /// ones seen least recently. Returns how many the bound evicted. Interned strings
    /// are rebuilt from what is left once they have doubled since the last rebuild and
    /// more alerts have left since then than are left, so memory follows what is
    /// firing, not what ever fired, at a cost amortized over the alerts that left (a
    /// storm that only adds alerts is never rebuilt).
    pub fn prune(&mut self, cutoff: DateTime<Utc>, bound: usize) -> usize {
        for group in self.by_alertname.values_mut() {
            group.retain(|_, alert| alert.last_seen >= cutoff);
        }
        self.by_alertname.retain(|_, group| !group.is_empty());
        let len = self.by_alertname.values().map(HashMap::len).sum();
        self.left_since_rebuild += self.len - len;
        self.len = len;
        let mut evicted = 0;
        if self.len > bound {
            // Down to 90% of the bound, so the next eviction is a tenth of it away.
            let keep = bound - bound / 10;
            let mut ages: Vec<(DateTime<Utc>, Spur, u64)> = self
                .by_alertname
                .iter()
                .flat_map(|(name, group)| group.iter().map(|(key, a)| (a.last_seen, *name, *key)))
                .collect();
            evicted = self.len - keep;
            ages.select_nth_unstable(evicted);
            for (_, name, key) in ages.drain(..evicted) {
                self.remove(name, key);
            }
        }
        if self.strings.len() > 2 * self.strings_after_rebuild.max(1024)
            && self.left_since_rebuild > self.len
        {
            let alerts: Vec<FiringEntry> = self.alerts().collect();
            let mut rebuilt = FiringSet::default();
            for (key, labels, starts_at, last_seen) in &alerts {
                rebuilt.insert_labels(*key, labels, *starts_at, *last_seen);
            }
            rebuilt.strings_after_rebuild = rebuilt.strings.len();
            *self = rebuilt;
        }
        evicted
    }

    /// The set as a checkpoint stores it: every string once, and per alert its key,
    /// start and last seen (ns) and its label count; the labels, as pairs of string
    /// numbers, one after another in `labels`.
    pub fn image(&self) -> FiringImage {
        use lasso::Key;
        let strings = self.strings.strings().map(str::to_string).collect();
        let mut alerts = Vec::with_capacity(self.len);
        let mut labels = Vec::with_capacity(self.len * 8);
        for group in self.by_alertname.values() {
            for (key, alert) in group {
                alerts.push((
                    *key,
                    alert.starts_at.timestamp_nanos_opt().unwrap_or(i64::MAX),
                    alert.last_seen.timestamp_nanos_opt().unwrap_or(i64::MAX),
                    alert.labels.len() as u32,
                ));
                for (name, value) in alert.labels.iter() {
                    labels.push(name.into_usize() as u32);
                    labels.push(value.into_usize() as u32);
                }
            }
        }
        FiringImage {
            strings,
            alerts,
            labels,
        }
    }

    /// The set a checkpoint stored.
    pub fn from_image(image: FiringImage) -> Result<FiringSet, String> {
        let mut set = FiringSet::default();
        let ids: Vec<Spur> = image
            .strings
            .iter()
            .map(|s| set.strings.get_or_intern(s))
            .collect();
        let id = |n: u32| {
            ids.get(n as usize)
                .copied()
                .ok_or("a label number past the strings")
        };
        let alertname = set.strings.get_or_intern("alertname");
        let empty = set.strings.get_or_intern("");
        let mut at = 0usize;
        for (key, starts_at, last_seen, count) in image.alerts {
            let end = at + 2 * count as usize;
            let pairs = image.labels.get(at..end).ok_or("labels cut short")?;
            at = end;
            let labels: Box<[(Spur, Spur)]> = pairs
                .chunks_exact(2)
                .map(|p| Ok((id(p[0])?, id(p[1])?)))
                .collect::<Result<_, &str>>()?;
            let name = labels
                .iter()
                .find(|(k, _)| *k == alertname)
                .map_or(empty, |(_, v)| *v);
            let fresh = set.by_alertname.entry(name).or_default().insert(
                key,
                FiringAlert {
                    starts_at: DateTime::from_timestamp_nanos(starts_at),
                    last_seen: DateTime::from_timestamp_nanos(last_seen),
                    labels,
                },
            );
            if fresh.is_none() {
                set.len += 1;
            }
        }
        set.strings_after_rebuild = set.strings.len();
        Ok(set)
    }

    /// Every alert, for checkpoints and pruning.
    pub fn alerts(&self) -> impl Iterator<Item = FiringEntry> + '_ {
        self.by_alertname.values().flat_map(move |group| {
            group.iter().map(move |(key, alert)| {
                let labels = alert
                    .labels
                    .iter()
                    .map(|(k, v)| {
                        (
                            self.strings.resolve(k).to_string(),
                            self.strings.resolve(v).to_string(),
                        )
                    })
                    .collect();
                (*key, labels, alert.starts_at, alert.last_seen)
            })
        })
    }
}
