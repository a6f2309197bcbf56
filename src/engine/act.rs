//! Running decided actions and recording what came of them. A round's decisions are
//! written (one append, one fsync) before any of its actions starts.

use super::evaluate::{evaluate_round, Quarantining};
use super::recovery::fold;
use super::Engine;
use crate::audit::{AuditRecord, Entry, OutcomeRecord};
use crate::event::Event;
use crate::execute::ActionContext;
use crate::model::{Action, Decision, Intent, Outcome};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// Evaluates one batch, records every decision durably, then starts the executions.
    pub(super) async fn process(self: &Arc<Self>, events: Vec<Arc<Event>>) {
        self.process_many(vec![events]).await;
    }

    /// Decides several notifications, each on its own (duplicates fold only within
    /// one), and records all their decisions with one append: under load the loop
    /// costs one fsync per round, not one per notification.
    pub(super) async fn process_many(self: &Arc<Self>, notifications: Vec<Vec<Arc<Event>>>) {
        let runtime = self.runtime();
        let now = self.now();
        let started = std::time::Instant::now();
        let writing = self.gate.read().await;
        let quarantining = Quarantining {
            quarantine: &self.quarantine,
            settings: runtime.config.quarantine,
        };
        let evaluation = evaluate_round(
            &runtime,
            &self.state,
            &notifications,
            now,
            Some(&self.metrics),
            Some(quarantining),
        );
        if let Err(e) = self.write_records(&evaluation.records).await {
            tracing::error!(error = %e, "cannot record decisions; nothing is executed for these events, retrying them in 5s");
            self.forget_unrecorded().await;
            self.retry_later(notifications);
            return;
        }
        {
            // Decisions were applied as they were made; the rest is applied now.
            let mut state = self.state.write();
            for record in &evaluation.records {
                if !matches!(record.entry, Entry::Decision(_)) {
                    fold(&mut state, record);
                }
            }
        }
        drop(writing);
        // On disk now (in PostgreSQL, for a leader with a store): the people asked may
        // be told, and those whose approval this round spent, what came of it.
        let moved = self.approvals_moved(&evaluation.records, &evaluation.decisions);
        self.announce_approvals_with(&moved, &evaluation.links);
        self.mail_links(&evaluation.links);
        let events: usize = notifications.iter().map(Vec::len).sum();
        self.count_decided(events, started);
        for (rule, until, event) in evaluation.quarantined {
            self.notify_quarantined(rule, until, event);
        }
        self.start_actions(&notifications, &evaluation.decisions);
    }

    /// Events whose decisions could not be recorded go back to the queue in 5 s.
    fn retry_later(self: &Arc<Self>, notifications: Vec<Vec<Arc<Event>>>) {
        for events in notifications {
            let engine = self.clone();
            self.inflight.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if engine.queue.send(events).is_err() {
                    engine.finished_one();
                }
            });
        }
    }

    /// `events` decided since `started`: out of the backlog, into the decide rate.
    fn count_decided(&self, events: usize, started: std::time::Instant) {
        let _ = self
            .backlog
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(events))
            });
        let seconds = started.elapsed().as_secs_f64().max(1e-6);
        self.decide_rate
            .store((events as f64 / seconds) as u64, Ordering::Relaxed);
        self.report_state();
    }

    /// Sends the notices of a rule quarantined this round, on a task of their own.
    fn notify_quarantined(
        self: &Arc<Self>,
        rule: String,
        until: chrono::DateTime<chrono::Utc>,
        event: Event,
    ) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let engine = self.clone();
        tokio::spawn(async move {
            let notices = engine
                .quarantine_notices(&rule, until, Arc::new(event))
                .await;
            for (notice, context) in notices {
                engine.execute(notice, context).await;
            }
            engine.finished_one();
        });
    }

    /// Starts the `execute` decisions of a round, each on a task of its own.
    fn start_actions(self: &Arc<Self>, notifications: &[Vec<Arc<Event>>], decided: &[Decision]) {
        if !decided.iter().any(Decision::executes) {
            return;
        }
        // Executors get the event behind their action, shared by its actions.
        let events: HashMap<&str, &Arc<Event>> = notifications
            .iter()
            .flatten()
            .map(|e| (e.id.as_str(), e))
            .collect();
        for decision in decided.iter().filter(|d| d.executes()).cloned() {
            let event = events
                .get(decision.event_id.as_str())
                .map(|event| Arc::clone(event));
            let context = ActionContext {
                related: related(decided, &decision),
                decision: Some(decision.clone()),
                event,
                report: None,
            };
            self.inflight.fetch_add(1, Ordering::AcqRel);
            let engine = self.clone();
            tokio::spawn(async move {
                let notices = engine.execute(decision, context).await;
                // Outcome notifications never make more of their own, so this ends.
                for (notice, context) in notices {
                    engine.execute(notice, context).await;
                }
                engine.finished_one();
            });
        }
    }

    /// Runs one decided action and records its outcome; returns the outcome
    /// notifications (`[[on_outcome]]`) it calls for, decided and recorded.
    pub(super) async fn execute(
        &self,
        decision: Decision,
        context: ActionContext,
    ) -> Vec<(Decision, ActionContext)> {
        let intent = Intent {
            action: decision.action,
            target: decision.target.clone(),
            params: decision.params.clone(),
        };
        if !self.lead.may_act() {
            // Its outcome could not be recorded either; the replica that leads now
            // reports it abandoned.
            tracing::warn!(rule = %decision.rule, action = %decision.action, target = %decision.target,
                "not starting an action: this replica lost the lead before its turn");
            return Vec::new();
        }
        let dispatcher = self.dispatcher.read().clone();
        let span = crate::telemetry::action(&decision);
        let outcome =
            tracing::Instrument::instrument(dispatcher.run(&intent, &context), span.clone()).await;
        crate::telemetry::outcome(&span, outcome.outcome.as_str());
        // The line that says how it went is the trace's too (its `trace_id`).
        span.in_scope(|| {
            if outcome.is_failure() {
                tracing::warn!(rule = %decision.rule, action = %decision.action, target = %decision.target,
                    error = outcome.error.as_deref().unwrap_or(""), "action failed");
            } else {
                tracing::info!(rule = %decision.rule, action = %decision.action, target = %decision.target,
                    duration_ms = outcome.duration_ms, "action done");
            }
        });
        let failure = outcome.is_failure().then(|| outcome.clone());
        self.record_outcome(&decision, outcome).await;
        match failure {
            Some(outcome) => {
                self.outcome_notices(&decision, outcome, context.event)
                    .await
            }
            None => Vec::new(),
        }
    }

    /// Counts the outcome in `/metrics` and writes it to the trail: the one way an
    /// outcome, live or found abandoned at start, becomes known.
    pub(super) async fn record_outcome(&self, decision: &Decision, outcome: Outcome) {
        self.metrics
            .acted(decision.action.as_str(), outcome.outcome.as_str());
        let record = AuditRecord::new(
            self.now(),
            Entry::Outcome(OutcomeRecord::of(decision, outcome)),
        );
        let _writing = self.gate.read().await;
        // What happened counts (the breaker) even when the trail cannot take it.
        if let Err(e) = self.write_records(std::slice::from_ref(&record)).await {
            tracing::error!(error = %e, "cannot record an outcome");
        }
        fold(&mut self.state.write(), &record);
    }

    /// `salve_state_entries` and `salve_state_evicted_total`, after each round.
    fn report_state(&self) {
        let (sizes, evicted, oldest) = {
            let st = self.state.read();
            (st.sizes(), st.evictions(), st.oldest_undecided())
        };
        let oldest = oldest.map_or(0.0, |at| {
            (self.now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.metrics
            .backlog(self.backlog.load(Ordering::Relaxed), oldest);
        self.metrics.state(
            &[
                ("dedup", sizes.dedup),
                ("firing", sizes.firing),
                ("firing_strings", sizes.firing_strings),
                ("executions", sizes.executions),
                ("breakers", sizes.breakers),
                ("windows", sizes.windows),
                ("pending", sizes.pending),
                ("undecided", sizes.undecided),
                ("held", sizes.held),
            ],
            &[
                ("dedup", evicted.dedup),
                ("firing", evicted.firing),
                ("held", evicted.held),
            ],
        );
    }
}

/// What else the rule of a notification decided about its event, which the message
/// can say; nothing for other actions.
fn related(decided: &[Decision], decision: &Decision) -> Vec<Decision> {
    if decision.action != Action::Notify {
        return Vec::new();
    }
    decided
        .iter()
        .filter(|d| {
            d.event_id == decision.event_id && d.rule == decision.rule && d.id != decision.id
        })
        .cloned()
        .collect()
}
