//! `salve replay`: a trail recorded by the real server, decided again with other rules.

use crate::support::{native, s, Salve};
use serde_json::Value;

const RESTART_V1: &str = r#"
const MATCH = `alertname="Down", svc=~".+"`;
const LIMIT = "2 per 1h";
fn plan(event) {
    if event.status != "firing" { return []; }
    [exec("fix", [event.labels.svc])]
}
"#;

const PAGE_V1: &str = r#"
const MATCH = `alertname="Down", severity="critical"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [notify("ops", "down")]
}
"#;

const CLEANUP: &str = r#"
const MATCH = `alertname="Disk"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [exec("clean")]
}
"#;

#[test]
fn replay_with_the_recorded_rules_changes_nothing_and_with_new_ones_lists_exactly_what_they_change()
{
    let mut salve = Salve::builder()
        .config("[exec.fix]\nargv = [\"true\"]\n\n[exec.clean]\nargv = [\"true\"]\n\n[exec.ticket]\nargv = [\"true\"]\n\n[notify.ops]\ntype = \"log\"\n")
        .rule("restart-web", RESTART_V1)
        .rule("page", PAGE_V1)
        .rule("cleanup", CLEANUP)
        .start();
    let events = [
        native(&[
            ("alertname", "Down"),
            ("svc", "a"),
            ("severity", "critical"),
        ]),
        native(&[("alertname", "Down"), ("svc", "b"), ("severity", "warning")]),
        native(&[
            ("alertname", "Down"),
            ("svc", "c"),
            ("severity", "critical"),
        ]),
        native(&[
            ("alertname", "Down"),
            ("svc", "a"),
            ("severity", "critical"),
        ]),
        native(&[("alertname", "Disk"), ("host", "x")]),
    ];
    for (n, event) in events.iter().enumerate() {
        let reply = salve.post_json("/api/v1/events", event);
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        salve.wait_settled(n + 1);
    }
    salve.stop();

    let replay = |rules: &str| -> (Option<i32>, Value) {
        let out = salve.cli(&[
            "replay",
            "--config",
            "salve.toml",
            "--rules",
            rules,
            "--data-dir",
            "data",
            "--json",
        ]);
        let body = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), body)
    };
    let (code, same) = replay("rules");
    assert_eq!(same["differences"], serde_json::json!([]), "{same:#}");
    assert_eq!(code, Some(0));
    assert_eq!(same["window"]["events"], 5);
    assert_eq!(
        same["summary"]["assumed_outcomes"], 0,
        "every outcome came from the recording"
    );

    // v2: a lower limit, a new action, a removed rule.
    let v2 = salve.dir().join("rules-v2");
    std::fs::create_dir_all(&v2).expect("create rules-v2");
    std::fs::write(
        v2.join("restart-web.rhai"),
        RESTART_V1.replace("2 per 1h", "1 per 1h"),
    )
    .expect("write");
    std::fs::write(
        v2.join("page.rhai"),
        PAGE_V1.replace(
            "[notify(\"ops\", \"down\")]",
            "[notify(\"ops\", \"down\"), exec(\"ticket\")]",
        ),
    )
    .expect("write");
    let (code, changed) = replay("rules-v2");
    assert_eq!(code, Some(3), "{changed:#}");
    let svc_of = |event_id: &Value| -> String {
        let ids = salve.audit_json();
        let received = ids
            .iter()
            .find(|r| r["kind"] == "received" && r["event"]["id"] == *event_id)
            .unwrap_or_else(|| panic!("no event {event_id}"));
        let labels = &received["event"]["labels"];
        s(if labels["svc"].is_null() {
            &labels["host"]
        } else {
            &labels["svc"]
        })
    };
    let mut found: Vec<String> = changed["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let verdict = |v: &Value| match (&v["decision"], &v["reason"]) {
                (Value::Null, _) => "-".to_string(),
                (d, Value::Null) => s(d),
                (d, r) => format!("{} {}", s(d), s(r)),
            };
            format!(
                "{} {} {} {}: {} -> {}",
                s(&d["kind"]),
                s(&d["rule"]),
                s(&d["target"]),
                svc_of(&d["event_id"]),
                verdict(&d["recorded"]),
                verdict(&d["replayed"])
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            // A native event without starts_at is an episode of its own: the resend too.
            "added page exec:ticket a: - -> execute",
            "added page exec:ticket a: - -> execute",
            "added page exec:ticket c: - -> execute",
            "removed cleanup exec:clean x: execute -> -",
            "removed restart-web exec:fix b: execute -> suppress rate_limit",
        ],
        "{changed:#}"
    );
    assert_eq!(changed["summary"]["added"], 3);
    assert_eq!(changed["summary"]["removed"], 2);
    assert_eq!(
        changed["summary"]["assumed_outcomes"], 3,
        "the tickets were never run"
    );
}
