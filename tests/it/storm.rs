//! An alert storm rotates the whole trail away; what the policy must remember (spent
//! limits, cooldowns, open breakers, windows) survives it and the restarts after it,
//! from the checkpoint.

use crate::support::{decisions, native, of_kind, s, wait_until, Salve, LIMITED};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[audit]
max_file_bytes = 20000
keep_files = 1

[policy]
breaker_failures = 1
breaker_open_for = "1h"

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]

[exec.cool]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]

[exec.mute]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]

[exec.broken]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/tries.txt"; exit 1', "sh"]
"#;

const COOLING: &str = r#"
const MATCH = `alertname="Cooling"`;
const COOLDOWN = "1h";
fn plan(event) { [exec("cool", ["cooling"])] }
"#;

const FIXER: &str = r#"
const MATCH = `alertname="Broken"`;
fn plan(event) { [exec("broken", ["fix"])] }
"#;

const MUTED: &str = r#"
const MATCH = `alertname="Muted"`;
fn plan(event) { [exec("mute", ["muted"])] }
"#;

/// What the commands marked, in any order: actions on different targets run at once.
fn marks(salve: &Salve) -> Vec<String> {
    let mut lines = salve.lines("marks.txt");
    lines.sort();
    lines
}

fn start() -> Salve {
    Salve::builder()
        .config(CONFIG)
        .rule("limited", LIMITED)
        .rule("cooling", COOLING)
        .rule("fixer", FIXER)
        .rule("muted", MUTED)
        .start()
}

/// The decisions recorded for events with this `n` label, as `decisions` prints them.
fn decided_for(records: &[Value], n: &str) -> Vec<String> {
    let ids: Vec<String> = of_kind(records, "received")
        .into_iter()
        .filter(|r| r["event"]["labels"]["n"] == n)
        .map(|r| s(&r["event"]["id"]))
        .collect();
    let mine: Vec<Value> = records
        .iter()
        .filter(|r| r["kind"] == "decision" && ids.contains(&s(&r["event_id"])))
        .cloned()
        .collect();
    decisions(&mine)
}

/// Thousands of distinct alerts, in notifications of a hundred: far more than the
/// trail's files hold.
fn storm(salve: &Salve, alerts: usize) {
    for batch in 0..alerts / 100 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                let instance = format!("host-{}", batch * 100 + i);
                native(&[("alertname", "Storm"), ("instance", &instance)])
            })
            .collect();
        let reply = salve.post_json("/api/v1/events", &Value::Array(events));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
}

fn trail_holds_a_decision(salve: &Salve) -> bool {
    salve
        .audit_json()
        .iter()
        .any(|r| r["kind"] == "decision" && r["rule"] != "")
}

#[test]
fn limits_cooldowns_breakers_and_windows_hold_after_a_storm_rotated_the_trail_away() {
    let mut salve = start();
    salve.post_event(&[("alertname", "Flapping"), ("n", "1")]);
    salve.post_event(&[("alertname", "Cooling"), ("n", "1")]);
    salve.post_event(&[("alertname", "Broken"), ("n", "1")]);
    let window = salve.post_json(
        "/api/v1/maintenance",
        &json!({
            "matchers": "alertname=\"Muted\"",
            "ends_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            "created_by": "test",
            "comment": "planned work",
        }),
    );
    assert_eq!(window.status, 201, "{:?}", window.body);
    salve.wait_settled(3);
    assert_eq!(marks(&salve), ["cooling", "limited"]);
    assert_eq!(salve.lines("tries.txt"), ["fix"]);

    // Every storm alert is acknowledged (so recorded) and matches no rule: nothing of
    // it is left to decide. The trail cannot show all of it: retention trims it.
    storm(&salve, 3000);
    // Retention removes what the checkpoints hold: the decisions before the storm are
    // no longer in the trail at all.
    wait_until("the trail before the storm to be removed", || {
        (!trail_holds_a_decision(&salve)).then_some(())
    });
    salve.kill9();
    salve.start();
    let rotated = std::fs::read_dir(salve.data_dir())
        .expect("data dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl."))
        .count();
    assert!(
        rotated <= 2,
        "{rotated} rotated files kept with keep_files = 1"
    );

    salve.post_event(&[("alertname", "Flapping"), ("n", "2")]);
    salve.post_event(&[("alertname", "Cooling"), ("n", "2")]);
    salve.post_event(&[("alertname", "Broken"), ("n", "2")]);
    salve.post_event(&[("alertname", "Muted"), ("n", "2")]);
    let records = wait_until("the four new alerts to be decided", || {
        let records = salve.audit_json();
        (decided_for(&records, "2").len() == 4).then_some(records)
    });
    assert_eq!(
        decided_for(&records, "2"),
        [
            "limited: exec exec:mark -> suppress (rate_limit)",
            "cooling: exec exec:cool -> suppress (cooldown)",
            "fixer: exec exec:broken -> suppress (circuit_open)",
            "muted: exec exec:mute -> suppress (maintenance)",
        ]
    );
    assert_eq!(marks(&salve), ["cooling", "limited"]);
    assert_eq!(salve.lines("tries.txt"), ["fix"]);
}

#[test]
fn a_damaged_checkpoint_is_warned_about_and_the_limit_still_holds() {
    let mut salve = start();
    salve.post_event(&[("alertname", "Flapping"), ("n", "1")]);
    salve.wait_settled(1);
    salve.stop();
    let checkpoint = salve.data_dir().join("state.checkpoint");
    let mut bytes = std::fs::read(&checkpoint).expect("a stop writes a checkpoint");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&checkpoint, bytes).expect("damage the checkpoint");

    salve.start();
    assert!(
        salve.logs().contains("checkpoint is damaged"),
        "no warning:\n{}",
        salve.logs()
    );
    salve.post_event(&[("alertname", "Flapping"), ("n", "2")]);
    let records = salve.wait_settled(2);
    assert_eq!(
        decided_for(&records, "2"),
        ["limited: exec exec:mark -> suppress (rate_limit)"]
    );
    assert_eq!(marks(&salve), ["limited"]);
}
