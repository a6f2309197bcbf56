//! The engine: takes events, asks the rules, applies policy, records, then acts.
//! The only place where stages meet.

use crate::audit::{read_records, AuditError, AuditLog, AuditRecord, Entry, OutcomeRecord};
use crate::config::Config;
use crate::event::Event;
use crate::execute::{ActionContext, Dispatcher, DockerExecutor, ExecExecutor, NotifyExecutor};
use crate::metrics::Metrics;
use crate::model::Decision;
use crate::model::OutcomeTrigger;
use crate::model::{Action, Intent, Target};
use crate::model::{Outcome, OutcomeStatus, Report};
use crate::policy::{BatchScope, PendingExecution, PolicySettings, PolicyState, SharedHistory};
use crate::rules::{EvalContext, Rule, RuleError, RuleSet, ScriptEvent};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

/// What a reload replaces as a whole: rules and the config they were checked against.
pub struct Runtime {
    pub config: Config,
    pub rules: RuleSet,
    pub settings: PolicySettings,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
            config.rules_dir = dir.to_path_buf();
        }
        config.dry_run |= dry_run;
        let intervals: HashSet<String> = config.time_intervals.keys().cloned().collect();
        let rules = RuleSet::load_dir(&config.rules_dir, &intervals, config.rule_timeout)
            .map_err(LoadError::Rules)?;
        let settings = PolicySettings::from_config(&config);
        Ok(Runtime {
            config,
            rules,
            settings,
        })
    }
}

/// Picks `salve.toml` in the working folder when no `--config` is given.
pub fn default_config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        let p = PathBuf::from("salve.toml");
        p.exists().then_some(p)
    })
}

/// Everything one evaluation produced, in the order it must be recorded.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub records: Vec<AuditRecord>,
    pub decisions: Vec<Decision>,
    pub rule_errors: Vec<(String, RuleError)>,
}

/// Runs rules and policy over one notification's events. Decisions are applied to
/// `state` as they are made, so later intents see earlier ones (budgets, duplicates).
pub fn evaluate_events(
    runtime: &Runtime,
    settings: &PolicySettings,
    state: &Arc<RwLock<PolicyState>>,
    events: &[Event],
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Evaluation {
    let mut out = Evaluation::default();
    let history = SharedHistory::new(state.clone(), settings.firing_ttl);
    let ctx = EvalContext {
        now,
        history: Arc::new(history),
    };
    let mut batch = BatchScope::default();
    {
        let mut st = state.write();
        for event in events {
            st.observe_event(event, settings.firing_ttl);
        }
    }
    for event in events {
        let matched = runtime.rules.matching(&event.labels);
        let mut evaluated = Vec::with_capacity(matched.len());
        let mut script_event = None;
        for rule in matched {
            let script_event = script_event.get_or_insert_with(|| ScriptEvent::of(event));
            let started = Instant::now();
            let result = runtime.rules.evaluate_prepared(rule, script_event, &ctx);
            if let Some(m) = metrics {
                m.rule_evaluated(started.elapsed());
            }
            evaluated.push(rule.name.clone());
            let intents: Vec<Intent> = match result {
                Ok(intents) => intents,
                Err(err) => {
                    tracing::warn!(rule = %rule.name, fingerprint = %event.fingerprint, error = %err.short(), "rule failed");
                    if let Some(m) = metrics {
                        m.rule_failed(&rule.name);
                    }
                    out.records.push(AuditRecord::new(
                        now,
                        Entry::RuleError {
                            event_id: event.id.clone(),
                            fingerprint: event.fingerprint.clone(),
                            rule: rule.name.clone(),
                            error: err.short(),
                        },
                    ));
                    out.rule_errors.push((rule.name.clone(), err));
                    continue;
                }
            };
            for intent in intents {
                let (decision, record) = decide(
                    state, settings, rule, event, &intent, now, &mut batch, metrics,
                );
                out.records.push(record);
                out.decisions.push(decision);
            }
        }
        out.records.push(AuditRecord::new(
            now,
            Entry::Evaluated {
                event_id: event.id.clone(),
                fingerprint: event.fingerprint.clone(),
                rules: evaluated,
            },
        ));
    }
    let mut st = state.write();
    if st.needs_prune() {
        st.prune(now, settings);
    }
    out
}

/// Decides one intent and applies the decision to `state` at once, so the next intent
/// sees it (budgets, duplicates); returns it with the audit record that must be written
/// before anything runs.
#[allow(clippy::too_many_arguments)]
fn decide(
    state: &RwLock<PolicyState>,
    settings: &PolicySettings,
    rule: &Rule,
    event: &Event,
    intent: &Intent,
    now: DateTime<Utc>,
    batch: &mut BatchScope,
    metrics: Option<&Metrics>,
) -> (Decision, AuditRecord) {
    let mut st = state.write();
    let decision = st.decide(settings, rule, event, intent, now, batch);
    let record = AuditRecord::new(now, Entry::Decision(decision.clone()));
    st.apply(&record, settings.firing_ttl);
    drop(st);
    if let Some(m) = metrics {
        let verdict = if decision.executes() {
            "execute"
        } else {
            "suppress"
        };
        m.decided(verdict, decision.reason.map(|r| r.as_str()).unwrap_or(""));
    }
    (decision, record)
}

/// Outcome notifications are decided as the built-in rule `on_outcome/CHANNEL`: a
/// rule file's name cannot hold a `/`, so no rule of the user's can be taken for it.
pub const ON_OUTCOME_RULE: &str = "on_outcome/";

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// The running engine behind `salve serve`.
pub struct Engine {
    runtime: RwLock<Arc<Runtime>>,
    config_path: Option<PathBuf>,
    rules_dir_override: Option<PathBuf>,
    dry_run_flag: bool,
    pub state: Arc<RwLock<PolicyState>>,
    pub audit: AuditLog,
    pub metrics: Arc<Metrics>,
    dispatcher: RwLock<Dispatcher>,
    clock: Clock,
    queue: mpsc::Sender<Vec<Event>>,
    inflight: AtomicUsize,
    idle: Notify,
    ready: AtomicBool,
    docker: RwLock<Option<bollard::Docker>>,
    /// Set once salve follows Docker events; from then on readiness needs the stream up.
    docker_events_expected: AtomicBool,
    docker_stream_up: Arc<AtomicBool>,
}

impl Engine {
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && (!self.docker_events_expected.load(Ordering::Acquire)
                || self.docker_stream_up.load(Ordering::Acquire))
    }

    /// Why `/-/ready` says no, for its answer.
    pub fn not_ready_reason(&self) -> &'static str {
        if !self.ready.load(Ordering::Acquire) {
            "replaying the audit trail"
        } else {
            "the Docker event stream is down"
        }
    }

    /// Connects to Docker in the background: registers the executor and follows the
    /// engine's events. Without `[docker]` settings an absent engine only disables
    /// Docker; with them it is retried, and readiness waits for it.
    pub fn attach_docker(self: &Arc<Self>) {
        let settings = self.runtime().config.docker.clone();
        let required = settings.required();
        // Before the task runs, so no readiness check can slip in between.
        if required && settings.events != Some(false) {
            self.docker_events_expected.store(true, Ordering::Release);
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            tracing::debug!(host = ?settings.host, required, "connecting to Docker");
            let docker = loop {
                match crate::execute::connect_docker(&settings).await {
                    Ok(d) => break d,
                    Err(e) if !required => {
                        tracing::info!(error = %e, "no Docker engine; Docker actions will fail and Docker events are off");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Docker engine unreachable");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            };
            let version = docker.client_version();
            tracing::info!(api_version = %version, "connected to Docker");
            *engine.docker.write() = Some(docker.clone());
            let config = engine.runtime().config.clone();
            *engine.dispatcher.write() = build_dispatcher(&config, Some(&docker));
            if settings.events != Some(false) {
                engine.docker_events_expected.store(true, Ordering::Release);
                let source = crate::ingest::docker::DockerEventsSettings {
                    label: settings.label.clone(),
                };
                crate::ingest::docker::run(
                    docker,
                    engine.clone(),
                    source,
                    engine.docker_stream_up.clone(),
                )
                .await;
            }
        });
    }

    /// Records events durably, then queues them for evaluation. Returns once they are
    /// safe to acknowledge.
    pub async fn accept(&self, events: Vec<Event>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        let records: Vec<AuditRecord> = events
            .iter()
            .map(|e| AuditRecord::new(e.received_at, Entry::Received { event: e.clone() }))
            .collect();
        self.audit.append(&records).await?;
        for e in &events {
            self.metrics.event_received(&e.source);
        }
        self.inflight.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(events).await.is_err() {
            // Shutting down: the events are on disk and are decided at the next start.
            self.finished_one();
        }
        Ok(())
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
                log_warnings(&runtime.rules);
                let docker = self.docker.read().clone();
                *self.dispatcher.write() = build_dispatcher(&runtime.config, docker.as_ref());
                *self.runtime.write() = Arc::new(runtime);
                self.metrics.reloaded(true, count);
                let _ = self
                    .audit
                    .append(&[AuditRecord::new(
                        now,
                        Entry::Reload {
                            ok: true,
                            rules: count,
                            error: None,
                        },
                    )])
                    .await;
                tracing::info!(rules = count, "reloaded");
                Ok(count)
            }
            Err(e) => {
                let message = e.to_string();
                self.metrics.reloaded(false, 0);
                let running = self.runtime().rules.len();
                let _ = self
                    .audit
                    .append(&[AuditRecord::new(
                        now,
                        Entry::Reload {
                            ok: false,
                            rules: running,
                            error: Some(message.clone()),
                        },
                    )])
                    .await;
                tracing::error!(error = %message, "reload refused; the previous rules keep running");
                Err(message)
            }
        }
    }

    /// Evaluates one batch, records every decision durably, then starts the executions.
    async fn process(self: &Arc<Self>, events: Vec<Event>) {
        self.process_many(vec![events]).await;
    }

    /// Decides several notifications, each on its own (duplicates fold only within
    /// one), and records all their decisions with one append: under load the loop
    /// costs one fsync per round, not one per notification.
    async fn process_many(self: &Arc<Self>, notifications: Vec<Vec<Event>>) {
        let runtime = self.runtime();
        let now = self.now();
        let state = self.state.clone();
        let metrics = self.metrics.clone();
        let mut evaluation = Evaluation::default();
        for events in &notifications {
            let one = evaluate_events(
                &runtime,
                &runtime.settings,
                &state,
                events,
                now,
                Some(&metrics),
            );
            evaluation.records.extend(one.records);
            evaluation.decisions.extend(one.decisions);
        }
        if let Err(e) = self.audit.append(&evaluation.records).await {
            tracing::error!(error = %e, "cannot record decisions; nothing is executed for these events, retrying them in 5s");
            self.forget_unrecorded(&runtime);
            for events in notifications {
                let engine = self.clone();
                self.inflight.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    if engine.queue.send(events).await.is_err() {
                        engine.finished_one();
                    }
                });
            }
            return;
        }
        let decided = evaluation.decisions;
        if !decided.iter().any(Decision::executes) {
            return;
        }
        // Executors get the event behind their action, shared by its actions.
        let mut events: HashMap<&str, (&Event, Option<Arc<Event>>)> = notifications
            .iter()
            .flatten()
            .map(|e| (e.id.as_str(), (e, None)))
            .collect();
        for decision in decided.iter().filter(|d| d.executes()).cloned() {
            let event = events
                .get_mut(decision.event_id.as_str())
                .map(|(event, shared)| {
                    shared
                        .get_or_insert_with(|| Arc::new((*event).clone()))
                        .clone()
                });
            // A notification can say what else its rule decided about the event.
            let related = if decision.action == Action::Notify {
                decided
                    .iter()
                    .filter(|d| {
                        d.event_id == decision.event_id
                            && d.rule == decision.rule
                            && d.id != decision.id
                    })
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            let context = ActionContext {
                decision: Some(decision.clone()),
                event,
                related,
                report: None,
            };
            self.inflight.fetch_add(1, Ordering::AcqRel);
            let engine = self.clone();
            tokio::spawn(async move {
                let notices = engine.execute(decision, context).await;
                // Outcome notifications never make more of their own, so this ends.
                for (notice, context) in notices {
                    engine.execute(notice, context).await;
                }
                engine.finished_one();
            });
        }
    }

    /// Decisions are applied in memory as they are made; when they could not be written,
    /// memory must not keep them, or a re-send would be deduped against an action that
    /// never ran. Rebuild it from what the trail does hold.
    fn forget_unrecorded(&self, runtime: &Runtime) {
        match replay(self.audit.dir(), runtime.settings.firing_ttl) {
            Ok(mut state) => {
                // Queued events and running actions stay with the live loop, not the replay.
                let _ = state.take_undecided();
                *self.state.write() = state;
            }
            Err(e) => tracing::error!(error = %e, "cannot re-read the audit trail either"),
        }
    }

    /// Runs one decided action and records its outcome; returns the outcome
    /// notifications (`[[on_outcome]]`) it calls for, decided and recorded.
    async fn execute(
        &self,
        decision: Decision,
        context: ActionContext,
    ) -> Vec<(Decision, ActionContext)> {
        let intent = Intent {
            action: decision.action,
            target: decision.target.clone(),
            params: decision.params.clone(),
        };
        let dispatcher = self.dispatcher.read().clone();
        let outcome = dispatcher.run(&intent, &context).await;
        if outcome.is_failure() {
            tracing::warn!(rule = %decision.rule, action = %decision.action, target = %decision.target,
                error = outcome.error.as_deref().unwrap_or(""), "action failed");
        } else {
            tracing::info!(rule = %decision.rule, action = %decision.action, target = %decision.target,
                duration_ms = outcome.duration_ms, "action done");
        }
        let failure = outcome.is_failure().then(|| outcome.clone());
        self.record_outcome(&decision, outcome).await;
        match failure {
            Some(outcome) => {
                self.outcome_notices(&decision, outcome, context.event)
                    .await
            }
            None => Vec::new(),
        }
    }

    /// Decides the notifications `[[on_outcome]]` asks for about a failed or abandoned
    /// action: notify
    /// intents of a built-in rule per channel, through policy (its `limit`, the global
    /// budget, the channel's breaker) and into the audit like any other.
    async fn outcome_notices(
        &self,
        failed: &Decision,
        outcome: Outcome,
        event: Option<Arc<Event>>,
    ) -> Vec<(Decision, ActionContext)> {
        // A failing outcome notification must not report on itself, endlessly.
        if failed.rule.starts_with(ON_OUTCOME_RULE) {
            return Vec::new();
        }
        let runtime = self.runtime();
        let Some(event) = event.filter(|_| !runtime.config.on_outcome.is_empty()) else {
            return Vec::new();
        };
        let settings = &runtime.settings;
        let opened = self
            .state
            .read()
            .consecutive_failures(failed.action, &failed.target)
            >= settings.breaker_failures;
        let now = self.now();
        let mut told = HashSet::new();
        let mut records = Vec::new();
        let mut notices = Vec::new();
        for entry in &runtime.config.on_outcome {
            if !entry.actions.is_empty() && !entry.actions.contains(&failed.action) {
                continue;
            }
            let target = Target::Notify {
                channel: entry.channel.clone(),
            };
            // A channel that just failed would most likely fail to hear about it too.
            if failed.target == target {
                continue;
            }
            let abandoned = outcome.outcome == OutcomeStatus::Abandoned;
            let when = if abandoned {
                if !entry.when.contains(&OutcomeTrigger::Abandoned) {
                    continue;
                }
                OutcomeTrigger::Abandoned
            } else if opened && entry.when.contains(&OutcomeTrigger::CircuitOpen) {
                OutcomeTrigger::CircuitOpen
            } else if entry.when.contains(&OutcomeTrigger::Failed) {
                OutcomeTrigger::Failed
            } else {
                continue;
            };
            if !told.insert(entry.channel.clone()) {
                continue;
            }
            let rule = Rule::builtin(
                format!("{ON_OUTCOME_RULE}{}", entry.channel),
                Some(entry.limit),
            );
            let intent = Intent::new(Action::Notify, target)
                .with("via", "on_outcome")
                .with("when", when.as_str())
                .with("reports", failed.id.clone());
            let (decision, record) = decide(
                &self.state,
                settings,
                &rule,
                &event,
                &intent,
                now,
                &mut BatchScope::default(),
                Some(&self.metrics),
            );
            records.push(record);
            if decision.executes() {
                let context = ActionContext {
                    decision: Some(decision.clone()),
                    event: Some(event.clone()),
                    related: Vec::new(),
                    report: Some(Report {
                        when,
                        decision: failed.clone(),
                        outcome: outcome.clone(),
                    }),
                };
                notices.push((decision, context));
            }
        }
        if records.is_empty() {
            return notices;
        }
        if let Err(e) = self.audit.append(&records).await {
            tracing::error!(error = %e, "cannot record outcome notifications; not sending them");
            self.forget_unrecorded(&runtime);
            return Vec::new();
        }
        notices
    }

    /// Counts the outcome in `/metrics` and writes it to the trail: the one way an
    /// outcome, live or found abandoned at start, becomes known.
    async fn record_outcome(&self, decision: &Decision, outcome: Outcome) {
        self.metrics
            .acted(decision.action.as_str(), outcome.outcome.as_str());
        let record = AuditRecord::new(
            self.now(),
            Entry::Outcome(OutcomeRecord {
                decision_id: decision.id.clone(),
                event_id: decision.event_id.clone(),
                rule: decision.rule.clone(),
                action: decision.action,
                target: decision.target.clone(),
                outcome,
            }),
        );
        if let Err(e) = self.audit.append(std::slice::from_ref(&record)).await {
            tracing::error!(error = %e, "cannot record an outcome");
        }
        let ttl = self.runtime().settings.firing_ttl;
        self.state.write().apply(&record, ttl);
    }

    fn finished_one(&self) {
        if self.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits (bounded) until no queued batch or action is left.
    pub async fn wait_idle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.inflight.load(Ordering::Acquire) > 0 {
            let notified = self.idle.notified();
            if self.inflight.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    running = self.inflight.load(Ordering::Acquire),
                    "stopping with actions still running"
                );
                break;
            }
        }
    }
}

pub fn build_dispatcher(config: &Config, docker: Option<&bollard::Docker>) -> Dispatcher {
    let mut dispatcher = Dispatcher::new();
    dispatcher.register(Arc::new(ExecExecutor::new(config.exec.clone())));
    dispatcher.register(Arc::new(NotifyExecutor::new(config.notify.clone())));
    dispatcher.register(Arc::new(crate::execute::KubernetesExecutor::new(
        config.kubernetes.clone(),
    )));
    if let Some(docker) = docker {
        dispatcher.register(Arc::new(DockerExecutor::new(
            docker.clone(),
            config.docker.verify_timeout,
        )));
    }
    dispatcher
}

/// Rebuilds the policy state from the audit trail in `dir`.
pub fn replay(dir: &Path, firing_ttl: Duration) -> Result<PolicyState, crate::audit::ReadError> {
    let mut state = PolicyState::new();
    let skipped = crate::audit::read_records(dir, |record| state.apply(&record, firing_ttl))?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "some audit lines could not be read and were skipped"
        );
    }
    Ok(state)
}

pub struct ServeOptions {
    pub config_path: Option<PathBuf>,
    pub rules_dir: Option<PathBuf>,
    pub dry_run: bool,
    pub clock: Clock,
}

/// Starts the engine: replays the audit, records what a crash left open, decides the
/// events acknowledged but never decided, and runs the evaluation loop.
pub async fn start(
    runtime: Runtime,
    options: ServeOptions,
) -> Result<(Arc<Engine>, tokio::task::JoinHandle<()>), String> {
    let config = &runtime.config;
    let metrics = Arc::new(Metrics::new());
    let observer_metrics = metrics.clone();
    let audit = AuditLog::open(
        &config.data_dir,
        config.audit_max_file_bytes,
        config.audit_keep_files,
        Some(Arc::new(move |took, n| {
            observer_metrics.audit_synced(took, n)
        })),
    )
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut state =
        replay(&config.data_dir, runtime.settings.firing_ttl).map_err(|e| e.to_string())?;
    let undecided = state.take_undecided();
    let pending = state.take_pending();
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        undecided = undecided.len(),
        interrupted = pending.len(),
        "audit trail replayed"
    );
    metrics.reloaded(true, runtime.rules.len());
    log_warnings(&runtime.rules);
    let dispatcher = build_dispatcher(config, None);
    // A burst beyond one round's worth waits at the HTTP door (its events are already
    // on disk), not in memory: the queue holds what the next round drains.
    let (queue, mut rx) = mpsc::channel::<Vec<Event>>(256);
    let engine = Arc::new(Engine {
        runtime: RwLock::new(Arc::new(runtime)),
        config_path: options.config_path,
        rules_dir_override: options.rules_dir,
        dry_run_flag: options.dry_run,
        state: Arc::new(RwLock::new(state)),
        audit,
        metrics,
        dispatcher: RwLock::new(dispatcher),
        clock: options.clock,
        queue,
        inflight: AtomicUsize::new(0),
        idle: Notify::new(),
        ready: AtomicBool::new(false),
        docker: RwLock::new(None),
        docker_events_expected: AtomicBool::new(false),
        docker_stream_up: Arc::new(AtomicBool::new(false)),
    });

    // An action decided but with no outcome was interrupted by a stop. It is not run
    // again: acting twice is worse than telling people it may not have happened.
    let mut abandoned_events = events_behind(&engine, &pending);
    let mut notices = Vec::new();
    for p in pending {
        tracing::warn!(rule = %p.decision.rule, action = %p.decision.action, target = %p.decision.target,
            "an action was interrupted by a stop before its outcome was recorded; not repeating it");
        let outcome = Outcome {
            outcome: OutcomeStatus::Abandoned,
            duration_ms: 0,
            error: Some(
                "salve stopped before the outcome was recorded; the action may or may not have run"
                    .into(),
            ),
            verified: None,
            detail: serde_json::Value::Null,
        };
        engine.record_outcome(&p.decision, outcome.clone()).await;
        let event = abandoned_events.remove(&p.decision.event_id).map(Arc::new);
        notices.extend(engine.outcome_notices(&p.decision, outcome, event).await);
    }
    for (notice, context) in notices {
        engine.inflight.fetch_add(1, Ordering::AcqRel);
        let engine = engine.clone();
        tokio::spawn(async move {
            engine.execute(notice, context).await;
            engine.finished_one();
        });
    }
    if !undecided.is_empty() {
        tracing::info!(
            events = undecided.len(),
            "deciding events acknowledged before the last stop"
        );
        // One request's events share `received_at`: decide them as the notifications
        // they came in, so `duplicate` folds only within one notification, as live.
        let mut batches: Vec<Vec<Event>> = Vec::new();
        for event in undecided {
            match batches.last_mut() {
                Some(batch) if batch[0].received_at == event.received_at => batch.push(event),
                _ => batches.push(vec![event]),
            }
        }
        for batch in batches {
            engine.process(batch).await;
        }
    }

    let worker = engine.clone();
    let handle = tokio::spawn(async move {
        // Take whatever has queued up (bounded), decide it, record it in one append.
        const MAX_ROUND: usize = 256;
        while let Some(first) = rx.recv().await {
            let mut round = vec![first];
            while round.len() < MAX_ROUND {
                match rx.try_recv() {
                    Ok(events) => round.push(events),
                    Err(_) => break,
                }
            }
            let taken = round.len();
            worker.process_many(round).await;
            for _ in 0..taken {
                worker.finished_one();
            }
        }
    });
    engine.ready.store(true, Ordering::Release);
    Ok((engine, handle))
}

fn log_warnings(rules: &RuleSet) {
    for warning in rules.warnings() {
        tracing::warn!(rule = %warning.file, "{}", warning.message);
    }
}

/// The events behind actions a stop interrupted, read back from the trail, for the
/// `[[on_outcome]]` entries that want to hear of them (rare: only after a crash).
fn events_behind(engine: &Engine, pending: &[PendingExecution]) -> HashMap<String, Event> {
    let runtime = engine.runtime();
    let wanted: HashSet<&str> = pending
        .iter()
        .map(|p| p.decision.event_id.as_str())
        .collect();
    let asked = runtime
        .config
        .on_outcome
        .iter()
        .any(|entry| entry.when.contains(&OutcomeTrigger::Abandoned));
    let mut events = HashMap::new();
    if wanted.is_empty() || !asked {
        return events;
    }
    let read = read_records(engine.audit.dir(), |record| {
        if let Entry::Received { event } = record.entry {
            if wanted.contains(event.id.as_str()) {
                events.insert(event.id.clone(), event);
            }
        }
    });
    if let Err(e) = read {
        tracing::error!(error = %e, "cannot read the events behind interrupted actions; not reporting them");
    }
    events
}

/// What the policy would decide for `events` at `now`, against a copy of `state`;
/// nothing is recorded or executed.
pub fn plan(
    runtime: &Runtime,
    state: PolicyState,
    events: &[Event],
    now: DateTime<Utc>,
    dry_run: bool,
) -> Evaluation {
    let mut settings = runtime.settings.clone();
    settings.dry_run = dry_run;
    let state = Arc::new(RwLock::new(state));
    evaluate_events(runtime, &settings, &state, events, now, None)
}
