//! The file as written: every key, its default, and what it means. The doc comments
//! are the descriptions in `schemas/config.schema.json`.

use crate::alertmanager::TimeIntervalConfig;
use crate::execute::{DockerConfig, ExecConfig, KubernetesConfig, NotifyConfig};
use crate::ingest::probe::ProbeConfig;
use crate::model::{Action, OutcomeTrigger};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file as written. Every key is documented in `schemas/config.schema.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address the HTTP API listens on. Default `127.0.0.1:9095`. Read at start: a
    /// reload names a change among the settings that need a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Where the audit trail lives. Default `data`. Read at start: a reload names a
    /// change among the settings that need a restart.
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
    /// Health checks salve runs itself: `[[probe]]` with `name` and one of `http`,
    /// `tcp` or `exec`. Their failures are `ProbeFailed` events for the rules.
    #[serde(default)]
    pub probe: Vec<ProbeConfig>,
    /// Keep the trail and everything the policy remembers in PostgreSQL instead of the
    /// data dir, so that replicas share them. Absent: the JSONL trail in `data_dir`.
    /// Read at start: a reload names a change among the settings that need a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
}

/// `[store]`: the PostgreSQL that replicas share. The URL is never written here (it
/// holds a password): it comes from a file or an environment variable, surrounding
/// whitespace trimmed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Environment variable that holds the URL, e.g. `SALVE_POSTGRES_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_url_env: Option<String>,
    /// File that holds the URL (a mounted Secret, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_url_file: Option<PathBuf>,
    /// Connections at most. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<usize>,
    /// Connecting, or waiting for a free connection. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// One statement at most, then PostgreSQL cancels it. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout: Option<String>,
    /// How long the leader's lease lasts: after it was last renewed, another replica
    /// takes over within this. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub takeover_after: Option<String>,
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
    /// Most dedup episodes remembered (16 bytes and a timestamp each); past it the
    /// oldest are forgotten, counted in `salve_state_evicted_total{set="dedup"}`.
    /// Default 1000000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dedup_entries: Option<usize>,
    /// Most firing alerts remembered for `firing()`; past it the ones heard of least
    /// recently are forgotten, counted in `salve_state_evicted_total{set="firing"}`.
    /// Default 500000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_firing_alerts: Option<usize>,
    /// Most alerts held back to be decided again when their hold ends (each keeps its
    /// event, about a KiB); past it an alert held back is decided again only when it is
    /// re-sent, counted in `salve_state_evicted_total{set="held"}`. Default 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_held_alerts: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Rotate the audit file when it grows past this many bytes. Default 64 MiB. Read at
    /// start: a reload names a change among the settings that need a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    /// Rotated files kept at most. Default 10. A file younger than `keep_for` that
    /// this forces out is logged and counted; what it held is in the checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_files: Option<usize>,
    /// Rotated files older than this go. Default `30d`. No file goes before a
    /// checkpoint holds what it says, so limits, cooldowns, breakers, dedup and windows
    /// survive any number of rotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_for: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest accepted request body in bytes. Default 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// How long a client may take to send a request's headers: from the connection's
    /// start (the TLS handshake included) or from the first byte of a request on a kept-alive
    /// connection. Past it the connection is closed without an answer. Default `10s`.
    /// Read at start: a reload names a change among the settings that need a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// How long a client may take to send a request's body, once its headers are in.
    /// Past it the request is answered 408 and the connection closed. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_read_timeout: Option<String>,
    /// How long a kept-alive connection may wait for its next request, or a client
    /// leave its answer unread, before the connection is closed. Default `75s`, longer
    /// than Prometheus' 1m scrape interval. Read at start: a reload names a change
    /// among the settings that need a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Most connections open at once. Past it a new connection is closed as soon as it
    /// is accepted (counted in `salve_connections_refused_total`), never queued. Default
    /// 512: half of the usual 1024 open-files limit, the rest left for the trail, Docker,
    /// Kubernetes, PostgreSQL and notifications. Read at start: a reload names a change
    /// among the settings that need a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most labels one alert may have; a payload with more is refused (422). Default 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_labels: Option<usize>,
    /// Longest label value in bytes; a payload with a longer one is refused (422).
    /// Default 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_label_value_bytes: Option<usize>,
    /// Most bytes of annotations (names and values) one alert may carry; a payload with
    /// more is refused (422). Default 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_annotations_bytes: Option<usize>,
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
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first);
    /// needs `tls_key_file`. Re-read at every reload and SIGHUP; switching TLS on or off
    /// needs a restart (a reload names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// Require a client certificate signed by a CA in this PEM file (Alertmanager's
    /// `http_config.tls_config.cert_file` presents one); a client without one is refused
    /// during the handshake, on every path, `/-/healthy` included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Wall-clock backstop of one `plan()` call, wide enough that a busy machine never
    /// reaches it: rules are judged by `rule_max_operations`. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_timeout: Option<String>,
    /// Rhai operations one `plan()` call may spend before it is cut off (and, cut off
    /// again and again, quarantined). The same rule on the same event spends the same
    /// whatever the machine's load. Default 1000000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_max_operations: Option<u64>,
    /// Most events acknowledged but not yet decided. Past it the webhook endpoints
    /// answer 503 with `Retry-After` at once and record nothing, and `/-/ready` is 503.
    /// Default 20000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backlog: Option<usize>,
    /// Most intents one rule may return for one event; the rest are dropped and the
    /// rule error says how many. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_intents: Option<usize>,
    /// On SIGTERM, how long salve goes on deciding what is on disk (and finishing
    /// running actions) before it exits; what is left is decided at the next start.
    /// Default `20s`, inside Kubernetes' default grace period of 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<String>,
    /// A rule cut off (time, operations, sizes) this many times within this window is
    /// quarantined: not run, each event it would have seen recorded as a `rule_error`
    /// with reason `quarantined`. Default `"5 in 1m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_after: Option<String>,
    /// How long a quarantine lasts; a reload ends it too. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_for: Option<String>,
}
