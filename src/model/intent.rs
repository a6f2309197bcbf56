//! What a rule asks for: an action on a target. Plain values, never side effects.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum K8sKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    Pod,
}

impl K8sKind {
    pub fn as_str(self) -> &'static str {
        match self {
            K8sKind::Deployment => "deployment",
            K8sKind::StatefulSet => "statefulset",
            K8sKind::DaemonSet => "daemonset",
            K8sKind::Pod => "pod",
        }
    }

    fn parse(s: &str) -> Option<K8sKind> {
        Some(match s {
            "deployment" => K8sKind::Deployment,
            "statefulset" => K8sKind::StatefulSet,
            "daemonset" => K8sKind::DaemonSet,
            "pod" => K8sKind::Pod,
            _ => return None,
        })
    }
}

/// What an action is taken on. Printed and parsed as `docker:container/NAME`,
/// `compose:PROJECT/SERVICE`, `swarm:service/NAME`, `k8s:NAMESPACE/KIND/NAME`,
/// `systemd:UNIT`, `exec:NAME`, `notify:CHANNEL`.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
pub enum Target {
    DockerContainer {
        name: String,
    },
    ComposeService {
        project: String,
        service: String,
    },
    SwarmService {
        name: String,
    },
    K8s {
        namespace: String,
        kind: K8sKind,
        name: String,
    },
    /// A systemd unit by its full name (`nginx.service`).
    SystemdUnit {
        name: String,
    },
    Exec {
        name: String,
    },
    Notify {
        channel: String,
    },
}

impl Target {
    /// Which executor acts on this target.
    pub fn backend(&self) -> Backend {
        match self {
            Target::DockerContainer { .. }
            | Target::ComposeService { .. }
            | Target::SwarmService { .. } => Backend::Docker,
            Target::K8s { .. } => Backend::Kubernetes,
            Target::SystemdUnit { .. } => Backend::Systemd,
            Target::Exec { .. } => Backend::Exec,
            Target::Notify { .. } => Backend::Notify,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    Docker,
    Kubernetes,
    Systemd,
    Exec,
    Notify,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Docker => "docker",
            Backend::Kubernetes => "kubernetes",
            Backend::Systemd => "systemd",
            Backend::Exec => "exec",
            Backend::Notify => "notify",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::DockerContainer { name } => write!(f, "docker:container/{name}"),
            Target::ComposeService { project, service } => write!(f, "compose:{project}/{service}"),
            Target::SwarmService { name } => write!(f, "swarm:service/{name}"),
            Target::K8s {
                namespace,
                kind,
                name,
            } => write!(f, "k8s:{namespace}/{}/{name}", kind.as_str()),
            Target::SystemdUnit { name } => write!(f, "systemd:{name}"),
            Target::Exec { name } => write!(f, "exec:{name}"),
            Target::Notify { channel } => write!(f, "notify:{channel}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target {input:?}: expected docker:container/NAME, compose:PROJECT/SERVICE, swarm:service/NAME, k8s:NAMESPACE/KIND/NAME, systemd:UNIT, exec:NAME or notify:CHANNEL")]
pub struct TargetParseError {
    pub input: String,
}

impl FromStr for Target {
    type Err = TargetParseError;

    fn from_str(s: &str) -> Result<Target, TargetParseError> {
        let err = || TargetParseError {
            input: s.to_string(),
        };
        let (scheme, rest) = s.split_once(':').ok_or_else(err)?;
        let nonempty = |v: &str| -> Result<String, TargetParseError> {
            if v.is_empty() {
                Err(err())
            } else {
                Ok(v.to_string())
            }
        };
        match scheme {
            "docker" => {
                let name = rest.strip_prefix("container/").ok_or_else(err)?;
                Ok(Target::DockerContainer {
                    name: nonempty(name)?,
                })
            }
            "swarm" => {
                let name = rest.strip_prefix("service/").ok_or_else(err)?;
                Ok(Target::SwarmService {
                    name: nonempty(name)?,
                })
            }
            "compose" => {
                let (project, service) = rest.split_once('/').ok_or_else(err)?;
                Ok(Target::ComposeService {
                    project: nonempty(project)?,
                    service: nonempty(service)?,
                })
            }
            "k8s" => {
                let mut parts = rest.splitn(3, '/');
                let namespace = nonempty(parts.next().unwrap_or_default())?;
                let kind = K8sKind::parse(parts.next().unwrap_or_default()).ok_or_else(err)?;
                let name = nonempty(parts.next().unwrap_or_default())?;
                Ok(Target::K8s {
                    namespace,
                    kind,
                    name,
                })
            }
            "systemd" => Ok(Target::SystemdUnit {
                name: nonempty(rest)?,
            }),
            "exec" => Ok(Target::Exec {
                name: nonempty(rest)?,
            }),
            "notify" => Ok(Target::Notify {
                channel: nonempty(rest)?,
            }),
            _ => Err(err()),
        }
    }
}

impl JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "docker:container/NAME, compose:PROJECT/SERVICE, swarm:service/NAME, k8s:NAMESPACE/KIND/NAME, systemd:UNIT, exec:NAME or notify:CHANNEL",
            "pattern": "^(docker:container/.+|compose:[^/]+/.+|swarm:service/.+|k8s:[^/]+/(deployment|statefulset|daemonset|pod)/.+|systemd:.+|exec:.+|notify:.+)$"
        })
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Restart,
    Stop,
    Start,
    Kill,
    Scale,
    Rollback,
    /// A systemd unit's `ExecReload` (`.or_restart()`: a restart where it has none).
    Reload,
    /// A systemd unit's failed state cleared, its restart counter set back.
    ResetFailed,
    Exec,
    Notify,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Restart,
        Action::Stop,
        Action::Start,
        Action::Kill,
        Action::Scale,
        Action::Rollback,
        Action::Reload,
        Action::ResetFailed,
        Action::Exec,
        Action::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Kill => "kill",
            Action::Scale => "scale",
            Action::Rollback => "rollback",
            Action::Reload => "reload",
            Action::ResetFailed => "reset_failed",
            Action::Exec => "exec",
            Action::Notify => "notify",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?}")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Action, UnknownAction> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

/// The param `.after(d)` is written as: a name in the trail and in `salve plan`'s
/// output, so it stays `delay_ms`.
const DELAY_MS: &str = "delay_ms";

/// Action-specific settings: `replicas` for scale, `args` for exec, `text`/`subject`
/// for notify. A sorted map, so equal intents serialize identically.
pub type Params = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Intent {
    pub action: Action,
    pub target: Target,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: Params,
}

impl Intent {
    pub fn new(action: Action, target: Target) -> Intent {
        Intent {
            action,
            target,
            params: Params::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Intent {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// `.after(d)`: held until the alert has fired for `d`. Whole milliseconds, as the
    /// trail has always written it.
    pub fn with_delay(self, delay: Duration) -> Intent {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.with(DELAY_MS, ms)
    }

    /// The delay [`Intent::with_delay`] set, if any.
    pub fn delay(&self) -> Option<Duration> {
        self.params
            .get(DELAY_MS)
            .and_then(serde_json::Value::as_u64)
            .map(Duration::from_millis)
    }

    /// `.approval(group)` / `.approval(group, ttl)`: a person of `group` says yes first.
    pub fn with_approval(self, group: &str, ttl: Option<Duration>) -> Intent {
        let intent = self.with(super::APPROVAL_GROUP, group);
        match ttl {
            Some(ttl) => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                intent.with(super::APPROVAL_TTL_MS, ms)
            }
            None => intent,
        }
    }

    /// The group and time to live [`Intent::with_approval`] set, if any.
    pub fn approval(&self) -> Option<(&str, Option<Duration>)> {
        let group = self.params.get(super::APPROVAL_GROUP)?.as_str()?;
        let ttl = self
            .params
            .get(super::APPROVAL_TTL_MS)
            .and_then(serde_json::Value::as_u64)
            .map(Duration::from_millis);
        Some((group, ttl))
    }

    /// Equal for identical intents (same action, target and settings): the key that
    /// folds one notification's duplicate intents into one action.
    /// `identity` as a 128-bit hash, stable across processes and versions: what dedup
    /// and duplicate detection compare.
    pub fn identity_key(&self) -> u128 {
        Intent::identity_key_of(self.action, &self.target, &self.params)
    }

    /// The identity of the intent a decision was made on, without rebuilding it.
    pub fn identity_key_of(action: Action, target: &Target, params: &Params) -> u128 {
        use std::hash::Hasher;
        use std::io::Write;
        let mut h = siphasher::sip128::SipHasher13::new();
        let mut text = Vec::with_capacity(64);
        let _ = write!(text, "{action} {target}");
        if !params.is_empty() {
            text.push(b' ');
            let _ = serde_json::to_writer(&mut text, params);
        }
        h.write(&text);
        siphasher::sip128::Hasher128::finish128(&h).as_u128()
    }

    pub fn identity(&self) -> String {
        if self.params.is_empty() {
            format!("{} {}", self.action, self.target)
        } else {
            let params = serde_json::Value::Object(self.params.clone());
            format!("{} {} {}", self.action, self.target, params)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_print_and_parse_in_the_documented_form() {
        for text in [
            "docker:container/web-1",
            "compose:shop/db",
            "swarm:service/api",
            "k8s:prod/deployment/checkout",
            "k8s:prod/pod/checkout-7d9f8b6c5d-abcde",
            "exec:reload-nginx",
            "notify:oncall",
        ] {
            let target: Target = text.parse().expect("valid target");
            assert_eq!(target.to_string(), text);
        }
        for bad in [
            "",
            "docker:web-1",
            "k8s:prod/cronjob/x",
            "compose:shop",
            "exec:",
            "ftp:x",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad} should be rejected");
        }
    }
}
