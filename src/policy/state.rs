//! What the policy remembers. Built only from facts (decisions, outcomes, events,
//! windows) so that replaying the audit trail rebuilds it exactly.

use super::firing::FiringSet;
use super::held::{Holds, IntervalEnds};
use super::shards::ShardedMap;
use crate::alertmanager::{Matchers, TimeInterval};
use crate::event::{Event, Fingerprint, Status};
use crate::model::{
    Action, Decision, Intent, MaintenanceWindow, OutcomeStatus, RateLimit, Reason, Target, Verdict,
};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The parts of the config the policy applies (`config` builds them from `salve.toml`).
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    pub dry_run: bool,
    pub limits: HashMap<Action, RateLimit>,
    pub time_intervals: HashMap<String, TimeInterval>,
    pub breaker_failures: u32,
    pub breaker_open_for: Duration,
    pub firing_ttl: Duration,
    pub dedup_ttl: Duration,
    /// At most this many dedup episodes are remembered; past it the oldest go.
    pub max_dedup_entries: usize,
    /// At most this many firing alerts are remembered for `firing()`; past it the ones
    /// seen least recently go.
    pub max_firing_alerts: usize,
    /// At most this many alerts are held back to be decided again; past it one is
    /// decided again only when re-sent.
    pub max_held_alerts: usize,
    /// Which actions ask a person first whatever the rule says, and for how long.
    pub approvals: super::approvals::ApprovalTerms,
}

/// What policy needs of a rule: its name and its own limits and mutes. A borrowed view,
/// so built-in rules (outcome notifications) need no rule file.
#[derive(Debug, Clone, Copy)]
pub struct RuleTerms<'a> {
    pub name: &'a str,
    pub limit: Option<RateLimit>,
    pub cooldown: Option<Duration>,
    pub mute: &'a [String],
    pub dry_run: bool,
}

/// How long executions are remembered for `recent()`, limits and cooldowns.
const HISTORY_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the remembered sets are pruned at most, unless one doubles or passes its
/// bound sooner: pruning is amortized, never a scan per event.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One rule's decision on one episode of one alert for one intent, as a 128-bit hash:
/// a dedup entry costs 16 bytes, not copies of the strings it is made of.
/// Decisions made in dry-run have keys of their own (`dry_run`), so that they never
/// stop a live decision on the same episode.
pub(super) fn dedup_key(
    rule: &str,
    fingerprint: &Fingerprint,
    starts_at: DateTime<Utc>,
    status: Status,
    identity: u128,
    dry_run: bool,
) -> u128 {
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher13::new();
    for text in [rule, fingerprint.0.as_str()] {
        h.write_usize(text.len());
        h.write(text.as_bytes());
    }
    h.write_i64(starts_at.timestamp());
    h.write_u32(starts_at.timestamp_subsec_nanos());
    h.write_u8(status as u8);
    h.write_u128(identity);
    if dry_run {
        h.write_u8(1);
    }
    siphasher::sip128::Hasher128::finish128(&h).as_u128()
}

#[derive(Debug, Clone)]
pub(super) struct Execution {
    /// Order of recording, so a batch can ask about history as it was when it began.
    pub(super) seq: u64,
    pub(super) at: DateTime<Utc>,
    pub(super) action: Action,
    pub(super) rule: String,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Breaker {
    pub(super) consecutive_failures: u32,
    pub(super) opened_at: Option<DateTime<Utc>>,
    pub(super) trial_pending: bool,
}

/// When a target's cooldown and limit were last reset by hand: executions on it until
/// then start no cooldown and count against no rule's `LIMIT`, though `recent()` still
/// sees them (an escalation ladder is history, not a hold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Resets {
    pub(super) cooldown: Option<DateTime<Utc>>,
    pub(super) limit: Option<DateTime<Utc>>,
}

/// Whether a reset at `reset` wipes out an execution at `at` for a verdict at `now`: a
/// verdict asked about a moment before the reset (a plan `at` the past) still sees it.
fn wiped(reset: Option<DateTime<Utc>>, at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    reset.is_some_and(|reset| at <= reset && reset <= now)
}

#[derive(Debug, Clone)]
pub struct PendingExecution {
    pub decision: Decision,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyState {
    pub(super) settings: PolicySettings,
    /// Dedup episodes and when each was last seen.
    pub(super) dedup: ShardedMap<u128, DateTime<Utc>>,
    /// Sizes after the last prune, so a set that doubles is pruned before its time.
    pub(super) pruned_at: Option<DateTime<Utc>>,
    pub(super) dedup_after_prune: usize,
    pub(super) firing_after_prune: usize,
    /// Entries the bounds evicted, by set.
    pub(super) evicted: Evictions,
    pub(super) executions_recorded: u64,
    pub(super) by_target: HashMap<Target, VecDeque<Execution>>,
    pub(super) by_rule: HashMap<String, VecDeque<(DateTime<Utc>, Target)>>,
    pub(super) by_action: HashMap<Action, VecDeque<DateTime<Utc>>>,
    pub(super) breakers: HashMap<(Action, Target), Breaker>,
    /// Cooldowns and limits reset by hand, by target.
    pub(super) resets: HashMap<Target, Resets>,
    pub(super) firing: FiringSet,
    pub(super) windows: BTreeMap<String, MaintenanceWindow>,
    /// Execute decisions with no outcome yet.
    pub(super) pending: HashMap<String, PendingExecution>,
    /// Events received but not yet fully evaluated, by arrival.
    pub(super) undecided: BTreeMap<u64, Arc<Event>>,
    pub(super) undecided_index: HashMap<String, u64>,
    pub(super) received: u64,
    /// Alerts held back by something that ends, to be decided again then.
    pub(super) holds: Holds,
    /// Approvals asked for, by id, and what became of them.
    pub(super) approvals: super::approvals::Approvals,
    pub(super) interval_ends: IntervalEnds,
}

/// How many entries each bound has evicted since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evictions {
    pub dedup: u64,
    pub firing: u64,
    /// Held-back alerts not held because `max_held_alerts` were already.
    pub held: u64,
}

/// How many entries each remembered set holds, for `salve_state_entries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSizes {
    pub dedup: usize,
    pub firing: usize,
    pub firing_strings: usize,
    pub executions: usize,
    pub breakers: usize,
    pub windows: usize,
    pub pending: usize,
    pub undecided: usize,
    pub held: usize,
}

/// Intents already let through in one notification: identical ones after the first
/// are `duplicate`.
#[derive(Debug, Default)]
pub struct BatchScope {
    pub(super) acted: HashSet<u128>,
}

pub(super) fn since(now: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    crate::model::earlier(now, window)
}

impl PolicyState {
    pub fn new(settings: PolicySettings) -> PolicyState {
        PolicyState {
            settings,
            ..PolicyState::default()
        }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// New settings after a reload; what is remembered stays.
    pub fn set_settings(&mut self, settings: PolicySettings) {
        self.settings = settings;
    }

    /// Decides from now on as salve in dry-run would, or live (replay, in the mode each
    /// recorded request was decided in).
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.settings.dry_run = dry_run;
    }

    /// An event was recorded as received: it is firing (or not), and undecided until
    /// `record_evaluated`.
    /// The state shares the record's event rather than copy it while it waits.
    pub fn record_received(&mut self, event: &Arc<Event>) {
        self.observe_event(event);
        self.release(&event.fingerprint);
        if !self.undecided_index.contains_key(&event.id) {
            self.record_undecided(event.clone());
        }
    }

    pub(super) fn record_undecided(&mut self, event: Arc<Event>) {
        self.received += 1;
        self.undecided_index.insert(event.id.clone(), self.received);
        self.undecided.insert(self.received, event);
    }

    /// Every rule matching the event has been decided.
    pub fn record_evaluated(&mut self, event_id: &str) {
        if let Some(seq) = self.undecided_index.remove(event_id) {
            self.undecided.remove(&seq);
        }
    }

    pub fn record_window_created(&mut self, window: MaintenanceWindow) {
        self.windows.insert(window.id.clone(), window);
    }

    pub fn record_window_deleted(&mut self, id: &str) {
        self.windows.remove(id);
    }

    /// Keeps the set of firing alerts that `firing()` asks about.
    pub fn observe_event(&mut self, event: &Event) {
        let evicted = self.firing.observe(event, self.settings.max_firing_alerts);
        self.evicted.firing += evicted as u64;
    }

    /// When the oldest event still waiting to be decided was received.
    pub fn oldest_undecided(&self) -> Option<DateTime<Utc>> {
        self.undecided.values().next().map(|e| e.received_at)
    }

    /// The events acknowledged but not yet evaluated, in arrival order.
    pub fn undecided_events(&self) -> Vec<Arc<Event>> {
        self.undecided.values().cloned().collect()
    }

    /// Takes out the events acknowledged but never evaluated (after a crash).
    pub fn take_undecided(&mut self) -> Vec<Event> {
        self.undecided_index.clear();
        std::mem::take(&mut self.undecided)
            .into_values()
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    /// Takes out execute decisions that never got an outcome (after a crash).
    pub fn take_pending(&mut self) -> Vec<PendingExecution> {
        let mut pending: Vec<PendingExecution> = self.pending.drain().map(|(_, p)| p).collect();
        pending.sort_by_key(|p| p.at);
        pending
    }

    /// A decision was made (and is being recorded): dedup, history and pending work.
    pub fn record_decision(&mut self, d: &Decision, at: DateTime<Utc>) {
        let key = dedup_key(
            &d.rule,
            &d.fingerprint,
            d.starts_at,
            d.status,
            Intent::identity_key_of(d.action, &d.target, &d.params),
            // Written before decisions said their mode: a dry-run verdict says it.
            d.made_in_dry_run(),
        );
        self.apply_decision(d, at, key);
    }

    /// `record_decision` with the decision's dedup key already known.
    fn apply_decision(&mut self, d: &Decision, at: DateTime<Utc>, key: u128) {
        match (d.decision, d.reason) {
            (Verdict::Execute, _) => {
                self.dedup.insert(key, at);
                self.record_execution(d, at);
                self.pending.insert(
                    d.id.clone(),
                    PendingExecution {
                        // The trace is the record's: a checkpoint never holds it.
                        decision: Decision {
                            trace_id: None,
                            ..d.clone()
                        },
                        at,
                    },
                );
                if let Some(b) = self.breakers.get_mut(&(d.action, d.target.clone())) {
                    if b.opened_at.is_some() {
                        b.trial_pending = true;
                    }
                }
            }
            (Verdict::Suppress, Some(Reason::DryRun | Reason::Duplicate)) => {
                self.dedup.insert(key, at);
            }
            (Verdict::Suppress, Some(Reason::Dedup)) => {
                if let Some(seen) = self.dedup.get_mut(&key) {
                    *seen = at;
                }
            }
            _ => {}
        }
        self.spend_approval(d);
        self.hold(d);
    }

    fn record_execution(&mut self, d: &Decision, at: DateTime<Utc>) {
        let horizon = since(at, HISTORY_HORIZON);
        let seq = self.executions_recorded;
        self.executions_recorded += 1;
        let per_target = self.by_target.entry(d.target.clone()).or_default();
        per_target.push_back(Execution {
            seq,
            at,
            action: d.action,
            rule: d.rule.clone(),
        });
        while per_target.front().is_some_and(|e| e.at < horizon) {
            per_target.pop_front();
        }
        let per_rule = self.by_rule.entry(d.rule.clone()).or_default();
        per_rule.push_back((at, d.target.clone()));
        while per_rule.front().is_some_and(|(t, _)| *t < horizon) {
            per_rule.pop_front();
        }
        let per_action = self.by_action.entry(d.action).or_default();
        per_action.push_back(at);
        while per_action.front().is_some_and(|t| *t < horizon) {
            per_action.pop_front();
        }
    }

    /// A breaker closed by hand: every action on `target` may run again, its failures
    /// forgotten, as after a success.
    pub fn record_breaker_closed(&mut self, target: &Target) {
        self.breakers.retain(|(_, t), _| t != target);
    }

    /// A target's cooldown reset by hand at `at`: whatever ran on it until then starts
    /// no cooldown.
    pub fn record_cooldown_reset(&mut self, target: &Target, at: DateTime<Utc>) {
        let resets = self.resets.entry(target.clone()).or_default();
        resets.cooldown = resets.cooldown.max(Some(at));
    }

    /// A target's limit reset by hand at `at`: whatever ran on it until then counts
    /// against no rule's `LIMIT` (the global budget is not a target's to reset).
    pub fn record_limit_reset(&mut self, target: &Target, at: DateTime<Utc>) {
        let resets = self.resets.entry(target.clone()).or_default();
        resets.limit = resets.limit.max(Some(at));
    }

    /// Whether an execution on `target` at `at` starts no cooldown at `now`, its
    /// cooldown reset since.
    pub(super) fn cooldown_wiped(
        &self,
        target: &Target,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        // Checked per execution counted: most states have no reset to look up.
        !self.resets.is_empty() && wiped(self.resets.get(target).and_then(|r| r.cooldown), at, now)
    }

    /// Whether an execution on `target` at `at` counts against no `LIMIT` at `now`.
    pub(super) fn limit_wiped(
        &self,
        target: &Target,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        !self.resets.is_empty() && wiped(self.resets.get(target).and_then(|r| r.limit), at, now)
    }

    /// What came of an executed decision: it is no longer pending; its breaker counts it.
    pub fn record_outcome(
        &mut self,
        decision_id: &str,
        action: Action,
        target: &Target,
        outcome: OutcomeStatus,
        at: DateTime<Utc>,
    ) {
        self.pending.remove(decision_id);
        let breaker = self.breakers.entry((action, target.clone())).or_default();
        match outcome {
            OutcomeStatus::Ok => *breaker = Breaker::default(),
            OutcomeStatus::Failed => {
                breaker.consecutive_failures += 1;
                breaker.trial_pending = false;
                // The threshold lives in settings; the breaker stays open for `open_for`
                // after the latest failure once the count reaches it.
                breaker.opened_at = Some(at);
            }
            OutcomeStatus::Abandoned | OutcomeStatus::Skipped => breaker.trial_pending = false,
        }
    }

    /// Prunes the remembered sets when a minute has passed since the last prune, or a
    /// set has doubled since, or passed its bound: each prune is one pass, paid for by
    /// the inserts since the last one.
    pub fn maybe_prune(&mut self, now: DateTime<Utc>) {
        let due = self
            .pruned_at
            .is_none_or(|at| crate::model::later(at, PRUNE_EVERY) <= now);
        let grown = self.dedup.len() > 2 * self.dedup_after_prune.max(1024)
            || self.firing.len() > 2 * self.firing_after_prune.max(1024)
            || self.dedup.len() > self.settings.max_dedup_entries
            || self.firing.len() > self.settings.max_firing_alerts;
        if due || grown {
            self.prune(now);
        }
    }

    /// Forgets dedup episodes not seen for `dedup_ttl`, firing alerts not heard of for
    /// `firing_ttl`, ended windows and executions older than the history horizon; then
    /// holds each set to its bound, oldest out first.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let cutoff = since(now, self.settings.dedup_ttl);
        self.dedup.retain(|_, seen| *seen >= cutoff);
        let bound = self.settings.max_dedup_entries;
        if self.dedup.len() > bound {
            // Down to 90% of the bound, so the next eviction is a tenth of it away.
            let excess = self.dedup.len() - (bound - bound / 10);
            let mut ages: Vec<(DateTime<Utc>, u128)> =
                self.dedup.iter().map(|(k, at)| (*at, *k)).collect();
            ages.select_nth_unstable(excess);
            for (_, key) in &ages[..excess] {
                self.dedup.remove(key);
            }
            self.evicted.dedup += excess as u64;
        }
        let evicted = self.firing.prune(
            since(now, self.settings.firing_ttl),
            self.settings.max_firing_alerts,
        );
        self.evicted.firing += evicted as u64;
        self.windows.retain(|_, w| w.ends_at > now);
        self.prune_approvals(now);
        let horizon = since(now, HISTORY_HORIZON);
        self.by_target
            .retain(|_, execs| execs.back().is_some_and(|e| e.at >= horizon));
        self.by_rule
            .retain(|_, execs| execs.back().is_some_and(|(at, _)| *at >= horizon));
        // Past the horizon a reset wipes out nothing that is still remembered.
        self.resets
            .retain(|_, r| r.cooldown.max(r.limit).is_some_and(|at| at >= horizon));
        self.pruned_at = Some(now);
        self.dedup_after_prune = self.dedup.len();
        self.firing_after_prune = self.firing.len();
    }

    pub fn evictions(&self) -> Evictions {
        self.evicted
    }

    pub fn sizes(&self) -> StateSizes {
        StateSizes {
            dedup: self.dedup.len(),
            firing: self.firing.len(),
            firing_strings: self.firing.strings(),
            executions: self.by_target.values().map(VecDeque::len).sum(),
            breakers: self.breakers.len(),
            windows: self.windows.len(),
            pending: self.pending.len(),
            undecided: self.undecided.len(),
            held: self.holds.timed.len() + self.holds.dry.len(),
        }
    }

    pub fn windows(&self) -> impl Iterator<Item = &MaintenanceWindow> {
        self.windows.values()
    }

    pub fn window(&self, id: &str) -> Option<&MaintenanceWindow> {
        self.windows.get(id)
    }

    /// Executions of `action` on `target` in `[from, now]`, among the first
    /// `recorded_before` executions ever recorded.
    pub fn recent(
        &self,
        target: &Target,
        action: Action,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        recorded_before: u64,
    ) -> usize {
        self.by_target
            .get(target)
            .map(|execs| {
                execs
                    .iter()
                    .filter(|e| {
                        e.seq < recorded_before && e.action == action && e.at >= from && e.at <= now
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Failures in a row of `action` on `target` (its breaker opens at the threshold).
    pub fn consecutive_failures(&self, action: Action, target: &Target) -> u32 {
        self.breakers
            .get(&(action, target.clone()))
            .map(|b| b.consecutive_failures)
            .unwrap_or(0)
    }

    /// When the alert with this fingerprint began firing, if it is firing.
    pub fn firing_since(&self, fingerprint: &Fingerprint) -> Option<DateTime<Utc>> {
        self.firing.since(fingerprint)
    }

    /// How many executions have been recorded so far: a point in history.
    pub fn executions_recorded(&self) -> u64 {
        self.executions_recorded
    }

    pub fn firing(&self, matchers: &Matchers, now: DateTime<Utc>) -> bool {
        self.firing
            .any(matchers, since(now, self.settings.firing_ttl))
    }

    /// The verdict on one intent. Reads only; the caller records the decision (with
    /// `record_decision`, and in the audit) so that state changes only through records.
    pub fn decide(
        &self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        now: DateTime<Utc>,
        batch: &mut BatchScope,
    ) -> Decision {
        self.decide_keyed(rule, event, intent, now, batch).0
    }

    /// Decides one intent and records the decision at once, the way the engine does
    /// live: the intent's identity and dedup key are computed once for both.
    pub fn decide_and_record(
        &mut self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        now: DateTime<Utc>,
        batch: &mut BatchScope,
    ) -> Decision {
        let (decision, key) = self.decide_keyed(rule, event, intent, now, batch);
        self.apply_decision(&decision, now, key);
        decision
    }

    /// The decision and its dedup key.
    fn decide_keyed(
        &self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        now: DateTime<Utc>,
        batch: &mut BatchScope,
    ) -> (Decision, u128) {
        let identity = intent.identity_key();
        let dry_run = self.settings.dry_run || rule.dry_run;
        let key = dedup_key(
            rule.name,
            &event.fingerprint,
            event.starts_at,
            event.status,
            identity,
            dry_run,
        );
        let super::verdict::Judgement {
            decision,
            reason,
            detail,
            reconsider_at,
            approval,
        } = self.verdict(rule, event, intent, (identity, key), now, batch);
        if decision == Verdict::Execute || matches!(reason, Some(Reason::DryRun)) {
            batch.acted.insert(identity);
        }
        let decision = Decision {
            id: uuid::Uuid::now_v7().to_string(),
            event_id: event.id.clone(),
            fingerprint: event.fingerprint.clone(),
            starts_at: event.starts_at,
            status: event.status,
            rule: rule.name.to_string(),
            action: intent.action,
            target: intent.target.clone(),
            params: intent.params.clone(),
            decision,
            reason,
            detail,
            dry_run,
            reconsider_at,
            approval,
            trace_id: None,
        };
        (decision, key)
    }
}
