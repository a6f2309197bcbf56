//! salve: alerts in, rules plan, policy checks, executors act, the audit remembers.

pub mod audit;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod execute;
pub mod ingest;
pub mod metrics;
pub mod policy;
pub mod rules;
pub mod schema;
