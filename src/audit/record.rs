//! The one audit record model: everything salve received, decided and did.

use crate::event::{Event, Fingerprint};
use crate::model::Outcome;
use crate::model::{Action, Reason, Target};
use crate::model::{ApprovalDecided, ApprovalRequest, Decision, MaintenanceWindow};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A record's `kind`, as the trail writes it. The names are a contract: `salve audit
/// --kind`, `?kind=` and the PostgreSQL trail's `kind` column filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Received,
    Decision,
    Outcome,
    RuleError,
    Evaluated,
    Maintenance,
    Reload,
    Reconsidered,
    ApprovalRequested,
    ApprovalDecided,
    StateReset,
}

impl RecordKind {
    pub const ALL: [RecordKind; 11] = [
        RecordKind::Received,
        RecordKind::Decision,
        RecordKind::Outcome,
        RecordKind::RuleError,
        RecordKind::Evaluated,
        RecordKind::Maintenance,
        RecordKind::Reload,
        RecordKind::Reconsidered,
        RecordKind::ApprovalRequested,
        RecordKind::ApprovalDecided,
        RecordKind::StateReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Received => "received",
            RecordKind::Decision => "decision",
            RecordKind::Outcome => "outcome",
            RecordKind::RuleError => "rule_error",
            RecordKind::Evaluated => "evaluated",
            RecordKind::Maintenance => "maintenance",
            RecordKind::Reload => "reload",
            RecordKind::Reconsidered => "reconsidered",
            RecordKind::ApprovalRequested => "approval_requested",
            RecordKind::ApprovalDecided => "approval_decided",
            RecordKind::StateReset => "state_reset",
        }
    }

    /// The names a filter accepts, for an error that lists them.
    pub fn names() -> impl Iterator<Item = &'static str> {
        RecordKind::ALL.into_iter().map(RecordKind::as_str)
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a record kind; it lists the kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a record kind (one of {})", RecordKind::names().collect::<Vec<_>>().join(", "))]
pub struct UnknownRecordKind {
    pub given: String,
}

impl std::str::FromStr for RecordKind {
    type Err = UnknownRecordKind;

    /// A typo is an error that lists the kinds, not a filter that silently matches
    /// nothing.
    fn from_str(s: &str) -> Result<RecordKind, UnknownRecordKind> {
        RecordKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownRecordKind {
                given: s.to_string(),
            })
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: Entry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// An event was accepted; written (and fsynced) before the sender is answered. Its
    /// `received_at` is the record's `at`, written once. `unmatched`: no rule matched
    /// it when it arrived, so nothing more is recorded about it (no `evaluated`).
    Received {
        // Shared: the state keeps this very event while it waits for its turn.
        event: Arc<Event>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unmatched: bool,
        /// The alert's trace (32 hex digits), when traces are on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_id: Option<String>,
    },
    /// A rule failed on an event (error, timeout, bad return value); other rules still ran.
    RuleError {
        event_id: String,
        fingerprint: Fingerprint,
        rule: String,
        error: String,
        /// Why, where salve and not the rule decided it: `cut_off` (stopped by a
        /// limit), `skipped` (cut off earlier in the same round), `quarantined`,
        /// `max_intents`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The policy's verdict on one intent; written before any executor starts.
    Decision(Decision),
    /// What an executor did about an `execute` decision.
    Outcome(OutcomeRecord),
    /// Every rule that matched the event has been evaluated and decided.
    Evaluated {
        event_id: String,
        fingerprint: Fingerprint,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rules: Vec<String>,
    },
    /// What held an alert's intents back ended (a cooldown, a window, a spent limit, an
    /// open breaker, a delay, or dry-run left) while the alert still fires in the same
    /// episode: its event is decided again, as a re-send would be, and the decisions
    /// follow. `event` keeps its first arrival in `received_at`.
    Reconsidered { event: Event, held: Reason },
    /// An action asks a person first: who may answer, where the request went, until
    /// when, and the intent and alert it is for. Written with the decision that asked.
    ApprovalRequested(Box<ApprovalRequest>),
    /// An approval was answered (approved, denied) or ended by salve (expired,
    /// cancelled, invalidated), by whom. Only the first on an approval counts.
    ApprovalDecided(ApprovalDecided),
    /// Someone cleared what held a target back, by hand (`POST /api/v1/state/reset`):
    /// `what` is `breaker` (closed: its failures forgotten), `cooldown` (what ran on it
    /// before starts no cooldown) or `limit` (what ran on it before counts against no
    /// rule's `LIMIT`), with who and why.
    StateReset {
        target: Target,
        what: String,
        reason: String,
        by: String,
    },
    /// An ad-hoc maintenance window was created or deleted through the API.
    Maintenance(MaintenanceChange),
    /// Rules or config were reloaded (or a reload was refused).
    Reload {
        ok: bool,
        rules: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutcomeRecord {
    pub decision_id: String,
    pub event_id: String,
    /// The alert the action answered (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    pub rule: String,
    pub action: Action,
    pub target: Target,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The OpenTelemetry trace of the alert (32 hex digits), when traces are on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl OutcomeRecord {
    /// What came of `decision`, as the trail records it.
    pub fn of(decision: &Decision, outcome: Outcome) -> OutcomeRecord {
        OutcomeRecord {
            decision_id: decision.id.clone(),
            event_id: decision.event_id.clone(),
            fingerprint: Some(decision.fingerprint.clone()),
            rule: decision.rule.clone(),
            action: decision.action,
            target: decision.target.clone(),
            outcome,
            trace_id: decision.trace_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MaintenanceChange {
    Created { window: MaintenanceWindow },
    Deleted { id: String, deleted_by: String },
}

/// A received event as the trail keeps it: everything but `received_at`, which is the
/// record's own `at` (`AuditRecord::from_line` puts it back).
fn event_without_arrival<S: serde::Serializer>(event: &Event, out: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Written<'a> {
        id: &'a str,
        source: &'a str,
        status: crate::event::Status,
        labels: &'a crate::event::Labels,
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        annotations: &'a crate::event::Labels,
        starts_at: DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ends_at: Option<DateTime<Utc>>,
        fingerprint: &'a Fingerprint,
        #[serde(skip_serializing_if = "str::is_empty")]
        generator_url: &'a str,
    }
    Written {
        id: &event.id,
        source: &event.source,
        status: event.status,
        labels: &event.labels,
        annotations: &event.annotations,
        starts_at: event.starts_at,
        ends_at: event.ends_at,
        fingerprint: &event.fingerprint,
        generator_url: &event.generator_url,
    }
    .serialize(out)
}

impl AuditRecord {
    pub fn new(at: DateTime<Utc>, entry: Entry) -> AuditRecord {
        AuditRecord { at, entry }
    }

    /// Appends the record as one line of the trail. A received event's `received_at`
    /// is not written again: it is the record's `at`.
    pub fn write_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &self.entry {
            Entry::Received {
                event,
                unmatched,
                trace_id,
            } => {
                #[derive(Serialize)]
                struct Line<'a> {
                    at: DateTime<Utc>,
                    kind: &'static str,
                    #[serde(serialize_with = "event_without_arrival")]
                    event: &'a Event,
                    #[serde(skip_serializing_if = "std::ops::Not::not")]
                    unmatched: bool,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    trace_id: &'a Option<String>,
                }
                serde_json::to_writer(
                    &mut *out,
                    &Line {
                        at: self.at,
                        kind: "received",
                        event,
                        unmatched: *unmatched,
                        trace_id,
                    },
                )?
            }
            _ => serde_json::to_writer(&mut *out, self)?,
        }
        out.push(b'\n');
        Ok(())
    }

    /// A line of the trail: its record, with a received event's arrival put back.
    pub fn from_line(line: &[u8]) -> serde_json::Result<AuditRecord> {
        let mut record: AuditRecord = serde_json::from_slice::<Line>(line)?.0;
        if let Entry::Received { event, .. } = &mut record.entry {
            if event.received_at == DateTime::<Utc>::UNIX_EPOCH {
                Arc::make_mut(event).received_at = record.at;
            }
        }
        Ok(record)
    }

    pub fn kind(&self) -> RecordKind {
        match &self.entry {
            Entry::Received { .. } => RecordKind::Received,
            Entry::RuleError { .. } => RecordKind::RuleError,
            Entry::Decision(_) => RecordKind::Decision,
            Entry::Outcome(_) => RecordKind::Outcome,
            Entry::Evaluated { .. } => RecordKind::Evaluated,
            Entry::Maintenance(_) => RecordKind::Maintenance,
            Entry::Reload { .. } => RecordKind::Reload,
            Entry::Reconsidered { .. } => RecordKind::Reconsidered,
            Entry::ApprovalRequested(_) => RecordKind::ApprovalRequested,
            Entry::ApprovalDecided(_) => RecordKind::ApprovalDecided,
            Entry::StateReset { .. } => RecordKind::StateReset,
        }
    }

    /// The rule this record is about, if any.
    pub fn rule(&self) -> Option<&str> {
        match &self.entry {
            Entry::RuleError { rule, .. } => Some(rule),
            Entry::Decision(d) => Some(&d.rule),
            Entry::Outcome(o) => Some(&o.rule),
            Entry::ApprovalRequested(r) => Some(&r.rule),
            _ => None,
        }
    }

    /// The target this record is about, if any.
    pub fn target(&self) -> Option<&Target> {
        match &self.entry {
            Entry::Decision(d) => Some(&d.target),
            Entry::Outcome(o) => Some(&o.target),
            Entry::ApprovalRequested(r) => Some(&r.target),
            Entry::StateReset { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// A line of the trail, read in one pass. salve writes `at` and `kind` first, so the
/// kinds the trail is mostly made of are read straight into their types; the derived
/// form (flattened and internally tagged) would first copy every line into a generic
/// tree and read it twice. A line in another order (a hand edit) takes that form.
struct Line(AuditRecord);

impl<'de> Deserialize<'de> for Line {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Line, D::Error> {
        d.deserialize_map(LineVisitor)
    }
}

struct LineVisitor;

#[derive(Deserialize)]
struct ReceivedBody {
    event: Event,
    #[serde(default)]
    unmatched: bool,
    #[serde(default)]
    trace_id: Option<String>,
}

#[derive(Deserialize)]
struct EvaluatedBody {
    event_id: String,
    fingerprint: Fingerprint,
    #[serde(default)]
    rules: Vec<String>,
}

impl<'de> serde::de::Visitor<'de> for LineVisitor {
    type Value = Line;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an audit record")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
        use serde::de::value::MapAccessDeserializer;
        use std::borrow::Cow;
        let mut rest = serde_json::Map::new();
        let mut at: Option<DateTime<Utc>> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match (key.as_ref(), at) {
                ("at", None) if rest.is_empty() => at = Some(map.next_value()?),
                ("kind", Some(at)) if rest.is_empty() => {
                    let kind: Cow<'de, str> = map.next_value()?;
                    let rest = MapAccessDeserializer::new(map);
                    let entry = match kind.as_ref() {
                        "received" => {
                            let body = ReceivedBody::deserialize(rest)?;
                            Entry::Received {
                                event: Arc::new(body.event),
                                unmatched: body.unmatched,
                                trace_id: body.trace_id,
                            }
                        }
                        "decision" => Entry::Decision(Decision::deserialize(rest)?),
                        "evaluated" => {
                            let body = EvaluatedBody::deserialize(rest)?;
                            Entry::Evaluated {
                                event_id: body.event_id,
                                fingerprint: body.fingerprint,
                                rules: body.rules,
                            }
                        }
                        _ => {
                            let mut fields = serde_json::Map::deserialize(rest)?;
                            fields.insert(
                                "at".into(),
                                serde_json::to_value(at).map_err(serde::de::Error::custom)?,
                            );
                            fields.insert(
                                "kind".into(),
                                serde_json::Value::String(kind.into_owned()),
                            );
                            return serde_json::from_value(serde_json::Value::Object(fields))
                                .map(Line)
                                .map_err(serde::de::Error::custom);
                        }
                    };
                    return Ok(Line(AuditRecord { at, entry }));
                }
                _ => {
                    let value: serde_json::Value = map.next_value()?;
                    rest.insert(key.into_owned(), value);
                }
            }
        }
        if let Some(at) = at {
            rest.insert(
                "at".into(),
                serde_json::to_value(at).map_err(serde::de::Error::custom)?,
            );
        }
        serde_json::from_value(serde_json::Value::Object(rest))
            .map(Line)
            .map_err(serde::de::Error::custom)
    }
}
