//! A pod's restart: an eviction that respects PodDisruptionBudgets.

use super::*;
use crate::model::Outcome;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::core::Status;
use serde_json::json;

impl KubernetesExecutor {
    /// A pod "restart" is an eviction through the Eviction API, the way `kubectl drain`
    /// removes pods, so PodDisruptionBudgets are honoured. A refusal is the outcome
    /// `blocked_by_pdb`; salve never falls back to deleting the pod.
    pub(super) async fn evict(&self, client: &kube::Client, at: &At<'_>) -> Acted {
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
}
