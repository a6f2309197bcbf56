//! What would stop salve acting next, as people read it: open breakers, running
//! cooldowns, spent (or spending) limits and the global budget, each with when it
//! clears. A read-only view of the state; `GET /api/v1/state` serves it.

use super::state::{since, PolicyState};
use crate::model::{Action, RateLimit, Target};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerView {
    pub action: Action,
    pub target: Target,
    pub consecutive_failures: u32,
    /// At the threshold: no action of this kind on this target until `closes_at`, then
    /// one trial.
    pub open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    /// When it turns half-open (one trial is let through).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<DateTime<Utc>>,
    pub trial_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CooldownView {
    pub target: Target,
    pub rule: String,
    pub action: Action,
    pub acted_at: DateTime<Utc>,
    pub clears_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitView {
    pub rule: String,
    /// For a `per target` limit, the target it counts; else every target of the rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    pub limit: String,
    pub used: usize,
    pub left: usize,
    /// When one more fits, once spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clears_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetView {
    pub action: Action,
    pub limit: String,
    pub used: usize,
    pub left: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clears_at: Option<DateTime<Utc>>,
}

/// Breakers, cooldowns, limits and budgets at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SafetyView {
    pub breakers: Vec<BreakerView>,
    pub cooldowns: Vec<CooldownView>,
    pub limits: Vec<LimitView>,
    pub budget: Vec<BudgetView>,
}

impl PolicyState {
    /// What holds actions back at `now`. `cooldown` and `limit` are each rule's
    /// `COOLDOWN` and `LIMIT`; only limits with something used in their window are
    /// listed, and every action kind that has a budget.
    pub fn safety(
        &self,
        now: DateTime<Utc>,
        cooldown: impl Fn(&str) -> Option<Duration>,
        limit: impl Fn(&str) -> Option<RateLimit>,
    ) -> SafetyView {
        let mut view = SafetyView {
            breakers: self.breaker_views(),
            ..SafetyView::default()
        };
        for (target, execs) in &self.by_target {
            let mut seen = std::collections::HashSet::new();
            let running = execs
                .iter()
                .rev()
                .filter(|e| e.at <= now && !self.cooldown_wiped(target, e.at, now));
            for e in running {
                let Some(period) = cooldown(&e.rule).filter(|_| seen.insert(e.rule.clone())) else {
                    continue;
                };
                let clears_at = crate::model::later(e.at, period);
                if clears_at > now && !matches!(target, Target::Notify { .. }) {
                    view.cooldowns.push(CooldownView {
                        target: target.clone(),
                        rule: e.rule.clone(),
                        action: e.action,
                        acted_at: e.at,
                        clears_at,
                    });
                }
            }
        }
        view.cooldowns.sort_by_key(|c| c.clears_at);
        for rule in self.by_rule.keys() {
            if let Some(rate) = limit(rule) {
                view.limits.extend(self.limit_views(rule, rate, now));
            }
        }
        view.limits
            .sort_by(|a, b| (&a.rule, &a.target).cmp(&(&b.rule, &b.target)));
        let mut budgets: Vec<(&Action, &RateLimit)> = self.settings.limits.iter().collect();
        budgets.sort_by_key(|(action, _)| **action);
        for (&action, &rate) in budgets {
            let used = self.spent_of_budget(action, rate, now).count();
            let left = (rate.count as usize).saturating_sub(used);
            view.budget.push(BudgetView {
                action,
                limit: rate.to_string(),
                used,
                left,
                clears_at: (left == 0).then(|| {
                    super::verdict::frees_at(self.spent_of_budget(action, rate, now), rate, now)
                }),
            });
        }
        view
    }

    /// How many breakers are open now.
    pub fn breakers_open(&self) -> usize {
        let threshold = self.settings.breaker_failures;
        self.breakers
            .values()
            .filter(|b| b.consecutive_failures >= threshold)
            .count()
    }

    fn breaker_views(&self) -> Vec<BreakerView> {
        let threshold = self.settings.breaker_failures;
        let mut breakers: Vec<BreakerView> = self
            .breakers
            .iter()
            .filter(|(_, b)| b.consecutive_failures > 0 || b.trial_pending)
            .map(|((action, target), b)| {
                let open = b.consecutive_failures >= threshold;
                BreakerView {
                    action: *action,
                    target: target.clone(),
                    consecutive_failures: b.consecutive_failures,
                    open,
                    opened_at: b.opened_at.filter(|_| open),
                    closes_at: b
                        .opened_at
                        .filter(|_| open)
                        .map(|at| crate::model::later(at, self.settings.breaker_open_for)),
                    trial_pending: b.trial_pending,
                }
            })
            .collect();
        breakers.sort_by(|a, b| (&a.target, a.action).cmp(&(&b.target, b.action)));
        breakers
    }

    /// A rule's `LIMIT` as it stands: one view per target it counts (or one for all).
    fn limit_views(&self, rule: &str, rate: RateLimit, now: DateTime<Utc>) -> Vec<LimitView> {
        let from = since(now, rate.window);
        let mut targets: Vec<Option<Target>> = Vec::new();
        for (at, target) in self.by_rule.get(rule).into_iter().flatten() {
            if *at < from
                || *at > now
                || matches!(target, Target::Notify { .. })
                || self.limit_wiped(target, *at, now)
            {
                continue;
            }
            let counted = rate.per_target.then(|| target.clone());
            if !targets.contains(&counted) {
                targets.push(counted);
            }
        }
        targets
            .into_iter()
            .map(|counted| {
                let any = Target::Notify {
                    channel: String::new(),
                };
                let target = counted.as_ref().unwrap_or(&any);
                let used = self.spent_of_rule(rule, rate, target, now).count();
                let left = (rate.count as usize).saturating_sub(used);
                LimitView {
                    rule: rule.to_string(),
                    target: counted.clone(),
                    limit: rate.to_string(),
                    used,
                    left,
                    clears_at: (left == 0).then(|| {
                        let spent = self.spent_of_rule(rule, rate, target, now);
                        super::verdict::frees_at(spent, rate, now)
                    }),
                }
            })
            .collect()
    }
}
