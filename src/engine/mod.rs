//! The engine: takes events, asks the rules, applies policy, records, then acts. The
//! only place where stages meet. `Engine` is its one entry point; its files go by job:
//! `runtime` (loading and reloading), `restart` (what only a restart applies),
//! `evaluate` (events into decisions, pure), `act` (running decided actions, recording
//! outcomes), `on_outcome` (telling people when remediation fails), `recovery` (the
//! trail folded into state; what a stop left).

mod act;
mod approval_notices;
mod approvals;
mod checkpoint;
mod evaluate;
mod health;
mod lead;
mod on_outcome;
mod quarantine;
mod reconsider;
mod recovery;
mod replicas;
mod restart;
mod runtime;
mod safety;
mod start;
mod store_upkeep;
mod stream;
mod trail;

pub use approvals::{Answer, ApprovalError};
#[doc(hidden)]
pub use checkpoint::{
    checkpoint_bytes, frame_checkpoint_body, restore_checkpoint, CheckpointError, Unreadable,
};
pub use checkpoint::{replay, RecoveryError, CHECKPOINT_FILE};
pub use evaluate::{evaluate_events, evaluate_round, plan, replay_round, rule_terms, Evaluation};
pub use health::Task;
pub use on_outcome::ON_OUTCOME_RULE;
pub use quarantine::QuarantineSettings;
pub use recovery::fold;
pub use replicas::ReplicaView;
pub use runtime::{default_config_path, LoadError, Overrides, Reloaded, Runtime};
pub use safety::{Quarantined, StateView, RESETTABLE};
pub use start::{start, ServeOptions, StartError};
pub use stream::Follower;
pub use trail::{PageError, Trail};

use crate::alertmanager::Matchers;
use crate::audit::{
    AuditError, AuditFilter, AuditLog, AuditRecord, Entry, MaintenanceChange, PgTrail, TrailReader,
};
use crate::event::{Event, Fingerprint};
use crate::execute::Dispatcher;
use crate::ingest::{Intake, IntakeError};
use crate::metrics::Metrics;
use crate::model::{MaintenanceWindow, NewMaintenanceWindow};
use crate::policy::PolicyState;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The running engine behind `salve serve`.
pub struct Engine {
    runtime: RwLock<Arc<Runtime>>,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    /// The settings only a restart changes, as salve started with them.
    started: restart::StartOnly,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// One answer to approvals at a time on this salve, so that a losing answer is
    /// refused before it is written (across replicas the trail orders them).
    approving: tokio::sync::Mutex<()>,
    /// What tells people about approvals, and the Slack messages to change in place.
    notices: approval_notices::Notices,
    /// The probes, once `serve` starts them; a reload applies the config's to them.
    probes: std::sync::OnceLock<crate::ingest::probe::Probes>,
    state: Arc<RwLock<PolicyState>>,
    audit: Trail,
    metrics: Arc<Metrics>,
    dispatcher: RwLock<Dispatcher>,
    /// Every notification channel's pace, handed from each dispatcher to the next.
    paces: crate::execute::Paces,
    clock: Clock,
    /// Unbounded: the backlog is bounded by `max_backlog` at the door instead, so no
    /// request waits for room once its events are on disk.
    queue: mpsc::UnboundedSender<Vec<Arc<Event>>>,
    /// Events on disk and queued, not yet decided.
    backlog: AtomicUsize,
    /// Events decided per second in the last round, for `Retry-After`.
    decide_rate: std::sync::atomic::AtomicU64,
    /// Set by SIGTERM: the intake refuses new events from then on.
    stopping: AtomicBool,
    inflight: AtomicUsize,
    idle: Notify,
    ready: AtomicBool,
    docker: RwLock<Option<bollard::Docker>>,
    /// What else must be up for `/-/ready` (a source's stream), with why it is not.
    gates: Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
    /// Why PostgreSQL (`[store]`) did not answer at the last check; None while it does.
    store_down: Mutex<Option<String>>,
    /// Held (shared) by every section that writes records and applies them, and
    /// (exclusively) by a checkpoint, which so sees no record half way between.
    gate: tokio::sync::RwLock<()>,
    checkpoints: Mutex<checkpoint::Written>,
    quarantine: Mutex<quarantine::Quarantine>,
    /// Who decides, with `[store]`.
    lead: lead::Lead,
    /// Counts successful reloads, for what must follow one (the listener's TLS).
    reloads: tokio::sync::watch::Sender<u64>,
    /// A task that ended, a trail that cannot be written: what must not go unnoticed.
    health: health::Health,
    /// Set when a task salve cannot work without has ended: `serve` then exits.
    death: tokio::sync::watch::Sender<bool>,
    /// Told after every durable append, for the followers of the trail (`stream.rs`).
    appended: tokio::sync::broadcast::Sender<()>,
}

/// Why a maintenance window change was refused.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A window that would mute every alert without saying so (`"all": true`):
    /// refused as Alertmanager refuses such a silence.
    #[error("{message}")]
    MutesEverything {
        field: &'static str,
        message: String,
    },
    #[error("no maintenance window {0}")]
    NotFound(String),
    #[error("cannot record the change: {0}")]
    Unrecorded(#[from] AuditError),
}

impl Engine {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics, for a source that counts what it does (the probes).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
    /// Why `/-/ready` says no, if it does.
    pub fn not_ready_reason(&self) -> Option<String> {
        if let Some(why) = self.health.not_ready_reason() {
            return Some(why);
        }
        if !self.ready.load(Ordering::Acquire) {
            return Some("replaying the audit trail".into());
        }
        if self.stopping.load(Ordering::Acquire) {
            return Some("stopping".into());
        }
        if self.backlog.load(Ordering::Acquire) >= self.runtime().config.max_backlog {
            return Some("the backlog of events to decide is at engine.max_backlog".into());
        }
        if let Some(e) = self.store_down.lock().as_ref() {
            return Some(format!("PostgreSQL ([store]) is unreachable: {e}"));
        }
        self.gates
            .lock()
            .iter()
            .find(|(_, up)| !up.load(Ordering::Acquire))
            .map(|(why, _)| why.to_string())
    }

    /// What is worth saying while ready: a setup that runs but probably is not what
    /// the operator meant.
    pub fn readiness_warnings(&self) -> Vec<String> {
        let runtime = self.runtime();
        let mut warnings = Vec::new();
        if runtime.rules.is_empty() {
            warnings.push(format!(
                "no rules loaded from {}: alerts are recorded and nothing is done about them",
                runtime.config.rules_dir.display()
            ));
        }
        warnings
    }

    /// A condition readiness waits for from now on: the returned flag says whether it
    /// holds (it starts false); `why_not` is what `/-/ready` says while it does not.
    pub fn readiness_gate(&self, why_not: &'static str) -> Arc<AtomicBool> {
        let up = Arc::new(AtomicBool::new(false));
        self.gates.lock().push((why_not, up.clone()));
        up
    }

    /// SIGTERM: from now on the intake answers 503; what is on disk is still decided.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// How long a refused sender should wait: the backlog at the last round's pace.
    fn retry_after(&self) -> Duration {
        let rate = self.decide_rate.load(Ordering::Relaxed).max(1);
        let backlog = self.backlog.load(Ordering::Relaxed) as u64;
        Duration::from_secs((backlog / rate).clamp(1, 60))
    }

    /// Refuses, recording nothing, what cannot be taken now: salve is stopping, or the
    /// backlog would pass `max_backlog`.
    fn admit(&self, events: usize) -> Result<(), IntakeError> {
        let refused = if let Some((task, why)) = self.health.dead() {
            IntakeError::Failed {
                why: format!("the {} task has ended: {why}", task.as_str()),
            }
        } else if self.stopping.load(Ordering::Acquire) {
            IntakeError::Stopping {
                retry_after: Duration::from_secs(5),
            }
        } else {
            let backlog = self.backlog.load(Ordering::Acquire);
            let max = self.runtime().config.max_backlog;
            if backlog + events <= max {
                return Ok(());
            }
            IntakeError::Overloaded {
                backlog,
                max,
                retry_after: self.retry_after(),
            }
        };
        self.metrics.intake_rejected(refused.reason());
        Err(refused)
    }

    /// Records events durably, then queues them for evaluation. Returns once they are
    /// safe to acknowledge.
    pub async fn accept(&self, events: Vec<Event>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        for event in &events {
            crate::telemetry::accepted(event);
        }
        // An event no rule matches has nothing to decide: it is recorded as such and
        // not queued, so a storm of alerts no rule is about costs one record each.
        let runtime = self.runtime();
        let records: Vec<AuditRecord> = events
            .into_iter()
            .map(|e| {
                let unmatched = !runtime.rules.matches_any(&e.labels);
                AuditRecord::new(
                    e.received_at,
                    Entry::Received {
                        trace_id: crate::telemetry::trace_id(&e.id),
                        event: Arc::new(e),
                        unmatched,
                    },
                )
            })
            .collect();
        let count_received = || {
            for record in &records {
                if let Entry::Received { event, .. } = &record.entry {
                    self.metrics.event_received(&event.source);
                }
            }
        };
        if let Trail::Postgres(pg) = &self.audit {
            // Whichever replica leads finds them in the trail and decides them.
            pg.append(&records).await?;
            count_received();
            self.lead.wake.notify_one();
            return Ok(());
        }
        self.write_then_fold(&records).await?;
        count_received();
        // The worker, the record and the state that waits for its turn share each event.
        let events: Vec<Arc<Event>> = records
            .iter()
            .filter_map(|r| match &r.entry {
                Entry::Received {
                    event,
                    unmatched: false,
                    ..
                } => Some(Arc::clone(event)),
                _ => None,
            })
            .collect();
        if !events.is_empty() {
            self.enqueue(events);
        }
        Ok(())
    }

    /// Hands recorded events to the worker.
    fn enqueue(&self, events: Vec<Arc<Event>>) {
        self.backlog.fetch_add(events.len(), Ordering::AcqRel);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(events).is_err() {
            // The worker is gone (stopping): recorded, decided at the next start.
            self.finished_one();
        }
    }

    /// The rules in quarantine now, and until when.
    pub fn quarantined(&self) -> std::collections::HashMap<String, DateTime<Utc>> {
        self.quarantine.lock().all(self.now())
    }

    /// When the alert with this fingerprint began firing, as far as salve knows.
    pub fn firing_since(&self, fingerprint: &Fingerprint) -> Option<DateTime<Utc>> {
        self.state.read().firing_since(fingerprint)
    }

    /// What the rules and policy would decide for `events` at `at`, against the live
    /// state; nothing is recorded or executed.
    pub fn plan(&self, events: &[Event], at: DateTime<Utc>, dry_run: Option<bool>) -> Evaluation {
        let runtime = self.runtime();
        let state = self.state.read().clone();
        let dry_run = dry_run.unwrap_or(runtime.config.policy.dry_run);
        plan(&runtime, state, events, at, dry_run)
    }

    /// A page of the newest audit records that pass `filter` (before `before`), at
    /// most `limit` of them and `max_bytes` of JSON.
    pub async fn audit_records(
        &self,
        filter: AuditFilter,
        limit: usize,
        max_bytes: usize,
        before: Option<crate::audit::TrailPosition>,
    ) -> Result<crate::audit::Page, PageError> {
        self.audit.newest(filter, limit, max_bytes, before).await
    }

    /// The trail, to read (replay, report).
    pub fn trail_reader(&self) -> TrailReader {
        self.audit.reader()
    }

    /// Ad-hoc maintenance windows still to end.
    pub fn windows(&self) -> Vec<MaintenanceWindow> {
        let now = self.now();
        self.state
            .read()
            .windows()
            .filter(|w| w.ends_at > now)
            .cloned()
            .collect()
    }

    /// Validates, records, then applies a new window.
    pub async fn create_window(
        &self,
        new: NewMaintenanceWindow,
    ) -> Result<MaintenanceWindow, WindowError> {
        let now = self.now();
        let starts_at = new.starts_at.unwrap_or(now);
        if new.ends_at <= starts_at {
            return Err(WindowError::Invalid {
                field: "ends_at",
                message: "ends_at must be after starts_at".into(),
            });
        }
        if new.created_by.trim().is_empty() {
            return Err(WindowError::Invalid {
                field: "created_by",
                message: "created_by must say who made the window".into(),
            });
        }
        let matchers = match (new.matchers, new.all) {
            (Some(m), false) if m.match_everything() => {
                return Err(WindowError::MutesEverything {
                    field: "matchers",
                    message: format!(
                        "matchers {m} match every alert (each matches the empty string); \
                         to mute everything say so with \"all\": true"
                    ),
                })
            }
            (Some(m), false) => m,
            (None, false) => {
                return Err(WindowError::Invalid {
                    field: "matchers",
                    message: "matchers are required (or \"all\": true to mute every alert)"
                        .into(),
                })
            }
            (Some(m), true) if !m.match_everything() => {
                return Err(WindowError::MutesEverything {
                    field: "all",
                    message: format!(
                        "\"all\": true mutes every alert, but matchers {m} select some; give one or the other"
                    ),
                })
            }
            (_, true) => Matchers::default(),
        };
        let window = MaintenanceWindow {
            id: uuid::Uuid::now_v7().to_string(),
            matchers,
            starts_at,
            ends_at: new.ends_at,
            created_by: new.created_by,
            comment: new.comment,
            created_at: now,
        };
        self.record_then_apply(AuditRecord::new(
            now,
            Entry::Maintenance(MaintenanceChange::Created {
                window: window.clone(),
            }),
        ))
        .await?;
        if window.matchers.is_empty() {
            tracing::warn!(id = %window.id, by = %window.created_by, ends_at = %window.ends_at,
                "maintenance window created that mutes every alert (all: true)");
        } else {
            tracing::info!(id = %window.id, matchers = %window.matchers, by = %window.created_by, "maintenance window created");
        }
        Ok(window)
    }

    /// Records, then applies the end of a window.
    pub async fn delete_window(
        &self,
        id: String,
        deleted_by: Option<String>,
    ) -> Result<(), WindowError> {
        if self.state.read().window(&id).is_none() {
            return Err(WindowError::NotFound(id));
        }
        self.record_then_apply(AuditRecord::new(
            self.now(),
            Entry::Maintenance(MaintenanceChange::Deleted {
                id,
                deleted_by: deleted_by.unwrap_or_default(),
            }),
        ))
        .await
        .map_err(WindowError::from)
    }

    /// The protocol for facts other than decisions: on disk first, then in memory.
    async fn record_then_apply(&self, record: AuditRecord) -> Result<(), AuditError> {
        if let Trail::Postgres(pg) = &self.audit {
            // Applied as every replica applies it: from the trail.
            pg.append(std::slice::from_ref(&record)).await?;
            return self.follow_once().await;
        }
        self.write_then_fold(std::slice::from_ref(&record)).await
    }

    /// On disk first, then in memory, under the gate a checkpoint waits for: how every
    /// fact but a decision (applied as it is made) reaches the state of a file trail.
    pub(super) async fn write_then_fold(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        let _writing = self.gate.read().await;
        self.write_records(records).await?;
        let mut state = self.state.write();
        for record in records {
            fold(&mut state, record);
        }
        Ok(())
    }

    fn finished_one(&self) {
        if self.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits (bounded) until no queued batch or action is left, writes a checkpoint so
    /// the next start reads no trail, then flushes the trail.
    /// Returns whether everything was done; if not, what is on disk is decided (and
    /// actions cut short are reported abandoned) at the next start.
    pub async fn stop(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut done = true;
        while self.inflight.load(Ordering::Acquire) > 0 {
            let notified = self.idle.notified();
            if self.inflight.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    running = self.inflight.load(Ordering::Acquire),
                    backlog = self.backlog.load(Ordering::Acquire),
                    "stopping at the end of engine.shutdown_grace with work left; it is decided at the next start"
                );
                done = false;
                break;
            }
        }
        // A round still deciding holds the gate; its events are on disk either way.
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(500));
        if tokio::time::timeout(left, self.checkpoint()).await.is_err() {
            tracing::warn!("no checkpoint at this stop; the next start replays from the last one");
            done = false;
        }
        self.audit.close().await;
        self.give_up_lead().await;
        done
    }
}

/// The engine as a source sees it: hand it events, read its clock, ask what it knows.
#[async_trait::async_trait]
impl Intake for Engine {
    async fn accept(&self, events: Vec<Event>) -> Result<(), IntakeError> {
        if let Err(e) = self.runtime().config.event_limits.check(&events) {
            self.metrics.intake_rejected(e.reason());
            return Err(e.into());
        }
        self.admit(events.len())?;
        Engine::accept(self, events).await.map_err(|e| {
            self.metrics.intake_rejected("unrecorded");
            IntakeError::Unrecorded(Box::new(e))
        })
    }

    fn now(&self) -> DateTime<Utc> {
        Engine::now(self)
    }

    fn firing_since(&self, fingerprint: &Fingerprint) -> Option<DateTime<Utc>> {
        Engine::firing_since(self, fingerprint)
    }
}
