//! Sources of events. HTTP now (Alertmanager webhooks and native events).

pub mod http;

pub use http::{app, ApiError};
