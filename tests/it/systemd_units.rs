//! salve heals systemd units over D-Bus, for real: systemd runs as PID 1 in a container
//! (a debootstrap root) whose `/run/dbus` is a folder of the host, so salve on the host
//! talks to that systemd through its bus socket. Only the units `[systemd] units` names
//! are touched; a restart is waited on until the unit runs again, and one that fails
//! is a failed outcome with systemd's own result.

use crate::support::{native, of_kind, Salve};
use crate::systemd_support::Host;
use serde_json::Value;

/// `flaky.service` and `plain.service` (opted in) and `other.service` (not): each runs
/// until `/var/tmp/NAME.broken` exists, then fails at its next start with exit status
/// 3; a reload appends a line to `/var/tmp/NAME.reloads`, but `plain` cannot reload.
fn unit(name: &str) -> String {
    let reload = if name == "plain" {
        String::new()
    } else {
        format!("ExecReload=/bin/sh -c 'echo reloaded >> /var/tmp/{name}.reloads'\n")
    };
    format!(
        "[Service]\nExecStart=/bin/sh -c 'if [ -e /var/tmp/{name}.broken ]; then exit 3; fi; exec sleep infinity'\n{reload}"
    )
}

const RULE: &str = r#"
const MATCH = `alertname="UnitDown", unit=~".+"`;

fn plan(event) {
    if event.status != "firing" { return []; }
    let u = systemd_unit(event.labels.unit);
    if event.labels.fix == "reload" { return [reload(u)]; }
    if event.labels.fix == "reload-or-restart" { return [reload(u).or_restart()]; }
    [restart(u)]
}
"#;

pub struct Units {
    pub host: Host,
    bus: tempfile::TempDir,
}

impl Units {
    /// `tag` tells this test's host from the others running at the same time.
    fn start(tag: &str) -> Units {
        let units: Vec<(String, String)> = ["flaky", "plain", "other"]
            .iter()
            .map(|name| (name.to_string(), unit(name)))
            .collect();
        Units::start_with(tag, &units)
    }

    /// A host whose units are `(name, unit file)`, each started.
    pub fn start_with(tag: &str, units: &[(String, String)]) -> Units {
        let bus = tempfile::tempdir().expect("a folder for the bus socket");
        let mount = format!("{}:/run/dbus", bus.path().display());
        let host = Host::start_with(
            &format!("salve-it-units-{tag}-{}", std::process::id()),
            &["-v", &mount],
        );
        let mut start = vec!["systemctl".to_string(), "start".to_string()];
        for (name, text) in units {
            host.write(&format!("/etc/systemd/system/{name}.service"), text);
            start.push(format!("{name}.service"));
        }
        let start: Vec<&str> = start.iter().map(String::as_str).collect();
        for step in [vec!["systemctl", "daemon-reload"], start] {
            let out = host.exec(&step);
            assert!(
                out.status.success(),
                "{step:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Units { host, bus }
    }

    pub fn address(&self) -> String {
        format!("unix:path={}/system_bus_socket", self.bus.path().display())
    }

    pub fn main_pid(&self, unit: &str) -> String {
        let out = self
            .host
            .exec(&["systemctl", "show", "-p", "MainPID", "--value", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn shell(&self, script: &str) {
        let out = self.host.exec(&["sh", "-c", script]);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn salve(&self, extra: &str) -> Salve {
        let config = format!(
            "[systemd]\nbus = \"{}\"\nunits = [\"flaky.service\", \"pl*.service\"]\nevents = false\nverify_timeout = \"10s\"\n{extra}",
            self.address()
        );
        Salve::builder().config(&config).rule("units", RULE).start()
    }
}

/// Sends `UnitDown` for `unit` (try `n`, so each is an alert of its own) and returns
/// the outcome of the action it led to.
fn heal(salve: &Salve, unit: &str, fix: &str, n: usize) -> Value {
    let tried = n.to_string();
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[
            ("alertname", "UnitDown"),
            ("unit", unit),
            ("fix", fix),
            ("try", &tried),
        ]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_for_audit(&format!("the outcome of try {n}"), |r| {
        of_kind(r, "outcome").len() >= n
    });
    of_kind(&records, "outcome")[n - 1].clone()
}

#[test]
fn an_opted_in_unit_is_restarted_and_reloaded_and_another_is_never_touched() {
    let units = Units::start("heal");
    let salve = units.salve("");
    let before = units.main_pid("flaky.service");

    let restarted = heal(&salve, "flaky.service", "restart", 1);
    assert_eq!(
        restarted["outcome"],
        "ok",
        "{restarted:#}\n{}",
        salve.logs()
    );
    assert_eq!(
        restarted["target"], "systemd:flaky.service",
        "{restarted:#}"
    );
    assert_eq!(restarted["verified"], "active/running", "{restarted:#}");
    assert_eq!(restarted["detail"]["job_result"], "done", "{restarted:#}");
    let after = units.main_pid("flaky.service");
    assert!(
        after != before && after != "0",
        "the main PID stayed {before}"
    );

    let reloaded = heal(&salve, "flaky.service", "reload", 2);
    assert_eq!(reloaded["outcome"], "ok", "{reloaded:#}");
    let reloads = units.host.exec(&["cat", "/var/tmp/flaky.reloads"]);
    assert_eq!(String::from_utf8_lossy(&reloads.stdout).lines().count(), 1);
    assert_eq!(
        units.main_pid("flaky.service"),
        after,
        "a reload restarted it"
    );

    let other = units.main_pid("other.service");
    let refused = heal(&salve, "other.service", "restart", 3);
    assert_eq!(refused["outcome"], "skipped", "{refused:#}");
    assert_eq!(refused["reason"], "not_opted_in", "{refused:#}");
    assert_eq!(
        units.main_pid("other.service"),
        other,
        "a unit not opted in was restarted"
    );
}

#[test]
fn a_unit_that_fails_to_start_is_a_failed_outcome_three_trip_the_breaker_and_its_trial_heals_it() {
    let units = Units::start("fail");
    let salve = units.salve("[policy]\nbreaker_failures = 3\nbreaker_open_for = \"2s\"\n");
    units.shell("touch /var/tmp/flaky.broken");
    for n in 1..=3 {
        let failed = heal(&salve, "flaky.service", "restart", n);
        assert_eq!(failed["outcome"], "failed", "{failed:#}");
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("exit-code") && error.contains("3"),
            "{failed:#}"
        );
        assert_eq!(failed["detail"]["result"], "exit-code", "{failed:#}");
    }
    // The fourth alert finds the breaker open: decided, not acted on.
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[
            ("alertname", "UnitDown"),
            ("unit", "flaky.service"),
            ("fix", "restart"),
            ("try", "4"),
        ]),
    );
    assert_eq!(reply.status, 200);
    let records = salve.wait_for_audit("the fourth decision", |r| {
        of_kind(r, "decision")
            .iter()
            .any(|d| d["reason"] == "circuit_open")
    });
    assert_eq!(
        of_kind(&records, "outcome").len(),
        3,
        "the open breaker let an action through"
    );

    // Fixed meanwhile: when the breaker lets one trial through, the alert it held back
    // is tried again, and the unit runs.
    units.shell("rm /var/tmp/flaky.broken");
    let records = salve.wait_for_audit("the trial once the breaker half-opens", |r| {
        of_kind(r, "outcome").len() >= 4
    });
    let healed = of_kind(&records, "outcome")[3];
    assert_eq!(healed["outcome"], "ok", "{healed:#}");
    assert_eq!(healed["verified"], "active/running", "{healed:#}");
    assert_ne!(units.main_pid("flaky.service"), "0");
}
