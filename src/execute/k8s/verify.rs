//! After the API accepted a change: waiting for the rollout, or for an evicted pod
//! to be gone, and the outcome that says what was seen.

use super::*;
use crate::model::K8sKind;
use crate::model::Outcome;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The outcome of a verification: ok without an error, failed with one; `verified`
/// says what was seen and `detail.verified_after_ms` when.
pub(super) fn verdict(
    mut detail: Value,
    started: Instant,
    verified: &str,
    error: Option<String>,
) -> Outcome {
    detail["verified_after_ms"] = json!(started.elapsed().as_millis() as u64);
    let mut outcome = match error {
        None => Outcome::ok(detail),
        Some(error) => Outcome::failed(error, detail),
    };
    outcome.verified = Some(verified.to_string());
    outcome
}

impl KubernetesExecutor {
    pub(super) async fn verify_rollout(
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
    pub(super) async fn wait_gone(
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
    pub(super) async fn watch<K: Workload>(
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
