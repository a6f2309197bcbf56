//! systemd's own news about the units that opted in (`[systemd] units`): a unit that
//! enters `failed` is a `UnitFailed` alert, resolved when it is `active` again; a unit
//! that systemd restarts by its own `Restart=` (its `NRestarts` counting up) is a
//! `UnitRestarting` alert, resolved once it runs or stops. They go through the same
//! rules, policy and audit as an alert.
//!
//! salve subscribes to the manager's signals and reads every unit's
//! `PropertiesChanged`; at each (re)connection it reads the state of every opted-in
//! unit, so what changed while the bus was away is caught up on. Nothing heard is
//! dropped: an event salve cannot record now is held and offered again.

use super::{hold, Intake};
use crate::event::{Event, Fingerprint, Labels, Status};
use crate::systemd::{ManagerProxy, ServiceProxy, UnitOptIn, UnitProxy};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

const ALERT_FAILED: &str = "UnitFailed";
const ALERT_RESTARTING: &str = "UnitRestarting";
const UNITS_PATH: &str = "/org/freedesktop/systemd1/unit";

/// Settings of the events source, from `[systemd]`.
#[derive(Debug, Clone)]
pub struct SystemdEventsSettings {
    pub bus: String,
    pub units: UnitOptIn,
}

/// A unit as salve last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Seen {
    active: String,
    sub: String,
    restarts: u32,
    result: String,
    exit_status: i32,
    /// A `UnitRestarting` episode is open: told as firing, not yet resolved. Salve's
    /// own memory, not systemd's.
    restarting: bool,
}

impl Seen {
    fn failed(&self) -> bool {
        self.active == "failed"
    }

    fn running(&self) -> bool {
        self.active == "active"
    }
}

/// Follows systemd on `settings.bus` for as long as salve runs, connecting again (with
/// a back-off up to 30 s) whenever the bus goes away.
pub async fn run(intake: Arc<dyn Intake>, settings: SystemdEventsSettings) {
    let mut backoff = Duration::from_millis(500);
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let host = host_name();
    loop {
        let follow = Follow {
            intake: intake.as_ref(),
            settings: &settings,
            host: &host,
            seen: &mut seen,
        };
        match follow.run(&mut backoff).await {
            Ok(()) => tracing::warn!(bus = %settings.bus, retry_in_ms = backoff.as_millis() as u64,
                "systemd's bus closed; connecting again"),
            Err(e) => tracing::warn!(bus = %settings.bus, error = %crate::systemd::said(&e),
                retry_in_ms = backoff.as_millis() as u64, "cannot follow systemd's units; trying again"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The name of the host salve runs on, for the events' `host` label.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn fingerprint(alertname: &str, unit: &str, host: &str) -> Fingerprint {
    let identity: Labels = [
        ("alertname", alertname),
        ("unit", unit),
        ("host", host),
        ("source", "systemd"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Fingerprint::of_labels(&identity)
}

/// The event of `alertname` about `unit` as it is `now`.
fn event(
    alertname: &str,
    status: Status,
    unit: &str,
    host: &str,
    now: &Seen,
    at: DateTime<Utc>,
) -> Event {
    let mut labels = Labels::from([
        ("alertname".to_string(), alertname.to_string()),
        ("unit".to_string(), unit.to_string()),
        ("host".to_string(), host.to_string()),
        ("source".to_string(), "systemd".to_string()),
        ("state".to_string(), format!("{}/{}", now.active, now.sub)),
    ]);
    if !now.result.is_empty() {
        labels.insert("result".into(), now.result.clone());
        labels.insert("exit_status".into(), now.exit_status.to_string());
    }
    if alertname == ALERT_RESTARTING {
        labels.insert("restarts".into(), now.restarts.to_string());
    }
    let summary = match (alertname, status) {
        (ALERT_FAILED, Status::Firing) => format!(
            "unit {unit} failed ({}, exit status {})",
            now.result, now.exit_status
        ),
        (ALERT_FAILED, _) => format!("unit {unit} is active again"),
        (_, Status::Firing) => format!("systemd restarted unit {unit} ({} restarts)", now.restarts),
        _ => format!("unit {unit} is {}/{}", now.active, now.sub),
    };
    Event {
        id: crate::event::new_event_id(),
        source: "systemd".into(),
        status,
        fingerprint: fingerprint(alertname, unit, host),
        labels,
        annotations: Labels::from([("summary".to_string(), summary)]),
        starts_at: at,
        ends_at: (status == Status::Resolved).then_some(at),
        generator_url: String::new(),
        received_at: at,
    }
}

/// How long a unit systemd restarted must run with its restart count still before its
/// `UnitRestarting` is resolved: a loop runs for a moment between its deaths.
const SETTLED: Duration = Duration::from_secs(2);

/// What a change from `before` (None: never seen) to `now` means; `now.restarting`
/// is set to whether a `UnitRestarting` episode is open after it. `settled`: the unit
/// has been looked at again [`SETTLED`] after its last restart.
fn changes(
    unit: &str,
    host: &str,
    before: Option<&Seen>,
    now: &mut Seen,
    settled: bool,
    at: DateTime<Utc>,
) -> Vec<Event> {
    let mut events = Vec::new();
    let was_failed = before.is_some_and(Seen::failed);
    if now.failed() && !was_failed {
        events.push(event(ALERT_FAILED, Status::Firing, unit, host, now, at));
    }
    if was_failed && now.running() {
        events.push(event(ALERT_FAILED, Status::Resolved, unit, host, now, at));
    }
    let restarted = before.is_some_and(|b| now.restarts > b.restarts);
    let open = before.is_some_and(|b| b.restarting);
    now.restarting = open || restarted;
    if restarted && !open {
        events.push(event(ALERT_RESTARTING, Status::Firing, unit, host, now, at));
    }
    let over = (settled && now.running() && !restarted) || now.failed() || now.active == "inactive";
    if now.restarting && over {
        now.restarting = false;
        events.push(event(
            ALERT_RESTARTING,
            Status::Resolved,
            unit,
            host,
            now,
            at,
        ));
    }
    events
}

/// One connection to the bus.
struct Follow<'a> {
    intake: &'a dyn Intake,
    settings: &'a SystemdEventsSettings,
    host: &'a str,
    seen: &'a mut HashMap<String, Seen>,
}

impl Follow<'_> {
    /// Reads the units as they are, then every change, until the bus goes away.
    async fn run(mut self, backoff: &mut Duration) -> zbus::Result<()> {
        let connection = crate::systemd::connect(&self.settings.bus).await?;
        let manager = ManagerProxy::new(&connection).await?;
        manager
            .subscribe()
            .await
            .or_else(crate::systemd::already_subscribed)?;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.DBus.Properties")?
            .member("PropertiesChanged")?
            .path_namespace(UNITS_PATH)?
            .build();
        let mut changed = zbus::MessageStream::for_match_rule(rule, &connection, None).await?;
        let mut names: HashMap<OwnedObjectPath, String> = HashMap::new();
        for unit in manager.list_units().await? {
            let (name, path) = (unit.0, unit.6);
            if self.settings.units.admits(&name) {
                self.look(&connection, &name, &path, false).await?;
                names.insert(path, name);
            }
        }
        tracing::info!(bus = %self.settings.bus, units = names.len(), "following systemd's units");
        *backoff = Duration::from_millis(500);
        // Units to look at again once they have settled, with when.
        let mut settling: HashMap<OwnedObjectPath, tokio::time::Instant> = HashMap::new();
        loop {
            let next = settling.values().min().copied();
            let message = tokio::select! {
                message = changed.next() => message,
                () = sleep_until(next) => {
                    let now = tokio::time::Instant::now();
                    let due: Vec<OwnedObjectPath> = settling
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(path, _)| path.clone())
                        .collect();
                    for path in due {
                        settling.remove(&path);
                        let Some(name) = names.get(&path).cloned() else {
                            continue;
                        };
                        if self.look(&connection, &name, &path, true).await? {
                            settling.insert(path, now + SETTLED);
                        }
                    }
                    continue;
                }
            };
            let Some(message) = message else {
                break;
            };
            let message = message?;
            let Some(path) = message
                .header()
                .path()
                .map(|p| OwnedObjectPath::from(p.to_owned()))
            else {
                continue;
            };
            let name = match names.get(&path) {
                Some(name) => name.clone(),
                None => {
                    let unit = unit_proxy(&connection, &path).await?;
                    let name = unit.id().await?;
                    names.insert(path.clone(), name.clone());
                    name
                }
            };
            if self.settings.units.admits(&name)
                && self.look(&connection, &name, &path, false).await?
            {
                settling.insert(path, tokio::time::Instant::now() + SETTLED);
            }
        }
        Ok(())
    }

    /// Reads `name` afresh and hands over what its change means; whether it is in a
    /// `UnitRestarting` episode, to be looked at again once settled.
    async fn look(
        &mut self,
        connection: &zbus::Connection,
        name: &str,
        path: &OwnedObjectPath,
        settled: bool,
    ) -> zbus::Result<bool> {
        let mut now = read(connection, name, path).await?;
        let before = self.seen.get(name).cloned();
        let events = changes(
            name,
            self.host,
            before.as_ref(),
            &mut now,
            settled,
            self.intake.now(),
        );
        let restarting = now.restarting;
        self.seen.insert(name.to_string(), now);
        for mut event in events {
            // A resolution names the start of the episode it ends, as Alertmanager's
            // does: the report counts the recovery and its time from it.
            if event.status == Status::Resolved {
                if let Some(since) = self.intake.firing_since(&event.fingerprint) {
                    event.starts_at = since;
                }
            }
            // A unit found failed at a start that the trail already knows as failing
            // is the same episode, not a new one.
            if event.status == Status::Firing
                && before.is_none()
                && self.intake.firing_since(&event.fingerprint).is_some()
            {
                continue;
            }
            if let Err(refused) = self.intake.accept(vec![event.clone()]).await {
                hold(self.intake, &event, refused, "systemd", name).await;
            }
        }
        Ok(restarting)
    }
}

/// Waits until `at`, or for ever when nothing is due.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn unit_proxy<'c>(
    connection: &'c zbus::Connection,
    path: &OwnedObjectPath,
) -> zbus::Result<UnitProxy<'c>> {
    UnitProxy::builder(connection)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

/// A unit's state now; a service's restart count and result besides.
async fn read(
    connection: &zbus::Connection,
    name: &str,
    path: &OwnedObjectPath,
) -> zbus::Result<Seen> {
    let unit = unit_proxy(connection, path).await?;
    let mut seen = Seen {
        active: unit.active_state().await?,
        sub: unit.sub_state().await?,
        ..Seen::default()
    };
    if name.ends_with(".service") {
        let service = ServiceProxy::builder(connection)
            .path(path.clone())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        seen.restarts = service.n_restarts().await?;
        seen.result = service.result().await?;
        seen.exit_status = service.exec_main_status().await?;
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(active: &str, sub: &str, restarts: u32) -> Seen {
        Seen {
            active: active.into(),
            sub: sub.into(),
            restarts,
            result: if active == "failed" {
                "exit-code".into()
            } else {
                "success".into()
            },
            exit_status: if active == "failed" { 3 } else { 0 },
            restarting: false,
        }
    }

    fn kinds(events: &[Event]) -> Vec<(String, Status)> {
        events
            .iter()
            .map(|e| (e.labels["alertname"].clone(), e.status))
            .collect()
    }

    fn change(before: Option<&Seen>, now: &Seen, settled: bool) -> (Vec<Event>, Seen) {
        let mut now = now.clone();
        let events = changes("app.service", "h", before, &mut now, settled, Utc::now());
        (events, now)
    }

    #[test]
    fn a_failure_fires_and_the_unit_active_again_resolves_it() {
        let running = seen("active", "running", 0);
        let failed = seen("failed", "failed", 0);
        let (fired, _) = change(Some(&running), &failed, false);
        assert_eq!(kinds(&fired), [("UnitFailed".to_string(), Status::Firing)]);
        assert_eq!(fired[0].labels["result"], "exit-code");
        assert_eq!(fired[0].labels["exit_status"], "3");
        assert_eq!(fired[0].source, "systemd");
        assert_eq!(fired[0].labels["source"], "systemd");
        let (resolved, _) = change(Some(&failed), &running, false);
        assert_eq!(
            kinds(&resolved),
            [("UnitFailed".to_string(), Status::Resolved)]
        );
        assert_eq!(fired[0].fingerprint, resolved[0].fingerprint);
        assert!(change(Some(&running), &running, false).0.is_empty());
    }

    #[test]
    fn a_unit_found_failed_fires_and_one_found_running_says_nothing() {
        let (found, _) = change(None, &seen("failed", "failed", 0), false);
        assert_eq!(kinds(&found), [("UnitFailed".to_string(), Status::Firing)]);
        assert!(change(None, &seen("active", "running", 0), false)
            .0
            .is_empty());
    }

    #[test]
    fn restarts_by_systemd_fire_once_and_resolve_once_the_unit_has_settled_running() {
        let (fired, looping) = change(
            Some(&seen("active", "running", 1)),
            &seen("active", "running", 2),
            false,
        );
        assert_eq!(
            kinds(&fired),
            [("UnitRestarting".to_string(), Status::Firing)]
        );
        assert_eq!(fired[0].labels["restarts"], "2");
        // Restarted again: the same episode, nothing new to tell.
        let (again, looping) = change(
            Some(&looping),
            &seen("activating", "auto-restart", 3),
            false,
        );
        assert!(again.is_empty(), "{again:?}");
        assert!(looping.restarting);
        // Running, but not yet looked at once settled: still open.
        let (early, looping) = change(Some(&looping), &seen("active", "running", 3), false);
        assert!(early.is_empty(), "{early:?}");
        let (settled, after) = change(Some(&looping), &seen("active", "running", 3), true);
        assert_eq!(
            kinds(&settled),
            [("UnitRestarting".to_string(), Status::Resolved)]
        );
        assert!(!after.restarting);
    }
}
