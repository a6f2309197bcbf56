//! Policy: is acting safe right now? dedup, maintenance, rate limits, cooldowns,
//! circuit breakers, dry-run, in that order. Every "no" is a decision with its reason.

mod state;

pub use state::{
    BatchScope, PendingExecution, PolicySettings, PolicyState, RuleTerms, SharedHistory,
};

#[cfg(test)]
mod tests;
