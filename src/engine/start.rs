//! `salve serve`'s engine started: the state read back (checkpoint and trail, or the
//! store), what a stop left open settled, and the tasks that run for the engine's life
//! (deciding, checkpoints, and with `[store]` the lease and following the others).

use super::*;

/// A fault for the test of a dead worker: `SALVE_INJECT_PANIC=decide` makes the decide
/// task panic at its first round. Debug builds only; a release build ignores it.
fn injected_panic() -> bool {
    cfg!(debug_assertions) && std::env::var_os("SALVE_INJECT_PANIC").is_some_and(|v| v == "decide")
}

pub struct ServeOptions {
    pub config_path: Option<PathBuf>,
    /// What the command line sets over the file, at start (already in the runtime
    /// given to [`start`]) and at every reload.
    pub overrides: Overrides,
    pub clock: Clock,
}

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The trail (files or PostgreSQL) could not be opened or read back.
    #[error(transparent)]
    Trail(#[from] AuditError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("cannot read the checkpoints' positions")]
    CheckpointPositions,
}

/// Starts the engine: replays the audit, records what a crash left open, decides the
/// events acknowledged but never decided, and runs the evaluation loop.
pub async fn start(runtime: Runtime, options: ServeOptions) -> Result<Arc<Engine>, StartError> {
    let config = &runtime.config;
    let metrics = Arc::new(Metrics::new());
    let started = Instant::now();
    let store = config.store.is_some();
    let lead = lead::Lead::new(store);
    let (audit, mut state, written) = open_trail(&runtime, &metrics, &lead).await?;
    let undecided = state.undecided_events();
    let pending = state.take_pending();
    tracing::info!(
        took_ms = started.elapsed().as_millis() as u64,
        undecided = undecided.len(),
        interrupted = pending.len(),
        "audit trail replayed"
    );
    metrics.reloaded(true, runtime.rules.len());
    runtime::log_warnings(&runtime);
    let paces = crate::execute::Paces::counted_in(metrics.clone());
    let dispatcher = runtime::build_dispatcher(config, None, (&Default::default(), &paces));
    // A burst beyond one round's worth waits at the HTTP door (its events are already
    // on disk), not in memory: the queue holds what the next round drains.
    let (queue, rx) = mpsc::unbounded_channel::<Vec<Arc<Event>>>();
    let started = restart::StartOnly::of(config);
    let engine = Arc::new(Engine {
        runtime: RwLock::new(Arc::new(runtime)),
        config_path: options.config_path,
        overrides: options.overrides,
        started,
        reloading: tokio::sync::Mutex::new(()),
        approving: tokio::sync::Mutex::new(()),
        notices: Default::default(),
        probes: std::sync::OnceLock::new(),
        state: Arc::new(RwLock::new(state)),
        audit,
        metrics,
        dispatcher: RwLock::new(dispatcher),
        paces,
        clock: options.clock,
        queue,
        backlog: AtomicUsize::new(if store { 0 } else { undecided.len() }),
        decide_rate: std::sync::atomic::AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        inflight: AtomicUsize::new(0),
        idle: Notify::new(),
        ready: AtomicBool::new(false),
        docker: RwLock::new(None),
        gates: Mutex::new(Vec::new()),
        store_down: Mutex::new(None),
        gate: tokio::sync::RwLock::new(()),
        checkpoints: Mutex::new(written),
        quarantine: Mutex::new(quarantine::Quarantine::default()),
        lead,
        reloads: tokio::sync::watch::Sender::new(0),
        health: health::Health::default(),
        death: tokio::sync::watch::Sender::new(false),
        appended: tokio::sync::broadcast::Sender::new(16),
    });
    match &engine.runtime().config.store {
        // The replica that takes the lease settles what the last leader left open.
        Some(store) => {
            engine.metrics.leader(false);
            engine.supervise(Task::Follow, tokio::spawn(engine.clone().follow()));
            engine.supervise(
                Task::Lease,
                tokio::spawn(engine.clone().hold_lease(store.takeover_after)),
            );
        }
        None => {
            engine.metrics.leader(true);
            engine.recover(undecided, pending).await;
            engine.go_live();
        }
    }
    let decide = tokio::spawn(decide_rounds(engine.clone(), rx));
    engine.supervise(Task::Decide, decide);
    tokio::spawn(each_second(Arc::downgrade(&engine), |engine| async move {
        engine.retry_trail().await;
        engine.close_approvals().await;
        engine.reconsider_due().await;
        engine.checkpoint_if_due().await;
    }));
    if let Trail::Postgres(pg) = &engine.audit {
        tokio::spawn(watch_store(pg.clone(), Arc::downgrade(&engine)));
        // On a task of its own: the first checkpoint on a long history reads all of it
        // and must not hold up the once-a-second work.
        tokio::spawn(each_second(Arc::downgrade(&engine), |engine| async move {
            let checkpointed = engine.store_checkpoint_if_due().await;
            engine.store_retention_if_due(checkpointed).await;
        }));
    }
    engine.ready.store(true, Ordering::Release);
    Ok(engine)
}

/// The trail the config names, opened, and the state it holds read back: from the
/// data dir's checkpoint and files, or from PostgreSQL (`[store]`).
async fn open_trail(
    runtime: &Runtime,
    metrics: &Arc<Metrics>,
    lead: &lead::Lead,
) -> Result<(Trail, PolicyState, checkpoint::Written), StartError> {
    let config = &runtime.config;
    let observer_metrics = metrics.clone();
    let on_sync: Arc<dyn Fn(Duration, usize) + Send + Sync> =
        Arc::new(move |took, n| observer_metrics.audit_synced(took, n));
    match &config.store {
        None => {
            let audit =
                AuditLog::open(&config.data_dir, config.audit_max_file_bytes, Some(on_sync))?;
            // The checkpoints' positions are read on the other core while this one
            // restores the state from the newest.
            let dir = config.data_dir.clone();
            let positions = std::thread::spawn(move || checkpoint::Written::on_disk(&dir));
            let state = replay(&config.data_dir, &config.policy)?;
            let written = positions
                .join()
                .map_err(|_| StartError::CheckpointPositions)?;
            Ok((Trail::Files(audit), state, written))
        }
        Some(store) => {
            let pg = PgTrail::open(store, Some(on_sync)).await?;
            let (state, last) = lead::fold_store(&pg, &config.policy).await?;
            lead.set_followed(last);
            Ok((Trail::Postgres(pg), state, checkpoint::Written::default()))
        }
    }
}

/// The decide task: takes whatever has queued up (bounded), decides it, records it in
/// one append.
async fn decide_rounds(worker: Arc<Engine>, mut rx: mpsc::UnboundedReceiver<Vec<Arc<Event>>>) {
    const MAX_ROUND: usize = 256;
    let inject_panic = injected_panic();
    while let Some(first) = rx.recv().await {
        let mut round = vec![first];
        while round.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(events) => round.push(events),
                Err(_) => break,
            }
        }
        let taken = round.len();
        if inject_panic {
            panic!("injected by SALVE_INJECT_PANIC=decide");
        }
        if worker.lead.is_leader() {
            worker.process_many(round).await;
        } else {
            // The lead was lost: what is queued stays undecided in the trail, for
            // the replica that leads now.
            let events: usize = round.iter().map(Vec::len).sum();
            let _ = worker
                .backlog
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                    Some(b.saturating_sub(events))
                });
        }
        for _ in 0..taken {
            worker.finished_one();
        }
    }
}

/// Runs `work` once a second while the engine lives; a second missed while it works
/// is not made up.
async fn each_second<F, Fut>(engine: std::sync::Weak<Engine>, work: F)
where
    F: Fn(Arc<Engine>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        work(engine).await;
    }
}

/// Asks PostgreSQL once a second whether it answers; while it does not, salve is not
/// ready and webhooks are answered 503.
async fn watch_store(pg: PgTrail, watched: std::sync::Weak<Engine>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(engine) = watched.upgrade() else {
            return;
        };
        let reachable = pg.reachable().await;
        let reached = reachable.is_ok();
        {
            let mut down = engine.store_down.lock();
            match (&reachable, down.is_some()) {
                (Err(e), false) => {
                    tracing::error!(error = %e, "PostgreSQL is unreachable: not ready, webhooks are answered 503")
                }
                (Ok(()), true) => tracing::info!("PostgreSQL is reachable again: ready"),
                _ => {}
            }
            *down = reachable.err().map(|e| e.to_string());
        }
        if reached {
            if let Ok(newest) = pg.last_seq().await {
                engine.metrics.follower_lag(newest - engine.lead.followed());
            }
        }
    }
}
