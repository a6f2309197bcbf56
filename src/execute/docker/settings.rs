//! `[docker]`: where the engine is, whether to follow its events, how long to verify.

use crate::model::duration_setting;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Engine address: `unix:///var/run/docker.sock` (default: DOCKER_HOST or the local
    /// socket), `tcp://HOST:2376` (TLS when `cert_path` is set) or `https://HOST:2376`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Folder with `ca.pem`, `cert.pem` and `key.pem` (as DOCKER_CERT_PATH) for TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    /// Follow the engine's events (health, die, oom). Default: whenever the engine is
    /// reachable. `true` makes an unreachable engine keep `/-/ready` at 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<bool>,
    /// Only containers with this label (`key` or `key=value`), e.g. `salve.enable=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// How long a restart may take to come back running (and healthy). Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_timeout: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DockerSettings {
    pub host: Option<String>,
    pub cert_path: Option<PathBuf>,
    /// None: follow events when the engine is reachable; Some(true): required.
    pub events: Option<bool>,
    pub label: Option<String>,
    pub verify_timeout: Duration,
}

impl DockerSettings {
    /// Validates `[docker]`.
    pub fn from_config(d: &DockerConfig) -> Result<DockerSettings, String> {
        Ok(DockerSettings {
            host: d.host.clone(),
            cert_path: d.cert_path.clone(),
            events: d.events,
            label: d.label.clone(),
            verify_timeout: duration_setting(
                "docker.verify_timeout",
                &d.verify_timeout,
                Duration::from_secs(60),
            )?,
        })
    }

    /// Whether the operator asked for Docker explicitly (then an unreachable engine is
    /// an outage, not an absence).
    pub fn required(&self) -> bool {
        self.host.is_some() || self.events == Some(true)
    }
}
