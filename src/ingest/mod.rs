//! Sources of events besides the webhooks of the admin API: the Docker engine's own
//! events, systemd's news of its units, and the probes salve runs itself. A source sees salve only through an
//! [`Intake`].

pub mod docker;
pub mod probe;
pub mod systemd;

use crate::event::{Event, Fingerprint, PayloadError, Status};
use chrono::{DateTime, Utc};
use std::time::Duration;

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

/// A refused event is offered again after this, doubling up to [`HOLD_BACKOFF_MAX`],
/// unless the refusal says when (`retry_after`).
const HOLD_BACKOFF: Duration = Duration::from_millis(250);
const HOLD_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Whether the trail holds this event already, or a later one of the same alert: an
/// event a source makes is identified by its alert's fingerprint and the time the
/// source gives it.
pub(crate) fn already_recorded(intake: &dyn Intake, event: &Event) -> bool {
    event.status == Status::Firing
        && intake
            .firing_since(&event.fingerprint)
            .is_some_and(|since| since >= event.starts_at)
}

/// How long to wait before offering a refused event again: what the refusal says, or
/// the back-off.
pub(crate) fn retry_delay(refused: &IntakeError, backoff: Duration) -> Duration {
    match refused {
        IntakeError::Overloaded { retry_after, .. } | IntakeError::Stopping { retry_after } => {
            *retry_after
        }
        _ => backoff,
    }
}

/// A refused event of `source` about `subject` (a container, a unit), offered again
/// until it is recorded (or, never to be recorded, is past `[api]`'s bounds).
pub(crate) async fn hold(
    intake: &dyn Intake,
    event: &Event,
    refused: IntakeError,
    source: &str,
    subject: &str,
) {
    tracing::warn!(error = %refused, source, subject, "cannot record an event; holding it and trying again until it is");
    let mut backoff = HOLD_BACKOFF;
    let mut refused = refused;
    for tries in 2u64.. {
        tokio::time::sleep(retry_delay(&refused, backoff)).await;
        backoff = (backoff * 2).min(HOLD_BACKOFF_MAX);
        // An append whose answer was lost (PostgreSQL gone mid-commit) may hold it.
        if already_recorded(intake, event) {
            tracing::info!(
                source,
                subject,
                tries,
                "the held event was recorded after all"
            );
            return;
        }
        match intake.accept(vec![event.clone()]).await {
            Ok(()) => {
                tracing::info!(source, subject, tries, "recorded the held event");
                return;
            }
            Err(e @ IntakeError::Rejected(_)) => {
                tracing::error!(error = %e, source, subject, "an event is past the bounds of [api]; it is not recorded");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, source, subject, tries, "still cannot record the held event");
                refused = e;
            }
        }
    }
}
