//! systemd: a unit restarted, started, stopped, reloaded, signalled, or its failed state
//! reset, over D-Bus (zbus) as `systemctl` asks for it, and only when the unit opted in
//! (`[systemd] units`); then the job systemd queued is waited on and the unit watched
//! until it is active again. The interface itself is the leaf `crate::systemd`.

mod settings;

pub use settings::{SystemdConfig, SystemdSettings, SYSTEM_BUS};

use crate::execute::{ActionContext, Executor};
use crate::model::{Action, Backend, Intent, Outcome, SkipReason, Target};
use crate::systemd::{self as bus, ManagerProxy, ServiceProxy, UnitOptIn, UnitProxy};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zbus::proxy::CacheProperties;

/// How long a unit must stay active after its job before salve calls it back: a
/// service that starts and dies at once is not healed.
const SETTLE: Duration = Duration::from_secs(1);

pub struct SystemdExecutor {
    settings: SystemdSettings,
    /// Connected on first use and kept; dropped after a transport error, so the next
    /// action connects again (systemd or the bus restarted).
    bus: tokio::sync::Mutex<Option<zbus::Connection>>,
    poll_every: Duration,
}

impl SystemdExecutor {
    pub fn new(settings: SystemdSettings) -> SystemdExecutor {
        SystemdExecutor {
            settings,
            bus: tokio::sync::Mutex::new(None),
            poll_every: Duration::from_millis(200),
        }
    }

    async fn connection(&self) -> Result<zbus::Connection, Outcome> {
        let mut bus = self.bus.lock().await;
        if let Some(connection) = bus.as_ref() {
            return Ok(connection.clone());
        }
        let connection = bus::connect(&self.settings.bus).await.map_err(|e| {
            Outcome::failed(
                format!(
                    "cannot reach systemd on {}: {}",
                    self.settings.bus,
                    bus::said(&e)
                ),
                json!({ "bus": self.settings.bus }),
            )
        })?;
        *bus = Some(connection.clone());
        Ok(connection)
    }

    async fn forget_connection(&self) {
        *self.bus.lock().await = None;
    }
}

/// Whatever a rule or an alert says, salve leaves alone a unit that has not opted in.
fn not_opted_in(unit: &str, units: &UnitOptIn) -> Outcome {
    Outcome::skipped(
        format!(
            "unit {unit} is not in [systemd] units ({}): salve does not act on it",
            if units.is_empty() {
                "none named".to_string()
            } else {
                units.written().join(", ")
            }
        ),
        Some(SkipReason::NotOptedIn),
        json!({ "unit": unit }),
    )
}

#[async_trait]
impl Executor for SystemdExecutor {
    fn backend(&self) -> Backend {
        Backend::Systemd
    }

    async fn execute(&self, intent: &Intent, _context: &ActionContext) -> Outcome {
        let Target::SystemdUnit { name } = &intent.target else {
            return Outcome::failed(
                format!("the systemd executor cannot act on {}", intent.target),
                Value::Null,
            );
        };
        if !self.settings.units.admits(name) {
            return not_opted_in(name, &self.settings.units);
        }
        let connection = match self.connection().await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let mut detail = json!({ "unit": name });
        match self.act(&connection, name, intent, &mut detail).await {
            Ok(outcome) => outcome,
            Err(e) => {
                if !matches!(e, zbus::Error::MethodError(..)) {
                    self.forget_connection().await;
                }
                Outcome::failed(
                    format!(
                        "systemd refused {} of {name}: {}",
                        intent.action,
                        bus::said(&e)
                    ),
                    detail,
                )
            }
        }
    }
}

/// What a finished job and the unit's state say of an action that was to bring it up.
enum Verdict {
    Up(String),
    Down(String),
}

impl SystemdExecutor {
    async fn act(
        &self,
        connection: &zbus::Connection,
        name: &str,
        intent: &Intent,
        detail: &mut Value,
    ) -> zbus::Result<Outcome> {
        let manager = ManagerProxy::new(connection).await?;
        let path = manager.load_unit(name).await?;
        // Read afresh each time: a cached state lags systemd's signals, and a unit seen
        // `failed` a moment after its restart would be judged on its past.
        let unit = UnitProxy::builder(connection)
            .path(path.clone())?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        if unit.load_state().await? == "not-found" {
            return Ok(Outcome::failed(
                format!("unit {name} not found"),
                detail.clone(),
            ));
        }
        detail["state_before"] = json!(state_of(&unit).await?);
        let or_restart = intent.params.get("or_restart").and_then(Value::as_bool) == Some(true);
        if intent.action == Action::Reload && !or_restart && !unit.can_reload().await? {
            return Ok(Outcome::failed(
                format!("unit {name} cannot reload (no ExecReload): reload(t).or_restart() restarts it instead"),
                detail.clone(),
            ));
        }
        let started = Instant::now();
        let job = match intent.action {
            Action::Kill | Action::ResetFailed => {
                return at_once(&manager, &unit, name, intent, detail).await
            }
            Action::Restart | Action::Start | Action::Stop | Action::Reload => {
                self.run_job(&manager, name, intent.action, or_restart).await?
            }
            other => {
                return Ok(Outcome::failed(
                    format!("{other} is not an action on a systemd unit (restart, start, stop, reload, kill, reset_failed)"),
                    detail.clone(),
                ))
            }
        };
        detail["job_ms"] = json!(started.elapsed().as_millis() as u64);
        let Some(result) = job else {
            return Ok(Outcome::failed(
                format!(
                    "systemd's job for {name} did not end within {}",
                    crate::model::format_duration(self.settings.timeout)
                ),
                detail.clone(),
            ));
        };
        detail["job_result"] = json!(result);
        if result != "done" {
            detail["state_after"] = json!(state_of(&unit).await?);
            let why = service_result(connection, &path, detail).await;
            return Ok(Outcome::failed(
                format!(
                    "systemd's {} job for {name} ended {result:?}{why}",
                    intent.action
                ),
                detail.clone(),
            ));
        }
        let within = timeout_of(intent, self.settings.verify_timeout);
        if within.is_zero() {
            return Ok(Outcome::ok(detail.clone()));
        }
        let up = intent.action != Action::Stop;
        let verdict = self.verify(&unit, name, up, within).await?;
        detail["verified_after_ms"] = json!(started.elapsed().as_millis() as u64);
        Ok(judged(verdict, connection, &path, name, intent.action, detail).await)
    }

    /// Queues the action's job and waits for systemd to say how it ended (`done`,
    /// `failed`, `timeout`, `canceled`, `dependency`, `skipped`); `None` past the timeout.
    async fn run_job(
        &self,
        manager: &ManagerProxy<'_>,
        name: &str,
        action: Action,
        or_restart: bool,
    ) -> zbus::Result<Option<String>> {
        // Subscribed before the call, so the job's end is not missed however fast it is.
        manager.subscribe().await.or_else(bus::already_subscribed)?;
        let mut removed = manager.receive_job_removed().await?;
        let job = match action {
            Action::Restart => manager.restart_unit(name, "replace").await?,
            Action::Start => manager.start_unit(name, "replace").await?,
            Action::Stop => manager.stop_unit(name, "replace").await?,
            Action::Reload if or_restart => manager.reload_or_restart_unit(name, "replace").await?,
            _ => manager.reload_unit(name, "replace").await?,
        };
        let ended = async {
            while let Some(signal) = removed.next().await {
                if let Ok(args) = signal.args() {
                    if args.job == job {
                        return Some(args.result);
                    }
                }
            }
            None
        };
        Ok(tokio::time::timeout(self.settings.timeout, ended)
            .await
            .ok()
            .flatten())
    }

    /// Up: the unit is `active` (a service `running`) and stays so for [`SETTLE`];
    /// down: `inactive` or `failed`. The state it was left in otherwise.
    async fn verify(
        &self,
        unit: &UnitProxy<'_>,
        name: &str,
        up: bool,
        within: Duration,
    ) -> zbus::Result<Verdict> {
        let service = name.ends_with(".service");
        let deadline = Instant::now() + within;
        let mut up_since: Option<Instant> = None;
        loop {
            let active = unit.active_state().await?;
            let sub = unit.sub_state().await?;
            let state = format!("{active}/{sub}");
            if up {
                let is_up = active == "active" && (!service || sub == "running");
                if active == "failed" {
                    return Ok(Verdict::Down(state));
                }
                match (is_up, up_since) {
                    (true, Some(since)) if since.elapsed() >= SETTLE.min(within) => {
                        return Ok(Verdict::Up(state))
                    }
                    (true, None) => up_since = Some(Instant::now()),
                    (false, _) => up_since = None,
                    _ => {}
                }
            } else if active == "inactive" || active == "failed" {
                return Ok(Verdict::Up(state));
            }
            if Instant::now() >= deadline {
                return Ok(Verdict::Down(state));
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }
}

/// A kill or a reset of the failed state: no job to wait on, nothing to verify but the
/// state it leaves.
async fn at_once(
    manager: &ManagerProxy<'_>,
    unit: &UnitProxy<'_>,
    name: &str,
    intent: &Intent,
    detail: &mut Value,
) -> zbus::Result<Outcome> {
    if intent.action == Action::ResetFailed {
        manager.reset_failed_unit(name).await?;
        let mut outcome = Outcome::ok(detail.clone());
        outcome.verified = Some(state_of(unit).await?);
        return Ok(outcome);
    }
    let signal = signal(intent);
    let Some(number) = signal_number(&signal) else {
        return Ok(Outcome::failed(
            format!("kill: {signal:?} is not a signal (write it like \"SIGHUP\")"),
            detail.clone(),
        ));
    };
    manager.kill_unit(name, "all", number).await?;
    detail["signal"] = json!(signal);
    Ok(Outcome::ok(detail.clone()))
}

/// The outcome of an action whose job is done, from what the unit was seen to do.
async fn judged(
    verdict: Verdict,
    connection: &zbus::Connection,
    path: &zbus::zvariant::OwnedObjectPath,
    name: &str,
    action: Action,
    detail: &mut Value,
) -> Outcome {
    match verdict {
        Verdict::Up(state) => {
            let mut outcome = Outcome::ok(detail.clone());
            outcome.verified = Some(state);
            outcome
        }
        Verdict::Down(state) => {
            detail["state_after"] = json!(state);
            let why = service_result(connection, path, detail).await;
            let mut outcome = Outcome::failed(
                format!("unit {name} is {state} after the {action}{why}"),
                detail.clone(),
            );
            outcome.verified = Some(state);
            outcome
        }
    }
}

async fn state_of(unit: &UnitProxy<'_>) -> zbus::Result<String> {
    Ok(format!(
        "{}/{}",
        unit.active_state().await?,
        unit.sub_state().await?
    ))
}

/// For a service, why it failed as systemd has it (`exit-code` and the status), put in
/// `detail` and returned for the message; nothing for other units.
async fn service_result(
    connection: &zbus::Connection,
    path: &zbus::zvariant::OwnedObjectPath,
    detail: &mut Value,
) -> String {
    let Ok(builder) = ServiceProxy::builder(connection)
        .path(path.clone())
        .map(|b| b.cache_properties(CacheProperties::No))
    else {
        return String::new();
    };
    let Ok(service) = builder.build().await else {
        return String::new();
    };
    let (Ok(result), Ok(status)) = (service.result().await, service.exec_main_status().await)
    else {
        return String::new();
    };
    detail["result"] = json!(result);
    detail["exit_status"] = json!(status);
    if result == "success" {
        String::new()
    } else {
        format!(" (result {result}, exit status {status})")
    }
}

/// `.timeout(seconds)` when the rule gave one.
fn timeout_of(intent: &Intent, default: Duration) -> Duration {
    intent
        .params
        .get("timeout")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or(default)
}

fn signal(intent: &Intent) -> String {
    intent
        .params
        .get("signal")
        .and_then(Value::as_str)
        .unwrap_or("SIGKILL")
        .to_string()
}

/// `SIGHUP`, `HUP` or `1`: the signal's number.
fn signal_number(signal: &str) -> Option<i32> {
    if let Ok(n) = signal.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal);
    let number = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "ABRT" => libc::SIGABRT,
        _ => return None,
    };
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_read_by_name_short_name_or_number() {
        assert_eq!(signal_number("SIGHUP"), Some(libc::SIGHUP));
        assert_eq!(signal_number("USR1"), Some(libc::SIGUSR1));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_number("0"), None);
    }

    #[tokio::test]
    async fn a_unit_not_named_in_units_is_skipped_before_the_bus_is_reached() {
        let executor = SystemdExecutor::new(SystemdSettings {
            bus: "unix:path=/nonexistent/bus".into(),
            ..SystemdSettings::default()
        });
        let intent = Intent::new(
            Action::Restart,
            Target::SystemdUnit {
                name: "sshd.service".into(),
            },
        );
        let outcome = executor.execute(&intent, &ActionContext::default()).await;
        assert_eq!(outcome.reason, Some(SkipReason::NotOptedIn), "{outcome:?}");
        assert!(
            outcome
                .error
                .as_deref()
                .is_some_and(|e| e.contains("sshd.service")),
            "{outcome:?}"
        );
    }
}
