//! Policy: is acting safe right now? dedup, maintenance, rate limits, cooldowns,
//! circuit breakers, dry-run, in that order. Every "no" is a decision with its reason.

mod firing;
mod history;
mod image;
mod shards;
mod state;
mod strings;

pub use history::SharedHistory;
pub use image::{ImageError, StateImage, StateSnapshot};
pub use state::{
    BatchScope, Evictions, PendingExecution, PolicySettings, PolicyState, RuleTerms, StateSizes,
};

#[cfg(test)]
mod tests;
