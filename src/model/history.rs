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
