//! What came of an action, and what an outcome notification reports on.

use super::Decision;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeStatus {
    Ok,
    Failed,
    /// salve stopped after deciding to act and before it could record what happened.
    Abandoned,
    /// The executor chose not to act, and said why (a container already restarting
    /// under its own policy, paused on purpose, being removed).
    Skipped,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Ok => "ok",
            OutcomeStatus::Failed => "failed",
            OutcomeStatus::Abandoned => "abandoned",
            OutcomeStatus::Skipped => "skipped",
        }
    }
}

/// Why an executor chose not to act, as a script matches on it (the trail's `reason`):
/// the names are a contract, as `Reason`s are (scripts and dashboards match on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The target does not carry the opt-in label (`docker.label`).
    NotOptedIn,
    /// The channel's `rate` held the message for its summary.
    FoldedIntoSummary,
}

/// What an executor did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    pub outcome: OutcomeStatus,
    #[serde(default)]
    pub duration_ms: u64,
    /// What went wrong, or for a skipped action why it was skipped, for people (the
    /// trail has said it in `error` since skips began: a name scripts read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why an executor skipped, where a script may want to tell (`not_opted_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    /// Where the executor can tell: the target's state afterwards (`healthy`, `running`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    /// Executor-specific facts: exit code, stderr tail, HTTP status.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl Outcome {
    pub fn ok(detail: serde_json::Value) -> Outcome {
        Outcome {
            outcome: OutcomeStatus::Ok,
            duration_ms: 0,
            error: None,
            reason: None,
            verified: None,
            detail,
        }
    }

    pub fn failed(error: impl Into<String>, detail: serde_json::Value) -> Outcome {
        Outcome {
            outcome: OutcomeStatus::Failed,
            duration_ms: 0,
            error: Some(error.into()),
            reason: None,
            verified: None,
            detail,
        }
    }

    /// The executor chose not to act: `why` for people, `reason` (when given) for scripts.
    pub fn skipped(
        why: impl Into<String>,
        reason: Option<SkipReason>,
        detail: serde_json::Value,
    ) -> Outcome {
        Outcome {
            outcome: OutcomeStatus::Skipped,
            duration_ms: 0,
            error: Some(why.into()),
            reason,
            verified: None,
            detail,
        }
    }

    pub fn is_failure(&self) -> bool {
        self.outcome == OutcomeStatus::Failed
    }
}

/// What an `[[on_outcome]]` entry reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeTrigger {
    /// Any failed action.
    Failed,
    /// A failure that opened the action's circuit breaker (`policy.breaker_failures`
    /// in a row): salve stops trying that action on that target for a while.
    CircuitOpen,
    /// An action salve was running when it stopped (killed, crashed, power lost): found
    /// at the next start with no outcome recorded. It is not run again; it may or may
    /// not have happened, and someone should look.
    Abandoned,
    /// A rule was quarantined for being cut off again and again (`[engine]
    /// quarantine_after`): it is not run until its cool-off ends or a reload.
    RuleQuarantined,
}

impl OutcomeTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeTrigger::Failed => "failed",
            OutcomeTrigger::CircuitOpen => "circuit_open",
            OutcomeTrigger::Abandoned => "abandoned",
            OutcomeTrigger::RuleQuarantined => "rule_quarantined",
        }
    }
}

/// The action an outcome notification reports on, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// `failed`, or `circuit_open` when this failure opened the action's breaker.
    pub when: OutcomeTrigger,
    pub decision: Decision,
    pub outcome: Outcome,
}
