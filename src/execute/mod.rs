//! Executors: the only code that changes anything in the world.

mod docker;
mod exec;
mod k8s;
mod notify;
mod replicas;

pub use docker::{connect as connect_docker, DockerConfig, DockerExecutor, DockerSettings, OptIn};
pub use exec::{ExecCommand, ExecConfig, ExecExecutor};
pub use k8s::{
    connect as connect_kubernetes, KubernetesConfig, KubernetesExecutor, KubernetesSettings,
};
pub use notify::{sign as notify_signature, NotifyExecutor, WebhookDocument, SIGNATURE_HEADER};
pub use notify::{NotifyChannel, NotifyConfig, NotifyKind, NotifyType, SmtpTls};
pub use replicas::resolve_replicas;

use crate::event::Event;
use crate::model::{Backend, Decision, Intent, Outcome, Report};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
