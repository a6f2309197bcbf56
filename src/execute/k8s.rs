//! Kubernetes: rollout restart, scale, rollback and eviction, sent as the same API
//! requests `kubectl` sends for them, then the rollout watched until it is done.

use super::{resolve_replicas, ActionContext, Executor};
use crate::config::KubernetesSettings;
use crate::model::{error_chain, Outcome, OutcomeStatus};
use crate::model::{Action, Backend, Intent, K8sKind, Target};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, LabelSelector, ObjectMeta};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Status;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::fmt::Debug;
use std::future::Future;
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

/// Loads the client configuration: `kubernetes.kubeconfig` and `kubernetes.context` when
/// given, else in-cluster (a pod's service account) or the default kubeconfig. Nothing
/// is sent to the API server here.
pub async fn connect(settings: &KubernetesSettings) -> Result<kube::Client, String> {
    let mut config = if settings.context.is_some() || settings.kubeconfig.is_some() {
        let options = KubeConfigOptions {
            context: settings.context.clone(),
            ..Default::default()
        };
        match &settings.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| e.to_string())?
    } else {
        kube::Config::infer().await.map_err(|e| e.to_string())?
    };
    config.connect_timeout = Some(settings.timeout);
    config.read_timeout = Some(settings.timeout);
    config.write_timeout = Some(settings.timeout);
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

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

    async fn client(&self) -> Result<kube::Client, String> {
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
            Verify::Skipped(why) => Outcome {
                outcome: OutcomeStatus::Skipped,
                duration_ms: 0,
                error: Some(why),
                verified: None,
                detail,
            },
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

/// Whether the API server answered without acting and asks to be asked again.
fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => {
            matches!(status.code, 502..=504) || (status.code == 429 && !is_pdb_refusal(status))
        }
        _ => false,
    }
}

fn is_pdb_refusal(status: &Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == DISRUPTION_BUDGET_CAUSE))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// kube's own Display repeats the whole Status; people want code, reason and message.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{} {}: {}", s.code, s.reason, s.message)
        }
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => error_chain(other),
    }
}

/// Every write carries salve as its field manager, so `managedFields` shows who changed it.
fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// The outcome of a verification: ok without an error, failed with one; `verified`
/// says what was seen and `detail.verified_after_ms` when.
fn verdict(mut detail: Value, started: Instant, verified: &str, error: Option<String>) -> Outcome {
    detail["verified_after_ms"] = json!(started.elapsed().as_millis() as u64);
    let mut outcome = match error {
        None => Outcome::ok(detail),
        Some(error) => Outcome::failed(error, detail),
    };
    outcome.verified = Some(verified.to_string());
    outcome
}

/// kubectl's choice for `rollout undo` without `--to-revision`: of the workload's
/// history (`revision` reads each one's number), the one of the second-highest
/// revision. Returns it with the outcome detail that lists the revisions.
fn previous_revision<'a>(
    at: &At<'_>,
    history: &'a [DynamicObject],
    revision: impl Fn(&DynamicObject) -> Option<i64>,
) -> Result<(i64, &'a DynamicObject, Value), Outcome> {
    let mut revisions: Vec<(i64, &DynamicObject)> = history
        .iter()
        .filter_map(|item| Some((revision(item)?, item)))
        .collect();
    revisions.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    let mut detail = at.detail();
    detail["revisions"] = json!(revisions.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    let Some(&(previous, item)) = revisions.get(1) else {
        return Err(Outcome::failed(
            format!("{at} has no previous revision to roll back to (no rollout history)"),
            detail,
        ));
    };
    detail["from_revision"] = json!(revisions[0].0);
    detail["to_revision"] = json!(previous);
    Ok((previous, item, detail))
}

/// The selector as the API's `labelSelector` query parameter, in the order
/// apimachinery prints it (by key), so the request is the one kubectl makes.
pub fn selector_query(selector: &LabelSelector) -> Result<String, String> {
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(format!("unknown selector operator {other:?}")),
        };
        parts.push((e.key.clone(), text));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

/// How far a rollout is, judged as `kubectl rollout status` judges it.
#[derive(Debug, PartialEq, Eq)]
enum Rollout {
    Complete,
    Waiting(String),
    DeadlineExceeded,
}

trait Workload:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    fn rollout(&self) -> Rollout;
    fn paused(&self) -> bool {
        false
    }
}

fn caught_up(meta: &ObjectMeta, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= meta.generation.unwrap_or(0)
}

impl Workload for Deployment {
    fn rollout(&self) -> Rollout {
        let Some(status) = &self.status else {
            return Rollout::Waiting("no status yet".into());
        };
        if !caught_up(&self.metadata, status.observed_generation) {
            return Rollout::Waiting("the controller has not seen the change yet".into());
        }
        let deadline = status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        if deadline {
            return Rollout::DeadlineExceeded;
        }
        let desired = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let updated = status.updated_replicas.unwrap_or(0);
        let replicas = status.replicas.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        if updated < desired {
            Rollout::Waiting(format!("{updated} of {desired} replicas updated"))
        } else if replicas > updated {
            Rollout::Waiting(format!(
                "{} old replicas are pending termination",
                replicas - updated
            ))
        } else if ready < desired || available < desired {
            Rollout::Waiting(format!(
                "{ready} ready and {available} available of {desired}"
            ))
        } else {
            Rollout::Complete
        }
    }

    fn paused(&self) -> bool {
        self.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
    }
}

impl Workload for StatefulSet {
    fn rollout(&self) -> Rollout {
        let Some(status) = &self.status else {
            return Rollout::Waiting("no status yet".into());
        };
        if status.observed_generation.is_none()
            || !caught_up(&self.metadata, status.observed_generation)
        {
            return Rollout::Waiting("the controller has not seen the change yet".into());
        }
        let desired = self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = status.ready_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);
        let partition = self
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        if ready < desired || available < desired {
            Rollout::Waiting(format!(
                "{ready} ready and {available} available of {desired}"
            ))
        } else if partition > 0 {
            // A partitioned rollout is complete once the pods above the partition are new.
            if updated < desired - partition {
                Rollout::Waiting(format!(
                    "{updated} of {} replicas above the partition updated",
                    desired - partition
                ))
            } else {
                Rollout::Complete
            }
        } else if status.update_revision != status.current_revision {
            Rollout::Waiting(format!("{updated} of {desired} replicas updated"))
        } else {
            Rollout::Complete
        }
    }
}

impl Workload for DaemonSet {
    fn rollout(&self) -> Rollout {
        let Some(status) = &self.status else {
            return Rollout::Waiting("no status yet".into());
        };
        if !caught_up(&self.metadata, status.observed_generation) {
            return Rollout::Waiting("the controller has not seen the change yet".into());
        }
        let desired = status.desired_number_scheduled;
        let updated = status.updated_number_scheduled.unwrap_or(0);
        let available = status.number_available.unwrap_or(0);
        if updated < desired {
            Rollout::Waiting(format!("{updated} of {desired} pods updated"))
        } else if available < desired {
            Rollout::Waiting(format!("{available} of {desired} pods available"))
        } else {
            Rollout::Complete
        }
    }
}

impl KubernetesExecutor {
    /// Calls the API, again after a wait while it answers 429 (not a disruption budget)
    /// or 502-504: then nothing was done. Other failures, and no answer at all (which
    /// may have been acted on), are final.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let mut wait = self.retry_backoff;
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if attempt < ATTEMPTS && is_transient(&e) => {
                    tracing::debug!(error = %describe(&e), attempt, "Kubernetes API busy; trying again");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

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

    /// `kubectl rollout restart`: a strategic merge patch that stamps the pod template
    /// with the time, so the controller rolls every pod.
    async fn restart<K: Workload>(&self, client: &kube::Client, at: &At<'_>) -> Acted {
        let api: Api<K> = Api::namespaced(client.clone(), at.namespace);
        let current = self.get(&api, at).await?;
        if current.paused() {
            return Err(Outcome::failed(
                format!("{at} is paused; salve does not restart a paused rollout (kubectl rollout resume first)"),
                at.detail(),
            ));
        }
        let stamp = (self.clock)().to_rfc3339_opts(SecondsFormat::Secs, true);
        let patch = json!({
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: stamp } } } }
        });
        let params = patch_params();
        let patch = Patch::Strategic(patch);
        self.call(|| api.patch(at.name, &params, &patch))
            .await
            .map_err(|e| Outcome::failed(format!("restart {at}: {}", describe(&e)), at.detail()))?;
        let mut detail = at.detail();
        detail["restarted_at"] = json!(stamp);
        Ok((detail, Verify::Rollout))
    }

    /// `kubectl scale --current-replicas=N --replicas=M`: read the scale subresource,
    /// then write it back with the new count and the resourceVersion read, so a change
    /// made in between is a conflict rather than overwritten.
    async fn scale<K: Workload>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        intent: &Intent,
    ) -> Acted {
        let api: Api<K> = Api::namespaced(client.clone(), at.namespace);
        let mut scale: Scale = self.call(|| api.get_scale(at.name)).await.map_err(|e| {
            let error = if is_not_found(&e) {
                format!("{at} not found")
            } else {
                format!("cannot read the scale of {at}: {}", describe(&e))
            };
            Outcome::failed(error, at.detail())
        })?;
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let bounded = self.bounded(intent);
        let wanted = resolve_replicas(&bounded, i64::from(current))
            .map_err(|e| Outcome::failed(e, at.detail()))?;
        let wanted = i32::try_from(wanted)
            .map_err(|_| Outcome::failed(format!("{wanted} replicas is too many"), at.detail()))?;
        let mut detail = at.detail();
        detail["replicas_before"] = json!(current);
        detail["replicas"] = json!(wanted);
        for key in ["min", "max"] {
            if let Some(v) = bounded.params.get(key) {
                detail[key] = v.clone();
            }
        }
        if wanted == current {
            return Ok((detail, Verify::Rollout));
        }
        scale.spec.get_or_insert_with(Default::default).replicas = Some(wanted);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        self.call(|| api.replace_scale(at.name, &params, &scale))
            .await
            .map_err(|e| {
                Outcome::failed(format!("scale {at}: {}", describe(&e)), detail.clone())
            })?;
        Ok((detail, Verify::Rollout))
    }

    /// The intent with the config's bounds folded in: a rule may narrow them, never widen.
    fn bounded(&self, intent: &Intent) -> Intent {
        let mut bounded = intent.clone();
        let rule_min = intent.params.get("min").and_then(Value::as_i64);
        let rule_max = intent.params.get("max").and_then(Value::as_i64);
        let min = match (rule_min, self.settings.min_replicas) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let max = match (rule_max, self.settings.max_replicas) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(min) = min {
            bounded.params.insert("min".into(), json!(min));
        }
        if let Some(max) = max {
            bounded.params.insert("max".into(), json!(max));
        }
        bounded
    }

    /// `kubectl rollout undo`: find the ReplicaSets the Deployment controls, take the one
    /// of the revision before the newest, and put its pod template (without the
    /// pod-template-hash label) and annotations back with a JSON patch. Objects are
    /// handled as raw JSON so that fields newer than salve's API types survive.
    async fn rollback(&self, client: &kube::Client, at: &At<'_>) -> Acted {
        let (deployments, deployment) = self.get_raw::<Deployment>(client, at).await?;
        let spec = deployment.data.get("spec").cloned().unwrap_or(Value::Null);
        if spec.get("paused").and_then(Value::as_bool) == Some(true) {
            return Err(Outcome::failed(
                format!("{at} is paused; kubectl refuses to roll back a paused deployment, and so does salve"),
                at.detail(),
            ));
        }
        let replica_sets = self
            .controlled::<Deployment, ReplicaSet>(client, at, &deployment, "ReplicaSets")
            .await?;
        let (previous, rs, mut detail) = previous_revision(at, &replica_sets, |rs| {
            rs.metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()
        })?;
        detail["replica_set"] = json!(rs.metadata.name);
        let mut template = rs
            .data
            .get("spec")
            .and_then(|s| s.get("template"))
            .cloned()
            .ok_or_else(|| {
                Outcome::failed(
                    format!("{at}: ReplicaSet of revision {previous} has no pod template"),
                    detail.clone(),
                )
            })?;
        if let Some(labels) = template
            .get_mut("metadata")
            .and_then(|m| m.get_mut("labels"))
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        let mut current = spec.get("template").cloned().unwrap_or(Value::Null);
        if let Some(labels) = current
            .get_mut("metadata")
            .and_then(|m| m.get_mut("labels"))
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        if current == template {
            return Ok((
                detail,
                Verify::Skipped(format!(
                    "{at}: the current template already matches revision {previous}"
                )),
            ));
        }
        let mut annotations = serde_json::Map::new();
        for (k, v) in deployment.metadata.annotations.iter().flatten() {
            if ANNOTATIONS_KEPT_ON_UNDO.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
        for (k, v) in rs.metadata.annotations.iter().flatten() {
            if !ANNOTATIONS_KEPT_ON_UNDO.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
        let patch: json_patch::Patch = serde_json::from_value(json!([
            { "op": "replace", "path": "/spec/template", "value": template },
            { "op": "replace", "path": "/metadata/annotations", "value": annotations },
        ]))
        .map_err(|e| Outcome::failed(format!("{at}: {e}"), detail.clone()))?;
        self.roll_back_to(&deployments, at, previous, Patch::<()>::Json(patch), detail)
            .await
    }

    /// Sends the patch that puts revision `previous` back; the rollout is verified after.
    async fn roll_back_to<P: serde::Serialize + Debug>(
        &self,
        api: &Api<DynamicObject>,
        at: &At<'_>,
        previous: i64,
        patch: Patch<P>,
        detail: Value,
    ) -> Acted {
        let params = patch_params();
        match self.call(|| api.patch(at.name, &params, &patch)).await {
            Ok(_) => Ok((detail, Verify::Rollout)),
            Err(e) => Err(Outcome::failed(
                format!("rollback {at} to revision {previous}: {}", describe(&e)),
                detail,
            )),
        }
    }

    /// Reads a workload as raw JSON, so that fields newer than salve's API types survive
    /// a patch built from it.
    async fn get_raw<K: Workload>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
    ) -> Result<(Api<DynamicObject>, DynamicObject), Outcome> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), at.namespace, &ApiResource::erase::<K>(&()));
        let object = self.call(|| api.get(at.name)).await.map_err(|e| {
            let error = if is_not_found(&e) {
                format!("{at} not found")
            } else {
                format!("cannot read {at}: {}", describe(&e))
            };
            Outcome::failed(error, at.detail())
        })?;
        Ok((api, object))
    }

    /// The `H` objects the workload's selector finds and the workload controls, as
    /// kubectl finds rollout history: a Deployment's ReplicaSets, a StatefulSet's or
    /// DaemonSet's ControllerRevisions. `plural` names them in errors.
    async fn controlled<K: Workload, H>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        workload: &DynamicObject,
        plural: &str,
    ) -> Result<Vec<DynamicObject>, Outcome>
    where
        H: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        let selector: LabelSelector = workload
            .data
            .get("spec")
            .and_then(|s| s.get("selector"))
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Outcome::failed(format!("{at}: unreadable selector: {e}"), at.detail()))?
            .unwrap_or_default();
        let selector = selector_query(&selector)
            .map_err(|e| Outcome::failed(format!("{at}: {e}"), at.detail()))?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), at.namespace, &ApiResource::erase::<H>(&()));
        let params = ListParams::default().labels(&selector);
        let list = self.call(|| api.list(&params)).await.map_err(|e| {
            Outcome::failed(
                format!("cannot list the {plural} of {at}: {}", describe(&e)),
                at.detail(),
            )
        })?;
        let uid = workload.metadata.uid.clone().unwrap_or_default();
        Ok(list
            .items
            .into_iter()
            .filter(|item| {
                item.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid && o.kind == K::kind(&()))
            })
            .collect())
    }

    /// `kubectl rollout undo` of a StatefulSet or DaemonSet: its ControllerRevisions
    /// hold each revision's pod template as a strategic merge patch; the one before the
    /// newest is sent back as it is. A template already equal to it is a skipped
    /// rollback, as kubectl's.
    async fn rollback_revision<K: Workload>(&self, client: &kube::Client, at: &At<'_>) -> Acted {
        let (api, workload) = self.get_raw::<K>(client, at).await?;
        let history = self
            .controlled::<K, ControllerRevision>(client, at, &workload, "ControllerRevisions")
            .await?;
        let (previous, revision, mut detail) =
            previous_revision(at, &history, |cr| cr.data.get("revision")?.as_i64())?;
        detail["controller_revision"] = json!(revision.metadata.name);
        let patch = revision.data.get("data").cloned().ok_or_else(|| {
            Outcome::failed(
                format!("{at}: ControllerRevision of revision {previous} holds no data"),
                detail.clone(),
            )
        })?;
        let mut template = workload
            .data
            .get("spec")
            .and_then(|s| s.get("template"))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(template) = template.as_object_mut() {
            template.insert("$patch".into(), json!("replace"));
        }
        if json!({ "spec": { "template": template } }) == patch {
            return Ok((
                detail,
                Verify::Skipped(format!(
                    "{at}: the current template already matches revision {previous}"
                )),
            ));
        }
        self.roll_back_to(&api, at, previous, Patch::Strategic(patch), detail)
            .await
    }

    /// A pod "restart" is an eviction through the Eviction API, the way `kubectl drain`
    /// removes pods, so PodDisruptionBudgets are honoured. A refusal is the outcome
    /// `blocked_by_pdb`; salve never falls back to deleting the pod.
    async fn evict(&self, client: &kube::Client, at: &At<'_>) -> Acted {
        let pods: Api<Pod> = Api::namespaced(client.clone(), at.namespace);
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(at.name.to_string()),
                namespace: Some(at.namespace.to_string()),
                ..Default::default()
            },
            delete_options: Some(DeleteOptions::default()),
        };
        let params = PostParams::default();
        let result: Result<Status, kube::Error> = self
            .call(|| pods.create_subresource("eviction", at.name, &params, &eviction))
            .await;
        match result {
            Ok(_) => Ok((at.detail(), Verify::Evicted)),
            Err(kube::Error::Api(status)) if is_pdb_refusal(&status) => {
                let mut detail = at.detail();
                detail["status"] = json!(status.code);
                detail["reason"] = json!(status.reason);
                let causes: Vec<&str> = status
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .filter(|c| c.reason == DISRUPTION_BUDGET_CAUSE)
                    .map(|c| c.message.as_str())
                    .collect();
                detail["disruption_budget"] = json!(causes.join("; "));
                let mut outcome = Outcome::failed(
                    format!("eviction of {at} refused: {}", status.message),
                    detail,
                );
                outcome.verified = Some("blocked_by_pdb".to_string());
                Err(outcome)
            }
            Err(e) if is_not_found(&e) => Err(Outcome::failed(
                format!("{at} not found (already gone?)"),
                at.detail(),
            )),
            Err(e) => Err(Outcome::failed(
                format!("evict {at}: {}", describe(&e)),
                at.detail(),
            )),
        }
    }

    async fn verify_rollout(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        started: Instant,
        wait: Duration,
        detail: Value,
    ) -> Outcome {
        match at.kind {
            K8sKind::Deployment => {
                self.watch::<Deployment>(client, at, started, wait, detail)
                    .await
            }
            K8sKind::StatefulSet => {
                self.watch::<StatefulSet>(client, at, started, wait, detail)
                    .await
            }
            K8sKind::DaemonSet => {
                self.watch::<DaemonSet>(client, at, started, wait, detail)
                    .await
            }
            K8sKind::Pod => Outcome::ok(detail),
        }
    }

    /// After an eviction: waits until the pod is gone, as `kubectl drain` waits for
    /// deletion. Gone is a 404, or a pod of that name not being deleted (a StatefulSet's
    /// replacement). A pod still terminating at the deadline (a finalizer, a long grace
    /// period) is a failure: the eviction was accepted but nothing has moved yet.
    async fn wait_gone(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        started: Instant,
        wait: Duration,
        mut detail: Value,
    ) -> Outcome {
        let pods: Api<Pod> = Api::namespaced(client.clone(), at.namespace);
        let deadline = started + wait;
        loop {
            let terminating = match self.call(|| pods.get(at.name)).await {
                Err(e) if is_not_found(&e) => None,
                Err(e) => {
                    return Outcome::failed(
                        format!("evicted {at}, then cannot read it: {}", describe(&e)),
                        detail,
                    )
                }
                Ok(pod) if pod.metadata.deletion_timestamp.is_none() => None,
                Ok(pod) => Some(pod),
            };
            let Some(pod) = terminating else {
                return verdict(detail, started, "evicted", None);
            };
            if Instant::now() >= deadline {
                let finalizers = pod.metadata.finalizers.unwrap_or_default();
                if !finalizers.is_empty() {
                    detail["finalizers"] = json!(finalizers);
                }
                let error = format!(
                    "{at} was evicted but is still terminating after {}",
                    crate::model::rate::format_duration(wait)
                );
                return verdict(detail, started, "still_terminating", Some(error));
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    /// Reads the workload until its rollout is complete, its progress deadline passed,
    /// or `wait` is over. The outcome's `verified` says which.
    async fn watch<K: Workload>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        started: Instant,
        wait: Duration,
        detail: Value,
    ) -> Outcome {
        let api: Api<K> = Api::namespaced(client.clone(), at.namespace);
        let deadline = started + wait;
        loop {
            let state = match self.get(&api, at).await {
                Ok(object) => object.rollout(),
                Err(outcome) => return outcome,
            };
            let (verified, error) = match state {
                Rollout::Complete => ("complete", None),
                Rollout::DeadlineExceeded => (
                    "progress_deadline_exceeded",
                    Some(format!("{at}: the rollout passed its progress deadline")),
                ),
                Rollout::Waiting(why) if Instant::now() >= deadline => (
                    "timeout",
                    Some(format!(
                        "{at}: the rollout was not complete within {}: {why}",
                        crate::model::rate::format_duration(wait)
                    )),
                ),
                Rollout::Waiting(_) => {
                    tokio::time::sleep(self.poll_every).await;
                    continue;
                }
            };
            return verdict(detail, started, verified, error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    #[test]
    fn selectors_print_sorted_by_key_as_apimachinery_prints_them() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([
                ("tier".to_string(), "web".to_string()),
                ("app".to_string(), "checkout".to_string()),
            ])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into(), "canary".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_query(&selector),
            Ok("app=checkout,env in (canary,prod),!legacy,tier=web".to_string())
        );
    }

    fn deployment(status: Value) -> Deployment {
        let value = json!({
            "metadata": { "name": "checkout", "generation": 4 },
            "spec": { "replicas": 3, "selector": {}, "template": {} },
            "status": status,
        });
        match serde_json::from_value(value) {
            Ok(d) => d,
            Err(e) => panic!("test deployment: {e}"),
        }
    }

    #[test]
    fn deployment_rollout_is_judged_as_kubectl_rollout_status_does() {
        let done = json!({ "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3 });
        assert_eq!(deployment(done).rollout(), Rollout::Complete);
        let stale = json!({ "observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3 });
        assert!(matches!(deployment(stale).rollout(), Rollout::Waiting(_)));
        let old_pods = json!({ "observedGeneration": 4, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3 });
        assert!(matches!(
            deployment(old_pods).rollout(),
            Rollout::Waiting(_)
        ));
        let stuck = json!({ "observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "conditions": [
            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }
        ]});
        assert_eq!(deployment(stuck).rollout(), Rollout::DeadlineExceeded);
    }
}
