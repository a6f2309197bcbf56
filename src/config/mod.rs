//! `salve.toml`: read straight into typed values, validated once, and handed downstream.
//! Files by job: `file` (the file model: types, defaults, and doc comments that are its
//! JSON Schema), `validate` (the file into [`Config`]: what one key's type cannot say),
//! `identity` (the API's named callers and trusted proxy), `tls` (the listener's
//! certificates). Each stage owns and validates its own section
//! (`execute::DockerConfig`, `NotifyConfig`, `ingest::probe::ProbeConfig`, ...), each
//! error a `model::InvalidSetting` naming the key at fault.

mod approvals;
mod file;
mod identity;
mod tls;
mod validate;

pub use approvals::{text_hash, ApprovalGroup, ApprovalGroupConfig, Approvals, ApprovalsConfig};
pub use file::{
    parse_listen, ApiConfig, AuditConfig, ConfigFile, EngineConfig, IdentityConfig,
    OnOutcomeConfig, PeerNet, PolicyConfig, ProxyConfig, QuarantineAfter, StoreConfig,
    DEFAULT_LISTEN,
};
pub use identity::{ApiIdentity, TrustedProxy};
pub use validate::default_limit;

use crate::audit::Retention;
use crate::engine::QuarantineSettings;
use crate::event::EventLimits;
use crate::execute::{DockerSettings, ExecCommand, KubernetesSettings, NotifyChannel};
use crate::model::{Action, InvalidSetting, OutcomeTrigger, RateLimit};
use crate::policy::PolicySettings;
use std::collections::HashMap;
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
    /// Not TOML, or a value its key does not take: where, and which key.
    #[error("{}{}: {message}", path.display(), at.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        /// Line and column of the value at fault (TOML's own syntax errors say theirs
        /// in `message`).
        at: Option<(usize, usize)>,
        message: String,
    },
    /// A value its section's validation refuses.
    #[error("{}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: InvalidSetting,
    },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// A validated `[[on_outcome]]` entry.
#[derive(Debug, Clone)]
pub struct OnOutcome {
    pub when: Vec<OutcomeTrigger>,
    pub channel: String,
    /// Empty: every action kind.
    pub actions: Vec<Action>,
    pub limit: RateLimit,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub rules_dir: PathBuf,
    /// What the policy applies: dry-run, budgets, time intervals, breakers, lifetimes
    /// and bounds of what it remembers.
    pub policy: PolicySettings,
    pub exec: HashMap<String, ExecCommand>,
    pub audit_max_file_bytes: u64,
    pub audit_retention: Retention,
    pub max_body_bytes: usize,
    /// How long clients may be slow or idle, and how many may be connected (`[api]`).
    /// The listener reads them when salve starts (a reload names a change among the
    /// settings that need a restart), but for `body_read_timeout`, read at each request.
    pub connections: ConnectionLimits,
    pub event_limits: EventLimits,
    /// The single `[api]` credential (bearer token or basic auth); its caller is an admin.
    pub auth: Option<ApiAuth>,
    /// `[[api.identity]]`: named callers, each with its token and role.
    pub identities: Vec<ApiIdentity>,
    /// `[api.proxy]`: the proxy whose header names the caller.
    pub proxy: Option<TrustedProxy>,
    /// HTTPS on the listener (`[api] tls_cert_file`, `tls_key_file`, `client_ca_file`),
    /// its files read when the config is loaded, so a bad one fails `check` and reload.
    pub tls: Option<ListenerTls>,
    /// What one `plan()` may spend (`[engine] rule_max_operations`, `rule_timeout`).
    pub rule_budget: crate::rules::RuleBudget,
    pub max_backlog: usize,
    pub max_intents: usize,
    pub shutdown_grace: Duration,
    pub quarantine: QuarantineSettings,
    pub docker: DockerSettings,
    pub kubernetes: KubernetesSettings,
    /// `[systemd]`: the bus, the units that opted in, the bounds.
    pub systemd: crate::execute::SystemdSettings,
    pub notify: HashMap<String, NotifyChannel>,
    pub on_outcome: Vec<OnOutcome>,
    /// `[[probe]]`, validated.
    pub probes: Vec<crate::ingest::probe::ProbeSettings>,
    /// `[store]`: the trail in PostgreSQL, shared by replicas.
    pub store: Option<crate::audit::StoreSettings>,
    /// `[approvals]`: who may say yes to a risky action, and where they are asked.
    pub approvals: Approvals,
    /// `[tracing] otlp_endpoint`: where to post spans (`/v1/traces` included).
    pub otlp_traces_endpoint: Option<String>,
    /// What is accepted but should be written otherwise (an old form), each naming its
    /// key and the form to write; logged at load and printed by `salve check`.
    pub warnings: Vec<String>,
}

/// What the listener allows a client before it closes the door: see `[api]`
/// `header_read_timeout`, `body_read_timeout`, `idle_timeout` and `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
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

/// The listener's TLS: where it was read from and what it serves with.
#[derive(Clone)]
pub struct ListenerTls {
    pub files: TlsFiles,
    pub server: std::sync::Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("files", &self.files)
            .finish()
    }
}

/// The files of the listener's TLS, read when the config is loaded (start, reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are required and checked against this CA.
    pub client_ca: Option<PathBuf>,
}

/// What salve runs on without a config file.
const EMBEDDED_DEFAULTS: &str = include_str!("defaults.toml");

impl Config {
    /// Loads `path`, or the built-in defaults when `path` is None.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        match path {
            None => Config::parse(EMBEDDED_DEFAULTS, Path::new("<embedded defaults>")),
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
        let file: ConfigFile = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| parse_error(text, path, e))?;
        let config = Config::from_file(file, path)?;
        for warning in &config.warnings {
            tracing::warn!(config = %path.display(), "{warning}");
        }
        Ok(config)
    }

    /// The parts the policy applies.
    pub fn policy_settings(&self) -> PolicySettings {
        self.policy.clone()
    }

    /// The embedded defaults (`src/config/defaults.toml`).
    pub fn defaults() -> Config {
        // A unit test parses the embedded file; a failure here is a bug in salve.
        #[allow(clippy::expect_used)]
        Config::load(None).expect("the embedded defaults are valid")
    }
}

/// A file salve cannot read into [`ConfigFile`]: TOML's own error when the text is not
/// TOML; else the dotted key and its line and column. A message that already names its
/// key in full (a notification channel's, say) is not prefixed again.
fn parse_error(
    text: &str,
    path: &Path,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let key = e.path().to_string();
    let error = e.into_inner();
    let message = if key == "." {
        return ConfigError::Parse {
            path: path.to_path_buf(),
            at: None,
            message: error.to_string(),
        };
    } else if error.message().starts_with(&key) {
        error.message().to_string()
    } else {
        format!("{key}: {}", error.message())
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        at: error.span().map(|span| line_column(text, span.start)),
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match Config::parse(text, Path::new("salve.toml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_refused_at_its_key_line_and_column() {
        assert_eq!(
            refused("[policy]\ndedup_ttl = \"soon\"\n"),
            "salve.toml:2:13: policy.dedup_ttl: invalid duration \"soon\": expected number at 0 (write it like \"30s\", \"15m\" or \"1h\")"
        );
        assert_eq!(
            refused("[[probe]]\nname = \"a\"\ntcp = \"127.0.0.1:1\"\n[[probe]]\nname = \"b\"\ntcp = \"127.0.0.1:2\"\ninterval = \"often\"\n"),
            "salve.toml:7:12: probe[1].interval: invalid duration \"often\": expected number at 0 (write it like \"30s\", \"15m\" or \"1h\")"
        );
        assert!(refused("[limits]\nrestart = \"5 a minute\"\n")
            .contains("limits.restart: invalid rate \"5 a minute\""));
    }

    #[test]
    fn a_channel_names_its_key_in_full_and_refuses_the_keys_of_another_type() {
        let refusal = refused("[notify.ops]\ntype = \"log\"\nurl = \"http://x/\"\n");
        assert!(
            refusal.ends_with("notify.ops.url: does not apply to a channel of type \"log\""),
            "{refusal}"
        );
        let refusal = refused("[notify.ops]\ntype = \"log\"\nbackof = \"1s\"\n");
        assert!(
            refusal.contains("notify.ops.backof: unknown field `backof`"),
            "{refusal}"
        );
        let refusal = refused("[notify.ops]\nurl = \"http://x/\"\n");
        assert!(
            refusal.ends_with("notify.ops: missing field `type`"),
            "{refusal}"
        );
    }

    #[test]
    fn listen_is_an_ip_address_and_port_and_localhost_is_the_loopback() {
        let config = Config::parse("listen = \"localhost:9096\"\n", Path::new("salve.toml"))
            .expect("localhost is read as 127.0.0.1");
        assert_eq!(config.listen.to_string(), "127.0.0.1:9096");
        assert_eq!(
            parse_listen("[::1]:9095").map(|a| a.to_string()),
            Ok("[::1]:9095".to_string())
        );
        let refusal = refused("listen = \"alerts.example.org:9095\"\n");
        assert!(
            refusal.contains("listen: invalid address \"alerts.example.org:9095\": expected an IP address and a port, e.g. 127.0.0.1:9095, [::1]:9095"),
            "{refusal}"
        );
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("localhost:http").is_err());
    }

    #[test]
    fn defaults_come_from_one_place_and_a_written_value_replaces_them() {
        let config = Config::parse("", Path::new("empty.toml")).expect("an empty file");
        let file = ConfigFile::default();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.policy.dedup_ttl, file.policy.dedup_ttl.get());
        assert_eq!(config.shutdown_grace, file.engine.shutdown_grace.get());
        assert_eq!(config.quarantine.after, 5);
        let config = Config::parse("[policy]\ndedup_ttl = \"2h\"\n", Path::new("salve.toml"))
            .expect("valid");
        assert_eq!(config.policy.dedup_ttl, Duration::from_secs(7200));
        assert_eq!(config.policy.firing_ttl, file.policy.firing_ttl.get());
    }

    #[test]
    fn quarantine_after_in_the_old_form_is_read_with_a_warning_naming_the_new_one() {
        let config = Config::parse(
            "[engine]\nquarantine_after = \"3 in 2m\"\n",
            Path::new("salve.toml"),
        )
        .expect("the old form is still read");
        assert_eq!(
            (config.quarantine.after, config.quarantine.within),
            (3, Duration::from_secs(120))
        );
        assert_eq!(
            config.warnings,
            ["engine.quarantine_after: \"3 in 2m\" is the old form; write it \"3 per 2m\", as every rate in salve"]
        );
        let config = Config::parse(
            "[engine]\nquarantine_after = \"3 per 2m\"\n",
            Path::new("salve.toml"),
        )
        .expect("the one grammar");
        assert_eq!(config.quarantine.within, Duration::from_secs(120));
        assert!(config.warnings.is_empty());
        assert!(
            refused("[engine]\nquarantine_after = \"0 per 1m\"\n").ends_with(
                "engine.quarantine_after: \"0 per 1m\": the count must be a whole number above 0"
            )
        );
    }

    #[test]
    fn the_embedded_defaults_are_valid() {
        let config = Config::defaults();
        assert_eq!(config.notify.len(), 2);
        assert!(config.warnings.is_empty());
    }
}
