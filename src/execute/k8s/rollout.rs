//! How far a rollout is, judged as `kubectl rollout status` judges it.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// How far a rollout is, judged as `kubectl rollout status` judges it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Rollout {
    Complete,
    Waiting(String),
    DeadlineExceeded,
}

pub(super) trait Workload:
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

pub(super) fn caught_up(meta: &ObjectMeta, observed: Option<i64>) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
