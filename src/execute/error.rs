//! What can go wrong in the executors before an action runs: reaching a backend, and
//! reading what a rule asked for. An action's own failure is an `Outcome`, not one of
//! these: the trail records it.

use crate::model::error_chain;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("docker.host {host:?} is https: set docker.cert_path to the folder with ca.pem, cert.pem and key.pem")]
    DockerHttpsNeedsCerts { host: String },
    #[error("docker.host {host:?}: expected unix:///path, tcp://HOST:PORT or https://HOST:PORT")]
    DockerHostScheme { host: String },
    // The causes are in the text, as logs print it with `%`; `error_chain` does not
    // repeat them.
    #[error("cannot connect to Docker: {}", error_chain(.0))]
    DockerConnect(#[source] bollard::errors::Error),
    #[error("cannot reach the Docker engine: {}", error_chain(.0))]
    DockerUnreachable(#[source] bollard::errors::Error),
    #[error("cannot read {}: {source}", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error(transparent)]
    KubeContext(#[from] kube::config::KubeconfigError),
    #[error(transparent)]
    KubeInfer(#[from] kube::config::InferConfigError),
    #[error(transparent)]
    KubeClient(#[from] kube::Error),
}

/// A `scale` count a rule wrote that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    #[error("replicas must be a whole number")]
    NotWhole,
    #[error("invalid replicas {0:?}")]
    Invalid(String),
    #[error("scale needs a replica count")]
    Missing,
}
