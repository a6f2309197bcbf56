//! The probes that run, as the config says at start and after every reload: a probe
//! added starts, one removed stops (and its series leave `/metrics`), one whose
//! settings changed is replaced by a task with the new ones, which takes over what the
//! old one had seen; one unchanged is left alone. And the history of their checks,
//! which `salve report` reads from the data dir.

use super::{run, ProbeHistory, ProbeSettings, Stop, Streak};
use crate::ingest::Intake;
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where the checks of every probe are counted for the report, and written to the data
/// dir every [`SAVE_EVERY`], at a stop, and when a probe has its first result.
pub struct Recorder {
    history: parking_lot::Mutex<ProbeHistory>,
    dir: PathBuf,
    /// A probe had its first result: `salve report` reads the file, and a probe must
    /// be in it from then, not up to [`SAVE_EVERY`] later.
    first_result: Arc<tokio::sync::Notify>,
}

const SAVE_EVERY: Duration = Duration::from_secs(30);

impl Recorder {
    pub(super) fn record(
        &self,
        probe: &str,
        at: DateTime<Utc>,
        took: Duration,
        failure: Option<&str>,
    ) {
        let mut history = self.history.lock();
        let first = !history.probes.contains_key(probe);
        history.record(probe, at, took, failure);
        if first {
            // One permit is kept, so probes starting together cause one write, not one each.
            self.first_result.notify_one();
        }
    }

    /// Writes what the probes did so far into the data dir; nothing while no probe has
    /// ever checked, so a salve without probes leaves no history file.
    pub fn save(&self) {
        let history = self.history.lock().clone();
        if history.probes.is_empty() {
            return;
        }
        if let Err(e) = history.save(&self.dir) {
            tracing::warn!(error = %e, "cannot write the probe history");
        }
    }
}

/// What applying a set of probes did, by name: the reload's answer and log say it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProbeChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// The running probes. Dropping it stops them all.
pub struct Probes {
    metrics: Arc<Metrics>,
    recorder: Arc<Recorder>,
    tasks: parking_lot::Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    running: HashMap<String, Running>,
    /// Removed probes whose task may still be finishing a check: one added back under
    /// the same name waits for it, so two tasks of one name never overlap.
    leaving: HashMap<String, JoinHandle<Streak>>,
}

struct Running {
    settings: ProbeSettings,
    stop: oneshot::Sender<Stop>,
    task: JoinHandle<Streak>,
}

impl Probes {
    /// No probes yet; their history is read from `data_dir` and written back there.
    pub fn new(metrics: Arc<Metrics>, data_dir: &Path) -> Probes {
        let history = ProbeHistory::load(data_dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the probe history cannot be read; starting a new one");
            ProbeHistory::default()
        });
        let first_result = Arc::new(tokio::sync::Notify::new());
        let recorder = Arc::new(Recorder {
            history: parking_lot::Mutex::new(history),
            dir: data_dir.to_path_buf(),
            first_result: first_result.clone(),
        });
        let saver = Arc::downgrade(&recorder);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAVE_EVERY);
            every.tick().await;
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    () = first_result.notified() => {}
                }
                let Some(saving) = saver.upgrade() else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || saving.save()).await;
            }
        });
        Probes {
            metrics,
            recorder,
            tasks: parking_lot::Mutex::new(Tasks::default()),
        }
    }

    /// Makes the running probes those of `probes`: starts the new, stops the gone,
    /// replaces the changed and leaves the rest running. Their events go to `intake`.
    pub fn apply(&self, probes: &[ProbeSettings], intake: &Arc<dyn Intake>) -> ProbeChanges {
        let mut changes = ProbeChanges::default();
        let mut tasks = self.tasks.lock();
        tasks.leaving.retain(|_, task| !task.is_finished());
        let wanted: HashSet<&str> = probes.iter().map(|p| p.name.as_str()).collect();
        let mut gone: Vec<String> = tasks
            .running
            .keys()
            .filter(|name| !wanted.contains(name.as_str()))
            .cloned()
            .collect();
        gone.sort();
        for name in gone {
            if let Some(old) = tasks.running.remove(&name) {
                // A task that already ended has nothing to be told.
                let _ = old.stop.send(Stop::Remove);
                tasks.leaving.insert(name.clone(), old.task);
                changes.removed.push(name);
            }
        }
        for probe in probes {
            let predecessor = match tasks.running.remove(&probe.name) {
                Some(old) if old.settings == *probe => {
                    tasks.running.insert(probe.name.clone(), old);
                    continue;
                }
                Some(old) => {
                    let _ = old.stop.send(Stop::Replace);
                    changes.changed.push(probe.name.clone());
                    Some(old.task)
                }
                None => {
                    changes.added.push(probe.name.clone());
                    tasks.leaving.remove(&probe.name)
                }
            };
            let running = self.spawn(probe.clone(), intake.clone(), predecessor);
            tasks.running.insert(probe.name.clone(), running);
        }
        changes
    }

    /// The task of one probe, which first waits for the one it replaces to finish its
    /// check and takes over its streaks and open episode.
    fn spawn(
        &self,
        probe: ProbeSettings,
        intake: Arc<dyn Intake>,
        predecessor: Option<JoinHandle<Streak>>,
    ) -> Running {
        let (stop, stopped) = oneshot::channel();
        let (metrics, recorder) = (self.metrics.clone(), self.recorder.clone());
        let settings = probe.clone();
        let task = tokio::spawn(async move {
            let streak = match predecessor {
                // A predecessor that panicked leaves nothing to take over.
                Some(task) => task.await.unwrap_or_default(),
                None => Streak::default(),
            };
            run(probe, intake, metrics, recorder, streak, stopped).await
        });
        Running {
            settings,
            stop,
            task,
        }
    }

    /// How many probes run.
    pub fn len(&self) -> usize {
        self.tasks.lock().running.len()
    }

    /// Writes what the probes did so far into the data dir.
    pub fn save(&self) {
        self.recorder.save();
    }
}
