//! `[docker]`: where the engine is, whether to follow its events, how long to verify.

use crate::model::rate::ParseError;
use crate::model::HumanDuration;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Engine address: `unix:///var/run/docker.sock` (default: DOCKER_HOST or the local
    /// socket), `tcp://HOST:2376` (TLS when `cert_path` is set) or `https://HOST:2376`.
    /// Read at start, as are `cert_path` and `events`: a reload names a change among the
    /// settings that need a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Folder with `ca.pem`, `cert.pem` and `key.pem` (as DOCKER_CERT_PATH) for TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_path: Option<PathBuf>,
    /// Follow the engine's events (health, die, oom). Default: whenever the engine is
    /// reachable. `true` makes an unreachable engine keep `/-/ready` at 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<bool>,
    /// The label a container (or Swarm service) must carry for salve to act on it or
    /// follow its events: `key` or `key=value`. Default `salve.enable=true`, as
    /// docker-autoheal's opt-in; `"all"` opts in every container on the host. Actions
    /// use a new label after a reload; the event stream is filtered by the one salve
    /// started with until a restart (a reload names it).
    pub label: OptIn,
    /// How long a restart may take to come back running (and healthy). Default `60s`.
    pub verify_timeout: HumanDuration,
}

impl Default for DockerConfig {
    fn default() -> DockerConfig {
        DockerConfig {
            host: None,
            cert_path: None,
            events: None,
            label: OptIn::default(),
            verify_timeout: HumanDuration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DockerSettings {
    pub host: Option<String>,
    pub cert_path: Option<PathBuf>,
    /// None: follow events when the engine is reachable; Some(true): required.
    pub events: Option<bool>,
    pub label: OptIn,
    pub verify_timeout: Duration,
}

/// Which containers and services salve may act on and follow.
#[derive(
    Debug, Clone, PartialEq, Eq, serde_with::DeserializeFromStr, serde_with::SerializeDisplay,
)]
pub enum OptIn {
    /// Every one on the host (`label = "all"`).
    Everything,
    /// Those carrying label `key` (with `value`, when given).
    Label { key: String, value: Option<String> },
}

impl Default for OptIn {
    fn default() -> OptIn {
        OptIn::Label {
            key: "salve.enable".into(),
            value: Some("true".into()),
        }
    }
}

impl OptIn {
    fn parse(text: &str) -> Result<OptIn, ParseError> {
        if text == "all" {
            return Ok(OptIn::Everything);
        }
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value.to_string())),
            None => (text, None),
        };
        if key.trim().is_empty() || key.trim() != key {
            return Err(ParseError {
                message: format!("{text:?} is not a label (`key`, `key=value`, or \"all\")"),
            });
        }
        Ok(OptIn::Label {
            key: key.to_string(),
            value,
        })
    }

    /// Whether a container or service with these labels has opted in.
    pub fn admits(&self, labels: Option<&HashMap<String, String>>) -> bool {
        match self {
            OptIn::Everything => true,
            OptIn::Label { key, value } => labels
                .and_then(|l| l.get(key))
                .is_some_and(|v| value.as_ref().is_none_or(|wanted| wanted == v)),
        }
    }

    /// The engine's `label` filter that selects the same containers.
    pub fn filter(&self) -> Option<String> {
        match self {
            OptIn::Everything => None,
            label => Some(label.to_string()),
        }
    }
}

impl std::fmt::Display for OptIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptIn::Everything => f.write_str("all"),
            OptIn::Label { key, value: None } => f.write_str(key),
            OptIn::Label {
                key,
                value: Some(value),
            } => write!(f, "{key}={value}"),
        }
    }
}

impl std::str::FromStr for OptIn {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<OptIn, ParseError> {
        OptIn::parse(text)
    }
}

impl JsonSchema for OptIn {
    fn schema_name() -> Cow<'static, str> {
        "OptIn".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A label `key` or `key=value`, or \"all\".",
        })
    }
}

impl DockerSettings {
    /// `[docker]`, every value of which was checked as the file was read.
    pub fn from_config(d: &DockerConfig) -> DockerSettings {
        DockerSettings {
            host: d.host.clone(),
            cert_path: d.cert_path.clone(),
            events: d.events,
            label: d.label.clone(),
            verify_timeout: d.verify_timeout.get(),
        }
    }

    /// Whether the operator asked for Docker explicitly (then an unreachable engine is
    /// an outage, not an absence).
    pub fn required(&self) -> bool {
        self.host.is_some() || self.events == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn by_default_only_containers_labelled_salve_enable_true_are_admitted() {
        let opt_in = OptIn::default();
        assert!(opt_in.admits(Some(&labels(&[("salve.enable", "true")]))));
        assert!(!opt_in.admits(Some(&labels(&[("salve.enable", "false")]))));
        assert!(!opt_in.admits(Some(&labels(&[("app", "batch")]))));
        assert!(!opt_in.admits(None));
        assert_eq!(opt_in.filter().as_deref(), Some("salve.enable=true"));
    }

    #[test]
    fn a_bare_key_admits_any_value_and_all_admits_everything() {
        let key = OptIn::parse("autoheal").expect("parse");
        assert!(key.admits(Some(&labels(&[("autoheal", "")]))));
        assert!(!key.admits(None));
        let all = OptIn::parse("all").expect("parse");
        assert!(all.admits(None));
        assert_eq!(all.filter(), None);
        assert!(OptIn::parse("=x").is_err());
    }
}
