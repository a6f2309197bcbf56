//! `salve replay`: a trail recorded by the real server, decided again with other rules.

use crate::support::{native, of_kind, s, Salve};
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
    let found = differences(&salve, &changed);
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
    // A window from before the oldest record: said so, and replayed from there.
    let out = salve.cli(&[
        "replay",
        "--config",
        "salve.toml",
        "--rules",
        "rules-v2",
        "--data-dir",
        "data",
        "--since",
        "2000-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("note: the trail begins at "), "{text}");
    assert!(
        text.contains("removed  ")
            && text.contains("rule=cleanup exec exec:clean: recorded execute, replayed -"),
        "{text}"
    );
    assert!(
        text.contains("5 events replayed: 3 added, 2 removed, 0 changed"),
        "{text}"
    );
    assert_eq!(changed["summary"]["added"], 3);
    assert_eq!(changed["summary"]["removed"], 2);
    assert_eq!(
        changed["summary"]["assumed_outcomes"], 3,
        "the tickets were never run"
    );
}

#[test]
fn replaying_a_trail_with_its_own_rules_reproduces_every_decision_and_reason() {
    let rule = |alertname: &str, extra: &str, command: &str| {
        format!(
            "const MATCH = `alertname=\"{alertname}\"`;\n{extra}\nfn plan(event) {{\n    if event.status != \"firing\" {{ return []; }}\n    [exec(\"{command}\")]\n}}\n"
        )
    };
    let mut salve = Salve::builder()
        .config(
            "[exec.ok]\nargv = [\"true\"]\n\n[exec.bad]\nargv = [\"false\"]\n\n[policy]\nbreaker_failures = 2\nbreaker_open_for = \"1h\"\n",
        )
        .rule("limited", &rule("L", "const LIMIT = \"2 per 1h\";", "ok"))
        .rule("cooled", &rule("C", "const COOLDOWN = \"1h\";", "ok"))
        .rule("breaking", &rule("B", "", "bad"))
        .rule("resent", &rule("ContainerDown", "", "ok"))
        .rule("windowed", &rule("W", "", "ok"))
        .start();
    let received = std::cell::Cell::new(0);
    let post = |salve: &Salve, labels: &[(&str, &str)]| {
        salve.post_event(labels);
        received.set(received.get() + 1);
        salve.wait_settled(received.get());
    };
    for n in ["1", "2", "3"] {
        post(&salve, &[("alertname", "L"), ("n", n)]);
        post(&salve, &[("alertname", "C"), ("n", n)]);
        post(&salve, &[("alertname", "B"), ("n", n)]);
    }
    // Alertmanager sending one group again: a dedup.
    for _ in 0..2 {
        assert_eq!(salve.post_fixture("firing-single.json").status, 200);
        received.set(received.get() + 1);
        salve.wait_settled(received.get());
    }
    let ends_at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let window = salve.post_json(
        "/api/v1/maintenance",
        &serde_json::json!({ "matchers": "alertname=\"W\"", "ends_at": ends_at, "created_by": "test" }),
    );
    assert_eq!(window.status, 201, "{:?}", window.body);
    post(&salve, &[("alertname", "W"), ("n", "1")]);
    let id = s(&window.body["id"]);
    assert_eq!(
        salve
            .delete(&format!("/api/v1/maintenance/{id}?deleted_by=test"))
            .status,
        204
    );
    let reload = salve
        .client()
        .post(salve.url("/-/reload"))
        .send()
        .expect("reload");
    assert_eq!(reload.status().as_u16(), 200);
    post(&salve, &[("alertname", "W"), ("n", "2")]);

    let records = salve.audit_json();
    let reasons: std::collections::BTreeSet<String> = crate::support::of_kind(&records, "decision")
        .iter()
        .map(|d| s(&d["reason"]))
        .collect();
    for reason in [
        "rate_limit",
        "cooldown",
        "circuit_open",
        "dedup",
        "maintenance",
    ] {
        assert!(
            reasons.contains(reason),
            "the trail has no {reason}: {reasons:?}"
        );
    }

    let over_http = salve.post_json("/api/v1/replay", &serde_json::json!({ "since": "1h" }));
    assert_eq!(over_http.status, 200, "{:?}", over_http.body);
    assert_eq!(
        over_http.body["differences"],
        serde_json::json!([]),
        "{:#}",
        over_http.body
    );
    // The state before the window is what the trail held before it, wherever the window
    // begins: between an event and what was decided about it, or before its outcome.
    let starts: std::collections::BTreeSet<String> = records.iter().map(|r| s(&r["at"])).collect();
    assert!(starts.len() > 30, "{} records", starts.len());
    for since in &starts {
        let cut = salve.post_json("/api/v1/replay", &serde_json::json!({ "since": since }));
        assert_eq!(cut.status, 200, "{:?}", cut.body);
        assert_eq!(
            cut.body["differences"],
            serde_json::json!([]),
            "the window from {since}: {:#}",
            cut.body
        );
    }
    salve.stop();
    let out = salve.cli(&[
        "replay",
        "--config",
        "salve.toml",
        "--rules",
        "rules",
        "--data-dir",
        "data",
        "--since",
        "1h",
        "--json",
    ]);
    let replay: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(replay["differences"], serde_json::json!([]), "{replay:#}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(replay["window"]["events"], received.get() as u64);
    assert_eq!(replay["summary"]["assumed_outcomes"], 0);
}

/// Each difference as `kind rule target svc: recorded -> replayed`, a verdict marked
/// `(dry-run)` when it was made in dry-run, sorted.
fn differences(salve: &Salve, replay: &Value) -> Vec<String> {
    let records = salve.audit_json();
    let svc_of = |event_id: &Value| -> String {
        let received = records
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
    let verdict = |v: &Value| {
        let mut text = match (&v["decision"], &v["reason"]) {
            (Value::Null, _) => "-".to_string(),
            (d, Value::Null) => s(d),
            (d, r) => format!("{} {}", s(d), s(r)),
        };
        if v["dry_run"] == true {
            text.push_str(" (dry-run)");
        }
        text
    };
    let mut found: Vec<String> = replay["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
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
    found
}

#[test]
fn a_window_recorded_partly_in_dry_run_replays_like_with_like_and_dry_run_asks_what_live_would_have_done(
) {
    let shadow = "const MATCH = `alertname=\"Down\", svc=~\".+\"`;\nconst DRY_RUN = true;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [notify(\"ops\", \"would page\")]\n}\n";
    let mut salve = Salve::builder()
        .config("[exec.fix]\nargv = [\"true\"]\n\n[notify.ops]\ntype = \"log\"\n")
        .rule("restart-web", RESTART_V1)
        .rule("shadow", shadow)
        .start();
    let mut received = 0;
    let mut post = |salve: &Salve, svc: &str| {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Down"), ("svc", svc)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        received += 1;
        salve.wait_settled(received);
    };
    // Live, then under --dry-run (spending nothing of the limit of 2 an hour), then
    // live again: a fix for a, none for b and c, a fix for d and the limit for e.
    post(&salve, "a");
    salve.stop();
    salve.set_dry_run(true);
    salve.start();
    post(&salve, "b");
    post(&salve, "c");
    salve.stop();
    salve.set_dry_run(false);
    salve.start();
    // Live again, what dry-run saw still firing is decided live: a fix for b (the
    // second of the hour), the limit for c; then the limit for d and e.
    salve.wait_for_audit("b and c decided live", |r| {
        of_kind(r, "reconsidered").len() == 2 && of_kind(r, "evaluated").len() == 5
    });
    post(&salve, "d");
    post(&salve, "e");
    let recorded: Vec<String> = crate::support::decisions(&salve.audit_json())
        .into_iter()
        .filter(|d| d.starts_with("restart-web"))
        .collect();
    assert_eq!(
        recorded,
        [
            "restart-web: exec exec:fix -> execute",
            "restart-web: exec exec:fix -> suppress (dry_run)",
            "restart-web: exec exec:fix -> suppress (dry_run)",
            "restart-web: exec exec:fix -> execute",
            "restart-web: exec exec:fix -> suppress (rate_limit)",
            "restart-web: exec exec:fix -> suppress (rate_limit)",
            "restart-web: exec exec:fix -> suppress (rate_limit)",
        ]
    );

    let over_http = |body: Value| {
        let reply = salve.post_json("/api/v1/replay", &body);
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body
    };
    let same = over_http(serde_json::json!({ "since": "1h" }));
    assert_eq!(same["differences"], serde_json::json!([]), "{same:#}");
    // Every shadow decision (five alerts, two of them decided again when salve went
    // live), and the two fixes recorded under --dry-run.
    assert_eq!(same["summary"]["decided_in_dry_run"], 9, "{same:#}");
    let live = over_http(serde_json::json!({ "since": "1h", "dry_run": true }));
    // Live from the start, b is the hour's second fix; c's, decided when salve went
    // live, is then over the limit, and b's reconsideration is a repeat.
    let what_live_would_have_done = [
        "added restart-web exec:fix b: suppress dry_run (dry-run) -> execute",
        "changed restart-web exec:fix b: suppress rate_limit -> suppress dedup",
        "changed restart-web exec:fix c: suppress dry_run (dry-run) -> suppress rate_limit",
        "removed restart-web exec:fix c: execute -> suppress rate_limit",
    ];
    assert_eq!(
        differences(&salve, &live),
        what_live_would_have_done,
        "{live:#}"
    );
    // The rule's own DRY_RUN still holds: five alerts, two of them decided again.
    assert_eq!(live["summary"]["decided_in_dry_run"], 7, "{live:#}");
    salve.stop();

    let cli = |extra: &[&str]| {
        let mut args = vec![
            "replay",
            "--config",
            "salve.toml",
            "--rules",
            "rules",
            "--data-dir",
            "data",
            "--since",
            "1h",
        ];
        args.extend_from_slice(extra);
        salve.cli(&args)
    };
    let out = cli(&["--json"]);
    let replay: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(replay["differences"], serde_json::json!([]), "{replay:#}");
    assert_eq!(out.status.code(), Some(0), "{replay:#}");
    assert_eq!(replay["summary"], same["summary"]);

    let out = cli(&["--dry-run", "--json"]);
    let replay: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(3), "{replay:#}");
    assert_eq!(differences(&salve, &replay), what_live_would_have_done);
    let out = cli(&["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "rule=restart-web exec exec:fix: recorded suppress (dry_run) in dry-run, replayed execute"
        ),
        "{text}"
    );
    assert!(
        text.contains("7 events replayed: 1 added, 1 removed, 2 changed; 0 rule errors; 1 outcomes assumed; 7 decided in dry-run"),
        "{text}"
    );
}
