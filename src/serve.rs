//! `salve serve` set up: the engine, the sources it listens to (the admin API's
//! webhooks, the Docker engine's events), SIGHUP reloads, and an orderly stop.

use crate::engine::{self, Engine, Runtime, ServeOptions};
use crate::execute::connect_docker;
use crate::ingest::docker::DockerEventsSettings;
use anyhow::{anyhow, Context};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub async fn serve(runtime: Runtime, options: ServeOptions) -> anyhow::Result<ExitCode> {
    let listen = runtime.config.listen;
    let rules = runtime.rules.len();
    let dry_run = runtime.config.policy.dry_run;
    let data_dir = runtime.config.data_dir.clone();
    // Before anything in the folder is read; held until the process ends.
    let _data_dir_lock = crate::audit::DataDirLock::take(&data_dir)?;
    let tls = runtime.config.tls.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let engine = engine::start(runtime, options)
        .await
        .map_err(|e| anyhow!(e))?;
    start_docker(&engine);
    let probes = engine.runtime().config.probes.clone();
    let probing = (!probes.is_empty()).then(|| {
        tracing::info!(probes = probes.len(), "probes started");
        crate::ingest::probe::start(probes, engine.clone(), engine.metrics_handle(), &data_dir)
    });
    tracing::info!(%listen, rules, dry_run, data_dir = %data_dir.display(),
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
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await?
        }
        Some(tls) => serve_tls(&engine, listener, app, tls, stop).await?,
    }
    if let Some(recorder) = &probing {
        recorder.save();
    }
    if let Some((task, why)) = engine.dead_task() {
        // No checkpoint: the state may be half way through a round. What is on disk is
        // decided at the next start.
        engine.close_trail().await;
        tracing::error!(task = task.as_str(), why = %why, "exiting: the {} task has ended", task.as_str());
        return Ok(ExitCode::from(70));
    }
    let grace = engine.runtime().config.shutdown_grace;
    tracing::info!(
        grace_s = grace.as_secs(),
        "stopping: deciding what is on disk and waiting for running actions"
    );
    if !engine.stop(grace).await {
        // A round may still be running on the workers; what it decided but did not
        // write is decided again at the next start, so there is nothing to wait for.
        tracing::info!("audit flushed; exiting with work left for the next start");
        std::process::exit(0);
    }
    tracing::info!("audit flushed; bye");
    Ok(ExitCode::SUCCESS)
}

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

/// HTTPS: the same app behind rustls; every successful reload (SIGHUP, `/-/reload`)
/// puts the certificates it read in place for the connections that follow.
async fn serve_tls(
    engine: &Arc<Engine>,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: crate::config::ListenerTls,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let rustls_config = axum_server::tls_rustls::RustlsConfig::from_config(tls.server);
    let mut reloads = engine.watch_reloads();
    let reloaded = engine.clone();
    let current = rustls_config.clone();
    tokio::spawn(async move {
        while reloads.changed().await.is_ok() {
            match reloaded.runtime().config.tls.as_ref() {
                Some(tls) => {
                    current.reload_from_config(tls.server.clone());
                    tracing::info!(cert = %tls.files.cert.display(), "TLS certificates reloaded");
                }
                None => tracing::warn!(
                    "the reloaded config has no [api] tls_cert_file; the listener keeps TLS until a restart"
                ),
            }
        }
    });
    let handle = axum_server::Handle::new();
    let closing = handle.clone();
    tokio::spawn(async move {
        stop.await;
        closing.graceful_shutdown(None);
    });
    axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, rustls_config)?
        .handle(handle)
        .serve(app.into_make_service())
        .await?;
    Ok(())
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
