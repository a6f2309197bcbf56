//! The one audit record model: everything salve received, decided and did.

use crate::event::{Event, Fingerprint};
use crate::model::Outcome;
use crate::model::{Action, Target};
use crate::model::{Decision, MaintenanceWindow};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// An event was accepted; written (and fsynced) before the sender is answered.
    Received { event: Event },
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
        rules: Vec<String>,
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
    pub rule: String,
    pub action: Action,
    pub target: Target,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MaintenanceChange {
    Created { window: MaintenanceWindow },
    Deleted { id: String, deleted_by: String },
}

impl AuditRecord {
    pub fn new(at: DateTime<Utc>, entry: Entry) -> AuditRecord {
        AuditRecord { at, entry }
    }

    pub fn kind(&self) -> &'static str {
        match &self.entry {
            Entry::Received { .. } => "received",
            Entry::RuleError { .. } => "rule_error",
            Entry::Decision(_) => "decision",
            Entry::Outcome(_) => "outcome",
            Entry::Evaluated { .. } => "evaluated",
            Entry::Maintenance(_) => "maintenance",
            Entry::Reload { .. } => "reload",
        }
    }

    /// The rule this record is about, if any.
    pub fn rule(&self) -> Option<&str> {
        match &self.entry {
            Entry::RuleError { rule, .. } => Some(rule),
            Entry::Decision(d) => Some(&d.rule),
            Entry::Outcome(o) => Some(&o.rule),
            _ => None,
        }
    }

    /// The target this record is about, if any.
    pub fn target(&self) -> Option<&Target> {
        match &self.entry {
            Entry::Decision(d) => Some(&d.target),
            Entry::Outcome(o) => Some(&o.target),
            _ => None,
        }
    }
}
