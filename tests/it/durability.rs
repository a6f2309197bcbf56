//! The audit trail is the engine's memory: stops, restarts and crashes must neither
//! lose an acknowledged event nor repeat an action.

use crate::support::{decisions, marker, native, of_kind, s, wait_until, Salve, MARK_CONTAINER};
use serde_json::Value;
use std::collections::BTreeMap;

#[test]
fn a_restart_neither_loses_an_acknowledged_event_nor_repeats_its_action() {
    let mut salve = Salve::builder()
        .config(&marker("mark", "marks.txt"))
        .rule("container-down", MARK_CONTAINER)
        .start();

    // Stop right after the acknowledgement: a graceful stop still decides and acts.
    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    salve.stop();
    let records = salve.audit_json();
    assert!(
        crate::support::settled(&records, 1),
        "SIGTERM right after the 200 left work undone:\n{records:#?}\n{}",
        salve.logs()
    );
    assert_eq!(salve.lines("marks.txt"), ["web-1"]);

    // The same notification again, to the new process: remembered, not repeated.
    salve.start();
    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_settled(2);
    assert_eq!(
        decisions(&records),
        [
            "container-down: exec exec:mark -> execute",
            "container-down: exec exec:mark -> suppress (dedup)",
        ]
    );
    assert_eq!(of_kind(&records, "outcome").len(), 1);
    assert_eq!(salve.lines("marks.txt"), ["web-1"]);
}

/// Posts one native event per fingerprint, waiting for each to be settled.
fn post_settled(salve: &Salve, labels: &[(&str, &str)], total: usize) -> Vec<Value> {
    salve.post_event(labels);
    salve.wait_settled(total)
}

#[test]
fn a_rule_limit_still_holds_after_a_restart() {
    let mut salve = Salve::builder()
        .config(&marker("mark", "marks.txt"))
        .rule(
            "limited",
            r#"
const MATCH = `alertname="Flapping"`;
const LIMIT = "1 per 1h";

fn plan(event) {
    [exec("mark", [event.labels.n])]
}
"#,
        )
        .start();

    post_settled(&salve, &[("alertname", "Flapping"), ("n", "1")], 1);
    salve.stop();
    salve.start();
    let records = post_settled(&salve, &[("alertname", "Flapping"), ("n", "2")], 2);

    assert_eq!(
        decisions(&records),
        [
            "limited: exec exec:mark -> execute",
            "limited: exec exec:mark -> suppress (rate_limit)",
        ]
    );
    let limited = of_kind(&records, "decision")[1];
    assert_eq!(
        limited["detail"],
        "rule limit 1 per 1h reached (1 in window)"
    );
    assert_eq!(salve.lines("marks.txt"), ["1"]);
}

#[test]
fn a_cooldown_still_holds_after_a_restart() {
    let mut salve = Salve::builder()
        .config(&marker("mark", "marks.txt"))
        .rule(
            "cooling",
            r#"
const MATCH = `alertname="Flapping"`;
const COOLDOWN = "1h";

fn plan(event) {
    [exec("mark")]
}
"#,
        )
        .start();

    post_settled(&salve, &[("alertname", "Flapping"), ("n", "1")], 1);
    salve.stop();
    salve.start();
    let records = post_settled(&salve, &[("alertname", "Flapping"), ("n", "2")], 2);

    assert_eq!(
        decisions(&records),
        [
            "cooling: exec exec:mark -> execute",
            "cooling: exec exec:mark -> suppress (cooldown)",
        ]
    );
    let cooled = s(&of_kind(&records, "decision")[1]["detail"]);
    assert!(
        cooled.starts_with("exec:mark was acted on (exec by rule cooling) at ")
            && cooled.ends_with("; cooldown 1h"),
        "{cooled}"
    );
    assert_eq!(salve.lines("marks.txt"), [""]);
}

#[test]
fn an_open_circuit_breaker_stays_open_after_a_restart() {
    let mut salve = Salve::builder()
        .config(
            r#"
[policy]
breaker_failures = 2
breaker_open_for = "1h"

[exec.broken]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/tries.txt"; exit 1', "sh"]
"#,
        )
        .rule(
            "fixer",
            r#"
const MATCH = `alertname="Broken"`;

fn plan(event) {
    [exec("broken", ["fix"])]
}
"#,
        )
        .start();

    post_settled(&salve, &[("alertname", "Broken"), ("n", "1")], 1);
    post_settled(&salve, &[("alertname", "Broken"), ("n", "2")], 2);
    salve.stop();
    salve.start();
    let records = post_settled(&salve, &[("alertname", "Broken"), ("n", "3")], 3);

    assert_eq!(
        decisions(&records),
        [
            "fixer: exec exec:broken -> execute",
            "fixer: exec exec:broken -> execute",
            "fixer: exec exec:broken -> suppress (circuit_open)",
        ]
    );
    let outcomes: Vec<String> = of_kind(&records, "outcome")
        .into_iter()
        .map(|o| format!("{} {}", s(&o["outcome"]), s(&o["error"])))
        .collect();
    assert_eq!(
        outcomes,
        ["failed exited with status 1", "failed exited with status 1"]
    );
    assert_eq!(salve.lines("tries.txt"), ["fix", "fix"]);
}

/// Counts of each value.
fn tally<'a>(values: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for v in values {
        *counts.entry(s(v)).or_insert(0) += 1;
    }
    counts
}

#[test]
fn kill_9_after_the_acknowledgement_loses_no_event_and_repeats_no_action() {
    const EVENTS: usize = 8;
    let mut salve = Salve::builder()
        .config(
            r#"
[limits]
exec = "1000 per 1m"

[exec.slow]
argv = ["/bin/sh", "-c", 'sleep 0.3; echo "$1" >> "{dir}/done.txt"', "sh"]
"#,
        )
        .rule(
            "crash",
            r#"
const MATCH = `alertname="Crash"`;

fn plan(event) {
    [exec("slow", [event.labels.n])]
}
"#,
        )
        .start();

    let mut acked: Vec<Value> = Vec::new();
    for n in 1..=EVENTS {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Crash"), ("n", &n.to_string())]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        acked.extend(reply.body["ids"].as_array().expect("ids").iter().cloned());
    }
    salve.kill9();
    salve.start();
    let records = salve.wait_settled(EVENTS);

    // Every acknowledged event was recorded and evaluated exactly once.
    let received = tally(
        of_kind(&records, "received")
            .iter()
            .map(|r| &r["event"]["id"]),
    );
    let evaluated = tally(
        of_kind(&records, "evaluated")
            .iter()
            .map(|r| &r["event_id"]),
    );
    let once: BTreeMap<String, usize> = acked.iter().map(|id| (s(id), 1)).collect();
    assert_eq!(received, once, "received records");
    assert_eq!(evaluated, once, "evaluated records");

    // One decision per event (none decided again after the restart), each executed,
    // and each execution has exactly one outcome: done, or abandoned by the crash.
    let decided = of_kind(&records, "decision");
    assert_eq!(tally(decided.iter().map(|d| &d["event_id"])), once);
    assert!(
        decided.iter().all(|d| d["decision"] == "execute"),
        "{decided:#?}"
    );
    let outcomes = of_kind(&records, "outcome");
    let decision_ids: BTreeMap<String, usize> = decided.iter().map(|d| (s(&d["id"]), 1)).collect();
    assert_eq!(
        tally(outcomes.iter().map(|o| &o["decision_id"])),
        decision_ids
    );
    for o in &outcomes {
        assert!(
            o["outcome"] == "ok" || o["outcome"] == "abandoned",
            "unexpected outcome {o}"
        );
    }

    // No command ran twice; every one reported done did run.
    let done = salve.lines("done.txt");
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for line in &done {
        *runs.entry(line.clone()).or_insert(0) += 1;
    }
    assert!(
        runs.values().all(|&n| n == 1),
        "a command ran twice: {done:?}"
    );
    let n_of = |decision_id: &Value| -> String {
        let d = decided
            .iter()
            .find(|d| &d["id"] == decision_id)
            .expect("decision of outcome");
        s(&d["params"]["args"][0])
    };
    for o in outcomes.iter().filter(|o| o["outcome"] == "ok") {
        let n = n_of(&o["decision_id"]);
        assert_eq!(
            runs.get(&n),
            Some(&1),
            "event {n} reported ok but did not run"
        );
    }
}

#[test]
fn an_action_cut_short_by_kill_9_is_recorded_as_abandoned_and_not_run_again() {
    let mut salve = Salve::builder()
        .config(
            r#"
[exec.long]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/started.txt"; sleep 5', "sh"]

[exec.quick]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/started.txt"', "sh"]
"#,
        )
        .rule(
            "long",
            r#"
const MATCH = `alertname="Slow"`;

fn plan(event) {
    let n = event.labels.n;
    if n == "1" { [exec("long", [n])] } else { [exec("quick", [n])] }
}
"#,
        )
        .start();

    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Slow"), ("n", "1")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    wait_until("the command to start", || {
        (salve.lines("started.txt") == ["1"]).then_some(())
    });
    salve.kill9();

    salve.start();
    let records = salve.wait_settled(1);
    assert_eq!(decisions(&records), ["long: exec exec:long -> execute"]);
    let outcomes = of_kind(&records, "outcome");
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    let decision = of_kind(&records, "decision")[0];
    assert_eq!(outcomes[0]["decision_id"], decision["id"]);
    assert_eq!(outcomes[0]["outcome"], "abandoned");
    assert_eq!(
        outcomes[0]["error"],
        "salve stopped before the outcome was recorded; the action may or may not have run"
    );

    // Another event after the restart acts and finishes: by then a re-run of the
    // abandoned command (which would happen at start, before ready) would show.
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Slow"), ("n", "2")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(2);
    assert_eq!(
        decisions(&records),
        [
            "long: exec exec:long -> execute",
            "long: exec exec:quick -> execute",
        ]
    );
    assert_eq!(of_kind(&records, "outcome")[1]["outcome"], "ok");
    assert_eq!(salve.lines("started.txt"), ["1", "2"]);
}
