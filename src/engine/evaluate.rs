//! Events into decisions: the pure part that `serve`, `plan` and `salve test` share.
//! Rules plan, policy decides, and each decision is applied to the state as it is made
//! so the next intent sees it (budgets, duplicates). Nothing here writes or acts.

use super::Runtime;
use crate::audit::{AuditRecord, Entry};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::model::{Decision, Intent};
use crate::policy::{BatchScope, PolicyState, RuleTerms, SharedHistory};
use crate::rules::{EvalContext, Rule, RuleError, ScriptEvent};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Instant;

/// Everything one evaluation produced, in the order it must be recorded.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub records: Vec<AuditRecord>,
    pub decisions: Vec<Decision>,
    pub rule_errors: Vec<(String, RuleError)>,
}

/// What policy needs of a rule file.
pub fn rule_terms(rule: &Rule) -> RuleTerms<'_> {
    RuleTerms {
        name: &rule.name,
        limit: rule.limit,
        cooldown: rule.cooldown,
        mute: &rule.mute,
        dry_run: rule.dry_run,
    }
}

/// Decides intents at one instant against one state, counting verdicts in `/metrics`.
pub(super) struct Decider<'a> {
    pub state: &'a RwLock<PolicyState>,
    pub now: DateTime<Utc>,
    pub metrics: Option<&'a Metrics>,
}

impl Decider<'_> {
    /// Decides one intent and applies the decision to the state at once, so the next
    /// intent sees it (budgets, duplicates); returns it with the audit record that must
    /// be written before anything runs.
    pub fn decide(
        &self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        batch: &mut BatchScope,
    ) -> (Decision, AuditRecord) {
        let mut st = self.state.write();
        let decision = st.decide(rule, event, intent, self.now, batch);
        st.record_decision(&decision, self.now);
        drop(st);
        let record = AuditRecord::new(self.now, Entry::Decision(decision.clone()));
        if let Some(m) = self.metrics {
            let verdict = if decision.executes() {
                "execute"
            } else {
                "suppress"
            };
            m.decided(verdict, decision.reason.map(|r| r.as_str()).unwrap_or(""));
        }
        (decision, record)
    }
}

/// Runs rules and policy over one notification's events.
pub fn evaluate_events(
    runtime: &Runtime,
    state: &Arc<RwLock<PolicyState>>,
    events: &[Event],
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Evaluation {
    let mut out = Evaluation::default();
    let ctx = EvalContext {
        now,
        history: Arc::new(SharedHistory::new(state.clone())),
    };
    let decider = Decider {
        state,
        now,
        metrics,
    };
    let mut batch = BatchScope::default();
    {
        let mut st = state.write();
        for event in events {
            st.observe_event(event);
        }
    }
    for event in events {
        let matched = runtime.rules.matching(&event.labels);
        let mut evaluated = Vec::with_capacity(matched.len());
        let mut script_event = None;
        for rule in matched {
            let script_event = script_event.get_or_insert_with(|| ScriptEvent::of(event));
            let started = Instant::now();
            let result = runtime.rules.evaluate_prepared(rule, script_event, &ctx);
            if let Some(m) = metrics {
                m.rule_evaluated(started.elapsed());
            }
            evaluated.push(rule.name.clone());
            let intents: Vec<Intent> = match result {
                Ok(intents) => intents,
                Err(err) => {
                    tracing::warn!(rule = %rule.name, fingerprint = %event.fingerprint, error = %err.short(), "rule failed");
                    if let Some(m) = metrics {
                        m.rule_failed(&rule.name);
                    }
                    out.records.push(AuditRecord::new(
                        now,
                        Entry::RuleError {
                            event_id: event.id.clone(),
                            fingerprint: event.fingerprint.clone(),
                            rule: rule.name.clone(),
                            error: err.short(),
                        },
                    ));
                    out.rule_errors.push((rule.name.clone(), err));
                    continue;
                }
            };
            for intent in intents {
                let (decision, record) =
                    decider.decide(&rule_terms(rule), event, &intent, &mut batch);
                out.records.push(record);
                out.decisions.push(decision);
            }
        }
        out.records.push(AuditRecord::new(
            now,
            Entry::Evaluated {
                event_id: event.id.clone(),
                fingerprint: event.fingerprint.clone(),
                rules: evaluated,
            },
        ));
    }
    let mut st = state.write();
    st.maybe_prune(now);
    out
}

/// What the policy would decide for `events` at `now`, against a copy of `state`;
/// nothing is recorded or executed.
pub fn plan(
    runtime: &Runtime,
    mut state: PolicyState,
    events: &[Event],
    now: DateTime<Utc>,
    dry_run: bool,
) -> Evaluation {
    let mut settings = runtime.settings.clone();
    settings.dry_run = dry_run;
    state.set_settings(settings);
    let state = Arc::new(RwLock::new(state));
    evaluate_events(runtime, &state, events, now, None)
}
