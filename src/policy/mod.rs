//! Policy: is acting safe right now? dedup, maintenance, rate limits, cooldowns,
//! circuit breakers, dry-run, in that order. Every "no" is a decision with its reason.

mod decision;
mod maintenance;
pub mod rate;
mod state;
pub mod time_interval;

pub use decision::{Decision, Reason, Verdict};
pub use maintenance::{MaintenanceWindow, NewMaintenanceWindow};
pub use rate::RateLimit;
pub use state::{BatchScope, PendingExecution, PolicySettings, PolicyState, SharedHistory};

#[cfg(test)]
mod tests;
