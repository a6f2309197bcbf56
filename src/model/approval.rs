//! A person says yes before a risky action runs. An approval is asked for by a rule
//! (`.approval("sre")`) or by the config (`[approvals] require`), decided by one of the
//! people its group names, and expires into "no". Its states and the two records that
//! move it between them are a contract: tools filter on them.

use crate::event::{Event, Fingerprint};
use crate::model::{Action, Params, Target};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The param `.approval(group)` is written as, in the trail and in `salve plan`.
pub const APPROVAL_GROUP: &str = "approval";
/// The param `.approval(group, ttl)` writes its time to live as, in whole milliseconds.
pub const APPROVAL_TTL_MS: &str = "approval_ttl_ms";

/// The longest an approval may wait: past a day, the alert it was for is history.
pub const MAX_APPROVAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// `pending → approved → (executed | suppressed)`, or `pending → denied | expired |
/// cancelled | invalidated`. Every state but `pending` and `approved` is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Asked; nobody has answered yet.
    Pending,
    /// Someone said yes; policy decides the action again now.
    Approved,
    /// Approved, and policy let the action run.
    Executed,
    /// Approved, but policy held the action back when it was decided again (a window
    /// opened, a limit was spent, salve runs in dry-run): an approval never bypasses
    /// policy.
    Suppressed,
    Denied,
    /// Nobody answered in time: no.
    Expired,
    /// The alert resolved (or its episode ended) before anyone answered.
    Cancelled,
    /// A reload changed the rule or the approval group before anyone answered.
    Invalidated,
}

impl ApprovalState {
    pub const ALL: [ApprovalState; 8] = [
        ApprovalState::Pending,
        ApprovalState::Approved,
        ApprovalState::Executed,
        ApprovalState::Suppressed,
        ApprovalState::Denied,
        ApprovalState::Expired,
        ApprovalState::Cancelled,
        ApprovalState::Invalidated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Executed => "executed",
            ApprovalState::Suppressed => "suppressed",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
            ApprovalState::Invalidated => "invalidated",
        }
    }

    /// Whether a person (or salve, for expiry, cancellation and invalidation) may
    /// still decide it.
    pub fn is_open(self) -> bool {
        self == ApprovalState::Pending
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an approval state; it lists the states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an approval state (one of pending, approved, executed, suppressed, denied, expired, cancelled, invalidated)")]
pub struct UnknownApprovalState(pub String);

impl std::str::FromStr for ApprovalState {
    type Err = UnknownApprovalState;

    fn from_str(s: &str) -> Result<ApprovalState, UnknownApprovalState> {
        ApprovalState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownApprovalState(s.to_string()))
    }
}

/// Who decided: how they reached salve (`api`, `slack`, `link`, or `salve` itself for
/// expiry, cancellation and invalidation), their id there, and a name to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Actor {
    pub via: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

impl Actor {
    /// salve itself, deciding what nobody did: an expiry, a cancellation, an
    /// invalidation.
    pub fn salve() -> Actor {
        Actor {
            via: "salve".into(),
            id: "salve".into(),
            name: String::new(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() || self.name == self.id {
            write!(f, "{} ({})", self.id, self.via)
        } else {
            write!(f, "{} <{}> ({})", self.name, self.id, self.via)
        }
    }
}

/// An `approval_requested` record: everything a person needs to say yes or no, and
/// what salve needs to act on the yes, rebuilt from the trail alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequest {
    pub id: String,
    /// The `[approvals.NAME]` group whose people may decide.
    pub group: String,
    pub rule: String,
    pub action: Action,
    pub target: Target,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: Params,
    pub fingerprint: Fingerprint,
    /// The decision that asked.
    pub decision_id: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Who may decide, as the group named them when it asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// The channels the request went to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// What policy said before it asked (the checks it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verdict: String,
    /// A hash of the rule's source and of the group's settings when it asked: a reload
    /// that changes either invalidates it.
    pub rule_hash: String,
    pub group_hash: String,
    /// The alert it is for, so that a yes decides it again after a restart.
    pub event: Event,
    /// The signed links sent to the group's `emails`: by address, the SHA-256 (hex) of
    /// that address's token. The tokens themselves are only in the mail.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub links: std::collections::BTreeMap<String, String>,
}

/// A signed link's token and the address it is for, to be mailed once the request it
/// belongs to is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalLink {
    pub approval: String,
    pub email: String,
    pub token: String,
}

/// The SHA-256 of a link's token, as hex: what the trail keeps of it.
pub fn link_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// An `approval_decided` record: the end of `pending` (or of `approved`), by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecided {
    pub id: String,
    /// `approved`, `denied`, `expired`, `cancelled` or `invalidated`.
    pub state: ApprovalState,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Seconds between the request and this decision.
    pub waited_seconds: f64,
    /// This decision's own id: of two decisions on one approval (two replicas, two
    /// people at once), the first in the trail wins and the other is ignored; its
    /// author learns it lost by this id.
    pub decision: String,
}

/// An approval as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalView {
    pub id: String,
    pub state: ApprovalState,
    pub group: String,
    pub rule: String,
    pub action: Action,
    pub target: Target,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: Params,
    pub fingerprint: Fingerprint,
    pub alertname: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The decision that acted on the yes (or held it back), once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}
