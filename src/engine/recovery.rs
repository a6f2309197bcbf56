//! The trail as memory: one fold turns audit records into policy state, at start-up
//! (replay) and live. What a stop left open is settled here: actions with no outcome
//! are reported abandoned (never run again), events never decided are decided now.

use super::Engine;
use crate::audit::{AuditRecord, Entry, MaintenanceChange};
use crate::event::Event;
use crate::model::{Outcome, OutcomeStatus, OutcomeTrigger};
use crate::policy::{PendingExecution, PolicyState};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Applies one audit record, as it was written: the single path by which both live
/// operation and replay change the state (decisions are applied as they are made,
/// through the same `record_decision`).
pub fn fold(state: &mut PolicyState, record: &AuditRecord) {
    match &record.entry {
        Entry::Received {
            event, unmatched, ..
        } => {
            if *unmatched {
                state.observe_event(event);
            } else {
                state.record_received(event);
            }
        }
        Entry::Evaluated { event_id, .. } => state.record_evaluated(event_id),
        Entry::Decision(d) => state.record_decision(d, record.at),
        Entry::Outcome(o) => state.record_outcome(
            &o.decision_id,
            o.action,
            &o.target,
            o.outcome.outcome,
            record.at,
        ),
        Entry::Maintenance(MaintenanceChange::Created { window }) => {
            state.record_window_created(window.clone())
        }
        Entry::Maintenance(MaintenanceChange::Deleted { id, .. }) => {
            state.record_window_deleted(id)
        }
        Entry::Reconsidered { event, .. } => state.record_reconsidered(event),
        Entry::ApprovalRequested(request) => state.record_approval_requested(request),
        Entry::ApprovalDecided(decided) => state.record_approval_decided(decided, record.at),
        Entry::StateReset { target, what, .. } => match what.as_str() {
            "breaker" => state.record_breaker_closed(target),
            "cooldown" => state.record_cooldown_reset(target, record.at),
            "limit" => state.record_limit_reset(target, record.at),
            // Only the API writes resets, and only of what it accepts.
            _ => {}
        },
        Entry::RuleError { .. } | Entry::Reload { .. } => {}
    }
}

impl Engine {
    /// Settles what the last stop left open, before the engine takes new events.
    pub(super) async fn recover(
        self: &Arc<Self>,
        undecided: Vec<Arc<Event>>,
        pending: Vec<PendingExecution>,
    ) {
        // An action decided but with no outcome was interrupted by a stop. It is not run
        // again: acting twice is worse than telling people it may not have happened.
        let mut abandoned_events = self.events_behind(&pending);
        let mut notices = Vec::new();
        for p in pending {
            tracing::warn!(rule = %p.decision.rule, action = %p.decision.action, target = %p.decision.target,
                "an action was interrupted by a stop before its outcome was recorded; not repeating it");
            let outcome = Outcome {
                outcome: OutcomeStatus::Abandoned,
                duration_ms: 0,
                error: Some(
                    "salve stopped before the outcome was recorded; the action may or may not have run"
                        .into(),
                ),
                reason: None,
                verified: None,
                detail: serde_json::Value::Null,
            };
            self.record_outcome(&p.decision, outcome.clone()).await;
            let event = abandoned_events.remove(&p.decision.event_id).map(Arc::new);
            notices.extend(self.outcome_notices(&p.decision, outcome, event).await);
        }
        for (notice, context) in notices {
            self.inflight.fetch_add(1, Ordering::AcqRel);
            let engine = self.clone();
            tokio::spawn(async move {
                engine.execute(notice, context).await;
                engine.finished_one();
            });
        }
        if !undecided.is_empty() {
            tracing::info!(
                events = undecided.len(),
                "deciding events acknowledged before the last stop"
            );
            // One request's events share `received_at`: decide them as the notifications
            // they came in, so `duplicate` folds only within one notification, as live.
            let mut batches: Vec<Vec<Arc<Event>>> = Vec::new();
            for event in undecided {
                match batches.last_mut() {
                    Some(batch) if batch[0].received_at == event.received_at => batch.push(event),
                    _ => batches.push(vec![event]),
                }
            }
            for batch in batches {
                self.process(batch).await;
            }
        }
    }

    /// The events behind actions a stop interrupted, read back from the trail, for the
    /// `[[on_outcome]]` entries that want to hear of them (rare: only after a crash).
    fn events_behind(&self, pending: &[PendingExecution]) -> HashMap<String, Event> {
        let runtime = self.runtime();
        let wanted: HashSet<&str> = pending
            .iter()
            .map(|p| p.decision.event_id.as_str())
            .collect();
        let asked = runtime
            .config
            .on_outcome
            .iter()
            .any(|entry| entry.when.contains(&OutcomeTrigger::Abandoned));
        let mut events = HashMap::new();
        if wanted.is_empty() || !asked {
            return events;
        }
        let read = self.audit.reader().read_since(None, |record| {
            if let Entry::Received { event, .. } = record.entry {
                if wanted.contains(event.id.as_str()) {
                    events.insert(event.id.clone(), Arc::unwrap_or_clone(event));
                }
            }
        });
        if let Err(e) = read {
            tracing::error!(error = %e, "cannot read the events behind interrupted actions; not reporting them");
        }
        events
    }

    /// Decisions are applied in memory as they are made; when they could not be written,
    /// memory must not keep them, or a re-send would be deduped against an action that
    /// never ran. Rebuild it from what the trail does hold.
    pub(super) async fn forget_unrecorded(&self) {
        let Some(files) = self.audit.files() else {
            return self.refold_store().await;
        };
        match super::checkpoint::replay(files.dir(), &self.runtime().config.policy) {
            Ok(state) => {
                // Events still queued stay undecided in it, as they are in the trail.
                *self.state.write() = state;
            }
            Err(e) => tracing::error!(error = %e, "cannot re-read the audit trail either"),
        }
    }
}
