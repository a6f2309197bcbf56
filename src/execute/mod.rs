//! Executors: the only code that changes anything in the world.

mod docker;
mod error;
mod exec;
mod k8s;
mod notify;
mod replicas;
mod systemd;

pub use docker::{connect as connect_docker, DockerConfig, DockerExecutor, DockerSettings, OptIn};
pub use error::{ExecuteError, ReplicaError};
pub use exec::{ExecCommand, ExecConfig, ExecExecutor};
pub use k8s::{
    connect as connect_kubernetes, KubernetesConfig, KubernetesExecutor, KubernetesSettings,
};
pub use notify::{
    sign as notify_signature, NotifyExecutor, Paces, WebhookDocument, SIGNATURE_HEADER,
};
pub use notify::{
    slack_ephemeral, ApprovalLinks, ApprovalMessenger, ApprovalNotice, APPROVE_ACTION, DENY_ACTION,
    LINK_ACTIONS,
};
pub use notify::{NotifyChannel, NotifyConfig, NotifyKind, NotifyType, SmtpTls};
pub use replicas::resolve_replicas;
pub use systemd::{SystemdConfig, SystemdExecutor, SystemdSettings, SYSTEM_BUS};

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

/// One backend (Docker, Kubernetes, systemd, exec, notifications). Implementations bound their
/// own time and retries; the dispatcher serializes actions per target.
#[async_trait]
pub trait Executor: Send + Sync {
    fn backend(&self) -> Backend;
    async fn execute(&self, intent: &Intent, context: &ActionContext) -> Outcome;
}

/// One action at a time per target, shared by every dispatcher an engine builds: a
/// reload, or the Docker engine (re)connecting, builds a new dispatcher while actions
/// started by the old one still run. A target's lock is dropped with its last holder,
/// so the map holds only targets acted on now.
#[derive(Clone, Default)]
pub struct TargetLocks(Arc<parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

/// A target held: released, and its lock forgotten if nobody waits for it, on drop.
pub struct TargetHeld {
    locks: TargetLocks,
    target: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl TargetLocks {
    /// Waits until no other action runs on `target`, then holds it.
    pub async fn hold(&self, target: String) -> TargetHeld {
        let lock = self.0.lock().entry(target.clone()).or_default().clone();
        let guard = lock.lock_owned().await;
        TargetHeld {
            locks: self.clone(),
            target,
            guard: Some(guard),
        }
    }

    /// Targets with an action running or waiting.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for TargetHeld {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.0.lock();
        // A waiter took its clone under this map lock, so 1 means nobody waits.
        if locks
            .get(&self.target)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.target);
        }
    }
}

/// Routes intents to their executor, one action at a time per target.
#[derive(Clone, Default)]
pub struct Dispatcher {
    executors: HashMap<Backend, Arc<dyn Executor>>,
    target_locks: TargetLocks,
}

impl Dispatcher {
    /// A dispatcher whose actions take turns with those of every other dispatcher
    /// given the same `locks`.
    pub fn new(locks: TargetLocks) -> Dispatcher {
        Dispatcher {
            executors: HashMap::new(),
            target_locks: locks,
        }
    }

    /// The locks it shares, for the dispatcher that replaces it.
    pub fn target_locks(&self) -> &TargetLocks {
        &self.target_locks
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
        let _serialized = self.target_locks.hold(intent.target.to_string()).await;
        let mut outcome = executor.execute(intent, context).await;
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_target_held_by_one_dispatcher_waits_for_the_next_and_is_forgotten_after() {
        let locks = TargetLocks::default();
        let first = locks.hold("exec:slow".into()).await;
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.hold("exec:slow".into()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a second action ran while the first held its target"
        );
        drop(first);
        let second = waiting.await.expect("the waiter ends");
        assert_eq!(locks.len(), 1);
        drop(second);
        assert!(locks.is_empty(), "a released target's lock is kept");
    }
}
