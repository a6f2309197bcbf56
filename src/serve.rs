//! `salve serve` set up: the engine, the sources it listens to (the admin API's
//! webhooks, the Docker engine's events, systemd's units), SIGHUP reloads, and an
//! orderly stop.
//! `connections` is the listener: its connection cap and its timeouts.

mod connections;

use crate::engine::{self, Engine, Runtime, ServeOptions};
use crate::execute::connect_docker;
use crate::ingest::docker::DockerEventsSettings;
use anyhow::{anyhow, Context};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(runtime: Runtime, options: ServeOptions) -> anyhow::Result<ExitCode> {
    // What only a restart changes is read here, once; a reload names it when the file
    // says otherwise (`engine::restart`).
    let listen = runtime.config.listen;
    let rules = runtime.rules.len();
    let dry_run = runtime.config.policy.dry_run;
    let data_dir = runtime.config.data_dir.clone();
    let limits = runtime.config.connections;
    // Which files run, so a start-up log answers "did it read my salve.toml?".
    let config = options.config_path.as_ref().map_or_else(
        || "built-in defaults".to_string(),
        |p| p.display().to_string(),
    );
    let rules_dir = runtime.config.rules_dir.display().to_string();
    // Before anything in the folder is read; held until the process ends.
    let _data_dir_lock = crate::audit::DataDirLock::take(&data_dir)?;
    let tls = runtime.config.tls.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let engine = engine::start(runtime, options)
        .await
        .map_err(|e| anyhow!(crate::model::error_chain(&e)))?;
    start_docker(&engine);
    start_systemd(&engine);
    let probes = engine.start_probes(&data_dir).await;
    if probes > 0 {
        tracing::info!(probes, "probes started");
    }
    tracing::info!(%listen, %config, %rules_dir, rules, dry_run, data_dir = %data_dir.display(),
        tls = tls.is_some(), client_certificates = tls.as_ref().is_some_and(|t| t.files.client_ca.is_some()),
        "salve is serving");

    let reloader = engine.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = reloader.reload().await;
        }
    });

    let app = crate::api::app(engine.clone());
    let stopping = engine.clone();
    let stop = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = stopping.task_died() => {
                // Long enough for a readiness probe or a scrape to see why; every event
                // offered meanwhile is refused (503), so none is acknowledged and lost.
                tokio::time::sleep(DEATH_LINGER).await;
            }
        }
        // Before the listener closes: requests still in flight are answered 503.
        stopping.begin_stop();
    };
    let tls = tls.map(|tls| reload_tls(&engine, tls));
    warn_if_files_run_short(limits.max_connections);
    connections::serve(listener, app, tls, limits, engine.metrics_handle(), stop).await;
    engine.save_probe_history();
    if let Some((task, why)) = engine.dead_task() {
        // No checkpoint: the state may be half way through a round. What is on disk is
        // decided at the next start.
        engine.close_trail().await;
        crate::telemetry::flush(TRACES_FLUSH).await;
        tracing::error!(task = task.as_str(), why = %why, "exiting: the {} task has ended", task.as_str());
        return Ok(ExitCode::from(70));
    }
    let grace = engine.runtime().config.shutdown_grace;
    tracing::info!(
        grace_s = grace.as_secs(),
        "stopping: deciding what is on disk and waiting for running actions"
    );
    let done = engine.stop(grace).await;
    crate::telemetry::flush(TRACES_FLUSH).await;
    if !done {
        // A round may still be running on the workers; what it decided but did not
        // write is decided again at the next start, so there is nothing to wait for.
        tracing::info!("audit flushed; exiting with work left for the next start");
        std::process::exit(0);
    }
    tracing::info!("audit flushed; bye");
    Ok(ExitCode::SUCCESS)
}

/// How long a stop waits for the collector to take the spans still batched.
const TRACES_FLUSH: Duration = Duration::from_secs(5);

/// How long salve keeps answering (not ready, refusing events) after a task it cannot
/// work without has ended, before it exits.
const DEATH_LINGER: Duration = Duration::from_secs(5);

/// Connects to Docker in the background: registers the executor and follows the
/// engine's events. Without `[docker]` settings an absent engine only disables
/// Docker; with them it is retried, and readiness waits for it.
fn start_docker(engine: &Arc<Engine>) {
    const STREAM_DOWN: &str = "the Docker event stream is down";
    let settings = engine.runtime().config.docker.clone();
    let required = settings.required();
    let follow = settings.events != Some(false);
    // Before the task runs, so no readiness check can slip in between.
    let mut stream_up = (required && follow).then(|| engine.readiness_gate(STREAM_DOWN));
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        tracing::debug!(host = ?settings.host, required, "connecting to Docker");
        let docker = loop {
            match connect_docker(&settings).await {
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
        tracing::info!(api_version = %docker.client_version(), "connected to Docker");
        engine.use_docker(docker.clone());
        if follow {
            let up = stream_up.get_or_insert_with(|| engine.readiness_gate(STREAM_DOWN));
            up.store(false, Ordering::Release);
            let source = DockerEventsSettings {
                label: settings.label.filter(),
            };
            crate::ingest::docker::run(docker, engine.clone(), source, up.clone()).await;
        }
    });
}

/// Follows the units `[systemd] units` names, when `events` is on (the default once
/// units are named). Read at start, as the Docker events are.
fn start_systemd(engine: &Arc<Engine>) {
    let settings = engine.runtime().config.systemd.clone();
    if !settings.events || settings.units.is_empty() {
        return;
    }
    let source = crate::ingest::systemd::SystemdEventsSettings {
        bus: settings.bus,
        units: settings.units,
    };
    tokio::spawn(crate::ingest::systemd::run(engine.clone(), source));
}

/// The certificates TLS connections are served with: every successful reload (SIGHUP,
/// `/-/reload`) puts the ones it read in place for the connections that follow.
fn reload_tls(engine: &Arc<Engine>, tls: crate::config::ListenerTls) -> connections::TlsConfig {
    let (current, config) = tokio::sync::watch::channel(tls.server);
    let mut reloads = engine.watch_reloads();
    let reloaded = engine.clone();
    tokio::spawn(async move {
        while reloads.changed().await.is_ok() {
            // TLS switched off keeps what the listener has: the reload names
            // api.tls_cert_file among the settings that need a restart.
            if let Some(tls) = reloaded.runtime().config.tls.as_ref() {
                current.send_replace(tls.server.clone());
                tracing::info!(cert = %tls.files.cert.display(), "TLS certificates reloaded");
            }
        }
    });
    config
}

/// Past its open-files limit salve can no longer accept, open the trail or reach Docker:
/// say so at the start when `api.max_connections` leaves too little for the rest.
fn warn_if_files_run_short(max_connections: usize) {
    // What salve holds besides connections: trail and checkpoint files, the Docker
    // socket, HTTP clients, a PostgreSQL pool, probes, commands' pipes.
    const OTHER_FILES: u64 = 128;
    let Some(limit) = open_files_limit() else {
        return;
    };
    if max_connections as u64 + OTHER_FILES > limit {
        tracing::warn!(
            max_connections,
            open_files_limit = limit,
            "api.max_connections leaves fewer than {OTHER_FILES} of the open-files limit \
             to the trail, Docker and the rest: lower it or raise LimitNOFILE / ulimit -n"
        );
    }
}

/// The soft limit on open files, from `/proc/self/limits` (no unsafe `getrlimit`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
