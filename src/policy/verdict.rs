//! The verdict on one intent: the checks of policy in their order, each "no" with its
//! reason and, where what holds the intent back ends, when it does.

use super::state::{since, BatchScope, PolicyState, RuleTerms};
use crate::event::Event;
use crate::model::{format_duration, Action, Intent, RateLimit, Reason, Target, Verdict};
use chrono::{DateTime, Utc};
use std::time::Duration;

impl PolicyState {
    pub(super) fn verdict(
        &self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        (identity, key): (u128, u128),
        now: DateTime<Utc>,
        batch: &BatchScope,
    ) -> Judgement {
        let settings = &self.settings;
        let suppress = |reason: Reason, detail: String| Judgement {
            decision: Verdict::Suppress,
            reason: Some(reason),
            detail,
            reconsider_at: None,
        };
        // A rule's LIMIT and COOLDOWN are about acting on targets: a page about one
        // incident must not silence the page about the next. Nor is a page held for
        // later: what holds it (a window) is about actions.
        let acting = intent.action != Action::Notify;
        let hold = |reason: Reason, detail: String, until: DateTime<Utc>| Judgement {
            reconsider_at: Some(until).filter(|_| acting),
            ..suppress(reason, detail)
        };
        // 1. dedup
        if self.dedup.contains_key(&key) {
            return suppress(
                Reason::Dedup,
                format!(
                    "already decided for this {} episode (started {})",
                    event.status,
                    event.starts_at.to_rfc3339()
                ),
            );
        }
        if batch.acted.contains(&identity) {
            return suppress(
                Reason::Duplicate,
                "the same action was already decided for another alert of this notification".into(),
            );
        }

        // 2. `.after(d)`: not before the alert has fired for d.
        if let Some(delay) = intent.delay() {
            let due = crate::model::later(event.starts_at, delay);
            if now < due {
                return hold(
                    Reason::Delayed,
                    format!(
                        "after({}): not before the alert has fired that long, at {}",
                        format_duration(delay),
                        due.to_rfc3339()
                    ),
                    due,
                );
            }
        }

        // 3. maintenance
        for name in rule.mute {
            if let Some(interval) = settings
                .time_intervals
                .get(name)
                .filter(|ti| ti.contains(now))
            {
                return hold(
                    Reason::Maintenance,
                    format!("time interval {name:?} is active"),
                    self.interval_ends.end(interval, now),
                );
            }
        }
        if let Some(w) = self.windows.values().find(|w| w.mutes(&event.labels, now)) {
            return hold(
                Reason::Maintenance,
                format!(
                    "maintenance window {} by {} until {}: {}",
                    w.id,
                    w.created_by,
                    w.ends_at.to_rfc3339(),
                    w.comment
                ),
                w.ends_at,
            );
        }

        // 4. rate limits: the rule's own, then the global budget per action kind
        // Counted without a copy: the times are gathered only for an intent held.
        if let Some(limit) = rule.limit.filter(|_| acting) {
            let used = self
                .spent_of_rule(rule.name, limit, &intent.target, now)
                .count();
            if used >= limit.count as usize {
                return hold(
                    Reason::RateLimit,
                    format!("rule limit {limit} reached ({used} in window)"),
                    frees_at(
                        self.spent_of_rule(rule.name, limit, &intent.target, now),
                        limit,
                        now,
                    ),
                );
            }
        }
        if let Some(limit) = settings.limits.get(&intent.action) {
            let used = self.spent_of_budget(intent.action, *limit, now).count();
            if used >= limit.count as usize {
                return hold(
                    Reason::RateLimit,
                    format!(
                        "global {} budget {limit} reached ({used} in window)",
                        intent.action
                    ),
                    frees_at(
                        self.spent_of_budget(intent.action, *limit, now),
                        *limit,
                        now,
                    ),
                );
            }
        }

        // 5. cooldown
        if let Some(cooldown) = rule.cooldown.filter(|_| acting) {
            let last = self
                .by_target
                .get(&intent.target)
                .and_then(|execs| execs.iter().rev().find(|e| e.at <= now));
            if let Some(last) = last {
                if last.at > since(now, cooldown) {
                    return hold(
                        Reason::Cooldown,
                        format!(
                            "{} was acted on ({} by rule {}) at {}; cooldown {}",
                            intent.target,
                            last.action,
                            last.rule,
                            last.at.to_rfc3339(),
                            format_duration(cooldown)
                        ),
                        crate::model::later(last.at, cooldown),
                    );
                }
            }
        }

        // 6. circuit breaker
        if let Some(b) = self.breakers.get(&(intent.action, intent.target.clone())) {
            if b.consecutive_failures >= settings.breaker_failures {
                if let Some(opened) = b.opened_at {
                    let reopens = crate::model::later(opened, settings.breaker_open_for);
                    if now < reopens {
                        return hold(
                            Reason::CircuitOpen,
                            format!(
                                "{} consecutive failures of {} on {}; open until {}",
                                b.consecutive_failures,
                                intent.action,
                                intent.target,
                                reopens.to_rfc3339()
                            ),
                            reopens,
                        );
                    }
                    if b.trial_pending {
                        // The trial's outcome decides; looked at again a period on.
                        return hold(
                            Reason::CircuitOpen,
                            "half-open: a trial action is already running".into(),
                            crate::model::later(now, settings.breaker_open_for),
                        );
                    }
                }
            }
        }

        // 7. dry-run
        if settings.dry_run {
            return suppress(Reason::DryRun, crate::model::DRY_RUN_BY_SALVE.into());
        }
        if rule.dry_run {
            return suppress(Reason::DryRun, "the rule sets DRY_RUN".into());
        }
        Judgement {
            decision: Verdict::Execute,
            reason: None,
            detail: String::new(),
            reconsider_at: None,
        }
    }
}

impl PolicyState {
    /// The executions in `limit`'s window that count against a rule's `LIMIT` for
    /// `target` (pages never do).
    pub(super) fn spent_of_rule<'a>(
        &'a self,
        rule: &str,
        limit: RateLimit,
        target: &'a Target,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + 'a {
        let from = since(now, limit.window);
        self.by_rule
            .get(rule)
            .into_iter()
            .flatten()
            .filter(move |(at, t)| {
                *at >= from
                    && *at <= now
                    && !matches!(t, Target::Notify { .. })
                    && (!limit.per_target || t == target)
            })
            .map(|(at, _)| *at)
    }

    /// The executions of `action` in the global budget's window.
    pub(super) fn spent_of_budget(
        &self,
        action: Action,
        limit: RateLimit,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        let from = since(now, limit.window);
        self.by_action
            .get(&action)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |at| *at >= from && *at <= now)
    }
}

/// A verdict before it becomes a `Decision`.
pub(super) struct Judgement {
    pub decision: Verdict,
    pub reason: Option<Reason>,
    pub detail: String,
    pub reconsider_at: Option<DateTime<Utc>>,
}

/// When a spent limit lets one more through: `used` are the executions in its window,
/// oldest first; once all but `count - 1` of them have left the window, one fits.
const LEFT_THE_WINDOW: Duration = Duration::from_millis(1);

/// A limit of 0 never does: it is looked at again a window on.
pub(super) fn frees_at(
    used: impl IntoIterator<Item = DateTime<Utc>>,
    limit: RateLimit,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut sorted: Vec<DateTime<Utc>> = used.into_iter().collect();
    sorted.sort();
    let last_to_leave = match limit.count {
        0 => None,
        count => sorted.len().checked_sub(count as usize),
    };
    // The window holds its ends: an execution leaves it just after `at + window`.
    let left = |at: DateTime<Utc>| {
        crate::model::later(crate::model::later(at, limit.window), LEFT_THE_WINDOW)
    };
    match last_to_leave.and_then(|i| sorted.get(i)) {
        Some(at) => left(*at),
        None => left(now),
    }
}
