//! The file into a [`Config`]: what a key's type cannot say (a value that depends on
//! another, a name that must exist, a file that must be readable), checked once, each
//! error naming its key, so `salve check` and a refused reload say exactly what is wrong.

use super::file::{ApiConfig, EngineConfig, OnOutcomeConfig, StoreConfig};
use super::{
    ApiAuth, Config, ConfigError, ConfigFile, ConnectionLimits, ListenerTls, OnOutcome, Result,
    TlsFiles,
};
use crate::alertmanager::{TimeInterval, TimeIntervalConfig};
use crate::audit::Retention;
use crate::engine::QuarantineSettings;
use crate::event::EventLimits;
use crate::execute::{
    DockerSettings, ExecCommand, ExecConfig, KubernetesSettings, NotifyChannel, NotifyConfig,
};
use crate::ingest::probe::{ProbeCommand, ProbeSettings};
use crate::model::{secret_setting, Action, InvalidSetting, RateLimit, Secret};
use crate::policy::PolicySettings;
use crate::rules::RuleBudget;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

type Checked<T> = std::result::Result<T, InvalidSetting>;

/// The global budget when the config names none: a blast-radius guard, not a tuning knob.
/// Pages have none: a count would drop the page of one incident for the pages of
/// another; `[notify.X] rate` folds them into a summary instead.
pub fn default_limit(action: Action) -> Option<RateLimit> {
    let (count, secs) = match action {
        Action::Restart
        | Action::Stop
        | Action::Start
        | Action::Kill
        | Action::Scale
        | Action::Reload
        | Action::ResetFailed => (5, 60),
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

impl Config {
    pub fn from_file(file: ConfigFile, path: &Path) -> Result<Config> {
        Config::from_sections(file).map_err(|source| ConfigError::Invalid {
            path: path.to_path_buf(),
            source,
        })
    }

    fn from_sections(file: ConfigFile) -> Checked<Config> {
        let exec = exec_commands(&file.exec)?;
        let notify = channels(&file.notify)?;
        let on_outcome = on_outcome(&file.on_outcome, &notify)?;
        let probes = ProbeSettings::from_config(&file.probe, &probe_commands(&exec))?;
        let approvals = super::approvals::approvals(&file.approvals, |c| notify.contains_key(c))?;
        let engine = &file.engine;
        let auth = load_auth(&file.api)?;
        let warnings = engine
            .quarantine_after
            .old_form_warning()
            .into_iter()
            .collect();
        Ok(Config {
            listen: file.listen,
            data_dir: file.data_dir.clone(),
            rules_dir: file.rules_dir.clone(),
            policy: PolicySettings {
                approvals: approvals.terms.clone(),
                ..policy_settings(&file)?
            },
            exec,
            audit_max_file_bytes: file.audit.max_file_bytes,
            audit_retention: Retention {
                keep_files: file.audit.keep_files,
                keep_for: file.audit.keep_for.get(),
            },
            max_body_bytes: file.api.max_body_bytes,
            connections: connection_limits(&file.api)?,
            event_limits: EventLimits {
                max_labels: file.api.max_labels,
                max_label_value_bytes: file.api.max_label_value_bytes,
                max_annotations_bytes: file.api.max_annotations_bytes,
            },
            auth: auth.clone(),
            identities: super::identity::identities(&file.api, auth.as_ref())?,
            proxy: super::identity::trusted_proxy(&file.api)?,
            tls: listener_tls(&file.api)?,
            rule_budget: rule_budget(engine)?,
            max_backlog: engine.max_backlog.max(1),
            max_intents: engine.max_intents,
            shutdown_grace: engine.shutdown_grace.get(),
            quarantine: QuarantineSettings::new(
                engine.quarantine_after.rate,
                engine.quarantine_for.get(),
            )?,
            docker: DockerSettings::from_config(&file.docker),
            kubernetes: KubernetesSettings::from_config(&file.kubernetes)?,
            systemd: crate::execute::SystemdSettings::from_config(&file.systemd)?,
            notify,
            on_outcome,
            probes,
            store: file.store.as_ref().map(store_settings).transpose()?,
            approvals,
            otlp_traces_endpoint: traces_endpoint(&file.tracing)?,
            warnings,
        })
    }
}

/// `[policy]`, `dry_run`, `[limits]` and `time_intervals`: what the policy applies.
fn policy_settings(file: &ConfigFile) -> Checked<PolicySettings> {
    let policy = &file.policy;
    if policy.breaker_failures == 0 {
        return Err(InvalidSetting::new(
            "policy.breaker_failures",
            "must be at least 1",
        ));
    }
    Ok(PolicySettings {
        dry_run: file.dry_run,
        limits: limits(&file.limits)?,
        time_intervals: time_intervals(&file.time_intervals)?,
        breaker_failures: policy.breaker_failures,
        breaker_open_for: policy.breaker_open_for.get(),
        firing_ttl: policy.firing_ttl.get(),
        dedup_ttl: policy.dedup_ttl.get(),
        max_dedup_entries: policy.max_dedup_entries,
        max_firing_alerts: policy.max_firing_alerts,
        max_held_alerts: policy.max_held_alerts,
        approvals: Default::default(),
    })
}

/// `[limits]` over the defaults: an action kind each, across all targets.
fn limits(written: &BTreeMap<String, RateLimit>) -> Checked<HashMap<Action, RateLimit>> {
    let mut limits: HashMap<Action, RateLimit> = Action::ALL
        .into_iter()
        .filter_map(|a| Some((a, default_limit(a)?)))
        .collect();
    for (key, rate) in written {
        let invalid = |message: String| InvalidSetting::new(format!("limits.{key}"), message);
        let action = key.parse::<Action>().map_err(|e| invalid(e.to_string()))?;
        if rate.per_target {
            return Err(invalid(format!(
                "{:?}: the global budget is across all targets; put \"per target\" limits in a rule's LIMIT",
                rate.to_string()
            )));
        }
        limits.insert(action, *rate);
    }
    Ok(limits)
}

fn time_intervals(written: &[TimeIntervalConfig]) -> Checked<HashMap<String, TimeInterval>> {
    let mut time_intervals = HashMap::new();
    for ti in written {
        let compiled =
            TimeInterval::compile(ti).map_err(|e| InvalidSetting::new("time_intervals", e))?;
        if time_intervals.insert(ti.name.clone(), compiled).is_some() {
            return Err(InvalidSetting::new(
                "time_intervals",
                format!("the name {:?} is used twice", ti.name),
            ));
        }
    }
    Ok(time_intervals)
}

fn exec_commands(written: &BTreeMap<String, ExecConfig>) -> Checked<HashMap<String, ExecCommand>> {
    written
        .iter()
        .map(|(name, cmd)| Ok((name.clone(), ExecCommand::from_config(name, cmd)?)))
        .collect()
}

/// The named commands as probes run them.
fn probe_commands(exec: &HashMap<String, ExecCommand>) -> HashMap<String, ProbeCommand> {
    exec.iter()
        .map(|(name, c)| {
            let command = ProbeCommand {
                name: name.clone(),
                argv: c.argv.clone(),
                working_dir: c.working_dir.clone(),
                env: c.env.clone(),
            };
            (name.clone(), command)
        })
        .collect()
}

fn channels(written: &BTreeMap<String, NotifyConfig>) -> Checked<HashMap<String, NotifyChannel>> {
    written
        .iter()
        .map(|(name, channel)| Ok((name.clone(), NotifyChannel::from_config(name, channel)?)))
        .collect()
}

/// `[[on_outcome]]`: each names a channel that exists and at least one trigger.
fn on_outcome(
    written: &[OnOutcomeConfig],
    notify: &HashMap<String, NotifyChannel>,
) -> Checked<Vec<OnOutcome>> {
    let mut on_outcome = Vec::with_capacity(written.len());
    for (i, entry) in written.iter().enumerate() {
        let key = |k: &str| format!("on_outcome[{i}].{k}");
        if !notify.contains_key(&entry.notify) {
            let mut known: Vec<&String> = notify.keys().collect();
            known.sort();
            return Err(InvalidSetting::new(
                key("notify"),
                format!("no channel [notify.{}] (defined: {known:?})", entry.notify),
            ));
        }
        if entry.when.is_empty() {
            return Err(InvalidSetting::new(
                key("when"),
                "needs one or more of \"failed\", \"circuit_open\", \"abandoned\"",
            ));
        }
        on_outcome.push(OnOutcome {
            when: entry.when.clone(),
            channel: entry.notify.clone(),
            actions: entry.actions.clone(),
            // Counted per target whatever is written: one flapping target must not
            // silence the others.
            limit: RateLimit {
                per_target: true,
                ..entry.limit
            },
        });
    }
    Ok(on_outcome)
}

/// What one `plan()` may spend.
fn rule_budget(engine: &EngineConfig) -> Checked<RuleBudget> {
    if engine.rule_max_operations == 0 {
        return Err(InvalidSetting::new(
            "engine.rule_max_operations",
            "must be at least 1",
        ));
    }
    Ok(RuleBudget {
        operations: engine.rule_max_operations,
        backstop: engine.rule_timeout.get(),
    })
}

/// `[tracing] otlp_endpoint`: an http(s) base URL, to which `/v1/traces` is added as
/// the SDK adds it to `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_endpoint(tracing: &super::file::TracingConfig) -> Checked<Option<String>> {
    let Some(endpoint) = tracing.otlp_endpoint.as_deref().map(str::trim) else {
        return Ok(None);
    };
    let valid = ["http://", "https://"]
        .iter()
        .any(|scheme| endpoint.len() > scheme.len() && endpoint.starts_with(scheme));
    if !valid {
        return Err(InvalidSetting::new(
            "tracing.otlp_endpoint",
            format!(
                "{endpoint:?} is not an http:// or https:// URL, e.g. \"http://127.0.0.1:4318\""
            ),
        ));
    }
    let base = endpoint.trim_end_matches('/');
    let base = base.strip_suffix("/v1/traces").unwrap_or(base);
    Ok(Some(format!("{base}/v1/traces")))
}

/// `[store]`: exactly one source of the URL, and the URL read from it.
fn store_settings(store: &StoreConfig) -> Checked<crate::audit::StoreSettings> {
    let url = match (&store.postgres_url_env, &store.postgres_url_file) {
        (Some(_), Some(_)) => {
            return Err(InvalidSetting::new(
                "store",
                "give postgres_url_env or postgres_url_file, not both",
            ))
        }
        (None, None) => {
            return Err(InvalidSetting::new("store", "postgres_url_env or postgres_url_file is required (the URL holds a password, so it is never written in salve.toml)"))
        }
        (env, file) => secret_setting("store.postgres_url", file.as_deref(), env.as_deref())?
            .map(|url| url.trim().to_string())
            .filter(|url| !url.is_empty())
            .ok_or_else(|| InvalidSetting::new("store.postgres_url", "the URL is empty"))?,
    };
    if store.pool_size < 2 {
        return Err(InvalidSetting::new(
            "store.pool_size",
            "at least 2 (one writes while another reads)",
        ));
    }
    Ok(crate::audit::StoreSettings {
        url: Secret(url),
        pool_size: store.pool_size,
        connect_timeout: store.connect_timeout.get(),
        statement_timeout: store.statement_timeout.get(),
        takeover_after: store.takeover_after.get().max(Duration::from_secs(1)),
        checkpoint_rows: store.checkpoint_rows.max(1),
        keep_for: store.keep_for.get(),
    })
}

/// `[api]`'s bounds on slow and idle clients: none may be zero.
fn connection_limits(api: &ApiConfig) -> Checked<ConnectionLimits> {
    for (key, timeout) in [
        ("api.header_read_timeout", api.header_read_timeout),
        ("api.body_read_timeout", api.body_read_timeout),
        ("api.idle_timeout", api.idle_timeout),
    ] {
        if timeout.get().is_zero() {
            return Err(InvalidSetting::new(key, "must be longer than 0s"));
        }
    }
    if api.max_connections == 0 {
        return Err(InvalidSetting::new(
            "api.max_connections",
            "must be at least 1",
        ));
    }
    Ok(ConnectionLimits {
        header_read_timeout: api.header_read_timeout.get(),
        body_read_timeout: api.body_read_timeout.get(),
        idle_timeout: api.idle_timeout.get(),
        max_connections: api.max_connections,
    })
}

/// The listener's TLS, its files read now so a bad one fails `check` and reload.
fn listener_tls(api: &ApiConfig) -> Checked<Option<ListenerTls>> {
    let Some(files) = tls_files(api)? else {
        return Ok(None);
    };
    Ok(Some(ListenerTls {
        server: super::tls::server_config(&files)?,
        files,
    }))
}

/// The listener's TLS files; half a pair, or client certificates without TLS, is an
/// error naming the key.
fn tls_files(api: &ApiConfig) -> Checked<Option<TlsFiles>> {
    match (&api.tls_cert_file, &api.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: api.client_ca_file.clone(),
        })),
        (Some(_), None) => Err(InvalidSetting::new(
            "api.tls_cert_file",
            "needs api.tls_key_file",
        )),
        (None, Some(_)) => Err(InvalidSetting::new(
            "api.tls_key_file",
            "needs api.tls_cert_file",
        )),
        (None, None) if api.client_ca_file.is_some() => Err(InvalidSetting::new(
            "api.client_ca_file",
            "client certificates need TLS: set api.tls_cert_file and api.tls_key_file",
        )),
        (None, None) => Ok(None),
    }
}

/// The credentials `[api]` asks for. Anything half set is an error naming the key: a
/// door that looks locked and is open is worse than one that is plainly open.
fn load_auth(api: &ApiConfig) -> Checked<Option<ApiAuth>> {
    let bearer = secret_setting(
        "api.bearer_token",
        api.bearer_token_file.as_deref(),
        api.bearer_token_env.as_deref(),
    )?;
    let basic_password_given =
        api.basic_auth_password_file.is_some() || api.basic_auth_password_env.is_some();
    let basic_given = api.basic_auth_username.is_some() || basic_password_given;
    if bearer.is_some() && basic_given {
        return Err(InvalidSetting::new(
            "api.basic_auth_username",
            "give bearer_token_file/_env or basic auth, not both",
        ));
    }
    if let Some(token) = bearer {
        if token.trim().is_empty() {
            let key = if api.bearer_token_file.is_some() {
                "api.bearer_token_file"
            } else {
                "api.bearer_token_env"
            };
            return Err(InvalidSetting::new(key, "the token is empty"));
        }
        return Ok(Some(ApiAuth::Bearer(token.trim().to_string())));
    }
    basic_auth(api, basic_password_given)
}

/// Basic auth: a user name and its password, both or neither.
fn basic_auth(api: &ApiConfig, password_given: bool) -> Checked<Option<ApiAuth>> {
    let Some(username) = &api.basic_auth_username else {
        if password_given {
            let key = if api.basic_auth_password_file.is_some() {
                "api.basic_auth_password_file"
            } else {
                "api.basic_auth_password_env"
            };
            return Err(InvalidSetting::new(
                key,
                "needs basic_auth_username (without it the API would be open)",
            ));
        }
        return Ok(None);
    };
    if username.is_empty() {
        return Err(InvalidSetting::new("api.basic_auth_username", "is empty"));
    }
    let password = secret_setting(
        "api.basic_auth_password",
        api.basic_auth_password_file.as_deref(),
        api.basic_auth_password_env.as_deref(),
    )?
    .ok_or_else(|| {
        InvalidSetting::new(
            "api.basic_auth_username",
            "needs basic_auth_password_file or basic_auth_password_env",
        )
    })?;
    if password.is_empty() {
        return Err(InvalidSetting::new(
            "api.basic_auth_password",
            "the password is empty",
        ));
    }
    Ok(Some(ApiAuth::Basic {
        username: username.clone(),
        password,
    }))
}
