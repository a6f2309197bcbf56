//! The vocabulary every stage shares: what a rule asks for (Intent, Action, Target),
//! what policy answers (Decision, Reason), what an executor did (Outcome), durations
//! and rates as people write them, maintenance windows, and errors with their causes.
//! A leaf: it imports only other leaves.

mod approval;
mod command;
mod decision;
mod error;
mod history;
mod intent;
mod maintenance;
mod outcome;
pub mod rate;
mod secret;
mod setting;

pub use approval::{
    link_hash, Actor, ApprovalDecided, ApprovalLink, ApprovalRequest, ApprovalState, ApprovalView,
    UnknownApprovalState, APPROVAL_GROUP, APPROVAL_TTL_MS, MAX_APPROVAL_TTL,
};
pub use command::named_command;
pub use decision::{Decision, Reason, Verdict, DRY_RUN_BY_SALVE};
pub use error::error_chain;
pub use history::{History, NoHistory};
pub use intent::{
    Action, Backend, Intent, K8sKind, Params, Target, TargetParseError, UnknownAction,
};
pub use maintenance::{MaintenanceWindow, NewMaintenanceWindow};
pub use outcome::{Outcome, OutcomeStatus, OutcomeTrigger, Report, SkipReason};
pub use rate::{
    earlier, format_duration, later, parse_duration, time_or_ago, HumanDuration, RateForm,
    RateLimit,
};
pub use secret::{read_secret, same_secret, Secret, SecretError};
pub use setting::{secret_setting, InvalidSetting};
