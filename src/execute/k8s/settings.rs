//! `[kubernetes]`: how salve reaches the API server and the bounds it keeps to.

use crate::model::{HumanDuration, InvalidSetting};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How salve reaches the Kubernetes API. Without any of it: in-cluster config in a pod,
/// else the kubeconfig's current context; none at all only fails Kubernetes actions.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The kubeconfig context to use. Default: the file's current context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The kubeconfig file. Default: `KUBECONFIG`, else `~/.kube/config`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Bound on the API requests of one action (before verification). Default `30s`.
    pub timeout: HumanDuration,
    /// How long to watch a rollout after restart, scale or rollback before the outcome
    /// says `timeout`; a rule's `.timeout(seconds)` overrides it. Default `5m`.
    pub verify_timeout: HumanDuration,
    /// `scale` never goes below this, whatever the rule says. Default 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// `scale` never goes above this, whatever the rule says. Default: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
}

impl Default for KubernetesConfig {
    fn default() -> KubernetesConfig {
        KubernetesConfig {
            context: None,
            kubeconfig: None,
            timeout: HumanDuration::from_secs(30),
            verify_timeout: HumanDuration::from_secs(5 * 60),
            min_replicas: None,
            max_replicas: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct KubernetesSettings {
    pub context: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub timeout: Duration,
    pub verify_timeout: Duration,
    pub min_replicas: Option<i64>,
    pub max_replicas: Option<i64>,
}

impl Default for KubernetesSettings {
    fn default() -> KubernetesSettings {
        let defaults = KubernetesConfig::default();
        KubernetesSettings {
            context: None,
            kubeconfig: None,
            timeout: defaults.timeout.get(),
            verify_timeout: defaults.verify_timeout.get(),
            min_replicas: None,
            max_replicas: None,
        }
    }
}

impl KubernetesSettings {
    /// Validates `[kubernetes]`.
    pub fn from_config(k: &KubernetesConfig) -> Result<KubernetesSettings, InvalidSetting> {
        if k.timeout.get().is_zero() {
            return Err(InvalidSetting::new(
                "kubernetes.timeout",
                "must be more than 0s",
            ));
        }
        if let (Some(min), Some(max)) = (k.min_replicas, k.max_replicas) {
            if min > max {
                return Err(InvalidSetting::new(
                    "kubernetes.min_replicas",
                    format!("{min} is above max_replicas {max}"),
                ));
            }
        }
        Ok(KubernetesSettings {
            context: k.context.clone(),
            kubeconfig: k.kubeconfig.clone(),
            timeout: k.timeout.get(),
            verify_timeout: k.verify_timeout.get(),
            min_replicas: k.min_replicas.map(i64::from),
            max_replicas: k.max_replicas.map(i64::from),
        })
    }
}
