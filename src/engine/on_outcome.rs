//! Outcome notifications (`[[on_outcome]]`): telling a channel when remediation itself
//! failed, was cut short by a stop, or opened a breaker. They are decided as the
//! built-in rule `on_outcome/CHANNEL`, so they pass policy and land in the audit.

use super::evaluate::Decider;
use super::Engine;
use crate::config::OnOutcome;
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
            >= runtime.config.policy.breaker_failures;
        let mut told = HashSet::new();
        let mut wanted = Vec::new();
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
            let intent = Intent::new(Action::Notify, target)
                .with("via", "on_outcome")
                .with("when", when.as_str())
                .with("reports", failed.id.clone());
            let report = Report {
                when,
                decision: failed.clone(),
                outcome: outcome.clone(),
            };
            wanted.push((entry, intent, Some(report)));
        }
        self.decide_notices(&event, wanted).await
    }

    /// Decides the notifications `[[on_outcome]] when = ["rule_quarantined"]` asks for
    /// about a rule that has just been quarantined, with the event that cut it off.
    pub(super) async fn quarantine_notices(
        &self,
        rule: &str,
        until: chrono::DateTime<chrono::Utc>,
        event: Arc<Event>,
    ) -> Vec<(Decision, ActionContext)> {
        let runtime = self.runtime();
        let text = format!(
            "Rule {rule} is quarantined until {}: it was cut off (time, operations or sizes) {} times within {}. \
             Until then it is not run; the events it would have seen are recorded as rule errors. \
             A reload releases it.",
            until.to_rfc3339(),
            runtime.config.quarantine.after,
            crate::model::format_duration(runtime.config.quarantine.within),
        );
        let mut told = HashSet::new();
        let wanted = runtime
            .config
            .on_outcome
            .iter()
            .filter(|entry| entry.when.contains(&OutcomeTrigger::RuleQuarantined))
            .filter(|entry| told.insert(entry.channel.clone()))
            .map(|entry| {
                let intent = Intent::new(
                    Action::Notify,
                    Target::Notify {
                        channel: entry.channel.clone(),
                    },
                )
                .with("via", "on_outcome")
                .with("when", OutcomeTrigger::RuleQuarantined.as_str())
                .with("rule", rule)
                .with("text", text.clone())
                .with("verbatim", vec!["text"]);
                (entry, intent, None)
            })
            .collect();
        self.decide_notices(&event, wanted).await
    }

    /// Decides each wanted notification as the built-in rule `on_outcome/CHANNEL`
    /// (through policy, with the entry's `limit`), records the decisions, and returns
    /// the ones to send.
    async fn decide_notices(
        &self,
        event: &Arc<Event>,
        wanted: Vec<(&OnOutcome, Intent, Option<Report>)>,
    ) -> Vec<(Decision, ActionContext)> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let _writing = self.gate.read().await;
        let decider = Decider {
            state: &self.state,
            now: self.now(),
            metrics: Some(&self.metrics),
        };
        let mut records = Vec::new();
        let mut notices = Vec::new();
        for (entry, intent, report) in wanted {
            let name = format!("{ON_OUTCOME_RULE}{}", entry.channel);
            let rule = RuleTerms {
                name: &name,
                limit: Some(entry.limit),
                cooldown: None,
                mute: &[],
                dry_run: false,
            };
            let (decision, record) =
                decider.decide(&rule, event, &intent, &mut BatchScope::default());
            records.push(record);
            if decision.executes() {
                let context = ActionContext {
                    decision: Some(decision.clone()),
                    event: Some(event.clone()),
                    related: Vec::new(),
                    report,
                };
                notices.push((decision, context));
            }
        }
        if let Err(e) = self.write_records(&records).await {
            tracing::error!(error = %e, "cannot record outcome notifications; not sending them");
            self.forget_unrecorded().await;
            return Vec::new();
        }
        notices
    }
}
