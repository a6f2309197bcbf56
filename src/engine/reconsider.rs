//! Held back is not dropped: an alert whose actions policy held back for something
//! that ends (see `policy::held`) is decided again when it does, as a re-send would be,
//! with the rules and state of that moment. Only the leader reconsiders; the holds are
//! state every replica folds.

use super::{Engine, Trail};
use crate::audit::{AuditRecord, Entry};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// At most this many alerts are reconsidered a second, and never more than half the
/// room left under `engine.max_backlog`: the end of a window over a storm's alerts
/// reaches the rules as a stream, not as a storm of its own.
const MAX_PER_SECOND: usize = 256;

impl Engine {
    /// Writes a `reconsidered` record for each alert whose hold has ended and that still
    /// fires, then hands its event to the worker like one just received.
    pub(super) async fn reconsider_due(self: &Arc<Self>) {
        // Not before what acting needs is up (the Docker engine, say: an alert held in
        // dry-run is due the moment salve starts live).
        let busy = !self.lead.is_leader()
            || self.stopping.load(Ordering::Acquire)
            || self.not_ready_reason().is_some();
        let room = self
            .runtime()
            .config
            .max_backlog
            .saturating_sub(self.backlog.load(Ordering::Acquire))
            / 2;
        let now = self.now();
        let runtime = self.runtime();
        let due = if busy {
            Vec::new()
        } else {
            self.state
                .write()
                .due(now, room.min(MAX_PER_SECOND), |rule| {
                    runtime.rules.get(rule).and_then(|r| r.limit)
                })
        };
        self.count_held();
        if due.is_empty() {
            return;
        }
        let records: Vec<AuditRecord> = due
            .iter()
            .map(|(event, held)| {
                AuditRecord::new(
                    now,
                    Entry::Reconsidered {
                        event: event.clone(),
                        held: *held,
                    },
                )
            })
            .collect();
        let written = match &self.audit {
            // The leader finds them in the trail, as every replica folds them.
            Trail::Postgres(pg) => {
                let appended = pg.append(&records).await;
                self.lead.wake.notify_one();
                appended
            }
            Trail::Files(_) => self.write_then_fold(&records).await,
        };
        if let Err(e) = written {
            // Still held: tried again at the next tick.
            tracing::warn!(error = %e, alerts = due.len(), "cannot record reconsiderations; trying again in a second");
            return;
        }
        for (event, held) in due {
            tracing::info!(fingerprint = %event.fingerprint, alertname = event.labels.get("alertname").map(String::as_str).unwrap_or(""),
                held = held.as_str(), "hold ended while the alert still fires: deciding it again");
            self.metrics.reconsidered(held.as_str());
            if matches!(self.audit, Trail::Files(_)) {
                self.enqueue(vec![Arc::new(event)]);
            }
        }
        self.count_held();
    }

    /// Alerts held in dry-run by rules that now act (a start without `--dry-run`, a
    /// reload that ends dry-run) are decided live at the next tick.
    pub(super) fn go_live(&self) {
        let runtime = self.runtime();
        let live = self.state.write().go_live(self.now(), |rule| {
            runtime.rules.get(rule).is_none_or(|r| !r.dry_run)
        });
        if live > 0 {
            tracing::info!(
                alerts = live,
                "alerts decided in dry-run are decided again now that their rules act"
            );
        }
        self.count_held();
    }

    fn count_held(&self) {
        let (timed, dry) = self.state.read().held();
        self.metrics
            .reconsiderations_pending
            .set((timed + dry) as i64);
    }
}
