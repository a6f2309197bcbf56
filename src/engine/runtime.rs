//! Loading and reloading: config and rules replaced as a whole, or not at all.

use super::Engine;
use crate::audit::{AuditRecord, Entry};
use crate::config::{Config, ConfigError};
use crate::execute::{
    Dispatcher, DockerExecutor, ExecExecutor, KubernetesExecutor, NotifyExecutor, TargetLocks,
};
use crate::rules::{Defined, RuleError, RuleSet};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a reload replaces as a whole: rules and the config they were checked against.
pub struct Runtime {
    pub config: Config,
    pub rules: RuleSet,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n\n"))]
    Rules(Vec<RuleError>),
}

impl Runtime {
    /// Loads config (None: built-in defaults) and the rules in `rules_dir`
    /// (None: the config's `rules_dir`).
    pub fn load(
        config_path: Option<&Path>,
        rules_dir: Option<&Path>,
        dry_run: bool,
    ) -> Result<Runtime, LoadError> {
        let mut config = Config::load(config_path)?;
        if let Some(dir) = rules_dir {
            if !dir.is_dir() {
                return Err(LoadError::Rules(vec![RuleError::io(
                    dir,
                    &std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "--rules names no folder of rules",
                    ),
                )]));
            }
            config.rules_dir = dir.to_path_buf();
        }
        config.policy.dry_run |= dry_run;
        let intervals: HashSet<String> = config.policy.time_intervals.keys().cloned().collect();
        let rules = RuleSet::load_dir(&config.rules_dir, &intervals, config.rule_budget)
            .map_err(LoadError::Rules)?;
        let channels: HashSet<&str> = config.notify.keys().map(String::as_str).collect();
        let commands: HashSet<&str> = config.exec.keys().map(String::as_str).collect();
        let undefined = rules.undefined_names(&Defined {
            channels: &channels,
            commands: &commands,
        });
        if !undefined.is_empty() {
            return Err(LoadError::Rules(undefined));
        }
        Ok(Runtime { config, rules })
    }
}

/// Picks `salve.toml` in the working folder when no `--config` is given.
pub fn default_config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        let p = PathBuf::from("salve.toml");
        p.exists().then_some(p)
    })
}

pub(super) fn build_dispatcher(
    config: &Config,
    docker: Option<&bollard::Docker>,
    locks: &TargetLocks,
) -> Dispatcher {
    let mut dispatcher = Dispatcher::new(locks.clone());
    dispatcher.register(Arc::new(ExecExecutor::new(config.exec.clone())));
    dispatcher.register(Arc::new(NotifyExecutor::new(config.notify.clone())));
    dispatcher.register(Arc::new(KubernetesExecutor::new(config.kubernetes.clone())));
    if let Some(docker) = docker {
        dispatcher.register(Arc::new(DockerExecutor::new(
            docker.clone(),
            &config.docker,
        )));
    }
    dispatcher
}

pub(super) fn log_warnings(runtime: &Runtime) {
    for warning in runtime.rules.warnings() {
        tracing::warn!(rule = %warning.file, "{}", warning.message);
    }
    if runtime.rules.is_empty() {
        tracing::warn!(rules_dir = %runtime.config.rules_dir.display(),
            "no rules loaded: alerts are recorded and nothing is done about them");
    }
}

impl Engine {
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().clone()
    }

    /// Changes at every successful reload.
    pub fn watch_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Re-reads config and rules; on any error keeps what is running and says why.
    pub async fn reload(&self) -> Result<usize, String> {
        let result = Runtime::load(
            self.config_path.as_deref(),
            self.rules_dir_override.as_deref(),
            self.dry_run_flag,
        );
        let now = self.now();
        match result {
            Ok(runtime) => {
                let count = runtime.rules.len();
                log_warnings(&runtime);
                let docker = self.docker.read().clone();
                let locks = self.dispatcher.read().target_locks().clone();
                *self.dispatcher.write() =
                    build_dispatcher(&runtime.config, docker.as_ref(), &locks);
                self.state
                    .write()
                    .set_settings(runtime.config.policy.clone());
                self.quarantine.lock().release_all();
                *self.runtime.write() = Arc::new(runtime);
                self.go_live();
                self.reloads.send_modify(|n| *n += 1);
                self.metrics.reloaded(true, count);
                self.record_reload(now, true, count, None).await;
                tracing::info!(rules = count, "reloaded");
                Ok(count)
            }
            Err(e) => {
                let message = e.to_string();
                self.metrics.reloaded(false, 0);
                let running = self.runtime().rules.len();
                self.record_reload(now, false, running, Some(message.clone()))
                    .await;
                tracing::error!(error = %message, "reload refused; the previous rules keep running");
                Err(message)
            }
        }
    }

    async fn record_reload(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        ok: bool,
        rules: usize,
        error: Option<String>,
    ) {
        let record = AuditRecord::new(now, Entry::Reload { ok, rules, error });
        if let Err(e) = self.write_records(&[record]).await {
            tracing::error!(error = %e, "cannot record the reload");
        }
    }

    /// Docker became reachable: its executor is registered, now and after reloads.
    pub fn use_docker(&self, docker: bollard::Docker) {
        let config = self.runtime().config.clone();
        let locks = self.dispatcher.read().target_locks().clone();
        *self.dispatcher.write() = build_dispatcher(&config, Some(&docker), &locks);
        *self.docker.write() = Some(docker);
    }
}
