//! `salve.toml`: parsed, validated once, and handed downstream as typed values.

use crate::alertmanager::time_interval::{TimeInterval, TimeIntervalConfig};
use crate::model::Action;
use crate::model::{parse_duration, OutcomeTrigger, RateLimit};
use crate::policy::PolicySettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The file as written. Every key is documented in `schemas/config.schema.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address the HTTP API listens on. Default `127.0.0.1:9095`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Where the audit trail lives. Default `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Folder of `.rhai` rules. Default `rules`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_dir: Option<PathBuf>,
    /// Decide and audit everything, execute nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Global budget per action kind across all rules and targets, e.g. `restart = "5 per 1m"`.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    /// Named commands that rules run with `exec(name, args)`.
    #[serde(default)]
    pub exec: BTreeMap<String, ExecConfig>,
    /// Named windows in Alertmanager's `time_intervals` syntax, referenced by a rule's `MUTE`.
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub docker: DockerConfig,
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    /// Named notification channels that rules address with `notify(name, text)`,
    /// `email(...)`, `slack(...)` and `webhook(...)`.
    #[serde(default)]
    pub notify: BTreeMap<String, NotifyConfig>,
    /// Tell a channel when remediation itself fails: `[[on_outcome]]` with `when`,
    /// `notify` and optionally `actions` and `limit`.
    #[serde(default)]
    pub on_outcome: Vec<OnOutcomeConfig>,
}

/// Notify a channel when an action fails or a breaker opens. The message is a notify
/// intent like any other: it passes policy (with `limit`) and lands in the audit.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnOutcomeConfig {
    /// Any of `"failed"`, `"circuit_open"` and `"abandoned"`.
    pub when: Vec<OutcomeTrigger>,
    /// The `[notify.NAME]` channel to tell.
    pub notify: String,
    /// Only failures of these action kinds, e.g. `["restart", "exec"]`. Default: all.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// At most this many messages to the channel from this entry, e.g. `"5 per 15m"`
    /// (the default), so a flapping failure cannot flood it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// A validated `[[on_outcome]]` entry.
#[derive(Debug, Clone)]
pub struct OnOutcome {
    pub when: Vec<OutcomeTrigger>,
    pub channel: String,
    /// Empty: every action kind.
    pub actions: Vec<Action>,
    pub limit: RateLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyType {
    Email,
    Slack,
    Webhook,
}

/// One notification channel. Which keys apply depends on `type`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(rename = "type")]
    pub kind: NotifyType,
    /// Subject template (email, webhook) when a rule gives none, e.g.
    /// `"[{{ status }}] {{ labels.alertname }}"`. Default: from the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Message template when a rule gives no text. Default: the alert's name, status,
    /// severity, key labels, summary, description, links and what salve did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// One delivery attempt gives up after this long. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries after the first attempt for transient failures. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled at each retry, with jitter. Default `500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// email: `smtp://HOST:PORT` (plain), `smtps://HOST:PORT` (TLS) or
    /// `smtp://HOST:PORT?tls=starttls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<String>,
    /// email: `none`, `starttls` or `tls`; overrides what `smtp` implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// email: PEM file of the CA that signed the server's certificate, trusted besides
    /// the built-in roots (with `starttls` or `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// email: the sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// email: copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// email: SMTP AUTH user name (the password from `password_file` or `password_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// slack, webhook: where to POST. A Slack URL is a secret: prefer `url_env` or `url_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// webhook: key of the `X-Salve-Signature: sha256=HEX` HMAC-SHA256 of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// webhook: sent as `Authorization: Bearer TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
}

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

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments; no shell is involved. A rule's args are appended.
    pub argv: Vec<String>,
    /// Killed after this long. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// Names of salve's environment variables passed to the command; nothing else is.
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Consecutive failures of one action on one target that open its breaker. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u32>,
    /// How long an open breaker stays open before one trial. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_open_for: Option<String>,
    /// A firing alert not heard of for this long no longer counts for `firing()`. Default `6h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_ttl: Option<String>,
    /// How long dedup remembers an episode after it was last seen. Default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_ttl: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Rotate the audit file when it grows past this many bytes. Default 64 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    /// Rotated files kept. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_files: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest accepted request body in bytes. Default 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Require `Authorization: Bearer TOKEN` on `/api/` and `/-/reload`; the token is read from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// As `bearer_token_file`, from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Require HTTP basic auth with this user name (password from `basic_auth_password_file` or `_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_env: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Wall-clock budget of one `plan()` call. Default `40ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_timeout: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub rules_dir: PathBuf,
    pub dry_run: bool,
    pub limits: HashMap<Action, RateLimit>,
    pub exec: HashMap<String, ExecCommand>,
    pub time_intervals: HashMap<String, TimeInterval>,
    pub breaker_failures: u32,
    pub breaker_open_for: Duration,
    pub firing_ttl: Duration,
    pub dedup_ttl: Duration,
    pub audit_max_file_bytes: u64,
    pub audit_keep_files: usize,
    pub max_body_bytes: usize,
    pub auth: Option<ApiAuth>,
    pub rule_timeout: Duration,
    pub docker: DockerSettings,
    pub kubernetes: KubernetesSettings,
    pub notify: HashMap<String, NotifyChannel>,
    pub on_outcome: Vec<OnOutcome>,
}

/// A string that Debug never prints: a password, a token, a URL with a token in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A validated notification channel, secrets read.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    pub name: String,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    /// Templates used when a rule gives no subject or text.
    pub subject: Option<String>,
    pub text: Option<String>,
    pub kind: NotifyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub enum NotifyKind {
    Email {
        host: String,
        port: u16,
        tls: SmtpTls,
        /// PEM of a CA to trust besides the built-in roots.
        ca_pem: Option<Vec<u8>>,
        from: String,
        to: Vec<String>,
        cc: Vec<String>,
        username: Option<String>,
        password: Option<Secret>,
    },
    Slack {
        url: Secret,
    },
    Webhook {
        url: Secret,
        secret: Option<Secret>,
        bearer_token: Option<Secret>,
    },
}

impl NotifyKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NotifyKind::Email { .. } => "email",
            NotifyKind::Slack { .. } => "slack",
            NotifyKind::Webhook { .. } => "webhook",
        }
    }
}

fn notify_channel(name: &str, c: &NotifyConfig) -> std::result::Result<NotifyChannel, String> {
    let key = |k: &str| format!("notify.{name}.{k}");
    let dur = |k: &str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| format!("{}: {e}", key(k))),
    };
    let timeout = dur("timeout", &c.timeout, Duration::from_secs(10))?;
    let backoff = dur("backoff", &c.backoff, Duration::from_millis(500))?;
    for (k, template) in [("subject", &c.subject), ("text", &c.text)] {
        if let Some(t) = template {
            crate::template::check(t).map_err(|e| format!("{}: {e}", key(k)))?;
        }
    }
    let retries = c.retries.unwrap_or(3);
    if retries > 10 {
        return Err(format!("{}: at most 10", key("retries")));
    }
    // Keys of one type are mistakes on another.
    let present: Vec<(&str, bool)> = vec![
        ("smtp", c.smtp.is_some()),
        ("tls", c.tls.is_some()),
        ("ca_file", c.ca_file.is_some()),
        ("from", c.from.is_some()),
        ("to", !c.to.is_empty()),
        ("cc", !c.cc.is_empty()),
        ("username", c.username.is_some()),
        ("password_file", c.password_file.is_some()),
        ("password_env", c.password_env.is_some()),
        ("url", c.url.is_some()),
        ("url_env", c.url_env.is_some()),
        ("url_file", c.url_file.is_some()),
        ("secret_env", c.secret_env.is_some()),
        ("secret_file", c.secret_file.is_some()),
        ("bearer_token_env", c.bearer_token_env.is_some()),
        ("bearer_token_file", c.bearer_token_file.is_some()),
    ];
    let allowed: &[&str] = match c.kind {
        NotifyType::Email => &[
            "smtp",
            "tls",
            "ca_file",
            "from",
            "to",
            "cc",
            "username",
            "password_file",
            "password_env",
        ],
        NotifyType::Slack => &["url", "url_env", "url_file"],
        NotifyType::Webhook => &[
            "url",
            "url_env",
            "url_file",
            "secret_env",
            "secret_file",
            "bearer_token_env",
            "bearer_token_file",
        ],
    };
    let type_name = match c.kind {
        NotifyType::Email => "email",
        NotifyType::Slack => "slack",
        NotifyType::Webhook => "webhook",
    };
    if let Some((k, _)) = present.iter().find(|(k, set)| *set && !allowed.contains(k)) {
        return Err(format!(
            "{}: does not apply to a channel of type {type_name:?}",
            key(k)
        ));
    }
    let read_url = || -> std::result::Result<Secret, String> {
        let from_secret = read_secret(&key("url"), c.url_file.as_deref(), c.url_env.as_deref())?;
        let url = match (&c.url, from_secret) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{}: give one of url, url_env, url_file",
                    key("url")
                ))
            }
            (Some(u), None) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => return Err(format!("{}: needs url, url_env or url_file", key("url"))),
        };
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("{}: not a URL: {e}", key("url")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{}: needs an http:// or https:// URL", key("url")));
        }
        Ok(Secret(url))
    };
    let kind = match c.kind {
        NotifyType::Slack => NotifyKind::Slack { url: read_url()? },
        NotifyType::Webhook => NotifyKind::Webhook {
            url: read_url()?,
            secret: read_secret(
                &key("secret"),
                c.secret_file.as_deref(),
                c.secret_env.as_deref(),
            )?
            .map(Secret),
            bearer_token: read_secret(
                &key("bearer_token"),
                c.bearer_token_file.as_deref(),
                c.bearer_token_env.as_deref(),
            )?
            .map(Secret),
        },
        NotifyType::Email => {
            let smtp = c.smtp.as_deref().ok_or_else(|| {
                format!(
                    "{}: needs the server, e.g. \"smtp://127.0.0.1:25\"",
                    key("smtp")
                )
            })?;
            let url = reqwest::Url::parse(smtp)
                .map_err(|e| format!("{}: not a URL: {e}", key("smtp")))?;
            let mut tls = match url.scheme() {
                "smtp" => SmtpTls::None,
                "smtps" => SmtpTls::Tls,
                other => {
                    return Err(format!(
                        "{}: scheme {other:?}: use smtp:// or smtps://",
                        key("smtp")
                    ))
                }
            };
            for (k, v) in url.query_pairs() {
                match (k.as_ref(), v.as_ref()) {
                    ("tls", "starttls") => tls = SmtpTls::StartTls,
                    ("tls", "tls") => tls = SmtpTls::Tls,
                    ("tls", "none") => tls = SmtpTls::None,
                    _ => return Err(format!("{}: unknown option {k}={v}", key("smtp"))),
                }
            }
            if let Some(t) = &c.tls {
                tls = match t.as_str() {
                    "none" => SmtpTls::None,
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    other => {
                        return Err(format!(
                            "{}: {other:?}: use \"none\", \"starttls\" or \"tls\"",
                            key("tls")
                        ))
                    }
                };
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(format!(
                    "{}: no credentials in the URL; use username and password_file or password_env",
                    key("smtp")
                ));
            }
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("{}: needs a host", key("smtp")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = url.port().unwrap_or(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            });
            let ca_pem = match &c.ca_file {
                None => None,
                Some(_) if tls == SmtpTls::None => {
                    return Err(format!(
                        "{}: needs tls = \"starttls\" or \"tls\"",
                        key("ca_file")
                    ))
                }
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        format!("{}: cannot read {}: {e}", key("ca_file"), path.display())
                    })?;
                    lettre::transport::smtp::client::Certificate::from_pem(&pem)
                        .map_err(|e| format!("{}: {}: {e}", key("ca_file"), path.display()))?;
                    Some(pem)
                }
            };
            let check_address = |k: &str, a: &str| -> std::result::Result<String, String> {
                a.parse::<lettre::Address>()
                    .map_err(|e| format!("{}: {a:?}: {e}", key(k)))?;
                Ok(a.to_string())
            };
            let from = check_address(
                "from",
                c.from
                    .as_deref()
                    .ok_or_else(|| format!("{}: needs the sender address", key("from")))?,
            )?;
            if c.to.is_empty() {
                return Err(format!("{}: needs at least one recipient", key("to")));
            }
            let to =
                c.to.iter()
                    .map(|a| check_address("to", a))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
            let cc =
                c.cc.iter()
                    .map(|a| check_address("cc", a))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
            let password = read_secret(
                &key("password"),
                c.password_file.as_deref(),
                c.password_env.as_deref(),
            )?
            .map(Secret);
            if password.is_some() != c.username.is_some() {
                return Err(format!(
                    "{}: username and password_file/password_env go together",
                    key("username")
                ));
            }
            NotifyKind::Email {
                host,
                port,
                tls,
                ca_pem,
                from,
                to,
                cc,
                username: c.username.clone(),
                password,
            }
        }
    };
    Ok(NotifyChannel {
        name: name.to_string(),
        timeout,
        retries,
        backoff,
        subject: c.subject.clone(),
        text: c.text.clone(),
        kind,
    })
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
    /// Whether the operator asked for Docker explicitly (then an unreachable engine is
    /// an outage, not an absence).
    pub fn required(&self) -> bool {
        self.host.is_some() || self.events == Some(true)
    }
}

#[derive(Debug, Clone)]
pub struct ExecCommand {
    pub name: String,
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub working_dir: Option<PathBuf>,
    pub env: Vec<String>,
}

/// Credentials the API requires. Debug never prints them.
#[derive(Clone)]
pub enum ApiAuth {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            ApiAuth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// The global budget when the config names none: a blast-radius guard, not a tuning knob.
pub fn default_limit(action: Action) -> RateLimit {
    let (count, secs) = match action {
        Action::Restart | Action::Stop | Action::Start | Action::Kill | Action::Scale => (5, 60),
        Action::Rollback => (3, 60),
        Action::Exec => (10, 60),
        Action::Notify => (30, 60),
    };
    RateLimit {
        count,
        window: Duration::from_secs(secs),
        per_target: false,
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9095";

impl Config {
    /// Loads `path`, or the built-in defaults when `path` is None.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        match path {
            None => Config::from_file(ConfigFile::default(), Path::new("<defaults>")),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::parse(&text, path)
            }
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Config::from_file(file, path)
    }

    /// The parts the policy applies.
    pub fn policy_settings(&self) -> PolicySettings {
        PolicySettings {
            dry_run: self.dry_run,
            limits: self.limits.clone(),
            time_intervals: self.time_intervals.clone(),
            breaker_failures: self.breaker_failures,
            breaker_open_for: self.breaker_open_for,
            firing_ttl: self.firing_ttl,
            dedup_ttl: self.dedup_ttl,
        }
    }

    pub fn defaults() -> Config {
        // The empty file is valid by construction; a failure here is a bug in salve.
        #[allow(clippy::expect_used)]
        Config::from_file(ConfigFile::default(), Path::new("<defaults>"))
            .expect("defaults are valid")
    }

    pub fn from_file(file: ConfigFile, path: &Path) -> Result<Config> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let duration = |key: &str, value: &Option<String>, default: Duration| -> Result<Duration> {
            match value {
                None => Ok(default),
                Some(v) => parse_duration(v).map_err(|e| invalid(format!("{key}: {e}"))),
            }
        };

        let listen_text = file
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|e| invalid(format!("listen: invalid address {listen_text:?}: {e}")))?;

        let mut limits: HashMap<Action, RateLimit> = Action::ALL
            .into_iter()
            .map(|a| (a, default_limit(a)))
            .collect();
        for (key, value) in &file.limits {
            let action: Action = key
                .parse()
                .map_err(|e| invalid(format!("limits.{key}: {e}")))?;
            let rate =
                RateLimit::parse(value).map_err(|e| invalid(format!("limits.{key}: {e}")))?;
            if rate.per_target {
                return Err(invalid(format!(
                    "limits.{key}: {value:?}: the global budget is across all targets; put \"per target\" limits in a rule's LIMIT"
                )));
            }
            limits.insert(action, rate);
        }

        let mut exec = HashMap::new();
        for (name, cmd) in &file.exec {
            if cmd.argv.is_empty() || cmd.argv[0].is_empty() {
                return Err(invalid(format!(
                    "exec.{name}.argv: needs at least the program to run"
                )));
            }
            let timeout = duration(
                &format!("exec.{name}.timeout"),
                &cmd.timeout,
                Duration::from_secs(30),
            )?;
            exec.insert(
                name.clone(),
                ExecCommand {
                    name: name.clone(),
                    argv: cmd.argv.clone(),
                    timeout,
                    working_dir: cmd.working_dir.clone(),
                    env: cmd.env.clone(),
                },
            );
        }

        let mut time_intervals = HashMap::new();
        for ti in &file.time_intervals {
            let compiled =
                TimeInterval::compile(ti).map_err(|e| invalid(format!("time_intervals: {e}")))?;
            if time_intervals.insert(ti.name.clone(), compiled).is_some() {
                return Err(invalid(format!(
                    "time_intervals: the name {:?} is used twice",
                    ti.name
                )));
            }
        }

        let auth = load_auth(&file.api).map_err(invalid)?;
        let mut notify = HashMap::new();
        for (name, channel) in &file.notify {
            notify.insert(
                name.clone(),
                notify_channel(name, channel).map_err(invalid)?,
            );
        }
        let mut on_outcome = Vec::new();
        for (i, entry) in file.on_outcome.iter().enumerate() {
            let key = |k: &str| format!("on_outcome[{i}].{k}");
            if !notify.contains_key(&entry.notify) {
                let mut known: Vec<&String> = notify.keys().collect();
                known.sort();
                return Err(invalid(format!(
                    "{}: no channel [notify.{}] (defined: {known:?})",
                    key("notify"),
                    entry.notify
                )));
            }
            if entry.when.is_empty() {
                return Err(invalid(format!(
                    "{}: needs one or more of \"failed\", \"circuit_open\", \"abandoned\"",
                    key("when")
                )));
            }
            let limit = match &entry.limit {
                None => RateLimit {
                    count: 5,
                    window: Duration::from_secs(15 * 60),
                    per_target: true,
                },
                Some(text) => {
                    let mut limit = RateLimit::parse(text)
                        .map_err(|e| invalid(format!("{}: {e}", key("limit"))))?;
                    limit.per_target = true;
                    limit
                }
            };
            on_outcome.push(OnOutcome {
                when: entry.when.clone(),
                channel: entry.notify.clone(),
                actions: entry.actions.clone(),
                limit,
            });
        }
        let breaker_failures = file.policy.breaker_failures.unwrap_or(3);
        if breaker_failures == 0 {
            return Err(invalid(
                "policy.breaker_failures: must be at least 1".into(),
            ));
        }

        Ok(Config {
            listen,
            data_dir: file
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("data")),
            rules_dir: file
                .rules_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("rules")),
            dry_run: file.dry_run,
            limits,
            exec,
            time_intervals,
            breaker_failures,
            breaker_open_for: duration(
                "policy.breaker_open_for",
                &file.policy.breaker_open_for,
                Duration::from_secs(300),
            )?,
            firing_ttl: duration(
                "policy.firing_ttl",
                &file.policy.firing_ttl,
                Duration::from_secs(6 * 3600),
            )?,
            dedup_ttl: duration(
                "policy.dedup_ttl",
                &file.policy.dedup_ttl,
                Duration::from_secs(24 * 3600),
            )?,
            audit_max_file_bytes: file.audit.max_file_bytes.unwrap_or(64 << 20),
            audit_keep_files: file.audit.keep_files.unwrap_or(10),
            max_body_bytes: file.api.max_body_bytes.unwrap_or(1 << 20),
            auth,
            rule_timeout: duration(
                "engine.rule_timeout",
                &file.engine.rule_timeout,
                Duration::from_millis(40),
            )?,
            docker: DockerSettings {
                host: file.docker.host.clone(),
                cert_path: file.docker.cert_path.clone(),
                events: file.docker.events,
                label: file.docker.label.clone(),
                verify_timeout: duration(
                    "docker.verify_timeout",
                    &file.docker.verify_timeout,
                    Duration::from_secs(60),
                )?,
            },
            notify,
            on_outcome,
            kubernetes: kubernetes_settings(&file.kubernetes).map_err(invalid)?,
        })
    }
}

fn kubernetes_settings(k: &KubernetesConfig) -> std::result::Result<KubernetesSettings, String> {
    let defaults = KubernetesSettings::default();
    let dur = |key: &str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(v) => parse_duration(v).map_err(|e| format!("kubernetes.{key}: {e}")),
    };
    let timeout = dur("timeout", &k.timeout, defaults.timeout)?;
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
        verify_timeout: dur("verify_timeout", &k.verify_timeout, defaults.verify_timeout)?,
        min_replicas: k.min_replicas.map(i64::from),
        max_replicas: k.max_replicas.map(i64::from),
    })
}

/// Reads a secret from a file (trailing newline dropped) or an environment variable.
pub fn read_secret(
    key: &str,
    file: Option<&Path>,
    env: Option<&str>,
) -> std::result::Result<Option<String>, String> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(format!("{key}: environment variable {var} is not set")),
        };
    }
    Ok(None)
}

fn load_auth(api: &ApiConfig) -> std::result::Result<Option<ApiAuth>, String> {
    let bearer = read_secret(
        "api.bearer_token",
        api.bearer_token_file.as_deref(),
        api.bearer_token_env.as_deref(),
    )?;
    if let Some(token) = bearer {
        return Ok(Some(ApiAuth::Bearer(token)));
    }
    if let Some(username) = &api.basic_auth_username {
        let password = read_secret(
            "api.basic_auth_password",
            api.basic_auth_password_file.as_deref(),
            api.basic_auth_password_env.as_deref(),
        )?
        .ok_or(
            "api.basic_auth_username: needs basic_auth_password_file or basic_auth_password_env",
        )?;
        return Ok(Some(ApiAuth::Basic {
            username: username.clone(),
            password,
        }));
    }
    Ok(None)
}
