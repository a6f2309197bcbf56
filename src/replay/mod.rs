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
//!
//! Each request is decided in the mode salve was in when it was recorded (dry-run or
//! live, as its decisions tell), so a window recorded partly under `--dry-run` is
//! compared like with like; `Mode::Live` decides them all live instead.

mod window;

use crate::audit::{AuditRecord, TrailError, TrailReader};
use crate::engine::{Runtime, ON_OUTCOME_RULE};
use crate::model::{Action, Decision, Reason, Target, Verdict, DRY_RUN_BY_SALVE};
use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use window::Replayer;

/// One decision as the diff shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    pub decision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Made in dry-run (salve's or the rule's); shown, not compared: under
    /// `Mode::Live` a decision recorded in dry-run meets a live one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
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
    /// Replayed decisions made in dry-run (salve's, as recorded, or the rule's own).
    pub decided_in_dry_run: usize,
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

/// Which mode each request of the window is decided in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The one salve was in when it decided the request: dry-run or live.
    AsRecorded,
    /// Live, whatever salve was in (`salve replay --dry-run`: what would live have
    /// done where salve ran in dry-run?). The rules' own `DRY_RUN` still hold.
    Live,
}

/// What recorded decisions tell of the mode salve itself was in when it made them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Told {
    Live,
    DryRun,
    /// All were made in dry-run, none says whether salve's or their rules': decided
    /// in dry-run again, but no evidence for the requests after it.
    Unsure,
    Nothing,
}

/// The mode salve was in when it made `recorded`, decisions made by one salve at one
/// instant. A decision suppressed for dry-run says whose it was (salve's mode is asked
/// before the rule's); one made live shows salve was live.
pub(super) fn told<'a>(recorded: impl IntoIterator<Item = &'a Decision>) -> Told {
    let mut told = Told::Nothing;
    for d in recorded {
        if d.reason == Some(Reason::DryRun) {
            return if d.detail.starts_with(DRY_RUN_BY_SALVE) {
                Told::DryRun
            } else {
                Told::Live
            };
        }
        told = match (told, d.made_in_dry_run()) {
            (_, false) | (Told::Live, _) => Told::Live,
            _ => Told::Unsure,
        };
    }
    told
}

impl Replay {
    /// The replay as text for people: each difference on a line, then the summary.
    /// A decision made in dry-run says so, so the mode of each side is visible.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(oldest) = self.oldest_record {
            let _ = writeln!(
                out,
                "note: the trail begins at {}, after --since; replaying from there",
                oldest.to_rfc3339()
            );
        }
        let show = |v: &Option<Verdicts>| match v {
            None => "-".to_string(),
            Some(v) => {
                let verdict = match &v.reason {
                    Some(reason) => format!("{} ({reason})", v.decision),
                    None => v.decision.clone(),
                };
                if v.dry_run {
                    format!("{verdict} in dry-run")
                } else {
                    verdict
                }
            }
        };
        for d in &self.differences {
            let _ = writeln!(
                out,
                "{:<8} {} rule={} {} {}: recorded {}, replayed {}",
                d.kind,
                d.fingerprint,
                d.rule,
                d.action,
                d.target,
                show(&d.recorded),
                show(&d.replayed)
            );
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "{} events replayed: {} added, {} removed, {} changed; {} rule errors; {} outcomes assumed; {} decided in dry-run",
            self.window.events,
            s.added,
            s.removed,
            s.changed,
            s.rule_errors,
            s.assumed_outcomes,
            s.decided_in_dry_run
        );
        out
    }
}

/// What outcome a replayed action that the recording did not run is given: `--assume`
/// and the API's `assume`, whose names are a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Assume {
    #[default]
    Ok,
    Failed,
}

impl Assume {
    pub const ALL: [Assume; 2] = [Assume::Ok, Assume::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Assume::Ok => "ok",
            Assume::Failed => "failed",
        }
    }

    /// The names `assume` accepts, for an error that lists them.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Assume::ALL.into_iter().map(Assume::as_str)
    }
}

/// A name that is not an outcome to assume; lists the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an outcome to assume (one of {names})", names = Assume::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownAssume(String);

impl std::str::FromStr for Assume {
    type Err = UnknownAssume;

    fn from_str(s: &str) -> Result<Assume, UnknownAssume> {
        Assume::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAssume(s.to_string()))
    }
}

/// How a replayed action that asks a person is answered: `--approvals` and the API's
/// `approvals`, whose names are a contract. `recorded`: as the trail says they were
/// (an approval the replay asks that nobody answered stays pending); `approved` or
/// `denied`: every one at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Answers {
    #[default]
    Recorded,
    Approved,
    Denied,
}

impl Answers {
    pub const ALL: [Answers; 3] = [Answers::Recorded, Answers::Approved, Answers::Denied];

    pub fn as_str(self) -> &'static str {
        match self {
            Answers::Recorded => "recorded",
            Answers::Approved => "approved",
            Answers::Denied => "denied",
        }
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        Answers::ALL.into_iter().map(Answers::as_str)
    }

    /// The answer policy takes as given, if not the recorded ones.
    pub(crate) fn assumed(self) -> Option<bool> {
        match self {
            Answers::Recorded => None,
            Answers::Approved => Some(true),
            Answers::Denied => Some(false),
        }
    }
}

/// A name that is not a way to answer approvals; lists the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a way to answer approvals (one of {names})", names = Answers::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownAnswers(String);

impl std::str::FromStr for Answers {
    type Err = UnknownAnswers;

    fn from_str(s: &str) -> Result<Answers, UnknownAnswers> {
        Answers::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAnswers(s.to_string()))
    }
}

impl TryFrom<String> for Answers {
    type Error = UnknownAnswers;

    fn try_from(s: String) -> Result<Answers, UnknownAnswers> {
        s.parse()
    }
}

/// Through [`FromStr`](std::str::FromStr), so a request's bad value reads as the CLI's.
impl TryFrom<String> for Assume {
    type Error = UnknownAssume;

    fn try_from(s: String) -> Result<Assume, UnknownAssume> {
        s.parse()
    }
}

/// Why a replay could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Trail(#[from] TrailError),
    /// The thread that read the trail panicked.
    #[error("reading the trail stopped unexpectedly")]
    ReaderPanicked,
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
        dry_run: d.made_in_dry_run(),
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
    answers: Answers,
    mode: Mode,
) -> Result<Replay, ReplayError> {
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
        let mut replayer = Replayer::new(runtime, since, until, (assume, answers), mode);
        for batch in batches {
            for record in batch {
                replayer.read(record);
            }
            replayer.advance(false);
        }
        reading.join().map_err(|_| ReplayError::ReaderPanicked)??;
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
    let same = match (&r, &p) {
        (Some(r), Some(p)) => (&r.decision, &r.reason) == (&p.decision, &p.reason),
        (r, p) => r.is_none() && p.is_none(),
    };
    if same {
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
