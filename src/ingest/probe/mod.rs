//! Probes: HTTP, TCP and command health checks salve runs itself (seed 003), so a user
//! without Prometheus needs no prober of their own. A probe becomes an event only when
//! it changes state: `failure_threshold` failures in a row fire `ProbeFailed` (its
//! `failure` label the class of the last failure), `success_threshold` successes
//! resolve it. Each check is counted in `/metrics`, never written to the audit.

mod history;
mod set;
mod settings;

pub use history::{HistoryError, ProbeFigures, ProbeHistory};
use set::Recorder;
pub use set::{ProbeChanges, Probes};
pub use settings::{Check, HttpCheck, ProbeCommand, ProbeConfig, ProbeSettings};

use super::Intake;
use crate::event::{new_event_id, Event, Fingerprint, Labels, Status};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const ALERT_PROBE_FAILED: &str = "ProbeFailed";

/// Why a check failed: a class from seed 003 and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: &'static str,
    pub error: String,
}

impl Failure {
    fn new(class: &'static str, error: impl Into<String>) -> Failure {
        Failure {
            class,
            error: error.into(),
        }
    }
}

/// Every class a failed check can have (seed 003).
const CLASSES: [&str; 9] = [
    "timeout",
    "refused",
    "dns",
    "tls",
    "status",
    "body",
    "slow",
    "reset",
    "exec_failed",
];

/// What a probe has seen: its streaks and the episode it fired. A probe's task hands it
/// to the task a reload replaces it with, so an episode the old settings fired is
/// resolved by the new ones rather than left firing.
#[derive(Debug, Default)]
struct Streak {
    failures: u32,
    successes: u32,
    first_failure: Option<DateTime<Utc>>,
    firing: Option<Event>,
}

/// Why a probe's task is told to end.
#[derive(Debug)]
enum Stop {
    /// New settings: a task with them takes over.
    Replace,
    /// The probe is gone from the config.
    Remove,
}

/// Where in its interval a probe checks: spread by its name, so a thousand probes of
/// one interval do not all fire at the same instant.
fn offset(name: &str, interval: Duration) -> Duration {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let millis = interval.as_millis().max(1) as u64;
    Duration::from_millis(hash % millis)
}

/// The labels every event of `probe` carries, and its fingerprint, which comes from
/// the probe's name alone (the `failure` label changes between episodes).
fn identity(probe: &ProbeSettings) -> (Labels, Fingerprint) {
    let mut labels = probe.labels.clone();
    labels.insert("alertname".into(), ALERT_PROBE_FAILED.into());
    labels.insert("probe".into(), probe.name.clone());
    labels.insert("source".into(), "probe".into());
    let fingerprint = Fingerprint::of_labels(&Labels::from([
        ("alertname".to_string(), ALERT_PROBE_FAILED.to_string()),
        ("probe".to_string(), probe.name.clone()),
    ]));
    (labels, fingerprint)
}

/// Checks `probe` every interval until told to stop, which it hears between checks
/// only: a check under way, and the event it hands over, are never cut in half.
async fn run(
    probe: ProbeSettings,
    intake: Arc<dyn Intake>,
    metrics: Arc<Metrics>,
    recorder: Arc<Recorder>,
    mut streak: Streak,
    mut stop: oneshot::Receiver<Stop>,
) -> Streak {
    let client = match &probe.check {
        Check::Http(http) => match http_client(http, probe.timeout) {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!(probe = %probe.name, error = %e, "cannot build the probe's HTTP client; the probe does not run");
                return streak;
            }
        },
        _ => None,
    };
    let identity = identity(&probe);
    let delay = probe.initial_delay + offset(&probe.name, probe.interval);
    tokio::select! {
        biased;
        why = &mut stop => return stopped(&probe, &metrics, why, streak),
        () = tokio::time::sleep(delay) => {}
    }
    let mut ticker = tokio::time::interval(probe.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            why = &mut stop => return stopped(&probe, &metrics, why, streak),
            _ = ticker.tick() => {}
        }
        let at = intake.now();
        let started = Instant::now();
        let result = timed_check(&probe, client.as_ref()).await;
        let took = started.elapsed();
        let class = result.as_ref().err().map(|f| f.class);
        metrics.probe_checked(&probe.name, took, class);
        recorder.record(&probe.name, at, took, class);
        let seen = Seen { at, took };
        match result {
            Ok(()) => succeeded(&probe, &*intake, &mut streak, seen).await,
            Err(failure) => failed(&probe, &*intake, &mut streak, &identity, failure, seen).await,
        }
    }
}

/// When a check was made and how long it took.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: DateTime<Utc>,
    took: Duration,
}

/// A check, cut off at the probe's timeout.
async fn timed_check(
    probe: &ProbeSettings,
    client: Option<&reqwest::Client>,
) -> Result<(), Failure> {
    match tokio::time::timeout(probe.timeout, check(probe, client)).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            "timeout",
            format!(
                "no answer within {}",
                crate::model::rate::format_duration(probe.timeout)
            ),
        )),
    }
}

/// A check passed: after `success_threshold` in a row, the episode it fired resolves.
async fn succeeded(probe: &ProbeSettings, intake: &dyn Intake, streak: &mut Streak, seen: Seen) {
    streak.failures = 0;
    streak.successes = streak.successes.saturating_add(1);
    streak.first_failure = None;
    if streak.successes < probe.success_threshold {
        return;
    }
    let Some(fired) = streak.firing.as_ref() else {
        return;
    };
    let mut resolved = fired.clone();
    resolved.id = new_event_id();
    resolved.status = Status::Resolved;
    resolved.ends_at = Some(seen.at);
    resolved.received_at = seen.at;
    resolved
        .annotations
        .insert("response_time_ms".into(), seen.took.as_millis().to_string());
    match intake.accept(vec![resolved]).await {
        Ok(()) => {
            tracing::info!(probe = %probe.name, "probe healthy again");
            streak.firing = None;
        }
        Err(e) => tracing::warn!(probe = %probe.name, error = %e,
            "cannot hand over the probe's recovery; trying at the next check"),
    }
}

/// A check failed: after `failure_threshold` in a row, the probe fires (once an episode).
async fn failed(
    probe: &ProbeSettings,
    intake: &dyn Intake,
    streak: &mut Streak,
    (base_labels, fingerprint): &(Labels, Fingerprint),
    failure: Failure,
    seen: Seen,
) {
    streak.successes = 0;
    streak.failures = streak.failures.saturating_add(1);
    let failures = streak.failures;
    let since = *streak.first_failure.get_or_insert(seen.at);
    tracing::debug!(probe = %probe.name, class = failure.class, error = %failure.error, failures, "probe failed");
    if streak.firing.is_some() || failures < probe.failure_threshold {
        return;
    }
    let mut labels = base_labels.clone();
    labels.insert("failure".into(), failure.class.into());
    let event = Event {
        id: new_event_id(),
        source: "probe".into(),
        status: Status::Firing,
        labels,
        annotations: Labels::from([
            ("error".to_string(), failure.error.clone()),
            (
                "response_time_ms".to_string(),
                seen.took.as_millis().to_string(),
            ),
            (
                "summary".to_string(),
                format!(
                    "probe {} failed {failures} times in a row: {}",
                    probe.name, failure.error
                ),
            ),
        ]),
        // An episode salve already knows (from before a restart) goes on.
        starts_at: intake.firing_since(fingerprint).unwrap_or(since),
        ends_at: None,
        fingerprint: fingerprint.clone(),
        generator_url: String::new(),
        received_at: seen.at,
    };
    match intake.accept(vec![event.clone()]).await {
        Ok(()) => {
            tracing::warn!(probe = %probe.name, class = failure.class, error = %failure.error, "probe failing");
            streak.firing = Some(event);
        }
        Err(e) => tracing::warn!(probe = %probe.name, error = %e,
            "cannot hand over the probe's failure; trying at the next check"),
    }
}

/// A probe's task ends: a removed probe's series leave `/metrics`, as a target that is
/// no longer scraped; a replaced one's stay for the task that takes over.
fn stopped(
    probe: &ProbeSettings,
    metrics: &Metrics,
    why: Result<Stop, oneshot::error::RecvError>,
    streak: Streak,
) -> Streak {
    match why {
        Ok(Stop::Remove) => {
            metrics.probe_removed(&probe.name, &CLASSES);
            tracing::info!(probe = %probe.name, "probe stopped: no longer in the config");
        }
        Ok(Stop::Replace) => {
            tracing::debug!(probe = %probe.name, "probe replaced by its new settings");
        }
        // The set of probes is gone: salve is stopping.
        Err(_) => {}
    }
    streak
}

async fn check(probe: &ProbeSettings, client: Option<&reqwest::Client>) -> Result<(), Failure> {
    match (&probe.check, client) {
        (Check::Http(http), Some(client)) => check_http(http, client).await,
        (
            Check::Tcp {
                address,
                send,
                expect,
            },
            _,
        ) => {
            let patience = probe.timeout.mul_f64(0.9);
            check_tcp(address, send.as_deref(), expect.as_deref(), patience).await
        }
        (Check::Exec(command), _) => check_exec(command).await,
        (Check::Http(_), None) => Err(Failure::new("exec_failed", "no HTTP client")),
    }
}

fn http_client(http: &HttpCheck, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let redirects = if http.follow_redirects {
        reqwest::redirect::Policy::limited(5)
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(redirects)
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(!http.tls_verify);
    if let Some(pem) = &http.ca_pem {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
    }
    builder.build()
}

async fn check_http(http: &HttpCheck, client: &reqwest::Client) -> Result<(), Failure> {
    let method =
        reqwest::Method::from_bytes(http.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = client.request(method, &http.url);
    for (name, value) in &http.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &http.body {
        request = request.body(body.clone());
    }
    let started = Instant::now();
    let response = request.send().await.map_err(|e| classify_http(&e))?;
    let status = response.status().as_u16();
    let healthy = if http.expect_status.is_empty() {
        (200..400).contains(&status)
    } else {
        http.expect_status.contains(&status)
    };
    if !healthy {
        return Err(Failure::new("status", format!("HTTP {status}")));
    }
    if let Some(pattern) = &http.expect_body {
        let body = response.bytes().await.map_err(|e| classify_http(&e))?;
        let text = String::from_utf8_lossy(&body[..body.len().min(1 << 20)]);
        if !pattern.is_match(&text) {
            return Err(Failure::new(
                "body",
                format!("the body does not match {:?}", pattern.as_str()),
            ));
        }
    }
    let took = started.elapsed();
    if let Some(max) = http.max_response_time {
        if took > max {
            return Err(Failure::new(
                "slow",
                format!(
                    "answered in {} ms, more than max_response_time ({} ms)",
                    took.as_millis(),
                    max.as_millis()
                ),
            ));
        }
    }
    Ok(())
}

/// The class of a failed HTTP exchange, read off the error and its causes.
fn classify_http(e: &reqwest::Error) -> Failure {
    let chain = crate::model::error_chain(e);
    if e.is_timeout() {
        return Failure::new("timeout", chain);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return Failure::new("tls", chain);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // A TLS failure comes wrapped in an I/O error.
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return Failure::new("tls", chain);
            }
            if let Some(class) = io_class(io) {
                return Failure::new(class, chain);
            }
        }
        source = err.source();
    }
    let lower = chain.to_lowercase();
    let class = if lower.contains("dns error") || lower.contains("failed to lookup address") {
        "dns"
    } else if [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "peer sent",
    ]
    .iter()
    .any(|word| lower.contains(word))
    {
        // rustls' own words: a handshake that failed, a server that is not TLS.
        "tls"
    } else if e.is_connect() {
        "refused"
    } else {
        "reset"
    };
    Failure::new(class, chain)
}

fn io_class(io: &std::io::Error) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    match io.kind() {
        ConnectionRefused => Some("refused"),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => Some("reset"),
        TimedOut => Some("timeout"),
        _ => None,
    }
}

async fn check_tcp(
    address: &str,
    send: Option<&str>,
    expect: Option<&str>,
    patience: Duration,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + patience;
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host(address)
        .await
        .map_err(|e| Failure::new("dns", format!("cannot resolve {address}: {e}")))?
        .collect();
    let Some(first) = addresses.first() else {
        return Err(Failure::new(
            "dns",
            format!("{address} resolves to nothing"),
        ));
    };
    let mut stream = tokio::net::TcpStream::connect(first).await.map_err(|e| {
        Failure::new(
            io_class(&e).unwrap_or("refused"),
            format!("connect {address}: {e}"),
        )
    })?;
    if let Some(bytes) = send {
        stream
            .write_all(bytes.as_bytes())
            .await
            .map_err(|e| Failure::new(io_class(&e).unwrap_or("reset"), format!("send: {e}")))?;
    }
    let Some(wanted) = expect else {
        return Ok(());
    };
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // A reply that never says what is expected is told apart from no reply at all.
        let Ok(read) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await else {
            if reply.is_empty() {
                return Err(Failure::new("timeout", "no reply"));
            }
            break;
        };
        let n =
            read.map_err(|e| Failure::new(io_class(&e).unwrap_or("reset"), format!("read: {e}")))?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&reply).contains(wanted) {
            return Ok(());
        }
        if reply.len() > 64 * 1024 {
            break;
        }
    }
    let shown: String = String::from_utf8_lossy(&reply).chars().take(100).collect();
    Err(Failure::new(
        "body",
        format!("the reply {shown:?} does not contain {wanted:?}"),
    ))
}

async fn check_exec(command: &ProbeCommand) -> Result<(), Failure> {
    let Some(mut cmd) = crate::model::named_command(
        &command.argv,
        &[],
        &command.env,
        command.working_dir.as_deref(),
    ) else {
        return Err(Failure::new("exec_failed", "the command is empty"));
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let output = cmd
        .output()
        .await
        .map_err(|e| Failure::new("exec_failed", format!("cannot run {}: {e}", command.name)))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(Failure::new(
        "exec_failed",
        format!("{} exited with {}: {tail}", command.name, output.status),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_of_one_interval_are_spread_over_it_and_each_keeps_its_place() {
        let interval = Duration::from_secs(1);
        let offsets: Vec<Duration> = (0..100)
            .map(|i| offset(&format!("probe-{i}"), interval))
            .collect();
        assert!(offsets.iter().all(|o| *o < interval));
        let distinct: std::collections::HashSet<_> = offsets.iter().collect();
        assert!(distinct.len() > 80, "{} distinct offsets", distinct.len());
        assert_eq!(offset("api", interval), offset("api", interval));
    }
}
