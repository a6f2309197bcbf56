//! systemd's news of its units as events, for real (the host of `systemd_units`): a
//! unit that fails is a `UnitFailed` alert a rule heals, resolved once it runs, and
//! counted by the report as a container would be; a unit
//! systemd keeps restarting is `UnitRestarting`; a unit not opted in is not heard; and
//! when the bus goes away (systemd's host restarted) salve connects again and catches
//! up on a unit that failed meanwhile.

use crate::support::{of_kind, wait_until, Salve};
use crate::systemd_units::Units;
use serde_json::Value;

/// Runs until `/var/tmp/NAME.crash` appears, then takes it away and exits 3; with
/// `/var/tmp/NAME.doomed` it fails as it starts. Started at boot.
fn unit(name: &str, extra: &str) -> (String, String) {
    let text = format!(
        "[Service]\nExecStart=/bin/sh -c 'if [ -e /var/tmp/{name}.doomed ]; then exit 3; fi; while [ ! -e /var/tmp/{name}.crash ]; do sleep 0.2; done; rm -f /var/tmp/{name}.crash; exit 3'\n{extra}\n[Install]\nWantedBy=multi-user.target\n"
    );
    (name.to_string(), text)
}

const HEAL: &str = r#"
const MATCH = `alertname="UnitFailed", source="systemd", unit=~".+"`;

fn plan(event) {
    if event.status != "firing" { return []; }
    [restart(systemd_unit(event.labels.unit))]
}
"#;

/// The `received` events of `alertname` about `unit`.
fn heard<'a>(records: &'a [Value], alertname: &str, unit: &str) -> Vec<&'a Value> {
    of_kind(records, "received")
        .into_iter()
        .filter(|r| r["event"]["labels"]["alertname"] == alertname)
        .filter(|r| r["event"]["labels"]["unit"] == unit)
        .collect()
}

#[test]
fn a_failed_unit_is_heard_healed_and_resolved_and_a_failure_while_the_bus_was_away_is_caught_up() {
    let units = Units::start_with(
        "events",
        &[
            unit("crashy", ""),
            unit("doomed", ""),
            unit(
                "looper",
                "Restart=on-failure\nRestartSec=300ms\nStartLimitBurst=1000",
            ),
            unit("bystander", ""),
        ],
    );
    for name in ["crashy", "doomed", "looper", "bystander"] {
        units.shell(&format!("systemctl enable {name}.service"));
    }
    let config = format!(
        "[systemd]\nbus = \"{}\"\nunits = [\"crashy.service\", \"doomed.service\", \"looper.service\"]\nverify_timeout = \"10s\"\n",
        units.address()
    );
    let salve = Salve::builder().config(&config).rule("heal", HEAL).start();
    wait_until("salve to follow the units", || {
        salve
            .logs()
            .contains("following systemd's units")
            .then_some(())
    });

    // A failure is heard, healed, and resolved once the unit runs again.
    units.shell("touch /var/tmp/crashy.crash /var/tmp/bystander.crash");
    let records = salve.wait_for_audit("crashy healed and resolved", |r| {
        heard(r, "UnitFailed", "crashy.service")
            .iter()
            .any(|e| e["event"]["status"] == "resolved")
            && !of_kind(r, "outcome").is_empty()
    });
    let fired = heard(&records, "UnitFailed", "crashy.service");
    let labels = &fired[0]["event"]["labels"];
    assert_eq!(fired[0]["event"]["status"], "firing", "{fired:#?}");
    assert_eq!(labels["result"], "exit-code", "{labels:#}");
    assert_eq!(labels["exit_status"], "3", "{labels:#}");
    assert_eq!(fired[0]["event"]["source"], "systemd");
    let outcome = of_kind(&records, "outcome")[0];
    assert_eq!(outcome["target"], "systemd:crashy.service", "{outcome:#}");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["verified"], "active/running", "{outcome:#}");
    // The report counts the unit as it counts a container: the failure, the restart,
    // the recovery and the time it took.
    let report = salve.cli(&["report", "--data-dir", "data", "--json"]);
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let figures = report["targets"]
        .as_array()
        .and_then(|targets| {
            targets
                .iter()
                .find(|t| t["target"] == "systemd:crashy.service")
        })
        .unwrap_or_else(|| panic!("no figures for the unit: {report:#}"));
    assert_eq!(figures["episodes"], 1, "{figures:#}");
    assert_eq!(figures["actions"], 1, "{figures:#}");
    assert_eq!(figures["recovered"], 1, "{figures:#}");
    assert!(figures["mttr_seconds"].as_f64().is_some(), "{figures:#}");

    // A unit systemd restarts by itself, again and again, is one alert until it runs.
    units.shell("touch /var/tmp/looper.doomed /var/tmp/looper.crash");
    salve.wait_for_audit("looper restarting", |r| {
        !heard(r, "UnitRestarting", "looper.service").is_empty()
    });
    units.shell("rm /var/tmp/looper.doomed");
    let records = salve.wait_for_audit("looper running again", |r| {
        heard(r, "UnitRestarting", "looper.service")
            .iter()
            .any(|e| e["event"]["status"] == "resolved")
    });
    let restarting = heard(&records, "UnitRestarting", "looper.service");
    assert!(
        restarting[0]["event"]["labels"]["restarts"]
            .as_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 1),
        "{restarting:#?}"
    );

    // systemd's host restarts: the bus goes away, a unit fails as it comes back.
    units.shell("touch /var/tmp/doomed.doomed");
    units.host.restart();
    let records = salve.wait_for_audit("the failure of the restart caught up on", |r| {
        !heard(r, "UnitFailed", "doomed.service").is_empty()
    });
    assert_eq!(
        heard(&records, "UnitFailed", "doomed.service")[0]["event"]["status"],
        "firing"
    );
    assert!(
        heard(&records, "UnitFailed", "bystander.service").is_empty(),
        "a unit not opted in was heard"
    );
}
