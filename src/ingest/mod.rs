//! Sources of events besides the webhooks of the admin API: the Docker engine's own
//! events, and the probes salve runs itself. A source sees salve only through an
//! [`Intake`].

pub mod docker;
pub mod probe;

use crate::event::{Event, Fingerprint, PayloadError};
use chrono::{DateTime, Utc};

/// Why events were not taken. Nothing of a refused batch is recorded.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// An event is past the bounds of `[api]` (labels, value and annotation sizes).
    #[error(transparent)]
    Rejected(#[from] PayloadError),
    /// The trail could not make them durable.
    #[error("cannot record events durably: {0}")]
    Unrecorded(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// More events are waiting to be decided than `[engine] max_backlog`; try again
    /// after `retry_after`.
    #[error(
        "{backlog} events are waiting to be decided (engine.max_backlog is {max}); try again later"
    )]
    Overloaded {
        backlog: usize,
        max: usize,
        retry_after: std::time::Duration,
    },
    /// salve is stopping; another replica or the next start takes them.
    #[error("salve is stopping; try again later")]
    Stopping { retry_after: std::time::Duration },
    /// A task salve cannot work without has ended; salve is about to exit, and its
    /// supervisor to start it again.
    #[error("salve cannot decide events now ({why}); it is exiting to be restarted")]
    Failed { why: String },
}

impl IntakeError {
    /// The reason in `salve_intake_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            IntakeError::Rejected(payload) => payload.reason(),
            IntakeError::Unrecorded(_) => "unrecorded",
            IntakeError::Overloaded { .. } => "backlog",
            IntakeError::Stopping { .. } => "stopping",
            IntakeError::Failed { .. } => "failed",
        }
    }
}

/// What a source may do with salve: hand it events (answered once they are durable),
/// read its clock, and ask when an alert began firing (to keep an episode salve already
/// knows across a restart).
#[async_trait::async_trait]
pub trait Intake: Send + Sync {
    async fn accept(&self, events: Vec<Event>) -> Result<(), IntakeError>;
    fn now(&self) -> DateTime<Utc>;
    fn firing_since(&self, fingerprint: &Fingerprint) -> Option<DateTime<Utc>>;
}
