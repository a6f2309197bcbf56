//! The client: its configuration, what API errors mean, and the retries a request
//! gets while the API server asks to be asked again.

use super::*;
use crate::execute::ExecuteError;
use crate::model::error_chain;
use kube::api::PatchParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Status;
use std::future::Future;

/// Loads the client configuration: `kubernetes.kubeconfig` and `kubernetes.context` when
/// given, else in-cluster (a pod's service account) or the default kubeconfig. Nothing
/// is sent to the API server here.
pub async fn connect(settings: &KubernetesSettings) -> Result<kube::Client, ExecuteError> {
    let mut config = if settings.context.is_some() || settings.kubeconfig.is_some() {
        let options = KubeConfigOptions {
            context: settings.context.clone(),
            ..Default::default()
        };
        match &settings.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| ExecuteError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => kube::Config::from_kubeconfig(&options).await,
        }?
    } else {
        kube::Config::infer().await?
    };
    config.connect_timeout = Some(settings.timeout);
    config.read_timeout = Some(settings.timeout);
    config.write_timeout = Some(settings.timeout);
    Ok(kube::Client::try_from(config)?)
}

/// Whether the API server answered without acting and asks to be asked again.
pub(super) fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => {
            matches!(status.code, 502..=504) || (status.code == 429 && !is_pdb_refusal(status))
        }
        _ => false,
    }
}

pub(super) fn is_pdb_refusal(status: &Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == DISRUPTION_BUDGET_CAUSE))
}

pub(super) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

/// kube's own Display repeats the whole Status; people want code, reason and message.
pub(super) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{} {}: {}", s.code, s.reason, s.message)
        }
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => error_chain(other),
    }
}

/// Every write carries salve as its field manager, so `managedFields` shows who changed it.
pub(super) fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

impl KubernetesExecutor {
    /// Calls the API, again after a wait while it answers 429 (not a disruption budget)
    /// or 502-504: then nothing was done. Other failures, and no answer at all (which
    /// may have been acted on), are final.
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
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
}
