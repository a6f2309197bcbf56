//! Policy: is acting safe right now? dedup, maintenance, rate limits, cooldowns,
//! circuit breakers, dry-run, in that order. Every "no" is a decision with its reason.

mod approvals;
mod firing;
mod held;
mod history;
mod image;
mod safety;
mod shards;
mod state;
mod strings;
mod verdict;

pub use approvals::{ApprovalEntry, ApprovalTerms, Decided, DEFAULT_TTL as DEFAULT_APPROVAL_TTL};
pub use held::{DryHeld, HeldBack, Spent};
pub use history::SharedHistory;
pub use image::{ImageError, StateImage, StateImageV1, StateImageV2, StateImageV3, StateSnapshot};
pub use safety::{BreakerView, BudgetView, CooldownView, LimitView, SafetyView};
pub use state::{
    BatchScope, Evictions, PendingExecution, PolicySettings, PolicyState, RuleTerms, StateSizes,
};

#[cfg(test)]
mod approvals_tests;
#[cfg(test)]
mod held_tests;
#[cfg(test)]
mod resets_tests;
#[cfg(test)]
mod tests;
