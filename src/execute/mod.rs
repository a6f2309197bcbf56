//! Executors: the only code that changes anything in the world.

mod docker;
mod exec;
mod k8s;
mod notify;

pub use docker::{connect as connect_docker, resolve_replicas, DockerExecutor};
pub use exec::ExecExecutor;
pub use k8s::{connect as connect_kubernetes, KubernetesExecutor};
pub use notify::{
    check_template, has_template_syntax, sign as notify_signature, NotifyExecutor, WebhookDocument,
    SIGNATURE_HEADER,
};

use crate::config::OutcomeTrigger;
use crate::event::Event;
use crate::policy::Decision;
use crate::rules::{Backend, Intent};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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

/// What an executor did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    pub outcome: OutcomeStatus,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
            verified: None,
            detail,
        }
    }

    pub fn failed(error: impl Into<String>, detail: serde_json::Value) -> Outcome {
        Outcome {
            outcome: OutcomeStatus::Failed,
            duration_ms: 0,
            error: Some(error.into()),
            verified: None,
            detail,
        }
    }

    pub fn is_failure(&self) -> bool {
        self.outcome == OutcomeStatus::Failed
    }
}

/// Why an action runs: the decision that allowed it and the event behind it. Executors
/// that change things need only the intent; those that tell people (notifications)
/// say what happened and why.
#[derive(Debug, Clone, Default)]
pub struct ActionContext {
    pub decision: Option<Decision>,
    pub event: Option<Arc<Event>>,
    /// What else the same rule decided about the same event, so a message can say
    /// what salve did besides telling.
    pub related: Vec<Decision>,
    /// For an outcome notification (`[[on_outcome]]`): the action it reports on.
    pub report: Option<Report>,
}

/// The action an outcome notification reports on, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// `failed`, or `circuit_open` when this failure opened the action's breaker.
    pub when: OutcomeTrigger,
    pub decision: Decision,
    pub outcome: Outcome,
}

/// One backend (Docker, Kubernetes, exec, notifications). Implementations bound their
/// own time and retries; the dispatcher serializes actions per target.
#[async_trait]
pub trait Executor: Send + Sync {
    fn backend(&self) -> Backend;
    async fn execute(&self, intent: &Intent, context: &ActionContext) -> Outcome;
}

/// Routes intents to their executor, one action at a time per target.
#[derive(Clone, Default)]
pub struct Dispatcher {
    executors: HashMap<Backend, Arc<dyn Executor>>,
    target_locks: Arc<parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Dispatcher {
    pub fn new() -> Dispatcher {
        Dispatcher::default()
    }

    pub fn register(&mut self, executor: Arc<dyn Executor>) {
        self.executors.insert(executor.backend(), executor);
    }

    pub async fn run(&self, intent: &Intent, context: &ActionContext) -> Outcome {
        let started = Instant::now();
        let backend = intent.target.backend();
        let Some(executor) = self.executors.get(&backend).cloned() else {
            let mut outcome = Outcome::failed(
                format!("no executor configured for {}", backend.as_str()),
                serde_json::Value::Null,
            );
            outcome.duration_ms = started.elapsed().as_millis() as u64;
            return outcome;
        };
        // `after("10s")`: the wait counts in the duration; the decision was recorded before it.
        if let Some(ms) = intent
            .params
            .get("delay_ms")
            .and_then(serde_json::Value::as_u64)
        {
            tokio::time::sleep(std::time::Duration::from_millis(ms.min(15 * 60 * 1000))).await;
        }
        let lock = {
            let mut locks = self.target_locks.lock();
            locks.entry(intent.target.to_string()).or_default().clone()
        };
        let _serialized = lock.lock().await;
        let mut outcome = executor.execute(intent, context).await;
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        outcome
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
