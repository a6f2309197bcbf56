//! `salve replay`: what these rules and this config would have decided for the events a
//! window of the trail received, at the times they were decided, with the policy state
//! as the trail had it when the window began. Nothing runs and nothing is written.
//! Outcomes of replayed actions come from the recording where the same action on the
//! same target was executed for the same event (so breakers follow history); otherwise
//! they are assumed.

use crate::audit::{AuditRecord, Entry, OutcomeRecord, TrailReader};
use crate::engine::{evaluate_round, fold, Runtime, ON_OUTCOME_RULE};
use crate::event::Event;
use crate::model::{Action, Decision, Outcome, OutcomeStatus, Target, Verdict};
use crate::policy::PolicyState;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One decision as the diff shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub event_id: String,
    pub fingerprint: String,
    pub rule: String,
    pub action: String,
    pub target: String,
    pub recorded: Option<Verdicts>,
    pub replayed: Option<Verdicts>,
    /// `added` (executed only in the replay), `removed` (executed only as recorded) or
    /// `changed` (not executed either way, for other reasons).
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub events: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    /// Replayed decisions that were suppressed, by reason.
    pub suppressed: BTreeMap<String, usize>,
    pub rule_errors: usize,
    pub assumed_outcomes: usize,
}

#[derive(Debug, Serialize)]
pub struct Replay {
    pub window: Window,
    pub differences: Vec<Difference>,
    pub summary: Summary,
    /// When the window reaches past the oldest record retention kept: where it began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_record: Option<DateTime<Utc>>,
}

/// One step of a replay, at a position of the recorded window.
enum Step {
    /// Apply the record as it was (a `received`, a window change).
    Fold(usize),
    /// Decide the request whose `received` records are these.
    Decide(std::ops::Range<usize>),
}

/// What outcome a replayed action that the recording did not run is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assume {
    Ok,
    Failed,
}

/// A decision's place in the comparison: the event, the rule, the action and target,
/// and which of that rule's intents with that action and target it is.
type Key<'a> = (&'a str, &'a str, Action, &'a Target, usize);

/// Counts the intents of each event, rule, action and target, in the order decided.
#[derive(Default)]
struct Keyer<'a> {
    seen: HashMap<(&'a str, &'a str, Action, &'a Target), usize>,
}

impl<'a> Keyer<'a> {
    /// The key of `d`, or `None` for what replay does not compare (decisions about
    /// outcomes, which follow the assumed outcomes rather than the rules).
    fn key(&mut self, d: &'a Decision) -> Option<Key<'a>> {
        if d.rule == ON_OUTCOME_RULE || d.rule.starts_with("on_outcome/") {
            return None;
        }
        let base = (d.event_id.as_str(), d.rule.as_str(), d.action, &d.target);
        let n = self.seen.entry(base).or_default();
        *n += 1;
        Some((base.0, base.1, base.2, base.3, *n))
    }
}

fn verdicts(d: &Decision) -> Verdicts {
    Verdicts {
        decision: match d.decision {
            Verdict::Execute => "execute".into(),
            Verdict::Suppress => "suppress".into(),
        },
        reason: d.reason.map(|r| r.as_str().to_string()),
    }
}

/// What the recorded window holds, read in one pass: the records replay folds or
/// decides in their place, and the recorded decisions, evaluations and outcomes it
/// compares with and takes outcomes from.
#[derive(Default)]
struct Recorded {
    /// `received` and window changes, each with its position among the window's records.
    steps: Vec<(usize, AuditRecord)>,
    decisions: Vec<Decision>,
    /// When and where each event's `evaluated` record stands.
    evaluated: HashMap<String, (usize, DateTime<Utc>)>,
    outcomes: HashMap<String, (OutcomeStatus, DateTime<Utc>)>,
    oldest: Option<DateTime<Utc>>,
}

/// Replays the window `since..until` of `trail` through `runtime`.
pub fn replay(
    trail: &TrailReader,
    runtime: &Runtime,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    assume: Assume,
) -> Result<Replay, String> {
    // The state as the window began, with the settings being replayed; the window as
    // it was recorded.
    let mut state = PolicyState::new(runtime.config.policy.clone());
    let mut recorded = Recorded::default();
    let mut position = 0;
    trail.read_since(None, |r| {
        recorded.oldest.get_or_insert(r.at);
        if r.at < since {
            fold(&mut state, &r);
            return;
        }
        if r.at > until {
            return;
        }
        position += 1;
        let at = r.at;
        match r.entry {
            Entry::Received { .. } | Entry::Maintenance(_) => recorded.steps.push((position, r)),
            Entry::Evaluated { event_id, .. } => {
                recorded.evaluated.insert(event_id, (position, at));
            }
            Entry::Decision(d) => recorded.decisions.push(d),
            Entry::Outcome(o) => {
                recorded
                    .outcomes
                    .insert(o.decision_id, (o.outcome.outcome, at));
            }
            _ => {}
        }
    })?;
    state.set_settings(runtime.config.policy.clone());
    let state = Arc::new(RwLock::new(state));
    let window = &recorded.steps;

    let mut keyer = Keyer::default();
    let recorded_keys: Vec<(Key, &Decision)> = recorded
        .decisions
        .iter()
        .filter_map(|d| Some((keyer.key(d)?, d)))
        .collect();
    let recorded_by_key: HashMap<Key, &Decision> = recorded_keys.iter().copied().collect();

    let mut replayed: Vec<Decision> = Vec::new();
    let mut summary = Summary::default();
    // Outcomes to apply once the replay reaches their time: (at, decision, status).
    let mut pending: Vec<(DateTime<Utc>, Decision, OutcomeStatus)> = Vec::new();
    // The live engine decides requests in the order it queued them, which is not always
    // the order their `received` records reached the trail (several requests share one
    // fsync): each request is decided where its `evaluated` record stands, at that
    // record's time, and a request no rule matched where it was received.
    // Steps: (position, fold before decide, what, the time outcomes are due by).
    let mut steps: Vec<(usize, u8, Step, DateTime<Utc>)> = Vec::new();
    let mut i = 0;
    while i < window.len() {
        let (_, record) = &window[i];
        match &record.entry {
            Entry::Received { event, .. } => {
                let at = record.at;
                let first = i;
                while matches!(window.get(i), Some((_, r)) if r.at == at && matches!(r.entry, Entry::Received { .. }))
                {
                    steps.push((window[i].0, 0, Step::Fold(i), at));
                    i += 1;
                }
                let (position, due) = recorded
                    .evaluated
                    .get(event.id.as_str())
                    .copied()
                    .unwrap_or((window[i - 1].0, at));
                steps.push((position, 1, Step::Decide(first..i), due));
                continue;
            }
            Entry::Maintenance(_) => steps.push((window[i].0, 0, Step::Fold(i), record.at)),
            _ => {}
        }
        i += 1;
    }
    steps.sort_by_key(|(position, order, _, _)| (*position, *order));

    // Requests the engine decided at one instant were one round: decided together, as
    // then, each in its turn.
    let mut events = 0;
    let mut round: Vec<Vec<Event>> = Vec::new();
    let mut round_now: Option<DateTime<Utc>> = None;
    let mut decide = |round: &mut Vec<Vec<Event>>, now: DateTime<Utc>, pending: &mut Vec<_>| {
        if round.is_empty() {
            return;
        }
        let evaluation = evaluate_round(runtime, &state, round, now, None, None);
        round.clear();
        {
            let mut st = state.write();
            for record in &evaluation.records {
                if !matches!(record.entry, Entry::Decision(_)) {
                    fold(&mut st, record);
                }
            }
        }
        summary.rule_errors += evaluation.rule_errors.len();
        // An event is decided in one round, so the round's own count of its intents is
        // the whole replay's.
        let mut keyer = Keyer::default();
        for d in &evaluation.decisions {
            let Some(key) = keyer.key(d) else {
                continue;
            };
            if let Some(reason) = d.reason {
                *summary
                    .suppressed
                    .entry(reason.as_str().to_string())
                    .or_default() += 1;
            }
            if !d.executes() {
                continue;
            }
            let outcome = recorded_by_key
                .get(&key)
                .filter(|r| r.executes())
                .and_then(|r| recorded.outcomes.get(r.id.as_str()));
            match outcome {
                Some((status, when)) => pending.push((*when, d.clone(), *status)),
                None => {
                    summary.assumed_outcomes += 1;
                    let status = match assume {
                        Assume::Ok => OutcomeStatus::Ok,
                        Assume::Failed => OutcomeStatus::Failed,
                    };
                    pending.push((now, d.clone(), status));
                }
            }
        }
        replayed.extend(evaluation.decisions);
    };
    for (_, _, step, due) in steps {
        let range = match step {
            Step::Fold(i) => {
                let record = &window[i].1;
                // A request is recorded as received before its round: no round waits.
                if !matches!(record.entry, Entry::Received { .. }) {
                    if let Some(now) = round_now.take() {
                        decide(&mut round, now, &mut pending);
                    }
                    apply_due(&state, &mut pending, record.at);
                }
                fold(&mut state.write(), record);
                continue;
            }
            Step::Decide(range) => range,
        };
        let at = window[range.start].1.at;
        let notification: Vec<Event> = window[range]
            .iter()
            .filter_map(|(_, r)| match &r.entry {
                Entry::Received { event, .. } => {
                    let mut event = event.clone();
                    event.received_at = at;
                    Some(event)
                }
                _ => None,
            })
            .collect();
        events += notification.len();
        let now = notification
            .first()
            .and_then(|e| recorded.evaluated.get(e.id.as_str()))
            .map_or(at, |(_, evaluated)| *evaluated);
        if round_now.is_some_and(|n| n != now) || round.len() >= 256 {
            if let Some(previous) = round_now.take() {
                decide(&mut round, previous, &mut pending);
            }
        }
        if round.is_empty() {
            apply_due(&state, &mut pending, due);
        }
        round_now = Some(now);
        round.push(notification);
    }
    if let Some(now) = round_now.take() {
        decide(&mut round, now, &mut pending);
    }

    let mut keyer = Keyer::default();
    let replayed_keys: Vec<(Key, &Decision)> = replayed
        .iter()
        .filter_map(|d| Some((keyer.key(d)?, d)))
        .collect();
    let replayed_by_key: HashMap<Key, &Decision> = replayed_keys.iter().copied().collect();
    let mut differences = Vec::new();
    let mut push = |key: &Key, recorded: Option<&Decision>, replayed: Option<&Decision>| {
        let (r, p) = (recorded.map(verdicts), replayed.map(verdicts));
        if r == p {
            return;
        }
        let executes = |d: Option<&Decision>| d.is_some_and(Decision::executes);
        let kind = match (executes(recorded), executes(replayed)) {
            (false, true) => "added",
            (true, false) => "removed",
            _ => "changed",
        };
        let any = recorded.or(replayed);
        differences.push(Difference {
            event_id: key.0.to_string(),
            fingerprint: any.map(|d| d.fingerprint.0.clone()).unwrap_or_default(),
            rule: key.1.to_string(),
            action: key.2.to_string(),
            target: key.3.to_string(),
            recorded: r,
            replayed: p,
            kind,
        });
    };
    for (key, recorded) in &recorded_keys {
        push(key, Some(recorded), replayed_by_key.get(key).copied());
    }
    for (key, replayed) in &replayed_keys {
        if !recorded_by_key.contains_key(key) {
            push(key, None, Some(replayed));
        }
    }
    for d in &differences {
        match d.kind {
            "added" => summary.added += 1,
            "removed" => summary.removed += 1,
            _ => summary.changed += 1,
        }
    }
    Ok(Replay {
        window: Window {
            since,
            until,
            events,
        },
        differences,
        summary,
        oldest_record: recorded.oldest.filter(|o| *o > since),
    })
}

/// Folds the outcomes whose time has come.
fn apply_due(
    state: &RwLock<PolicyState>,
    pending: &mut Vec<(DateTime<Utc>, Decision, OutcomeStatus)>,
    now: DateTime<Utc>,
) {
    pending.sort_by_key(|(at, _, _)| *at);
    let due = pending.iter().take_while(|(at, _, _)| *at <= now).count();
    let mut st = state.write();
    for (at, decision, status) in pending.drain(..due) {
        let record = AuditRecord::new(
            at,
            Entry::Outcome(OutcomeRecord::of(
                &decision,
                Outcome {
                    outcome: status,
                    ..Outcome::ok(serde_json::Value::Null)
                },
            )),
        );
        fold(&mut st, &record);
    }
}
