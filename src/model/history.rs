//! The read-only questions a rule may ask about the past while it plans.

use super::{Action, Target};
use crate::alertmanager::Matchers;
use chrono::{DateTime, Utc};

/// Answered by the policy's memory; rules see only this.
pub trait History: Send + Sync {
    /// How many times `action` was executed on `target` between `from` and `to`.
    fn recent(
        &self,
        target: &Target,
        action: Action,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> usize;
    /// Whether an alert matching `matchers` is firing at `now`.
    fn firing(&self, matchers: &Matchers, now: DateTime<Utc>) -> bool;
}

/// A past in which nothing happened: what `salve check` runs a rule's trial `plan()`
/// against, and what tests of a rule alone give it.
pub struct NoHistory;

impl History for NoHistory {
    fn recent(&self, _: &Target, _: Action, _: DateTime<Utc>, _: DateTime<Utc>) -> usize {
        0
    }
    fn firing(&self, _: &Matchers, _: DateTime<Utc>) -> bool {
        false
    }
}
