//! `[kubernetes]`: how salve reaches the API server and the bounds it keeps to.

use crate::model::duration_setting;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// How salve reaches the Kubernetes API. Without any of it: in-cluster config in a pod,
/// else the kubeconfig's current context; none at all only fails Kubernetes actions.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The kubeconfig context to use. Default: the file's current context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The kubeconfig file. Default: `KUBECONFIG`, else `~/.kube/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Bound on the API requests of one action (before verification). Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How long to watch a rollout after restart, scale or rollback before the outcome
    /// says `timeout`; a rule's `.timeout(seconds)` overrides it. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_timeout: Option<String>,
    /// `scale` never goes below this, whatever the rule says. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<u32>,
    /// `scale` never goes above this, whatever the rule says. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<u32>,
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
        KubernetesSettings {
            context: None,
            kubeconfig: None,
            timeout: Duration::from_secs(30),
            verify_timeout: Duration::from_secs(300),
            min_replicas: None,
            max_replicas: None,
        }
    }
}

impl KubernetesSettings {
    /// Validates `[kubernetes]`.
    pub fn from_config(k: &KubernetesConfig) -> Result<KubernetesSettings, String> {
        let defaults = KubernetesSettings::default();
        let timeout = duration_setting("kubernetes.timeout", &k.timeout, defaults.timeout)?;
        if timeout.is_zero() {
            return Err("kubernetes.timeout: must be more than 0s".into());
        }
        if let (Some(min), Some(max)) = (k.min_replicas, k.max_replicas) {
            if min > max {
                return Err(format!(
                    "kubernetes.min_replicas: {min} is above max_replicas {max}"
                ));
            }
        }
        Ok(KubernetesSettings {
            context: k.context.clone(),
            kubeconfig: k.kubeconfig.clone(),
            timeout,
            verify_timeout: duration_setting(
                "kubernetes.verify_timeout",
                &k.verify_timeout,
                defaults.verify_timeout,
            )?,
            min_replicas: k.min_replicas.map(i64::from),
            max_replicas: k.max_replicas.map(i64::from),
        })
    }
}
