//! The verdict on one intent: the checks of policy in their order, each "no" with its
//! reason and, where what holds the intent back ends, when it does.

use super::approvals::Asked;
use super::state::{since, BatchScope, PolicyState, RuleTerms};
use crate::event::Event;
use crate::model::{
    format_duration, Action, ApprovalState, Intent, RateLimit, Reason, Target, Verdict,
};
use chrono::{DateTime, Utc};
use std::time::Duration;

impl PolicyState {
    /// The checks of policy in their order: the first that says no decides.
    pub(super) fn verdict(
        &self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        (identity, key): (u128, u128),
        now: DateTime<Utc>,
        batch: &BatchScope,
    ) -> Judgement {
        let check = Check {
            state: self,
            rule,
            event,
            intent,
            now,
            // A rule's LIMIT and COOLDOWN are about acting on targets: a page about one
            // incident must not silence the page about the next. Nor is a page held for
            // later: what holds it (a window) is about actions.
            acting: intent.action != Action::Notify,
            asked: self.asked(rule.name, event, intent),
        };
        let mut judgement = check
            .dedup(key)
            .or_else(|| check.duplicate(batch, identity))
            .or_else(|| check.unanswered())
            .or_else(|| check.delay())
            .or_else(|| check.maintenance())
            .or_else(|| check.rule_limit())
            .or_else(|| check.budget())
            .or_else(|| check.cooldown())
            .or_else(|| check.breaker())
            .or_else(|| check.dry_run())
            .or_else(|| check.ask(key))
            .unwrap_or(Judgement {
                decision: Verdict::Execute,
                reason: None,
                detail: String::new(),
                reconsider_at: None,
                approval: None,
            });
        if let Asked::Known(entry) = &check.asked {
            judgement.approval = Some(entry.request.id.clone());
        }
        judgement
    }
}

/// One intent under judgement; each check is `Some` when it holds the intent back.
struct Check<'a> {
    state: &'a PolicyState,
    rule: &'a RuleTerms<'a>,
    event: &'a Event,
    intent: &'a Intent,
    now: DateTime<Utc>,
    acting: bool,
    asked: Asked<'a>,
}

fn suppressed(reason: Reason, detail: String) -> Judgement {
    Judgement {
        decision: Verdict::Suppress,
        reason: Some(reason),
        detail,
        reconsider_at: None,
        approval: None,
    }
}

fn suppress(reason: Reason, detail: String) -> Option<Judgement> {
    Some(suppressed(reason, detail))
}

impl Check<'_> {
    /// Suppressed until `until`, when an acting intent is looked at again.
    fn hold(&self, reason: Reason, detail: String, until: DateTime<Utc>) -> Option<Judgement> {
        Some(Judgement {
            reconsider_at: Some(until).filter(|_| self.acting),
            ..suppressed(reason, detail)
        })
    }

    fn dedup(&self, key: u128) -> Option<Judgement> {
        if !self.state.dedup.contains_key(&key) {
            return None;
        }
        suppress(
            Reason::Dedup,
            format!(
                "already decided for this {} episode (started {})",
                self.event.status,
                self.event.starts_at.to_rfc3339()
            ),
        )
    }

    fn duplicate(&self, batch: &BatchScope, identity: u128) -> Option<Judgement> {
        if !batch.acted.contains(&identity) {
            return None;
        }
        suppress(
            Reason::Duplicate,
            "the same action was already decided for another alert of this notification".into(),
        )
    }

    /// An approval asked for this intent on this episode and not (yet) granted: still
    /// waiting, or answered no (denied, expired), which holds for the episode.
    fn unanswered(&self) -> Option<Judgement> {
        if let Asked::AssumedDenied = &self.asked {
            return suppress(
                Reason::ApprovalDenied,
                "assumed denied (salve replay --approvals denied)".into(),
            );
        }
        let Asked::Known(entry) = &self.asked else {
            return None;
        };
        let request = &entry.request;
        let by = || {
            entry
                .decided
                .as_ref()
                .map(|d| format!("{} at {}", d.actor, d.at.to_rfc3339()))
                .unwrap_or_default()
        };
        match entry.state {
            ApprovalState::Pending => suppress(
                Reason::AwaitingApproval,
                format!(
                    "waiting for {} to approve (approval {}) until {}",
                    request.group,
                    request.id,
                    request.expires_at.to_rfc3339()
                ),
            ),
            ApprovalState::Denied => suppress(
                Reason::ApprovalDenied,
                format!("approval {} denied by {}", request.id, by()),
            ),
            ApprovalState::Expired => suppress(
                Reason::ApprovalExpired,
                format!(
                    "approval {} expired at {} with no answer from {}",
                    request.id,
                    request.expires_at.to_rfc3339(),
                    request.group
                ),
            ),
            _ => None,
        }
    }

    /// Asks for an approval: every check before passed, so a yes is worth asking for.
    /// Its id is made of what it asks and when, so a replay that asks the same at the
    /// same moment names the same approval, and takes the answer the trail recorded.
    fn ask(&self, key: u128) -> Option<Judgement> {
        let Asked::Ask { group, ttl } = &self.asked else {
            return None;
        };
        let expires_at = crate::model::later(self.now, *ttl);
        let id = {
            use std::hash::Hasher;
            let mut h = siphasher::sip128::SipHasher13::new();
            h.write_u128(key);
            h.write_i64(super::image::ns(self.now));
            uuid::Uuid::from_u128(siphasher::sip128::Hasher128::finish128(&h).as_u128())
        };
        Some(Judgement {
            approval: Some(id.to_string()),
            ..suppressed(
                Reason::AwaitingApproval,
                format!(
                    "asks {group} for approval; expires at {}",
                    expires_at.to_rfc3339()
                ),
            )
        })
    }

    /// When a granted approval was granted: a delay counts from it.
    fn approved_at(&self) -> Option<DateTime<Utc>> {
        match &self.asked {
            Asked::Known(entry) if entry.state == ApprovalState::Approved => {
                entry.decided.as_ref().map(|d| d.at)
            }
            _ => None,
        }
    }

    /// `.after(d)`: not before the alert has fired for d, or for an intent that asks a
    /// person, not before d has passed since the yes (the ask itself comes first).
    fn delay(&self) -> Option<Judgement> {
        let delay = self.intent.delay()?;
        let from = match (&self.asked, self.approved_at()) {
            (Asked::Not, _) => self.event.starts_at,
            (_, Some(approved)) => approved,
            (_, None) => return None,
        };
        let due = crate::model::later(from, delay);
        if self.now >= due {
            return None;
        }
        self.hold(
            Reason::Delayed,
            format!(
                "after({}): not before the alert has fired that long, at {}",
                format_duration(delay),
                due.to_rfc3339()
            ),
            due,
        )
    }

    /// The rule's `MUTE` time intervals, then the maintenance windows.
    fn maintenance(&self) -> Option<Judgement> {
        let (state, now) = (self.state, self.now);
        for name in self.rule.mute {
            if let Some(interval) = state
                .settings
                .time_intervals
                .get(name)
                .filter(|ti| ti.contains(now))
            {
                return self.hold(
                    Reason::Maintenance,
                    format!("time interval {name:?} is active"),
                    state.interval_ends.end(interval, now),
                );
            }
        }
        let w = state
            .windows
            .values()
            .find(|w| w.mutes(&self.event.labels, now))?;
        self.hold(
            Reason::Maintenance,
            format!(
                "maintenance window {} by {} until {}: {}",
                w.id,
                w.created_by,
                w.ends_at.to_rfc3339(),
                w.comment
            ),
            w.ends_at,
        )
    }

    /// The rule's own `LIMIT`. Counted without a copy: the times are gathered only
    /// for an intent held.
    fn rule_limit(&self) -> Option<Judgement> {
        let limit = self.rule.limit.filter(|_| self.acting)?;
        let (state, rule, target, now) =
            (self.state, self.rule.name, &self.intent.target, self.now);
        let used = state.spent_of_rule(rule, limit, target, now).count();
        if used < limit.count as usize {
            return None;
        }
        self.hold(
            Reason::RateLimit,
            format!("rule limit {limit} reached ({used} in window)"),
            frees_at(state.spent_of_rule(rule, limit, target, now), limit, now),
        )
    }

    /// The global budget of the action's kind.
    fn budget(&self) -> Option<Judgement> {
        let (state, action, now) = (self.state, self.intent.action, self.now);
        let limit = *state.settings.limits.get(&action)?;
        let used = state.spent_of_budget(action, limit, now).count();
        if used < limit.count as usize {
            return None;
        }
        self.hold(
            Reason::RateLimit,
            format!("global {action} budget {limit} reached ({used} in window)"),
            frees_at(state.spent_of_budget(action, limit, now), limit, now),
        )
    }

    fn cooldown(&self) -> Option<Judgement> {
        let cooldown = self.rule.cooldown.filter(|_| self.acting)?;
        let target = &self.intent.target;
        let last = self
            .state
            .by_target
            .get(target)
            .and_then(|execs| execs.iter().rev().find(|e| e.at <= self.now))?;
        if last.at <= since(self.now, cooldown)
            || self.state.cooldown_wiped(target, last.at, self.now)
        {
            return None;
        }
        self.hold(
            Reason::Cooldown,
            format!(
                "{} was acted on ({} by rule {}) at {}; cooldown {}",
                target,
                last.action,
                last.rule,
                last.at.to_rfc3339(),
                format_duration(cooldown)
            ),
            crate::model::later(last.at, cooldown),
        )
    }

    fn breaker(&self) -> Option<Judgement> {
        let settings = &self.state.settings;
        let (action, target) = (self.intent.action, &self.intent.target);
        let b = self.state.breakers.get(&(action, target.clone()))?;
        if b.consecutive_failures < settings.breaker_failures {
            return None;
        }
        let opened = b.opened_at?;
        let reopens = crate::model::later(opened, settings.breaker_open_for);
        if self.now < reopens {
            return self.hold(
                Reason::CircuitOpen,
                format!(
                    "{} consecutive failures of {action} on {target}; open until {}",
                    b.consecutive_failures,
                    reopens.to_rfc3339()
                ),
                reopens,
            );
        }
        if !b.trial_pending {
            return None;
        }
        // The trial's outcome decides; looked at again a period on.
        self.hold(
            Reason::CircuitOpen,
            "half-open: a trial action is already running".into(),
            crate::model::later(self.now, settings.breaker_open_for),
        )
    }

    fn dry_run(&self) -> Option<Judgement> {
        let would_ask = match &self.asked {
            Asked::Ask { group, .. } => format!("; would ask {group} for approval"),
            _ => String::new(),
        };
        if self.state.settings.dry_run {
            return suppress(
                Reason::DryRun,
                format!("{}{would_ask}", crate::model::DRY_RUN_BY_SALVE),
            );
        }
        if self.rule.dry_run {
            return suppress(Reason::DryRun, format!("the rule sets DRY_RUN{would_ask}"));
        }
        None
    }
}

impl PolicyState {
    /// The executions in `limit`'s window that count against a rule's `LIMIT` for
    /// `target` (pages never do, nor those on a target whose limit was reset since).
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
                    && !self.limit_wiped(t, *at, now)
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
    /// The approval the decision asks for, waits for, or spends.
    pub approval: Option<String>,
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
