//! Sources of events. HTTP now (Alertmanager webhooks and native events).

pub mod docker;
pub mod http;

pub use http::{app, ApiError};
