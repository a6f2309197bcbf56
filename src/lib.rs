//! salve: alerts in, rules plan, policy checks, executors act, the audit remembers.

pub(crate) mod alertmanager;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod engine;
pub mod event;
pub mod execute;
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod ingest;
pub(crate) mod logging;
pub(crate) mod metrics;
pub mod model;
pub mod policy;
pub(crate) mod replay;
pub(crate) mod report;
pub(crate) mod rule_tests;
pub(crate) mod rules;
pub(crate) mod schema;
pub(crate) mod serve;
pub(crate) mod systemd;
pub(crate) mod telemetry;
pub(crate) mod template;
pub(crate) mod version;
