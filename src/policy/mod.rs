//! Policy: is acting safe right now? dedup, maintenance, rate limits, cooldowns,
//! circuit breakers, dry-run, in that order. Every "no" is a decision with its reason.

mod firing;
mod state;

pub use state::{
    BatchScope, Evictions, PendingExecution, PolicySettings, PolicyState, RuleTerms, SharedHistory,
    StateSizes,
};

#[cfg(test)]
mod tests;
