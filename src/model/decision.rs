//! The policy's verdict on one intent, with its reason.

use crate::event::{Fingerprint, Status};
use crate::model::{Action, Params, Target};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Execute,
    Suppress,
}

/// Why an intent was not executed. The names are a contract: tools filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// This rule already acted on this episode of this alert.
    Dedup,
    /// Another alert of the same notification asked for the identical action.
    Duplicate,
    Maintenance,
    RateLimit,
    Cooldown,
    CircuitOpen,
    DryRun,
    /// `.after(d)`: not before the alert has fired for `d` (counted from the approval,
    /// for an action that asks for one).
    Delayed,
    /// The action asks a person first (`.approval()`, `[approvals] require`): asked, or
    /// still waiting for an answer.
    AwaitingApproval,
    /// A person said no to this action for this episode of the alert.
    ApprovalDenied,
    /// Nobody answered in time: no, for this episode of the alert.
    ApprovalExpired,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Dedup,
        Reason::Duplicate,
        Reason::Maintenance,
        Reason::RateLimit,
        Reason::Cooldown,
        Reason::CircuitOpen,
        Reason::DryRun,
        Reason::Delayed,
        Reason::AwaitingApproval,
        Reason::ApprovalDenied,
        Reason::ApprovalExpired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dedup => "dedup",
            Reason::Duplicate => "duplicate",
            Reason::Maintenance => "maintenance",
            Reason::RateLimit => "rate_limit",
            Reason::Cooldown => "cooldown",
            Reason::CircuitOpen => "circuit_open",
            Reason::DryRun => "dry_run",
            Reason::Delayed => "delayed",
            Reason::AwaitingApproval => "awaiting_approval",
            Reason::ApprovalDenied => "approval_denied",
            Reason::ApprovalExpired => "approval_expired",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub id: String,
    pub event_id: String,
    pub fingerprint: Fingerprint,
    pub starts_at: DateTime<Utc>,
    pub status: Status,
    pub rule: String,
    pub action: Action,
    pub target: Target,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: Params,
    pub decision: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Human-readable why: the limit that was hit, the window that muted it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Decided in dry-run (salve's `--dry-run`, `[policy] dry_run`, or the rule's
    /// `DRY_RUN`), whatever the verdict: it spends nothing live mode counts, and replay
    /// decides it again in the mode salve was in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// A hold that ends (cooldown, window, limit, breaker, delay): when it does, the
    /// alert is decided again if it still fires in the same episode (`reconsidered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconsider_at: Option<DateTime<Utc>>,
    /// The approval this decision asked for (`awaiting_approval`), waits for, or acted
    /// on (or held back) once a person said yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// The OpenTelemetry trace of the alert (32 hex digits), when traces are on
    /// (`[tracing]`). In the record only: the policy's state never keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The `detail` of a decision suppressed because salve itself runs in dry-run (rather
/// than the rule): replay reads from it which mode salve was in when it decided.
pub const DRY_RUN_BY_SALVE: &str = "salve runs with --dry-run";

impl Decision {
    pub fn executes(&self) -> bool {
        self.decision == Verdict::Execute
    }

    /// Made in dry-run: as the decision says, or, from a salve that did not say, when
    /// it was suppressed for dry-run.
    pub fn made_in_dry_run(&self) -> bool {
        self.dry_run || self.reason == Some(Reason::DryRun)
    }
}
