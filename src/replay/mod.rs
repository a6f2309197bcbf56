//! `salve replay`: what these rules and this config would have decided for the events a
//! window of the trail received, at the times they were decided, with the policy state
//! as the trail had it when the window began. Nothing runs and nothing is written.
//! Outcomes of replayed actions come from the recording where the same action on the
//! same target was executed for the same event (so breakers follow history); otherwise
//! they are assumed.
//!
//! The window begins at the first record of its time. What an event received before it
//! had decided for it inside the window, and the outcomes of actions decided before it,
//! are history: folded into the state as recorded, not compared.

mod window;

use crate::audit::{AuditRecord, TrailReader};
use crate::engine::{Runtime, ON_OUTCOME_RULE};
use crate::model::{Action, Decision, Target, Verdict};
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use window::Replayer;

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
pub(super) struct Keyer<'a> {
    seen: FxHashMap<(&'a str, &'a str, Action, &'a Target), usize>,
}

impl<'a> Keyer<'a> {
    /// The key of `d`, or `None` for what replay does not compare (decisions about
    /// outcomes, which follow the assumed outcomes rather than the rules).
    pub(super) fn key(&mut self, d: &'a Decision) -> Option<Key<'a>> {
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

/// Records handed from the thread that reads the trail to the one that decides.
const BATCH: usize = 4096;

/// Replays the window `since..until` of `trail` through `runtime`.
///
/// The trail is read on one thread while the window is decided on another, in one
/// pass. A request is decided where its `evaluated` record stands, so what comes after
/// it waits until that record (and what was decided about its events) has been read;
/// a replayed action takes the outcome of its recorded twin, so the replay waits for
/// that outcome too. What is held is what those waits need, not the window.
pub fn replay(
    trail: &TrailReader,
    runtime: &Runtime,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    assume: Assume,
) -> Result<Replay, String> {
    let (sender, batches) = std::sync::mpsc::sync_channel::<Vec<AuditRecord>>(2);
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let read = trail.read_since(None, |record| {
                batch.push(record);
                if batch.len() == BATCH {
                    // The receiving end stays until the sender is gone.
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    let _ = sender.send(full);
                }
            });
            if !batch.is_empty() {
                let _ = sender.send(batch);
            }
            read
        });
        let mut replayer = Replayer::new(runtime, since, until, assume);
        for batch in batches {
            for record in batch {
                replayer.read(record);
            }
            replayer.advance(false);
        }
        reading
            .join()
            .map_err(|_| "reading the trail stopped unexpectedly".to_string())??;
        Ok(replayer.finish())
    })
}

/// How a recorded and a replayed decision differ, if they do.
pub(super) fn difference(
    key: &Key,
    recorded: Option<&Decision>,
    replayed: Option<&Decision>,
) -> Option<Difference> {
    let (r, p) = (recorded.map(verdicts), replayed.map(verdicts));
    if r == p {
        return None;
    }
    let executes = |d: Option<&Decision>| d.is_some_and(Decision::executes);
    let kind = match (executes(recorded), executes(replayed)) {
        (false, true) => "added",
        (true, false) => "removed",
        _ => "changed",
    };
    let any = recorded.or(replayed);
    Some(Difference {
        event_id: key.0.to_string(),
        fingerprint: any.map(|d| d.fingerprint.0.clone()).unwrap_or_default(),
        rule: key.1.to_string(),
        action: key.2.to_string(),
        target: key.3.to_string(),
        recorded: r,
        replayed: p,
        kind,
    })
}
