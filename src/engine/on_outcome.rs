//! Outcome notifications (`[[on_outcome]]`): telling a channel when remediation itself
//! failed, was cut short by a stop, or opened a breaker. They are decided as the
//! built-in rule `on_outcome/CHANNEL`, so they pass policy and land in the audit.

use super::evaluate::Decider;
use super::Engine;
use crate::event::Event;
use crate::execute::ActionContext;
use crate::model::{
    Action, Decision, Intent, Outcome, OutcomeStatus, OutcomeTrigger, Report, Target,
};
use crate::policy::{BatchScope, RuleTerms};
use std::collections::HashSet;
use std::sync::Arc;

/// Outcome notifications are decided as the built-in rule `on_outcome/CHANNEL`: a
/// rule file's name cannot hold a `/`, so no rule of the user's can be taken for it.
pub const ON_OUTCOME_RULE: &str = "on_outcome/";

impl Engine {
    /// Decides the notifications `[[on_outcome]]` asks for about a failed or abandoned
    /// action: notify
    /// intents of a built-in rule per channel, through policy (its `limit`, the global
    /// budget, the channel's breaker) and into the audit like any other.
    pub(super) async fn outcome_notices(
        &self,
        failed: &Decision,
        outcome: Outcome,
        event: Option<Arc<Event>>,
    ) -> Vec<(Decision, ActionContext)> {
        // A failing outcome notification must not report on itself, endlessly.
        if failed.rule.starts_with(ON_OUTCOME_RULE) {
            return Vec::new();
        }
        let runtime = self.runtime();
        let Some(event) = event.filter(|_| !runtime.config.on_outcome.is_empty()) else {
            return Vec::new();
        };
        let opened = self
            .state
            .read()
            .consecutive_failures(failed.action, &failed.target)
            >= runtime.settings.breaker_failures;
        let _writing = self.gate.read().await;
        let decider = Decider {
            state: &self.state,
            now: self.now(),
            metrics: Some(&self.metrics),
        };
        let mut told = HashSet::new();
        let mut records = Vec::new();
        let mut notices = Vec::new();
        for entry in &runtime.config.on_outcome {
            if !entry.actions.is_empty() && !entry.actions.contains(&failed.action) {
                continue;
            }
            let target = Target::Notify {
                channel: entry.channel.clone(),
            };
            // A channel that just failed would most likely fail to hear about it too.
            if failed.target == target {
                continue;
            }
            let abandoned = outcome.outcome == OutcomeStatus::Abandoned;
            let when = if abandoned {
                if !entry.when.contains(&OutcomeTrigger::Abandoned) {
                    continue;
                }
                OutcomeTrigger::Abandoned
            } else if opened && entry.when.contains(&OutcomeTrigger::CircuitOpen) {
                OutcomeTrigger::CircuitOpen
            } else if entry.when.contains(&OutcomeTrigger::Failed) {
                OutcomeTrigger::Failed
            } else {
                continue;
            };
            if !told.insert(entry.channel.clone()) {
                continue;
            }
            let name = format!("{ON_OUTCOME_RULE}{}", entry.channel);
            let rule = RuleTerms {
                name: &name,
                limit: Some(entry.limit),
                cooldown: None,
                mute: &[],
                dry_run: false,
            };
            let intent = Intent::new(Action::Notify, target)
                .with("via", "on_outcome")
                .with("when", when.as_str())
                .with("reports", failed.id.clone());
            let (decision, record) =
                decider.decide(&rule, &event, &intent, &mut BatchScope::default());
            records.push(record);
            if decision.executes() {
                let context = ActionContext {
                    decision: Some(decision.clone()),
                    event: Some(event.clone()),
                    related: Vec::new(),
                    report: Some(Report {
                        when,
                        decision: failed.clone(),
                        outcome: outcome.clone(),
                    }),
                };
                notices.push((decision, context));
            }
        }
        if records.is_empty() {
            return notices;
        }
        if let Err(e) = self.audit.append(&records).await {
            tracing::error!(error = %e, "cannot record outcome notifications; not sending them");
            self.forget_unrecorded();
            return Vec::new();
        }
        notices
    }
}
