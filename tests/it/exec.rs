//! `exec` runs real commands from the config: argv, no shell unless asked, a timeout.

use crate::support::{decisions, native, of_kind, Salve};
use serde_json::{json, Value};

#[test]
fn exec_reports_success_failure_with_stderr_and_timeout() {
    let salve = Salve::builder()
        .config(
            r#"
[exec.works]
argv = ["/bin/sh", "-c", "echo restarted \"$1\"", "sh"]

[exec.breaks]
argv = ["/bin/sh", "-c", "echo starting; echo 'disk is on fire' >&2; exit 3"]

[exec.hangs]
argv = ["/bin/sleep", "5"]
timeout = "200ms"
"#,
        )
        .rule(
            "commands",
            r#"
const MATCH = `alertname="ExecProbe"`;

fn plan(event) {
    [exec("works", [event.labels.host]), exec("breaks"), exec("hangs")]
}
"#,
        )
        .start();

    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "ExecProbe"), ("host", "host-a")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    assert_eq!(
        decisions(&records),
        [
            "commands: exec exec:works -> execute",
            "commands: exec exec:breaks -> execute",
            "commands: exec exec:hangs -> execute",
        ]
    );

    // Whole outcomes, minus what changes from run to run.
    let decisions_of = of_kind(&records, "decision");
    let mut outcomes: Vec<Value> = of_kind(&records, "outcome")
        .into_iter()
        .map(|o| {
            let mut o = o.clone();
            let map = o.as_object_mut().expect("object");
            // One alert asked for all three: each outcome names it.
            assert_eq!(
                map.remove("fingerprint"),
                decisions_of[0].get("fingerprint").cloned()
            );
            for volatile in ["at", "decision_id", "event_id", "duration_ms"] {
                map.remove(volatile);
            }
            o
        })
        .collect();
    // Outcomes are recorded as commands finish; order them by target.
    outcomes.sort_by_key(|o| o["target"].as_str().unwrap_or("").to_string());
    assert_eq!(
        outcomes,
        [
            json!({
                "kind": "outcome",
                "rule": "commands",
                "action": "exec",
                "target": "exec:breaks",
                "outcome": "failed",
                "error": "exited with status 3",
                "detail": {
                    "argv": ["/bin/sh", "-c", "echo starting; echo 'disk is on fire' >&2; exit 3"],
                    "exit_code": 3,
                    "stdout_tail": "starting",
                    "stderr_tail": "disk is on fire",
                },
            }),
            json!({
                "kind": "outcome",
                "rule": "commands",
                "action": "exec",
                "target": "exec:hangs",
                "outcome": "failed",
                "error": "timed out after 200ms",
                "detail": { "argv": ["/bin/sleep", "5"] },
            }),
            json!({
                "kind": "outcome",
                "rule": "commands",
                "action": "exec",
                "target": "exec:works",
                "outcome": "ok",
                "detail": {
                    "argv": ["/bin/sh", "-c", "echo restarted \"$1\"", "sh", "host-a"],
                    "exit_code": 0,
                    "stdout_tail": "restarted host-a",
                    "stderr_tail": "",
                },
            }),
        ]
    );
    let acted = |outcome: &str| {
        salve.metric(&format!(
            "salve_actions_total{{action=\"exec\",outcome=\"{outcome}\"}}"
        ))
    };
    assert_eq!((acted("ok"), acted("failed")), (Some(1.0), Some(2.0)));
}
