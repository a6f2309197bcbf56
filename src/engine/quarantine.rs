//! Quarantine: a rule that keeps being cut off (time, operations, sizes) is not run
//! for a while, so it cannot spend every round's budget again and again. Released after
//! the cool-off or by a reload.

use crate::model::{earlier, later, InvalidSetting, RateLimit};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// `[engine] quarantine_after = "5 per 1m"` and `quarantine_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineSettings {
    pub after: usize,
    pub within: Duration,
    pub cool_off: Duration,
}

impl QuarantineSettings {
    /// Validates `quarantine_after` (a count above 0, no split by target) with
    /// `quarantine_for`.
    pub fn new(rate: RateLimit, cool_off: Duration) -> Result<QuarantineSettings, InvalidSetting> {
        let key = "engine.quarantine_after";
        if rate.count == 0 {
            return Err(InvalidSetting::new(
                key,
                format!(
                    "{:?}: the count must be a whole number above 0",
                    rate.to_string()
                ),
            ));
        }
        if rate.per_target {
            return Err(InvalidSetting::new(
                key,
                format!(
                    "{:?}: a rule is quarantined whatever its targets; write it like \"5 per 1m\"",
                    rate.to_string()
                ),
            ));
        }
        Ok(QuarantineSettings {
            after: rate.count as usize,
            within: rate.window,
            cool_off,
        })
    }
}

#[derive(Debug, Default)]
pub struct Quarantine {
    cut_offs: HashMap<String, VecDeque<DateTime<Utc>>>,
    until: HashMap<String, DateTime<Utc>>,
}

impl Quarantine {
    /// Until when `rule` is quarantined, if it is at `now`.
    pub fn until(&mut self, rule: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.until.get(rule) {
            Some(until) if *until > now => Some(*until),
            Some(_) => {
                self.until.remove(rule);
                tracing::info!(rule, "rule released from quarantine after its cool-off");
                None
            }
            None => None,
        }
    }

    /// Counts a cut-off; returns until when the rule is quarantined if this one put
    /// it there.
    pub fn cut_off(
        &mut self,
        rule: &str,
        now: DateTime<Utc>,
        settings: QuarantineSettings,
    ) -> Option<DateTime<Utc>> {
        let times = self.cut_offs.entry(rule.to_string()).or_default();
        times.push_back(now);
        let window_start = earlier(now, settings.within);
        while times.front().is_some_and(|t| *t < window_start) {
            times.pop_front();
        }
        if times.len() < settings.after || self.until.contains_key(rule) {
            return None;
        }
        times.clear();
        let until = later(now, settings.cool_off);
        self.until.insert(rule.to_string(), until);
        Some(until)
    }

    /// Everything quarantined at `now`, for `GET /api/v1/rules` and `/metrics`.
    pub fn all(&self, now: DateTime<Utc>) -> HashMap<String, DateTime<Utc>> {
        self.until
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(rule, until)| (rule.clone(), *until))
            .collect()
    }

    /// A reload gives every rule a fresh start.
    pub fn release_all(&mut self) {
        self.cut_offs.clear();
        self.until.clear();
    }
}
