//! Alerts whose acting intents policy held back for something that ends: a cooldown,
//! a maintenance window or mute interval, a spent limit, an open breaker, a delay, or
//! dry-run. Nothing re-sends them (the Docker engine never does, probes send on a
//! change, Alertmanager after `repeat_interval`), so salve decides them again itself
//! when the hold ends, for as long as the alert fires in the same episode.
//!
//! A hold is state like any other: made from the decisions that say `reconsider_at`
//! (and those made in dry-run), ended by the `reconsidered` record or by a new event of
//! the alert, so the trail and a checkpoint both rebuild it.

use super::state::PolicyState;
use crate::event::{Event, Fingerprint, Status};
use crate::model::{Action, Decision, RateLimit, Reason, Target};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const ONE_SECOND: std::time::Duration = std::time::Duration::from_secs(1);

/// A limit's room: a rule's (per target, or across its targets), or a global budget's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Room {
    Rule(String, Option<Target>),
    Action(Action),
}

/// One alert held back, as the earliest of its holds ends.
#[derive(Debug, Clone)]
pub struct HeldBack {
    pub event: Arc<Event>,
    pub until: DateTime<Utc>,
    pub reason: Reason,
    /// Held by a spent limit: whose, so that only as many come due as it lets through.
    pub spent: Option<Spent>,
}

/// The rule, action and target an intent held by a spent limit was for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spent {
    pub rule: String,
    pub action: Action,
    pub target: Target,
}

/// An alert an acting intent of which was decided in dry-run, and by which rules: it is
/// decided again once salve, or one of those rules, acts for real.
#[derive(Debug, Clone)]
pub struct DryHeld {
    pub event: Arc<Event>,
    pub rules: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Holds {
    pub(super) timed: HashMap<Fingerprint, HeldBack>,
    pub(super) dry: HashMap<Fingerprint, DryHeld>,
}

impl Holds {
    /// `event`'s alert is to be decided again at `at` (for `reason`), or sooner if it
    /// already is: what the earliest hold says wins, its limit included (none here).
    pub(super) fn due_at(&mut self, event: Arc<Event>, at: DateTime<Utc>, reason: Reason) {
        let held = self
            .timed
            .entry(event.fingerprint.clone())
            .or_insert_with(|| HeldBack {
                event: event.clone(),
                until: at,
                reason,
                spent: None,
            });
        if at < held.until {
            held.until = at;
            held.reason = reason;
            held.spent = None;
        }
    }
}

/// A mute interval's end, and the moment it was worked out from.
type IntervalEnd = (DateTime<Utc>, DateTime<Utc>);

/// The mute intervals' ends, by name: an end found at some moment holds for every
/// moment between it and then (every minute between is muted), so a storm held by one
/// interval looks it up once.
#[derive(Debug, Default)]
pub(super) struct IntervalEnds(parking_lot::Mutex<HashMap<String, IntervalEnd>>);

impl Clone for IntervalEnds {
    fn clone(&self) -> IntervalEnds {
        IntervalEnds::default()
    }
}

/// How far ahead a mute interval's end is looked for: a week covers every weekly
/// schedule; an alert still muted then is held again from there.
const INTERVAL_LOOKAHEAD: std::time::Duration = std::time::Duration::from_secs(8 * 24 * 3600);

impl IntervalEnds {
    pub(super) fn end(
        &self,
        interval: &crate::alertmanager::TimeInterval,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let mut ends = self.0.lock();
        if let Some((from, end)) = ends.get(interval.name()) {
            if *from <= now && now < *end {
                return *end;
            }
        }
        let end = interval.ends_after(now, INTERVAL_LOOKAHEAD);
        ends.insert(interval.name().to_string(), (now, end));
        end
    }
}

impl PolicyState {
    /// A decision was recorded: a held-back acting intent holds its alert until the
    /// earliest of its holds ends; one made in dry-run holds it until its rule acts.
    pub(super) fn hold(&mut self, d: &Decision) {
        if d.action == Action::Notify || d.status != Status::Firing {
            return;
        }
        if d.reconsider_at.is_none() && !d.dry_run {
            return;
        }
        let Some(event) = self.event_of(d) else {
            return;
        };
        let bound = self.settings.max_held_alerts;
        let known = self.holds.timed.contains_key(&d.fingerprint)
            || self.holds.dry.contains_key(&d.fingerprint);
        if !known && self.holds.timed.len() + self.holds.dry.len() >= bound {
            self.evicted.held += 1;
            return;
        }
        if let Some(until) = d.reconsider_at {
            let reason = d.reason.unwrap_or(Reason::Cooldown);
            let spent = (reason == Reason::RateLimit).then(|| Spent {
                rule: d.rule.clone(),
                action: d.action,
                target: d.target.clone(),
            });
            self.holds
                .timed
                .entry(d.fingerprint.clone())
                .and_modify(|held| {
                    if until < held.until {
                        held.until = until;
                        held.reason = reason;
                        held.spent = spent.clone();
                    }
                    held.event = event.clone();
                })
                .or_insert_with(|| HeldBack {
                    event: event.clone(),
                    until,
                    reason,
                    spent,
                });
        }
        if d.dry_run {
            self.holds
                .dry
                .entry(d.fingerprint.clone())
                .or_insert_with(|| DryHeld {
                    event: event.clone(),
                    rules: BTreeSet::new(),
                })
                .rules
                .insert(d.rule.clone());
        }
    }

    /// The event a decision was made on: the one being decided (received or
    /// reconsidered and not yet evaluated).
    fn event_of(&self, d: &Decision) -> Option<Arc<Event>> {
        let seq = self.undecided_index.get(&d.event_id)?;
        self.undecided.get(seq).cloned()
    }

    /// A new event of the alert (a re-send, its resolution, or its reconsideration):
    /// whatever held the last one is decided on that event instead.
    pub(super) fn release(&mut self, fingerprint: &Fingerprint) {
        self.holds.timed.remove(fingerprint);
        self.holds.dry.remove(fingerprint);
    }

    /// A `reconsidered` record: the alert's holds end and its event is to be decided
    /// again, like one just received (its arrival, and so `firing()`, unchanged).
    pub fn record_reconsidered(&mut self, event: &Event) {
        self.release(&event.fingerprint);
        if !self.undecided_index.contains_key(&event.id) {
            self.record_undecided(Arc::new(event.clone()));
        }
    }

    /// The alerts whose hold has ended by `now` and that still fire in the episode they
    /// were held in, earliest first, at most `max`. Holds of alerts that stopped firing
    /// (resolved, or not heard of for `firing_ttl`) are dropped: nothing is left to do.
    ///
    /// A limit that frees lets only so many through: of the alerts it held, as many
    /// come due as it has room for now (`rule_limit` is each rule's `LIMIT`); the
    /// others wait for the next room, so a storm held by a spent budget is decided again
    /// a budget's worth at a time, not all at once again and again.
    pub fn due(
        &mut self,
        now: DateTime<Utc>,
        max: usize,
        rule_limit: impl Fn(&str) -> Option<RateLimit>,
    ) -> Vec<(Event, Reason)> {
        let mut ended: Vec<(DateTime<Utc>, &Fingerprint)> = self
            .holds
            .timed
            .iter()
            .filter(|(_, held)| held.until <= now)
            .map(|(fingerprint, held)| (held.until, fingerprint))
            .collect();
        // When a window over a storm ends, hundreds of thousands end at once: only the
        // earliest `max` are ordered (and looked at) each time, not all of them.
        if ended.len() > max {
            ended.select_nth_unstable(max);
            ended.truncate(max);
        }
        ended.sort();
        let ended: Vec<Fingerprint> = ended.into_iter().map(|(_, f)| f.clone()).collect();
        let mut due = Vec::new();
        let mut handed: HashMap<Room, usize> = HashMap::new();
        for fingerprint in ended {
            let still_firing = self
                .holds
                .timed
                .get(&fingerprint)
                .is_some_and(|held| self.fires_in_episode(&held.event, now));
            if !still_firing {
                self.holds.timed.remove(&fingerprint);
                continue;
            }
            if due.len() >= max {
                continue;
            }
            let spent = self
                .holds
                .timed
                .get(&fingerprint)
                .and_then(|held| held.spent.clone());
            if let Some(spent) = spent {
                if let Some(next) = self.no_room(&spent, now, &rule_limit, &mut handed) {
                    if let Some(held) = self.holds.timed.get_mut(&fingerprint) {
                        held.until = next.max(crate::model::later(now, ONE_SECOND));
                    }
                    continue;
                }
            }
            if let Some(held) = self.holds.timed.get(&fingerprint) {
                due.push((Event::clone(&held.event), held.reason));
            }
        }
        due
    }

    /// When a limit that held `spent` has room again, if it has none now counting the
    /// alerts already handed out in this pass; None if it has (and counts this one).
    fn no_room(
        &self,
        spent: &Spent,
        now: DateTime<Utc>,
        rule_limit: &impl Fn(&str) -> Option<RateLimit>,
        handed: &mut HashMap<Room, usize>,
    ) -> Option<DateTime<Utc>> {
        let mut rooms = Vec::new();
        if let Some(limit) = rule_limit(&spent.rule) {
            let target = limit.per_target.then(|| spent.target.clone());
            let room = Room::Rule(spent.rule.clone(), target);
            let used = self.spent_of_rule(&spent.rule, limit, &spent.target, now);
            if used.count() + handed.get(&room).copied().unwrap_or(0) >= limit.count as usize {
                let used = self.spent_of_rule(&spent.rule, limit, &spent.target, now);
                return Some(super::verdict::frees_at(used, limit, now));
            }
            rooms.push(room);
        }
        if let Some(&limit) = self.settings.limits.get(&spent.action) {
            let room = Room::Action(spent.action);
            let used = self.spent_of_budget(spent.action, limit, now);
            if used.count() + handed.get(&room).copied().unwrap_or(0) >= limit.count as usize {
                let used = self.spent_of_budget(spent.action, limit, now);
                return Some(super::verdict::frees_at(used, limit, now));
            }
            rooms.push(room);
        }
        for room in rooms {
            *handed.entry(room).or_default() += 1;
        }
        None
    }

    /// Whether `event`'s alert still fires in `event`'s episode at `now`: not resolved
    /// since, nor unheard of for `firing_ttl`.
    pub(super) fn fires_in_episode(&self, event: &Event, now: DateTime<Utc>) -> bool {
        let firing_since = crate::model::earlier(now, self.settings.firing_ttl);
        self.firing.since(&event.fingerprint) == Some(event.starts_at)
            && self.firing.seen_since(&event.fingerprint, firing_since)
    }

    /// Salve, or rules, now act for real (a start without `--dry-run`, a reload): the
    /// alerts held in dry-run by a rule that now acts are held until `now`, so they are
    /// decided live, once, if they still fire.
    pub fn go_live(&mut self, now: DateTime<Utc>, acts: impl Fn(&str) -> bool) -> usize {
        if self.settings.dry_run {
            return 0;
        }
        let live: Vec<Fingerprint> = self
            .holds
            .dry
            .iter()
            .filter(|(_, held)| held.rules.iter().any(|rule| acts(rule)))
            .map(|(fingerprint, _)| fingerprint.clone())
            .collect();
        for fingerprint in &live {
            if let Some(dry) = self.holds.dry.remove(fingerprint) {
                self.holds.due_at(dry.event, now, Reason::DryRun);
            }
        }
        live.len()
    }

    /// How many alerts are held back, to be reconsidered when their hold ends, and how
    /// many were held in dry-run.
    pub fn held(&self) -> (usize, usize) {
        (self.holds.timed.len(), self.holds.dry.len())
    }
}
