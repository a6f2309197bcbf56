//! The file as written: every key, its type, its default, and what it means. Values
//! are typed as they are read (durations, rates, addresses, enums), so a bad one fails
//! at its key. Each section's `Default` is the one place its defaults are written; the
//! doc comments, which are the descriptions in `schemas/config.schema.json`, say them
//! for people, and the schema's `default`s come from the same `Default`.

use crate::alertmanager::TimeIntervalConfig;
use crate::api::Role;
use crate::event::EventLimits;
use crate::execute::{DockerConfig, ExecConfig, KubernetesConfig, NotifyConfig, SystemdConfig};
use crate::ingest::probe::ProbeConfig;
use crate::model::{Action, HumanDuration, OutcomeTrigger, RateForm, RateLimit};
use crate::rules::RuleBudget;
use ipnet::IpNet;
use schemars::JsonSchema;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The file as written. Every key is documented in `schemas/config.schema.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Address the HTTP API listens on: an IP address and a port (`[::1]:9095` for
    /// IPv6; `localhost:PORT` is read as `127.0.0.1:PORT`). Default `127.0.0.1:9095`.
    /// Read at start: a reload names a change among the settings that need a restart.
    #[serde(deserialize_with = "socket_address")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Where the audit trail lives. Default `data`. Read at start: a reload names a
    /// change among the settings that need a restart.
    pub data_dir: PathBuf,
    /// Folder of `.rhai` rules. Default `rules`.
    pub rules_dir: PathBuf,
    /// Decide and audit everything, execute nothing.
    pub dry_run: bool,
    /// Global budget per action kind across all rules and targets, e.g. `restart = "5 per 1m"`.
    /// An action kind not named keeps its default (`config::default_limit`).
    pub limits: BTreeMap<String, RateLimit>,
    /// Named commands that rules run with `exec(name, args)`.
    pub exec: BTreeMap<String, ExecConfig>,
    /// Named windows in Alertmanager's `time_intervals` syntax, referenced by a rule's `MUTE`.
    pub time_intervals: Vec<TimeIntervalConfig>,
    pub policy: PolicyConfig,
    pub audit: AuditConfig,
    pub api: ApiConfig,
    pub engine: EngineConfig,
    pub docker: DockerConfig,
    pub kubernetes: KubernetesConfig,
    /// `[systemd]`: units salve may restart, reload, stop, start or signal over D-Bus,
    /// and whether to follow their failures as events.
    pub systemd: SystemdConfig,
    /// Named notification channels that rules address with `notify(name, text)`,
    /// `email(...)`, `slack(...)` and `webhook(...)`.
    #[serde(deserialize_with = "NotifyConfig::deserialize_channels")]
    pub notify: BTreeMap<String, NotifyConfig>,
    /// Tell a channel when remediation itself fails: `[[on_outcome]]` with `when`,
    /// `notify` and optionally `actions` and `limit`.
    pub on_outcome: Vec<OnOutcomeConfig>,
    /// Health checks salve runs itself: `[[probe]]` with `name` and one of `http`,
    /// `tcp` or `exec`. Their failures are `ProbeFailed` events for the rules.
    pub probe: Vec<ProbeConfig>,
    /// Keep the trail and everything the policy remembers in PostgreSQL instead of the
    /// data dir, so that replicas share them. Absent: the JSONL trail in `data_dir`.
    /// Read at start: a reload names a change among the settings that need a restart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreConfig>,
    /// Groups of people who may approve risky actions (`[approvals.NAME]`), and the
    /// actions that always ask (`require`, `require_targets`).
    pub approvals: super::ApprovalsConfig,
    /// `[tracing]`: OpenTelemetry traces, one per alert. Off unless `otlp_endpoint` (or
    /// the standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variables) says where to send them.
    pub tracing: TracingConfig,
}

/// `[tracing]`: where salve sends its traces (OTLP over HTTP, protobuf).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// The OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`: spans are posted to its
    /// `/v1/traces`. Wins over `OTEL_EXPORTER_OTLP_ENDPOINT` and
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; the other `OTEL_*` variables (service name,
    /// resource attributes, sampler, batch delays) apply as the OpenTelemetry SDK reads
    /// them. Default: none (traces off unless those variables name an endpoint). Read at
    /// start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

/// The address salve listens on when the file names none.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9095);

/// `listen`, an error quoting what was written.
fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// The address to listen on (`listen`, `--listen`): an IP address and a port.
/// `localhost:PORT` is read as `127.0.0.1:PORT`, as people write it out of habit; any
/// other host name is refused rather than looked up, as what it resolves to can change
/// between two starts.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        if host.eq_ignore_ascii_case("localhost") {
            if let Ok(port) = port.parse::<u16>() {
                return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
            }
        }
    }
    Err(format!(
        "invalid address {text:?}: expected an IP address and a port, \
         e.g. 127.0.0.1:9095, [::1]:9095 or 0.0.0.0:9095 (host names other than localhost are not looked up)"
    ))
}

impl Default for ConfigFile {
    fn default() -> ConfigFile {
        ConfigFile {
            listen: DEFAULT_LISTEN,
            data_dir: PathBuf::from("data"),
            rules_dir: PathBuf::from("rules"),
            dry_run: false,
            limits: BTreeMap::new(),
            exec: BTreeMap::new(),
            time_intervals: Vec::new(),
            policy: PolicyConfig::default(),
            audit: AuditConfig::default(),
            api: ApiConfig::default(),
            engine: EngineConfig::default(),
            docker: DockerConfig::default(),
            kubernetes: KubernetesConfig::default(),
            systemd: SystemdConfig::default(),
            notify: BTreeMap::new(),
            on_outcome: Vec::new(),
            probe: Vec::new(),
            store: None,
            approvals: super::ApprovalsConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

/// `[store]`: the PostgreSQL that replicas share. The URL is never written here (it
/// holds a password): it comes from a file or an environment variable, surrounding
/// whitespace trimmed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Environment variable that holds the URL, e.g. `SALVE_POSTGRES_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url_env: Option<String>,
    /// File that holds the URL (a mounted Secret, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url_file: Option<PathBuf>,
    /// Connections at most; at least 2 (one writes while another reads). Default 8.
    pub pool_size: usize,
    /// Connecting, or waiting for a free connection. Default `5s`.
    pub connect_timeout: HumanDuration,
    /// One statement at most, then PostgreSQL cancels it. Default `10s`.
    pub statement_timeout: HumanDuration,
    /// How long the leader's lease lasts: after it was last renewed, another replica
    /// takes over within this. Default `10s`; at least `1s`.
    pub takeover_after: HumanDuration,
    /// The leader writes a checkpoint of the state to the store once this many records
    /// were written since the last (and after a minute with any), so a replica that
    /// starts or takes the lead reads the checkpoint and the records after it, not the
    /// whole table. Default 100000; at least 1.
    pub checkpoint_rows: u64,
    /// Records older than this are removed from the store, in batches, once the
    /// oldest kept checkpoint holds them and every live replica has read them.
    /// `salve audit`, `report` and `replay` say when a window reaches back past what
    /// is kept. Default `30d`.
    pub keep_for: HumanDuration,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            postgres_url_env: None,
            postgres_url_file: None,
            pool_size: 8,
            connect_timeout: HumanDuration::from_secs(5),
            statement_timeout: HumanDuration::from_secs(10),
            takeover_after: HumanDuration::from_secs(10),
            checkpoint_rows: 100_000,
            keep_for: HumanDuration::from_secs(30 * 24 * 3600),
        }
    }
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
    /// At most this many messages to the channel from this entry, counted per target,
    /// e.g. `"5 per 15m"` (the default), so a flapping failure cannot flood it.
    #[serde(default = "OnOutcomeConfig::default_limit")]
    pub limit: RateLimit,
}

impl OnOutcomeConfig {
    fn default_limit() -> RateLimit {
        RateLimit {
            count: 5,
            window: Duration::from_secs(15 * 60),
            per_target: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Consecutive failures of one action on one target that open its breaker; at
    /// least 1. Default 3.
    pub breaker_failures: u32,
    /// How long an open breaker stays open before one trial. Default `5m`.
    pub breaker_open_for: HumanDuration,
    /// A firing alert not heard of for this long no longer counts for `firing()`. Default `6h`.
    pub firing_ttl: HumanDuration,
    /// How long dedup remembers an episode after it was last seen. Default `24h`.
    pub dedup_ttl: HumanDuration,
    /// Most dedup episodes remembered (16 bytes and a timestamp each); past it the
    /// oldest are forgotten, counted in `salve_state_evicted_total{set="dedup"}`.
    /// Default 1000000.
    pub max_dedup_entries: usize,
    /// Most firing alerts remembered for `firing()`; past it the ones heard of least
    /// recently are forgotten, counted in `salve_state_evicted_total{set="firing"}`.
    /// Default 500000.
    pub max_firing_alerts: usize,
    /// Most alerts held back to be decided again when their hold ends (each keeps its
    /// event, about a KiB); past it an alert held back is decided again only when it is
    /// re-sent, counted in `salve_state_evicted_total{set="held"}`. Default 100000.
    pub max_held_alerts: usize,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            breaker_failures: 3,
            breaker_open_for: HumanDuration::from_secs(5 * 60),
            firing_ttl: HumanDuration::from_secs(6 * 3600),
            dedup_ttl: HumanDuration::from_secs(24 * 3600),
            max_dedup_entries: 1_000_000,
            max_firing_alerts: 500_000,
            max_held_alerts: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Rotate the audit file when it grows past this many bytes. Default 64 MiB. Read at
    /// start: a reload names a change among the settings that need a restart.
    pub max_file_bytes: u64,
    /// Rotated files kept at most. Default 10. A file younger than `keep_for` that
    /// this forces out is logged and counted; what it held is in the checkpoint.
    pub keep_files: usize,
    /// Rotated files older than this go. Default `30d`. No file goes before a
    /// checkpoint holds what it says, so limits, cooldowns, breakers, dedup and windows
    /// survive any number of rotations.
    pub keep_for: HumanDuration,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            max_file_bytes: 64 << 20,
            keep_files: 10,
            keep_for: HumanDuration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `[api]`. The defaults of the bounds on slow and idle clients: headers come in one
/// packet from Alertmanager, Prometheus and the kubelet, so 10s is a congested
/// network's worth; 30s reads a 1 MiB body at 35 kB/s; 75s keeps a connection
/// Prometheus scrapes every minute; 512 connections leave half of systemd's 1024 open
/// files to the rest of salve.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest accepted request body in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers: from the connection's
    /// start (the TLS handshake included) or from the first byte of a request on a kept-alive
    /// connection. Past it the connection is closed without an answer. Default `10s`.
    /// Read at start: a reload names a change among the settings that need a restart.
    pub header_read_timeout: HumanDuration,
    /// How long a client may take to send a request's body, once its headers are in.
    /// Past it the request is answered 408 and the connection closed. Default `30s`.
    pub body_read_timeout: HumanDuration,
    /// How long a kept-alive connection may wait for its next request, or a client
    /// leave its answer unread, before the connection is closed. Default `75s`, longer
    /// than Prometheus' 1m scrape interval. Read at start: a reload names a change
    /// among the settings that need a restart.
    pub idle_timeout: HumanDuration,
    /// Most connections open at once. Past it a new connection is closed as soon as it
    /// is accepted (counted in `salve_connections_refused_total`), never queued. Default
    /// 512: half of the usual 1024 open-files limit, the rest left for the trail, Docker,
    /// Kubernetes, PostgreSQL and notifications. Read at start: a reload names a change
    /// among the settings that need a restart.
    pub max_connections: usize,
    /// Most labels one alert may have; a payload with more is refused (422). Default 128.
    pub max_labels: usize,
    /// Longest label value in bytes; a payload with a longer one is refused (422).
    /// Default 4096.
    pub max_label_value_bytes: usize,
    /// Most bytes of annotations (names and values) one alert may carry; a payload with
    /// more is refused (422). Default 65536.
    pub max_annotations_bytes: usize,
    /// Require `Authorization: Bearer TOKEN` on `/api/` and `/-/reload`; the token is read from this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// As `bearer_token_file`, from this environment variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Require HTTP basic auth with this user name (password from `basic_auth_password_file` or `_env`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth_password_env: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first);
    /// needs `tls_key_file`. Re-read at every reload and SIGHUP; switching TLS on or off
    /// needs a restart (a reload names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// Require a client certificate signed by a CA in this PEM file (Alertmanager's
    /// `http_config.tls_config.cert_file` presents one); a client without one is refused
    /// during the handshake, on every path, `/-/healthy` included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Named callers, `[[api.identity]]`: each a `name`, a token (`token_file` or
    /// `token_env`) and a `role`, so that the API knows who calls and what they may do.
    /// The single `bearer_token_file` (or basic auth) works beside them, as an admin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<IdentityConfig>,
    /// A proxy in front of salve that signs users in (oauth2-proxy) and names them in a
    /// header, believed only from the proxy's addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyConfig>,
}

/// `[[api.identity]]`: one named caller and the token it presents as
/// `Authorization: Bearer TOKEN`. Re-read at every reload, like `bearer_token_file`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Who this is, as the audit and approvals name them; unique.
    pub name: String,
    /// File that holds the token (a mounted Secret, say); its trailing newline is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// As `token_file`, from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// What the caller may do: `sender` (post alerts and events), `viewer` (read, and
    /// `POST /api/v1/plan`), `approver` (a viewer who approves actions) or `admin`
    /// (everything).
    pub role: Role,
}

/// `[api.proxy]`: the user a signing-in proxy names in a header.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The header that holds the user's name, e.g. `X-Forwarded-Email`.
    pub header: String,
    /// The proxy's addresses, networks (`"10.0.0.0/8"`) or single addresses
    /// (`"127.0.0.1"`). The header of a connection from anywhere else is ignored.
    pub from: Vec<PeerNet>,
    /// The role every user the proxy names has. Default `viewer`.
    #[serde(default = "ProxyConfig::default_role")]
    pub role: Role,
}

impl ProxyConfig {
    fn default_role() -> Role {
        Role::Viewer
    }
}

/// An address or network of `[api.proxy] from`, as written: `"10.0.0.0/8"`,
/// `"::1/128"` or a single address.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde_with::DeserializeFromStr, serde_with::SerializeDisplay,
)]
pub struct PeerNet(pub IpNet);

impl std::str::FromStr for PeerNet {
    type Err = String;

    fn from_str(text: &str) -> Result<PeerNet, String> {
        let text = text.trim();
        if text.contains('/') {
            return text
                .parse()
                .map(PeerNet)
                .map_err(|_| format!("{text:?} is not a network (write it like \"10.0.0.0/8\")"));
        }
        text.parse::<IpAddr>()
            .map(|address| PeerNet(IpNet::from(address)))
            .map_err(|_| format!("{text:?} is not an IP address or a network"))
    }
}

impl std::fmt::Display for PeerNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl JsonSchema for PeerNet {
    fn schema_name() -> Cow<'static, str> {
        "PeerNet".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IP network in CIDR form (\"10.0.0.0/8\", \"::1/128\") or one IP address.",
        })
    }
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        let event_limits = EventLimits::default();
        ApiConfig {
            max_body_bytes: 1 << 20,
            header_read_timeout: HumanDuration::from_secs(10),
            body_read_timeout: HumanDuration::from_secs(30),
            idle_timeout: HumanDuration::from_secs(75),
            max_connections: 512,
            max_labels: event_limits.max_labels,
            max_label_value_bytes: event_limits.max_label_value_bytes,
            max_annotations_bytes: event_limits.max_annotations_bytes,
            bearer_token_file: None,
            bearer_token_env: None,
            basic_auth_username: None,
            basic_auth_password_file: None,
            basic_auth_password_env: None,
            tls_cert_file: None,
            tls_key_file: None,
            client_ca_file: None,
            identity: Vec::new(),
            proxy: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Wall-clock backstop of one `plan()` call, wide enough that a busy machine never
    /// reaches it: rules are judged by `rule_max_operations`. Default `1s`.
    pub rule_timeout: HumanDuration,
    /// Rhai operations one `plan()` call may spend before it is cut off (and, cut off
    /// again and again, quarantined); at least 1. The same rule on the same event
    /// spends the same whatever the machine's load. Default 1000000.
    pub rule_max_operations: u64,
    /// Most events acknowledged but not yet decided. Past it the webhook endpoints
    /// answer 503 with `Retry-After` at once and record nothing, and `/-/ready` is 503.
    /// Default 20000.
    pub max_backlog: usize,
    /// Most intents one rule may return for one event; the rest are dropped and the
    /// rule error says how many. Default 100.
    pub max_intents: usize,
    /// On SIGTERM, how long salve goes on deciding what is on disk (and finishing
    /// running actions) before it exits; what is left is decided at the next start.
    /// Default `20s`, inside Kubernetes' default grace period of 30s.
    pub shutdown_grace: HumanDuration,
    /// A rule cut off (time, operations, sizes) this many times within this window is
    /// quarantined: not run, each event it would have seen recorded as a `rule_error`
    /// with reason `quarantined`. Default `"5 per 1m"`. The old form `"5 in 1m"` is
    /// still read, with a warning.
    pub quarantine_after: QuarantineAfter,
    /// How long a quarantine lasts; a reload ends it too. Default `10m`.
    pub quarantine_for: HumanDuration,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            rule_timeout: HumanDuration(RuleBudget::DEFAULT_BACKSTOP),
            rule_max_operations: RuleBudget::DEFAULT_OPERATIONS,
            max_backlog: 20_000,
            max_intents: 100,
            shutdown_grace: HumanDuration::from_secs(20),
            quarantine_after: QuarantineAfter::default(),
            quarantine_for: HumanDuration::from_secs(10 * 60),
        }
    }
}

/// `quarantine_after` as written: how many cut-offs within which window, and whether
/// it was written in the old form `"5 in 1m"`, still read so that an old file keeps
/// working, with a warning naming salve's one grammar of rates, `"5 per 1m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineAfter {
    pub rate: RateLimit,
    pub form: RateForm,
}

impl Default for QuarantineAfter {
    fn default() -> QuarantineAfter {
        QuarantineAfter {
            rate: RateLimit {
                count: 5,
                window: Duration::from_secs(60),
                per_target: false,
            },
            form: RateForm::Per,
        }
    }
}

impl QuarantineAfter {
    /// What loading a file with the old form says: the key, and the form to write.
    pub fn old_form_warning(&self) -> Option<String> {
        (self.form == RateForm::OldIn).then(|| {
            format!(
                "engine.quarantine_after: \"{} in {}\" is the old form; write it \"{}\", as every rate in salve",
                self.rate.count,
                crate::model::format_duration(self.rate.window),
                self.rate
            )
        })
    }
}

impl<'de> Deserialize<'de> for QuarantineAfter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<QuarantineAfter, D::Error> {
        let text = String::deserialize(deserializer)?;
        let (rate, form) = RateLimit::parse_either_form(&text).map_err(serde::de::Error::custom)?;
        Ok(QuarantineAfter { rate, form })
    }
}

impl Serialize for QuarantineAfter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.rate)
    }
}

impl JsonSchema for QuarantineAfter {
    fn schema_name() -> Cow<'static, str> {
        "QuarantineAfter".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Cut-offs per window, e.g. \"5 per 1m\" (the old form \"5 in 1m\" is read, with a warning).",
            "pattern": r"^\s*[0-9]+\s+(per|in)\s+\S+\s*$",
        })
    }
}
