//! Kubernetes: rollout restart, scale, rollback and eviction, sent as the same API
//! requests `kubectl` sends for them, then the rollout watched until it is done. Files
//! by job: `settings`, `client` (connection, errors, retries), `rollout` (judging a
//! rollout as kubectl does), `restart` (restart and scale), `rollback`, `evict`,
//! `verify`.

mod client;
mod evict;
mod restart;
mod rollback;
mod rollout;
mod settings;
mod verify;

pub use client::connect;
pub use settings::{KubernetesConfig, KubernetesSettings};

use client::*;
use rollout::*;

use crate::execute::{ActionContext, ExecuteError, Executor};
use crate::model::Outcome;
use crate::model::{Action, Backend, Intent, K8sKind, Target};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::Api;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Recorded as the field manager of every change, so `managedFields` shows salve made it.
pub const FIELD_MANAGER: &str = "salve";
/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
const REVISION: &str = "deployment.kubernetes.io/revision";
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Deployment annotations `kubectl rollout undo` keeps from the Deployment rather than
/// copying from the ReplicaSet it rolls back to.
const ANNOTATIONS_KEPT_ON_UNDO: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];
/// The Status cause the API server gives when a PodDisruptionBudget refuses an eviction.
const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
const ATTEMPTS: u32 = 3;

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct KubernetesExecutor {
    settings: KubernetesSettings,
    /// Set on first use and kept; a failed load is tried again at the next action, so a
    /// kubeconfig mounted after start is picked up.
    client: tokio::sync::OnceCell<kube::Client>,
    poll_every: Duration,
    retry_backoff: Duration,
    clock: Clock,
}

impl KubernetesExecutor {
    /// Connects on first use: salve runs (and its other backends work) where there is
    /// no cluster configuration at all.
    pub fn new(settings: KubernetesSettings) -> KubernetesExecutor {
        KubernetesExecutor {
            settings,
            client: tokio::sync::OnceCell::new(),
            poll_every: Duration::from_secs(2),
            retry_backoff: Duration::from_millis(500),
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_client(client: kube::Client, settings: KubernetesSettings) -> KubernetesExecutor {
        let executor = KubernetesExecutor::new(settings);
        let _ = executor.client.set(client);
        executor
    }

    /// How often the rollout is looked at while verifying, and the first retry's wait.
    pub fn poll_every(mut self, every: Duration) -> KubernetesExecutor {
        self.poll_every = every;
        self.retry_backoff = every;
        self
    }

    pub fn clock(mut self, clock: Clock) -> KubernetesExecutor {
        self.clock = clock;
        self
    }

    async fn client(&self) -> Result<kube::Client, ExecuteError> {
        self.client
            .get_or_try_init(|| connect(&self.settings))
            .await
            .cloned()
    }
}

#[async_trait]
impl Executor for KubernetesExecutor {
    fn backend(&self) -> Backend {
        Backend::Kubernetes
    }

    async fn execute(&self, intent: &Intent, _context: &ActionContext) -> Outcome {
        let Target::K8s {
            namespace,
            kind,
            name,
        } = &intent.target
        else {
            return Outcome::failed(
                format!("the Kubernetes executor cannot act on {}", intent.target),
                Value::Null,
            );
        };
        let at = At {
            namespace,
            kind: *kind,
            name,
        };
        let client = match self.client().await {
            Ok(c) => c,
            Err(why) => {
                return Outcome::failed(format!("no Kubernetes client: {why}"), at.detail())
            }
        };
        let started = Instant::now();
        let acted = tokio::time::timeout(self.settings.timeout, self.act(&client, &at, intent));
        let (mut detail, verify) = match acted.await {
            Ok(Ok(done)) => done,
            Ok(Err(outcome)) => return outcome,
            Err(_) => {
                return Outcome::failed(
                    format!(
                        "{} {at}: no answer from the API server within {}",
                        intent.action,
                        crate::model::rate::format_duration(self.settings.timeout)
                    ),
                    at.detail(),
                )
            }
        };
        detail["api_call_ms"] = json!(started.elapsed().as_millis() as u64);
        let wait = match intent.params.get("timeout").and_then(Value::as_u64) {
            Some(seconds) => Duration::from_secs(seconds),
            None => self.settings.verify_timeout,
        };
        match verify {
            Verify::Rollout if !wait.is_zero() => {
                self.verify_rollout(&client, &at, started, wait, detail)
                    .await
            }
            Verify::Rollout => Outcome::ok(detail),
            Verify::Evicted if !wait.is_zero() => {
                self.wait_gone(&client, &at, started, wait, detail).await
            }
            Verify::Evicted => {
                let mut outcome = Outcome::ok(detail);
                outcome.verified = Some("evicted".to_string());
                outcome
            }
            Verify::Skipped(why) => Outcome::skipped(why, None, detail),
        }
    }
}

/// The object an action is on, for messages and paths.
struct At<'a> {
    namespace: &'a str,
    kind: K8sKind,
    name: &'a str,
}

impl At<'_> {
    fn detail(&self) -> Value {
        json!({ "namespace": self.namespace, "kind": self.kind.as_str(), "name": self.name })
    }
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// What is left to do once the API accepted the change.
enum Verify {
    Rollout,
    Evicted,
    Skipped(String),
}

type Acted = Result<(Value, Verify), Outcome>;

impl KubernetesExecutor {
    async fn act(&self, client: &kube::Client, at: &At<'_>, intent: &Intent) -> Acted {
        match (at.kind, intent.action) {
            (K8sKind::Deployment, Action::Restart) => self.restart::<Deployment>(client, at).await,
            (K8sKind::StatefulSet, Action::Restart) => {
                self.restart::<StatefulSet>(client, at).await
            }
            (K8sKind::DaemonSet, Action::Restart) => self.restart::<DaemonSet>(client, at).await,
            (K8sKind::Deployment, Action::Scale) => {
                self.scale::<Deployment>(client, at, intent).await
            }
            (K8sKind::StatefulSet, Action::Scale) => {
                self.scale::<StatefulSet>(client, at, intent).await
            }
            (K8sKind::Deployment, Action::Rollback) => self.rollback(client, at).await,
            (K8sKind::Pod, Action::Restart) => self.evict(client, at).await,
            (K8sKind::DaemonSet, Action::Scale) => Err(Outcome::failed(
                format!("{at}: a DaemonSet runs one pod per node and cannot be scaled"),
                at.detail(),
            )),
            (K8sKind::StatefulSet, Action::Rollback) => {
                self.rollback_revision::<StatefulSet>(client, at).await
            }
            (K8sKind::DaemonSet, Action::Rollback) => {
                self.rollback_revision::<DaemonSet>(client, at).await
            }
            (K8sKind::Pod, _) => Err(Outcome::failed(
                format!(
                    "{} is not an action on a pod; restart evicts it",
                    intent.action
                ),
                at.detail(),
            )),
            (_, other) => Err(Outcome::failed(
                format!(
                    "{other} is not an action on a {} (restart, scale, rollback)",
                    at.kind.as_str()
                ),
                at.detail(),
            )),
        }
    }

    async fn get<K: Workload>(&self, api: &Api<K>, at: &At<'_>) -> Result<K, Outcome> {
        self.call(|| api.get(at.name)).await.map_err(|e| {
            let error = if is_not_found(&e) {
                format!("{at} not found")
            } else {
                format!("cannot read {at}: {}", describe(&e))
            };
            Outcome::failed(error, at.detail())
        })
    }
}
