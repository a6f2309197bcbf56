//! The Docker engine's own events: health changes, deaths and OOM kills become events
//! that go through the same rules, policy and audit as an alert.

use super::{already_recorded, hold, retry_delay, Intake, IntakeError};
use crate::event::{Event, Fingerprint, Labels, Status};
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ALERT_UNHEALTHY: &str = "ContainerUnhealthy";
const ALERT_EXITED: &str = "ContainerExited";
const ALERT_OOM: &str = "ContainerOOMKilled";

/// A kill or stop asked for through the API this long before a death makes it a
/// requested stop, not a crash.
const STOP_REQUEST_WINDOW: Duration = Duration::from_secs(60);

/// After the stream breaks, the engine's own recent events of the gap are replayed, up
/// to this far back: a container that crashed meanwhile is still started again, but
/// salve does not act on what happened long ago.
const MAX_REPLAY: Duration = Duration::from_secs(10 * 60);

/// Settings of the events source, from `[docker]`.
#[derive(Debug, Clone, Default)]
pub struct DockerEventsSettings {
    /// Only containers with this label (`key` or `key=value`), like autoheal's opt-in.
    pub label: Option<String>,
}

/// Turns container labels into event labels: `com.docker.compose.service` becomes
/// `label_com_docker_compose_service`, a valid Prometheus label name.
fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 6);
    out.push_str("label_");
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    out
}

fn event_time(msg: &EventMessage) -> DateTime<Utc> {
    msg.time_nano
        .map(|n| Utc.timestamp_nanos(n))
        .or_else(|| msg.time.and_then(|s| Utc.timestamp_opt(s, 0).single()))
        .unwrap_or_else(Utc::now)
}

/// Remembers recent stop requests (kill/stop events) per container.
#[derive(Debug, Default)]
pub struct StopRequests {
    at: HashMap<String, DateTime<Utc>>,
}

impl StopRequests {
    fn note(&mut self, container: &str, at: DateTime<Utc>) {
        self.at.insert(container.to_string(), at);
        if self.at.len() > 10_000 {
            let cutoff = crate::model::earlier(at, Duration::from_secs(3600));
            self.at.retain(|_, t| *t > cutoff);
        }
    }

    fn requested_before(&self, container: &str, died: DateTime<Utc>) -> bool {
        self.at
            .get(container)
            .is_some_and(|t| *t <= died && died <= crate::model::later(*t, STOP_REQUEST_WINDOW))
    }
}

/// The identity of a container alert: the same for firing and resolved, whatever the
/// other labels say, so a `healthy` event resolves the `unhealthy` one.
fn container_fingerprint(alertname: &str, container: &str) -> Fingerprint {
    let identity: Labels = [
        ("alertname", alertname),
        ("container", container),
        ("source", "docker"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Fingerprint::of_labels(&identity)
}

/// One Docker engine event as a salve event, or None for the events salve ignores.
fn event_from_docker(
    msg: &EventMessage,
    stops: &mut StopRequests,
    received_at: DateTime<Utc>,
) -> Option<Event> {
    if msg.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let action = msg.action.as_deref()?;
    let actor = msg.actor.as_ref()?;
    let attributes = actor.attributes.clone().unwrap_or_default();
    let name = attributes
        .get("name")
        .cloned()
        .or_else(|| actor.id.clone())?;
    let at = event_time(msg);
    let (alertname, status, health) = match action {
        "health_status: unhealthy" => (ALERT_UNHEALTHY, Status::Firing, Some("unhealthy")),
        "health_status: healthy" => (ALERT_UNHEALTHY, Status::Resolved, Some("healthy")),
        "die" => (ALERT_EXITED, Status::Firing, None),
        "oom" => (ALERT_OOM, Status::Firing, None),
        "kill" | "stop" => {
            stops.note(&name, at);
            return None;
        }
        _ => return None,
    };
    // A death salve (or someone) asked for is told apart from a crash.
    let stop_requested = (action == "die").then(|| stops.requested_before(&name, at));
    let container = Container {
        name: &name,
        id: actor.id.as_deref(),
        attributes: &attributes,
    };
    let labels = container_labels(alertname, &container, health, stop_requested);
    let annotations = Labels::from([(
        "summary".to_string(),
        summary(action, &name, &attributes, health),
    )]);
    Some(Event {
        id: crate::event::new_event_id(),
        source: "docker".into(),
        status,
        fingerprint: container_fingerprint(alertname, &name),
        labels,
        annotations,
        starts_at: at,
        ends_at: (status == Status::Resolved).then_some(at),
        generator_url: String::new(),
        received_at,
    })
}

/// The container an engine event is about, as the event names it.
struct Container<'a> {
    name: &'a str,
    id: Option<&'a str>,
    attributes: &'a HashMap<String, String>,
}

/// The labels of a container's event: its name, image, Compose project and service,
/// its own labels; for a `die`, the exit code and whether a stop was asked for.
fn container_labels(
    alertname: &str,
    container: &Container<'_>,
    health: Option<&str>,
    stop_requested: Option<bool>,
) -> Labels {
    let attributes = container.attributes;
    let mut labels = Labels::new();
    labels.insert("source".into(), "docker".into());
    labels.insert("alertname".into(), alertname.into());
    labels.insert("container".into(), container.name.to_string());
    if let Some(id) = container.id {
        labels.insert("container_id".into(), id.chars().take(12).collect());
    }
    if let Some(image) = attributes.get("image") {
        labels.insert("image".into(), image.clone());
    }
    if let Some(h) = health {
        labels.insert("health".into(), h.into());
    }
    if let Some(stop_requested) = stop_requested {
        labels.insert(
            "exit_code".into(),
            attributes.get("exitCode").cloned().unwrap_or_default(),
        );
        labels.insert("stop_requested".into(), stop_requested.to_string());
    }
    if let Some(p) = attributes.get("com.docker.compose.project") {
        labels.insert("compose_project".into(), p.clone());
    }
    if let Some(s) = attributes.get("com.docker.compose.service") {
        labels.insert("compose_service".into(), s.clone());
    }
    for (key, value) in attributes {
        if !matches!(
            key.as_str(),
            "name" | "image" | "exitCode" | "signal" | "execDuration"
        ) {
            labels.insert(label_name(key), value.clone());
        }
    }
    labels
}

fn summary(
    action: &str,
    name: &str,
    attributes: &HashMap<String, String>,
    health: Option<&str>,
) -> String {
    match action {
        "die" => format!(
            "Container {name} exited with code {}",
            attributes
                .get("exitCode")
                .map(String::as_str)
                .unwrap_or("?")
        ),
        "oom" => format!("Container {name} ran out of memory"),
        _ => format!("Container {name} is {}", health.unwrap_or("unknown")),
    }
}

fn label_filters(settings: &DockerEventsSettings) -> Vec<String> {
    settings.label.iter().cloned().collect()
}

/// Why the scan for containers already unhealthy did not report them.
enum Scan {
    /// The engine did not answer.
    Engine(bollard::errors::Error),
    /// salve did not take them, for now.
    Refused(IntakeError),
}

/// Containers already unhealthy: what went bad while salve was not listening.
async fn scan_unhealthy(
    docker: &Docker,
    intake: &dyn Intake,
    settings: &DockerEventsSettings,
) -> Result<usize, Scan> {
    let mut filters: HashMap<String, Vec<String>> =
        HashMap::from([("health".to_string(), vec!["unhealthy".to_string()])]);
    let labels = label_filters(settings);
    if !labels.is_empty() {
        filters.insert("label".into(), labels);
    }
    let options = ListContainersOptions {
        all: false,
        filters: Some(filters),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(Scan::Engine)?;
    let now = intake.now();
    let mut events = Vec::new();
    for c in containers {
        let Some(name) = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_string())
        else {
            continue;
        };
        let fingerprint = container_fingerprint(ALERT_UNHEALTHY, &name);
        // Keep the episode salve already knows, so a restart of salve does not act twice.
        let starts_at = intake.firing_since(&fingerprint).unwrap_or(now);
        let mut attributes: HashMap<String, String> = c.labels.clone().unwrap_or_default();
        attributes.insert("name".into(), name.clone());
        if let Some(image) = &c.image {
            attributes.insert("image".into(), image.clone());
        }
        let msg = EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some("health_status: unhealthy".into()),
            actor: Some(bollard::models::EventActor {
                id: c.id.clone(),
                attributes: Some(attributes),
            }),
            time_nano: starts_at.timestamp_nanos_opt(),
            ..Default::default()
        };
        if let Some(event) = event_from_docker(&msg, &mut StopRequests::default(), now) {
            events.push(event);
        }
    }
    let count = events.len();
    if count > 0 {
        match intake.accept(events).await {
            Ok(()) => {}
            Err(e @ IntakeError::Rejected(_)) => {
                tracing::error!(error = %e, "containers already unhealthy are past the bounds of [api]; they are not recorded");
            }
            Err(e) => return Err(Scan::Refused(e)),
        }
    }
    Ok(count)
}

/// Where a connection starts reading the engine's events: just after the last event
/// handled, or [`MAX_REPLAY`] back at the first (what happened while salve was not
/// running, which the trail's identities sort out); never further back than that.
/// `stopped_at`: when the last connection stopped being read.
fn read_from(
    handled_until: Option<DateTime<Utc>>,
    stopped_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let oldest = crate::model::earlier(now, MAX_REPLAY);
    let Some(handled) = handled_until else {
        return oldest;
    };
    if stopped_at.is_some_and(|stopped| stopped < oldest) {
        tracing::warn!(from = %handled, to = %oldest, "the Docker events of a gap longer than 10 minutes are not read again; containers still unhealthy are found by the scan");
    }
    crate::model::later(handled, Duration::from_nanos(1)).max(oldest)
}

fn events_options(settings: &DockerEventsSettings, since: DateTime<Utc>) -> EventsOptions {
    let mut filters: HashMap<String, Vec<String>> = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            ["health_status", "die", "oom", "kill", "stop"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    ]);
    let labels = label_filters(settings);
    if !labels.is_empty() {
        filters.insert("label".into(), labels);
    }
    EventsOptions {
        // To the nanosecond: whole seconds would replay a health change of the same
        // second that the scan reports too, and act on it twice.
        since: Some(format!(
            "{}.{:09}",
            since.timestamp(),
            since.timestamp_subsec_nanos()
        )),
        filters: Some(filters),
        ..Default::default()
    }
}

/// Follows the engine's event stream for as long as salve runs, reconnecting with
/// back-off. `up` is false while the stream is down, and `/-/ready` says so.
///
/// Nothing heard is dropped while salve refuses it for now (a full disk, a full
/// backlog, a stop): the refused event is held, the only one held, and offered again
/// until recorded; what came after it is read again from the engine, which keeps its
/// recent events, from just after it. The first connection reads [`MAX_REPLAY`] back,
/// so what happened while salve was stopped is found too; an event the trail holds
/// already is passed over, so the rules see each once.
pub async fn run(
    docker: Docker,
    intake: Arc<dyn Intake>,
    settings: DockerEventsSettings,
    up: Arc<AtomicBool>,
) {
    let mut backoff = Duration::from_millis(500);
    let mut stops = StopRequests::default();
    // The engine's time of the last event handed over or passed over.
    let mut handled_until: Option<DateTime<Utc>> = None;
    let mut stopped_at: Option<DateTime<Utc>> = None;
    loop {
        let since = read_from(handled_until, stopped_at, intake.now());
        let mut stream = docker.events(Some(events_options(&settings, since)));
        let scanned_at = intake.now();
        match scan_unhealthy(&docker, intake.as_ref(), &settings).await {
            Ok(n) => {
                up.store(true, Ordering::Release);
                backoff = Duration::from_millis(500);
                tracing::info!(already_unhealthy = n, "following Docker events");
            }
            Err(Scan::Refused(e)) => {
                let wait = retry_delay(&e, backoff);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot record the containers already unhealthy; trying again");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(Scan::Engine(e)) => {
                up.store(false, Ordering::Release);
                let error = crate::model::error_chain(&e);
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "Docker engine unreachable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        let follow = Follow {
            intake: intake.as_ref(),
            stops: &mut stops,
            handled_until: &mut handled_until,
            scanned_at,
        };
        let refused = follow.run(&mut stream).await;
        stopped_at = Some(intake.now());
        if let Some((event, refused)) = refused {
            // The engine keeps what follows; reading it again later costs no memory here.
            drop(stream);
            let container = event.labels.get("container").cloned().unwrap_or_default();
            hold(intake.as_ref(), &event, refused, "docker", &container).await;
            let at = event_at(&event);
            handled_until = Some(handled_until.map_or(at, |t| t.max(at)));
            continue;
        }
        up.store(false, Ordering::Release);
        tracing::warn!(
            retry_in_ms = backoff.as_millis() as u64,
            "Docker event stream ended; reconnecting"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The engine's time of an event: when it began firing, or when it resolved.
fn event_at(event: &Event) -> DateTime<Utc> {
    event.ends_at.unwrap_or(event.starts_at)
}

/// One connection's reading of the stream.
struct Follow<'a> {
    intake: &'a dyn Intake,
    stops: &'a mut StopRequests,
    handled_until: &'a mut Option<DateTime<Utc>>,
    /// When the scan reported health as it is.
    scanned_at: DateTime<Utc>,
}

impl Follow<'_> {
    /// Hands over each event in order until the stream ends (None) or an event is
    /// refused for now (that event, and why).
    async fn run(
        self,
        stream: &mut (impl futures_util::Stream<Item = Result<EventMessage, bollard::errors::Error>>
                  + Unpin),
    ) -> Option<(Event, IntakeError)> {
        while let Some(item) = stream.next().await {
            let msg = match item {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::warn!(error = %crate::model::error_chain(&e), "Docker event stream broke");
                    return None;
                }
            };
            let at = event_time(&msg);
            // The scan reported health as it is now; a health change replayed from the
            // gap would open a second episode of the same problem.
            let health = msg
                .action
                .as_deref()
                .is_some_and(|a| a.starts_with("health_status"));
            let event = (!health || at >= self.scanned_at)
                .then(|| event_from_docker(&msg, self.stops, self.intake.now()))
                .flatten()
                .filter(|event| !already_recorded(self.intake, event));
            if let Some(event) = event {
                tracing::info!(container = event.labels.get("container").map(String::as_str).unwrap_or(""),
                    alert = event.labels.get("alertname").map(String::as_str).unwrap_or(""),
                    status = %event.status, "Docker event");
                match self.intake.accept(vec![event.clone()]).await {
                    Ok(()) => {}
                    Err(e @ IntakeError::Rejected(_)) => {
                        tracing::error!(error = %e, "a Docker event is past the bounds of [api]; it is not recorded");
                    }
                    Err(e) => return Some((event, e)),
                }
            }
            *self.handled_until = Some(self.handled_until.map_or(at, |t| t.max(at)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn message(action: &str, attributes: &[(&str, &str)], time: i64) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("0123456789abcdef0123".into()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            time: Some(time),
            time_nano: Some(time * 1_000_000_000),
            ..Default::default()
        }
    }

    fn labels(event: &Event) -> Vec<(String, String)> {
        event
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unhealthy_and_healthy_are_one_alert_firing_then_resolved() {
        let mut stops = StopRequests::default();
        let attrs = [
            ("name", "shop-db-1"),
            ("image", "postgres:16"),
            ("com.docker.compose.project", "shop"),
            ("com.docker.compose.service", "db"),
        ];
        let now = Utc::now();
        let bad = event_from_docker(
            &message("health_status: unhealthy", &attrs, 1_700_000_000),
            &mut stops,
            now,
        )
        .expect("an event");
        let good = event_from_docker(
            &message("health_status: healthy", &attrs, 1_700_000_060),
            &mut stops,
            now,
        )
        .expect("an event");
        assert_eq!(
            labels(&bad),
            pairs(&[
                ("alertname", "ContainerUnhealthy"),
                ("compose_project", "shop"),
                ("compose_service", "db"),
                ("container", "shop-db-1"),
                ("container_id", "0123456789ab"),
                ("health", "unhealthy"),
                ("image", "postgres:16"),
                ("label_com_docker_compose_project", "shop"),
                ("label_com_docker_compose_service", "db"),
                ("source", "docker"),
            ])
        );
        assert_eq!(
            (bad.status, good.status),
            (Status::Firing, Status::Resolved)
        );
        assert_eq!(bad.fingerprint, good.fingerprint);
        assert_eq!(bad.starts_at.timestamp(), 1_700_000_000);
        assert_eq!(
            bad.annotations.get("summary").map(String::as_str),
            Some("Container shop-db-1 is unhealthy")
        );
    }

    #[test]
    fn a_death_after_a_stop_request_is_marked_as_requested() {
        let mut stops = StopRequests::default();
        let now = Utc::now();
        let attrs = [("name", "worker"), ("exitCode", "137")];
        let crash = event_from_docker(&message("die", &attrs, 1_700_000_000), &mut stops, now)
            .expect("event");
        assert_eq!(
            crash.labels.get("stop_requested").map(String::as_str),
            Some("false")
        );
        assert_eq!(
            crash.labels.get("exit_code").map(String::as_str),
            Some("137")
        );
        assert!(event_from_docker(
            &message(
                "kill",
                &[("name", "worker"), ("signal", "15")],
                1_700_000_100
            ),
            &mut stops,
            now
        )
        .is_none());
        let stopped = event_from_docker(&message("die", &attrs, 1_700_000_101), &mut stops, now)
            .expect("event");
        assert_eq!(
            stopped.labels.get("stop_requested").map(String::as_str),
            Some("true")
        );
        // Long after the stop request, a death is a crash again.
        let later = event_from_docker(&message("die", &attrs, 1_700_000_500), &mut stops, now)
            .expect("event");
        assert_eq!(
            later.labels.get("stop_requested").map(String::as_str),
            Some("false")
        );
    }

    #[test]
    fn other_events_are_ignored() {
        let mut stops = StopRequests::default();
        let now = Utc::now();
        assert!(
            event_from_docker(&message("start", &[("name", "x")], 1), &mut stops, now).is_none()
        );
        let mut network = message("connect", &[("name", "x")], 1);
        network.typ = Some(EventMessageTypeEnum::NETWORK);
        assert!(event_from_docker(&network, &mut stops, now).is_none());
        let oom = event_from_docker(&message("oom", &[("name", "x")], 1), &mut stops, now)
            .expect("event");
        assert_eq!(
            oom.labels.get("alertname").map(String::as_str),
            Some("ContainerOOMKilled")
        );
    }
}
