//! salve: alerts in, rules plan, policy checks, executors act, the audit remembers.

pub mod alertmanager;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod execute;
#[doc(hidden)]
pub mod fuzzing;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod replay;
pub mod report;
pub mod rule_tests;
pub mod rules;
pub mod schema;
pub mod serve;
pub mod template;
