//! Loading and reloading: config and rules replaced as a whole, or not at all.

use super::Engine;
use crate::audit::{AuditRecord, Entry};
use crate::config::{Config, ConfigError};
use crate::execute::{
    Dispatcher, DockerExecutor, ExecExecutor, KubernetesExecutor, NotifyExecutor, Paces,
    SystemdExecutor, TargetLocks,
};
use crate::ingest::probe::{ProbeChanges, Probes};
use crate::ingest::Intake;
use crate::rules::{Defined, RuleError, RuleSet};
use std::collections::HashSet;
use std::net::SocketAddr;
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
        Runtime::with_rules(config)
    }

    /// The rules of `dir`, checked against this config (as `salve replay --rules`
    /// would load them): to replay the trail with rules other than those in force.
    pub fn with_rules_from(&self, dir: &Path) -> Result<Runtime, LoadError> {
        let mut config = self.config.clone();
        config.rules_dir = dir.to_path_buf();
        Runtime::with_rules(config)
    }

    /// `config` and the rules of its `rules_dir`, each name a rule uses defined.
    fn with_rules(config: Config) -> Result<Runtime, LoadError> {
        let intervals: HashSet<String> = config.policy.time_intervals.keys().cloned().collect();
        let rules = RuleSet::load_dir(&config.rules_dir, &intervals, config.rule_budget)
            .map_err(LoadError::Rules)?;
        let channels: HashSet<&str> = config.notify.keys().map(String::as_str).collect();
        let commands: HashSet<&str> = config.exec.keys().map(String::as_str).collect();
        let groups: HashSet<&str> = config.approvals.groups.keys().map(String::as_str).collect();
        let undefined = rules.undefined_names(&Defined {
            channels: &channels,
            commands: &commands,
            groups: &groups,
        });
        if !undefined.is_empty() {
            return Err(LoadError::Rules(undefined));
        }
        Ok(Runtime { config, rules })
    }
}

/// What `salve serve`'s command line sets over the config file (`--rules`, `--dry-run`,
/// `--listen`, `--data-dir`). Applied at start and again at every reload, so that a
/// reload neither drops them nor takes the file's value for a change.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub rules_dir: Option<PathBuf>,
    pub dry_run: bool,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    /// Loads config and rules as [`Runtime::load`] does, then sets what the command line
    /// says over them.
    pub fn load(&self, config_path: Option<&Path>) -> Result<Runtime, LoadError> {
        let mut runtime = Runtime::load(config_path, self.rules_dir.as_deref(), self.dry_run)?;
        if let Some(listen) = self.listen {
            runtime.config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            runtime.config.data_dir = dir.clone();
        }
        Ok(runtime)
    }
}

/// What a successful reload did, for its answer and its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub rules: usize,
    /// Settings whose value in the file differs from the one that runs and that only a
    /// restart applies, by their keys in `salve.toml`.
    pub restart_required: Vec<&'static str>,
    pub probes: ProbeChanges,
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
    (locks, paces): (&TargetLocks, &Paces),
) -> Dispatcher {
    let mut dispatcher = Dispatcher::new(locks.clone());
    dispatcher.register(Arc::new(ExecExecutor::new(config.exec.clone())));
    dispatcher.register(Arc::new(NotifyExecutor::new(config.notify.clone(), paces)));
    dispatcher.register(Arc::new(KubernetesExecutor::new(config.kubernetes.clone())));
    dispatcher.register(Arc::new(SystemdExecutor::new(config.systemd.clone())));
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

    /// The data dir salve started with, which holds its lock, trail and probe history
    /// until a restart, whatever a reloaded file says.
    pub fn data_dir(&self) -> &Path {
        self.started.data_dir()
    }

    /// Changes at every successful reload.
    pub fn watch_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Re-reads config and rules and applies what a running salve can (rules, policy,
    /// executors, probes, authentication, certificates, limits); names the settings
    /// that changed and need a restart. On any error keeps what is running and says why.
    pub async fn reload(self: &Arc<Self>) -> Result<Reloaded, LoadError> {
        // One at a time: two reloads interleaved could leave the rules of one running
        // with the probes of the other.
        let _reloading = self.reloading.lock().await;
        let result = self.overrides.load(self.config_path.as_deref());
        let now = self.now();
        match result {
            Ok(runtime) => {
                let count = runtime.rules.len();
                log_warnings(&runtime);
                let docker = self.docker.read().clone();
                let locks = self.dispatcher.read().target_locks().clone();
                *self.dispatcher.write() =
                    build_dispatcher(&runtime.config, docker.as_ref(), (&locks, &self.paces));
                self.state
                    .write()
                    .set_settings(runtime.config.policy.clone());
                self.quarantine.lock().release_all();
                let probes = self.apply_probes(&runtime.config.probes);
                let restart_required = self.started.differing(&runtime.config);
                *self.runtime.write() = Arc::new(runtime);
                self.go_live();
                self.invalidate_approvals().await;
                self.reloads.send_modify(|n| *n += 1);
                self.metrics.reloaded(true, count);
                self.metrics.restart_required(!restart_required.is_empty());
                self.record_reload(now, true, count, None).await;
                tracing::info!(
                    rules = count,
                    probes_added = ?probes.added,
                    probes_changed = ?probes.changed,
                    probes_removed = ?probes.removed,
                    "reloaded"
                );
                if !restart_required.is_empty() {
                    tracing::warn!(
                        settings = %restart_required.join(", "),
                        "these settings changed in the config file and need a restart to take effect"
                    );
                }
                Ok(Reloaded {
                    rules: count,
                    restart_required,
                    probes,
                })
            }
            Err(e) => {
                let message = e.to_string();
                self.metrics.reloaded(false, 0);
                let running = self.runtime().rules.len();
                self.record_reload(now, false, running, Some(message.clone()))
                    .await;
                tracing::error!(error = %message, "reload refused; the previous rules keep running");
                Err(e)
            }
        }
    }

    /// Starts the config's probes, whose history is kept in `data_dir`; every reload
    /// from now on applies the config's probes to them. Returns how many run.
    pub async fn start_probes(self: &Arc<Self>, data_dir: &Path) -> usize {
        let _reloading = self.reloading.lock().await;
        let probes = self
            .probes
            .get_or_init(|| Probes::new(self.metrics.clone(), data_dir));
        let intake: Arc<dyn Intake> = self.clone();
        probes.apply(&self.runtime().config.probes, &intake);
        probes.len()
    }

    /// What the probes did so far, written into the data dir (at a stop).
    pub fn save_probe_history(&self) {
        if let Some(probes) = self.probes.get() {
            probes.save();
        }
    }

    /// The probes made as `probes` says, once they run (`salve serve`).
    fn apply_probes(
        self: &Arc<Self>,
        probes: &[crate::ingest::probe::ProbeSettings],
    ) -> ProbeChanges {
        let Some(running) = self.probes.get() else {
            return ProbeChanges::default();
        };
        let intake: Arc<dyn Intake> = self.clone();
        running.apply(probes, &intake)
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
        *self.dispatcher.write() = build_dispatcher(&config, Some(&docker), (&locks, &self.paces));
        *self.docker.write() = Some(docker);
    }
}
