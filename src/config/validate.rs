//! The file into a [`Config`]: every value parsed and checked once, each error naming
//! its key, so `salve check` and a refused reload say exactly what is wrong.

use super::file::ApiConfig;
use super::{
    ApiAuth, Config, ConfigError, ConfigFile, ConnectionLimits, ListenerTls, OnOutcome, Result,
    TlsFiles,
};
use crate::alertmanager::TimeInterval;
use crate::audit::Retention;
use crate::engine::QuarantineSettings;
use crate::event::EventLimits;
use crate::execute::{DockerSettings, ExecCommand, KubernetesSettings, NotifyChannel};
use crate::ingest::probe::{ProbeCommand, ProbeSettings};
use crate::model::{duration_setting, read_secret, Action, RateLimit};
use crate::policy::PolicySettings;
use crate::rules::RuleBudget;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The global budget when the config names none: a blast-radius guard, not a tuning knob.
/// Pages have none: a count would drop the page of one incident for the pages of
/// another; `[notify.X] rate` folds them into a summary instead.
pub fn default_limit(action: Action) -> Option<RateLimit> {
    let (count, secs) = match action {
        Action::Restart | Action::Stop | Action::Start | Action::Kill | Action::Scale => (5, 60),
        Action::Rollback => (3, 60),
        Action::Exec => (10, 60),
        Action::Notify => return None,
    };
    Some(RateLimit {
        count,
        window: Duration::from_secs(secs),
        per_target: false,
    })
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9095";

impl Config {
    pub fn from_file(file: ConfigFile, path: &Path) -> Result<Config> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let duration = |key: &str, value: &Option<String>, default: Duration| -> Result<Duration> {
            duration_setting(key, value, default).map_err(invalid)
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
            .filter_map(|a| Some((a, default_limit(a)?)))
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
            exec.insert(
                name.clone(),
                ExecCommand::from_config(name, cmd).map_err(invalid)?,
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

        let commands: HashMap<String, ProbeCommand> = exec
            .iter()
            .map(|(name, c): (&String, &ExecCommand)| {
                let command = ProbeCommand {
                    name: name.clone(),
                    argv: c.argv.clone(),
                    working_dir: c.working_dir.clone(),
                    env: c.env.clone(),
                };
                (name.clone(), command)
            })
            .collect();
        let probes = ProbeSettings::from_config(&file.probe, &commands).map_err(invalid)?;
        let auth = load_auth(&file.api).map_err(invalid)?;
        let tls = match tls_files(&file.api).map_err(invalid)? {
            Some(files) => Some(ListenerTls {
                server: super::tls::server_config(&files).map_err(invalid)?,
                files,
            }),
            None => None,
        };
        let mut notify = HashMap::new();
        for (name, channel) in &file.notify {
            notify.insert(
                name.clone(),
                NotifyChannel::from_config(name, channel).map_err(invalid)?,
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
            policy: PolicySettings {
                dry_run: file.dry_run,
                limits,
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
                max_dedup_entries: file.policy.max_dedup_entries.unwrap_or(1_000_000),
                max_firing_alerts: file.policy.max_firing_alerts.unwrap_or(500_000),
                max_held_alerts: file.policy.max_held_alerts.unwrap_or(100_000),
            },
            exec,
            audit_max_file_bytes: file.audit.max_file_bytes.unwrap_or(64 << 20),
            audit_retention: Retention {
                keep_files: file.audit.keep_files.unwrap_or(10),
                keep_for: duration(
                    "audit.keep_for",
                    &file.audit.keep_for,
                    Duration::from_secs(30 * 24 * 3600),
                )?,
            },
            max_body_bytes: file.api.max_body_bytes.unwrap_or(1 << 20),
            connections: connection_limits(&file.api).map_err(invalid)?,
            event_limits: {
                let defaults = EventLimits::default();
                EventLimits {
                    max_labels: file.api.max_labels.unwrap_or(defaults.max_labels),
                    max_label_value_bytes: file
                        .api
                        .max_label_value_bytes
                        .unwrap_or(defaults.max_label_value_bytes),
                    max_annotations_bytes: file
                        .api
                        .max_annotations_bytes
                        .unwrap_or(defaults.max_annotations_bytes),
                }
            },
            auth,
            tls,
            max_backlog: file.engine.max_backlog.unwrap_or(20_000).max(1),
            max_intents: file.engine.max_intents.unwrap_or(100),
            quarantine: quarantine_settings(&file.engine).map_err(invalid)?,
            shutdown_grace: duration(
                "engine.shutdown_grace",
                &file.engine.shutdown_grace,
                Duration::from_secs(20),
            )?,
            rule_budget: RuleBudget {
                operations: match file.engine.rule_max_operations {
                    Some(0) => {
                        return Err(invalid(
                            "engine.rule_max_operations: must be at least 1".to_string(),
                        ))
                    }
                    Some(n) => n,
                    None => RuleBudget::DEFAULT_OPERATIONS,
                },
                backstop: duration(
                    "engine.rule_timeout",
                    &file.engine.rule_timeout,
                    RuleBudget::DEFAULT_BACKSTOP,
                )?,
            },
            docker: DockerSettings::from_config(&file.docker).map_err(invalid)?,
            notify,
            on_outcome,
            probes,
            kubernetes: KubernetesSettings::from_config(&file.kubernetes).map_err(invalid)?,
            store: match &file.store {
                None => None,
                Some(store) => Some(store_settings(store).map_err(invalid)?),
            },
        })
    }
}

/// `[store]`: exactly one source of the URL, and the URL read from it.
fn store_settings(
    store: &super::StoreConfig,
) -> std::result::Result<crate::audit::StoreSettings, String> {
    let url = match (&store.postgres_url_env, &store.postgres_url_file) {
        (Some(_), Some(_)) => {
            return Err(
                "store: give postgres_url_env or postgres_url_file, not both".into(),
            )
        }
        (None, None) => {
            return Err("store: postgres_url_env or postgres_url_file is required (the URL holds a password, so it is never written in salve.toml)".into())
        }
        (env, file) => read_secret("store.postgres_url", file.as_deref(), env.as_deref())?
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
            .ok_or("store.postgres_url: the URL is empty")?,
    };
    let pool_size = store.pool_size.unwrap_or(8);
    if pool_size < 2 {
        return Err("store.pool_size: at least 2 (one writes while another reads)".into());
    }
    let timeout = |key: &str, value: &Option<String>, default: u64| {
        duration_setting(key, value, Duration::from_secs(default))
    };
    Ok(crate::audit::StoreSettings {
        url: crate::model::Secret(url),
        pool_size,
        connect_timeout: timeout("store.connect_timeout", &store.connect_timeout, 5)?,
        statement_timeout: timeout("store.statement_timeout", &store.statement_timeout, 10)?,
        takeover_after: timeout("store.takeover_after", &store.takeover_after, 10)?
            .max(Duration::from_secs(1)),
    })
}

/// `quarantine_after = "N in DURATION"` and `quarantine_for`.
fn quarantine_settings(
    engine: &super::EngineConfig,
) -> std::result::Result<QuarantineSettings, String> {
    let key = "engine.quarantine_after";
    let (after, within) = match &engine.quarantine_after {
        None => (5, Duration::from_secs(60)),
        Some(text) => {
            let words: Vec<&str> = text.split_whitespace().collect();
            let [count, "in", window] = words[..] else {
                return Err(format!("{key}: {text:?}: write it like \"5 in 1m\""));
            };
            let count: usize = count.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("{key}: {text:?}: the count must be a whole number above 0")
            })?;
            let window = crate::model::parse_duration(window).map_err(|e| format!("{key}: {e}"))?;
            (count, window)
        }
    };
    let cool_off = duration_setting(
        "engine.quarantine_for",
        &engine.quarantine_for,
        Duration::from_secs(600),
    )?;
    Ok(QuarantineSettings {
        after,
        within,
        cool_off,
    })
}

/// `[api]`'s bounds on slow and idle clients. The defaults: headers come in one packet
/// from Alertmanager, Prometheus and the kubelet, so 10s is a congested network's worth;
/// 30s reads a 1 MiB body at 35 kB/s; 75s keeps a connection Prometheus scrapes every
/// minute; 512 connections leave half of systemd's 1024 open files to the rest of salve.
fn connection_limits(api: &ApiConfig) -> std::result::Result<ConnectionLimits, String> {
    let timeout = |key: &str, value: &Option<String>, default: u64| {
        let d = duration_setting(key, value, Duration::from_secs(default))?;
        if d.is_zero() {
            return Err(format!("{key}: must be longer than 0s"));
        }
        Ok(d)
    };
    let max_connections = api.max_connections.unwrap_or(512);
    if max_connections == 0 {
        return Err("api.max_connections: must be at least 1".into());
    }
    Ok(ConnectionLimits {
        header_read_timeout: timeout("api.header_read_timeout", &api.header_read_timeout, 10)?,
        body_read_timeout: timeout("api.body_read_timeout", &api.body_read_timeout, 30)?,
        idle_timeout: timeout("api.idle_timeout", &api.idle_timeout, 75)?,
        max_connections,
    })
}

/// The listener's TLS files; half a pair, or client certificates without TLS, is an
/// error naming the key.
fn tls_files(api: &ApiConfig) -> std::result::Result<Option<TlsFiles>, String> {
    match (&api.tls_cert_file, &api.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: api.client_ca_file.clone(),
        })),
        (Some(_), None) => Err("api.tls_cert_file: needs api.tls_key_file".into()),
        (None, Some(_)) => Err("api.tls_key_file: needs api.tls_cert_file".into()),
        (None, None) if api.client_ca_file.is_some() => Err(
            "api.client_ca_file: client certificates need TLS: set api.tls_cert_file and api.tls_key_file"
                .into(),
        ),
        (None, None) => Ok(None),
    }
}

/// The credentials `[api]` asks for. Anything half set is an error naming the key: a
/// door that looks locked and is open is worse than one that is plainly open.
fn load_auth(api: &ApiConfig) -> std::result::Result<Option<ApiAuth>, String> {
    let bearer = read_secret(
        "api.bearer_token",
        api.bearer_token_file.as_deref(),
        api.bearer_token_env.as_deref(),
    )?;
    let basic_password_given =
        api.basic_auth_password_file.is_some() || api.basic_auth_password_env.is_some();
    let basic_given = api.basic_auth_username.is_some() || basic_password_given;
    if bearer.is_some() && basic_given {
        return Err(
            "api.basic_auth_username: give bearer_token_file/_env or basic auth, not both".into(),
        );
    }
    if let Some(token) = bearer {
        if token.trim().is_empty() {
            let key = if api.bearer_token_file.is_some() {
                "api.bearer_token_file"
            } else {
                "api.bearer_token_env"
            };
            return Err(format!("{key}: the token is empty"));
        }
        return Ok(Some(ApiAuth::Bearer(token.trim().to_string())));
    }
    if api.basic_auth_username.is_none() && basic_password_given {
        let key = if api.basic_auth_password_file.is_some() {
            "api.basic_auth_password_file"
        } else {
            "api.basic_auth_password_env"
        };
        return Err(format!(
            "{key}: needs basic_auth_username (without it the API would be open)"
        ));
    }
    if let Some(username) = &api.basic_auth_username {
        if username.is_empty() {
            return Err("api.basic_auth_username: is empty".into());
        }
        let password = read_secret(
            "api.basic_auth_password",
            api.basic_auth_password_file.as_deref(),
            api.basic_auth_password_env.as_deref(),
        )?
        .ok_or(
            "api.basic_auth_username: needs basic_auth_password_file or basic_auth_password_env",
        )?;
        if password.is_empty() {
            return Err("api.basic_auth_password: the password is empty".into());
        }
        return Ok(Some(ApiAuth::Basic {
            username: username.clone(),
            password,
        }));
    }
    Ok(None)
}
