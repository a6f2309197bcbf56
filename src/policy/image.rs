//! The policy state as a compact value that a checkpoint stores and restores: numbers
//! for times and hashes, and JSON text for the few values that carry free-form JSON
//! (pending decisions, undecided events). Restoring an image and replaying the trail
//! after it gives the state that replaying the whole trail gives.
//!
//! A checkpoint takes a [`StateSnapshot`] under the state's lock (its large sets are
//! shared, see `shards`) and writes the image from it outside the lock, straight into
//! the checkpoint's bytes.

use super::approvals::{ApprovalEntry, Approvals, Decided};
use super::firing::{FiringImage, FiringImageError, FiringImageOf, FiringSet, FiringSnapshot};
use super::held::{DryHeld, HeldBack, Holds, Spent};
use super::shards::ShardedMap;
use super::state::{Breaker, Evictions, Execution, PendingExecution, PolicyState, Resets};
use super::PolicySettings;
use crate::event::Event;
use crate::model::{Action, ApprovalState, MaintenanceWindow, Reason, Target};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What an image cannot be made of, or turned back into a state for.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("checkpoint image: {0}")]
    Json(#[source] serde_json::Error),
    #[error("checkpoint image: {0}")]
    Firing(#[from] FiringImageError),
}

/// An execution: its order, time (ns), action and rule.
type ExecutionImage = (u64, i64, Action, String);

/// As read back. A snapshot writes its large sets (`D`, `F`) straight from itself
/// ([`StateSnapshot::image`]), in the same shape, without a copy of them first.
#[derive(Debug, Serialize, Deserialize)]
pub struct StateImage<D = Vec<(u128, i64)>, F = FiringImage> {
    dedup: D,
    executions_recorded: u64,
    by_target: Vec<(Target, Vec<ExecutionImage>)>,
    by_rule: Vec<(String, Vec<(i64, Target)>)>,
    by_action: Vec<(Action, Vec<i64>)>,
    breakers: Vec<(Action, Target, u32, Option<i64>, bool)>,
    firing: F,
    windows: Vec<String>,
    pending: Vec<(String, i64)>,
    undecided: Vec<String>,
    evicted: (u64, u64),
    /// Since format 2: the held-back alerts (event, until, why) and those held in
    /// dry-run (event, rules), and how many the bound turned away.
    held: Vec<HeldImage>,
    dry_held: Vec<(String, Vec<String>)>,
    evicted_held: u64,
    /// Since format 3: the approvals asked for and what became of them.
    approvals: Vec<ApprovalImage>,
    /// Since format 4: when each target's cooldown and limit were last reset by hand.
    resets: Vec<ResetsImage>,
}

/// A target, when its cooldown and when its limit were last reset (ns).
type ResetsImage = (Target, Option<i64>, Option<i64>);

/// The image of checkpoint format 3 (salve before cooldowns and limits were reset by
/// hand).
#[derive(Debug, Deserialize)]
pub struct StateImageV3 {
    dedup: Vec<(u128, i64)>,
    executions_recorded: u64,
    by_target: Vec<(Target, Vec<ExecutionImage>)>,
    by_rule: Vec<(String, Vec<(i64, Target)>)>,
    by_action: Vec<(Action, Vec<i64>)>,
    breakers: Vec<(Action, Target, u32, Option<i64>, bool)>,
    firing: FiringImage,
    windows: Vec<String>,
    pending: Vec<(String, i64)>,
    undecided: Vec<String>,
    evicted: (u64, u64),
    held: Vec<HeldImage>,
    dry_held: Vec<(String, Vec<String>)>,
    evicted_held: u64,
    approvals: Vec<ApprovalImage>,
}

impl From<StateImageV3> for StateImage {
    /// Format 3 reset nothing but breakers, which it holds as they are.
    fn from(v3: StateImageV3) -> StateImage {
        StateImage {
            dedup: v3.dedup,
            executions_recorded: v3.executions_recorded,
            by_target: v3.by_target,
            by_rule: v3.by_rule,
            by_action: v3.by_action,
            breakers: v3.breakers,
            firing: v3.firing,
            windows: v3.windows,
            pending: v3.pending,
            undecided: v3.undecided,
            evicted: v3.evicted,
            held: v3.held,
            dry_held: v3.dry_held,
            evicted_held: v3.evicted_held,
            approvals: v3.approvals,
            resets: Vec::new(),
        }
    }
}

/// An approval: its request (JSON), its state, who decided (actor as JSON, when, the
/// comment, the decision record's id), and the decision that spent it.
#[derive(Debug, Serialize, Deserialize)]
struct ApprovalImage {
    request: String,
    state: ApprovalState,
    decided: Option<(String, i64, String, String)>,
    spent_by: Option<(String, String)>,
}

/// The image of checkpoint format 2 (salve before approvals).
#[derive(Debug, Deserialize)]
pub struct StateImageV2 {
    dedup: Vec<(u128, i64)>,
    executions_recorded: u64,
    by_target: Vec<(Target, Vec<ExecutionImage>)>,
    by_rule: Vec<(String, Vec<(i64, Target)>)>,
    by_action: Vec<(Action, Vec<i64>)>,
    breakers: Vec<(Action, Target, u32, Option<i64>, bool)>,
    firing: FiringImage,
    windows: Vec<String>,
    pending: Vec<(String, i64)>,
    undecided: Vec<String>,
    evicted: (u64, u64),
    held: Vec<HeldImage>,
    dry_held: Vec<(String, Vec<String>)>,
    evicted_held: u64,
}

impl From<StateImageV2> for StateImage {
    /// Format 2 asked nobody: an upgrade starts with no approvals.
    fn from(v2: StateImageV2) -> StateImage {
        StateImage::from(StateImageV3 {
            dedup: v2.dedup,
            executions_recorded: v2.executions_recorded,
            by_target: v2.by_target,
            by_rule: v2.by_rule,
            by_action: v2.by_action,
            breakers: v2.breakers,
            firing: v2.firing,
            windows: v2.windows,
            pending: v2.pending,
            undecided: v2.undecided,
            evicted: v2.evicted,
            held: v2.held,
            dry_held: v2.dry_held,
            evicted_held: v2.evicted_held,
            approvals: Vec::new(),
        })
    }
}

/// A held-back alert: its event, until when, why, and the limit that held it.
type HeldImage = (String, i64, Reason, Option<(String, Action, Target)>);

/// The image of checkpoint format 1 (salve before held-back alerts were kept).
#[derive(Debug, Deserialize)]
pub struct StateImageV1 {
    dedup: Vec<(u128, i64)>,
    executions_recorded: u64,
    by_target: Vec<(Target, Vec<ExecutionImage>)>,
    by_rule: Vec<(String, Vec<(i64, Target)>)>,
    by_action: Vec<(Action, Vec<i64>)>,
    breakers: Vec<(Action, Target, u32, Option<i64>, bool)>,
    firing: FiringImage,
    windows: Vec<String>,
    pending: Vec<(String, i64)>,
    undecided: Vec<String>,
    evicted: (u64, u64),
}

impl From<StateImageV1> for StateImage {
    /// Format 1 held nothing back: an upgrade starts with no holds, and the alerts a
    /// hold was lost for are decided again at their next event.
    fn from(v1: StateImageV1) -> StateImage {
        StateImage::from(StateImageV2 {
            dedup: v1.dedup,
            executions_recorded: v1.executions_recorded,
            by_target: v1.by_target,
            by_rule: v1.by_rule,
            by_action: v1.by_action,
            breakers: v1.breakers,
            firing: v1.firing,
            windows: v1.windows,
            pending: v1.pending,
            undecided: v1.undecided,
            evicted: v1.evicted,
            held: Vec::new(),
            dry_held: Vec::new(),
            evicted_held: 0,
        })
    }
}

/// A time as nanoseconds since the epoch; times past what that holds (years before
/// 1677 or after 2262) are held at its ends.
pub(super) fn ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn at(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(n)
}

fn json<T: Serialize>(value: &T) -> Result<String, ImageError> {
    serde_json::to_string(value).map_err(ImageError::Json)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ImageError> {
    serde_json::from_str(text).map_err(ImageError::Json)
}

/// The dedup episodes written as the `Vec<(u128, i64)>` they are read back as.
pub struct DedupImageOf<'a>(&'a ShardedMap<u128, DateTime<Utc>>);

impl Serialize for DedupImageOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (key, seen) in self.0.iter() {
            seq.serialize_element(&(*key, ns(*seen)))?;
        }
        seq.end()
    }
}

/// The image a snapshot writes.
pub type SnapshotImage<'a> = StateImage<DedupImageOf<'a>, FiringImageOf<'a>>;

impl PolicyState {
    /// The state as it is now, taken in microseconds whatever its size: the large sets
    /// are shared, not copied (see `shards`), so a checkpoint holds the lock only for
    /// this and makes its image outside it.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            dedup: self.dedup.clone(),
            executions_recorded: self.executions_recorded,
            by_target: self.by_target.clone(),
            by_rule: self.by_rule.clone(),
            by_action: self.by_action.clone(),
            breakers: self.breakers.clone(),
            resets: self.resets.clone(),
            firing: self.firing.snapshot(),
            windows: self.windows.values().cloned().collect(),
            pending: self.pending.values().cloned().collect(),
            undecided: self.undecided.values().cloned().collect(),
            evicted: self.evicted,
            holds: self.holds.clone(),
            approvals: self.approvals.by_id.values().cloned().collect(),
        }
    }
}

/// The state at one point, for a checkpoint (see [`PolicyState::snapshot`]).
pub struct StateSnapshot {
    dedup: ShardedMap<u128, DateTime<Utc>>,
    executions_recorded: u64,
    by_target: HashMap<Target, VecDeque<Execution>>,
    by_rule: HashMap<String, VecDeque<(DateTime<Utc>, Target)>>,
    by_action: HashMap<Action, VecDeque<DateTime<Utc>>>,
    breakers: HashMap<(Action, Target), Breaker>,
    resets: HashMap<Target, Resets>,
    firing: FiringSnapshot,
    windows: Vec<MaintenanceWindow>,
    pending: Vec<PendingExecution>,
    undecided: Vec<Arc<Event>>,
    evicted: Evictions,
    holds: Holds,
    approvals: Vec<ApprovalEntry>,
}

impl StateSnapshot {
    pub fn image(&self) -> Result<SnapshotImage<'_>, ImageError> {
        Ok(StateImage {
            dedup: DedupImageOf(&self.dedup),
            executions_recorded: self.executions_recorded,
            by_target: self
                .by_target
                .iter()
                .map(|(target, execs)| {
                    let execs = execs
                        .iter()
                        .map(|e| (e.seq, ns(e.at), e.action, e.rule.clone()))
                        .collect();
                    (target.clone(), execs)
                })
                .collect(),
            by_rule: self
                .by_rule
                .iter()
                .map(|(rule, execs)| {
                    let execs = execs.iter().map(|(t, target)| (ns(*t), target.clone()));
                    (rule.clone(), execs.collect())
                })
                .collect(),
            by_action: self
                .by_action
                .iter()
                .map(|(action, times)| (*action, times.iter().map(|t| ns(*t)).collect()))
                .collect(),
            breakers: self
                .breakers
                .iter()
                .map(|((action, target), b)| {
                    (
                        *action,
                        target.clone(),
                        b.consecutive_failures,
                        b.opened_at.map(ns),
                        b.trial_pending,
                    )
                })
                .collect(),
            firing: self.firing.image(),
            windows: self.windows.iter().map(json).collect::<Result<_, _>>()?,
            pending: self
                .pending
                .iter()
                .map(|p| Ok((json(&p.decision)?, ns(p.at))))
                .collect::<Result<_, ImageError>>()?,
            undecided: self
                .undecided
                .iter()
                .map(|e| json(&**e))
                .collect::<Result<_, _>>()?,
            evicted: (self.evicted.dedup, self.evicted.firing),
            held: self
                .holds
                .timed
                .values()
                .map(|h| {
                    let spent = h
                        .spent
                        .as_ref()
                        .map(|s| (s.rule.clone(), s.action, s.target.clone()));
                    Ok((json(&*h.event)?, ns(h.until), h.reason, spent))
                })
                .collect::<Result<_, ImageError>>()?,
            dry_held: self
                .holds
                .dry
                .values()
                .map(|h| Ok((json(&*h.event)?, h.rules.iter().cloned().collect())))
                .collect::<Result<_, ImageError>>()?,
            evicted_held: self.evicted.held,
            approvals: self
                .approvals
                .iter()
                .map(approval_image)
                .collect::<Result<_, ImageError>>()?,
            resets: self
                .resets
                .iter()
                .map(|(target, r)| (target.clone(), r.cooldown.map(ns), r.limit.map(ns)))
                .collect(),
        })
    }
}

fn approval_image(entry: &ApprovalEntry) -> Result<ApprovalImage, ImageError> {
    let decided = match &entry.decided {
        Some(d) => Some((
            json(&d.actor)?,
            ns(d.at),
            d.comment.clone(),
            d.record.clone(),
        )),
        None => None,
    };
    Ok(ApprovalImage {
        request: json(&*entry.request)?,
        state: entry.state,
        decided,
        spent_by: entry.spent_by.clone(),
    })
}

fn approvals_from(images: Vec<ApprovalImage>, approvals: &mut Approvals) -> Result<(), ImageError> {
    for image in images {
        let decided = match image.decided {
            Some((actor, t, comment, record)) => Some(Decided {
                actor: from_json(&actor)?,
                at: at(t),
                comment,
                record,
            }),
            None => None,
        };
        approvals.insert(ApprovalEntry {
            request: Arc::new(from_json(&image.request)?),
            state: image.state,
            decided,
            spent_by: image.spent_by,
        });
    }
    Ok(())
}

impl PolicyState {
    pub fn from_image(
        image: StateImage,
        settings: PolicySettings,
    ) -> Result<PolicyState, ImageError> {
        let mut state = PolicyState::new(settings);
        state.dedup = image.dedup.into_iter().map(|(k, t)| (k, at(t))).collect();
        state.executions_recorded = image.executions_recorded;
        state.by_target = by_target_from(image.by_target);
        state.by_rule = image
            .by_rule
            .into_iter()
            .map(|(rule, execs)| {
                (
                    rule,
                    execs
                        .into_iter()
                        .map(|(t, target)| (at(t), target))
                        .collect(),
                )
            })
            .collect();
        state.by_action = image
            .by_action
            .into_iter()
            .map(|(action, times)| (action, times.into_iter().map(at).collect()))
            .collect();
        state.breakers = breakers_from(image.breakers);
        state.firing = FiringSet::from_image(image.firing)?;
        for text in &image.windows {
            let window: MaintenanceWindow = from_json(text)?;
            state.windows.insert(window.id.clone(), window);
        }
        state.pending = pending_from(&image.pending)?;
        for text in &image.undecided {
            state.record_undecided(Arc::new(from_json(text)?));
        }
        state.evicted.dedup = image.evicted.0;
        state.evicted.firing = image.evicted.1;
        state.evicted.held = image.evicted_held;
        holds_from(image.held, image.dry_held, &mut state.holds)?;
        approvals_from(image.approvals, &mut state.approvals)?;
        state.resets = image
            .resets
            .into_iter()
            .map(|(target, cooldown, limit)| {
                let resets = Resets {
                    cooldown: cooldown.map(at),
                    limit: limit.map(at),
                };
                (target, resets)
            })
            .collect();
        Ok(state)
    }
}

fn by_target_from(
    image: Vec<(Target, Vec<ExecutionImage>)>,
) -> HashMap<Target, VecDeque<Execution>> {
    image
        .into_iter()
        .map(|(target, execs)| {
            let execs = execs
                .into_iter()
                .map(|(seq, t, action, rule)| Execution {
                    seq,
                    at: at(t),
                    action,
                    rule,
                })
                .collect();
            (target, execs)
        })
        .collect()
}

fn breakers_from(
    image: Vec<(Action, Target, u32, Option<i64>, bool)>,
) -> HashMap<(Action, Target), Breaker> {
    image
        .into_iter()
        .map(|(action, target, failures, opened, trial)| {
            let breaker = Breaker {
                consecutive_failures: failures,
                opened_at: opened.map(at),
                trial_pending: trial,
            };
            ((action, target), breaker)
        })
        .collect()
}

fn pending_from(image: &[(String, i64)]) -> Result<HashMap<String, PendingExecution>, ImageError> {
    let mut pending = HashMap::new();
    for (text, t) in image {
        let decision: crate::model::Decision = from_json(text)?;
        pending.insert(
            decision.id.clone(),
            PendingExecution {
                decision,
                at: at(*t),
            },
        );
    }
    Ok(pending)
}

/// The held-back alerts, and those held in dry-run, put into `holds`.
fn holds_from(
    held: Vec<HeldImage>,
    dry_held: Vec<(String, Vec<String>)>,
    holds: &mut Holds,
) -> Result<(), ImageError> {
    for (text, until, reason, spent) in held {
        let event: Event = from_json(&text)?;
        let held = HeldBack {
            event: Arc::new(event),
            until: at(until),
            reason,
            spent: spent.map(|(rule, action, target)| Spent {
                rule,
                action,
                target,
            }),
        };
        holds.timed.insert(held.event.fingerprint.clone(), held);
    }
    for (text, rules) in dry_held {
        let event: Event = from_json(&text)?;
        let held = DryHeld {
            event: Arc::new(event),
            rules: rules.into_iter().collect(),
        };
        holds.dry.insert(held.event.fingerprint.clone(), held);
    }
    Ok(())
}
