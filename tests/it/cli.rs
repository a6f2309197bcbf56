//! The offline commands but `check`: `salve plan` agrees with what `serve` does, `salve
//! audit` reads the trail safely and filters it, every subcommand explains itself, and
//! the log keeps one line an event whatever an alert holds.

use crate::support::{fixture_path, of_kind, s, Builder, Salve, FIXTURES};
use serde_json::Value;

fn plan_rules(builder: Builder) -> Builder {
    builder
        .config("[notify.oncall]\ntype = \"log\"\n")
        .rule(
            "crashloop",
            r#"
const MATCH = `alertname="PodCrashLooping"`;

fn plan(event) {
    if event.status == "firing" {
        [restart(k8s_deployment(event.labels.namespace, event.labels.deployment))]
    } else {
        [notify("oncall", `${event.labels.pod} recovered`)]
    }
}
"#,
        )
        .rule(
            "container-down",
            r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    if event.status == "firing" {
        [restart(docker_container(event.labels.container))]
    }
}
"#,
        )
        .rule(
            "page",
            r#"
const MATCH = `severity=~"critical|warning"`;

fn plan(event) {
    [notify("oncall")]
}
"#,
        )
}

/// What a decision says, without its ids: (fingerprint, rule, action, target, decision, reason).
fn gist(decision: &Value) -> [String; 6] {
    [
        s(&decision["fingerprint"]),
        s(&decision["rule"]),
        s(&decision["action"]),
        s(&decision["target"]),
        s(&decision["decision"]),
        s(&decision["reason"]),
    ]
}

fn plan_json(salve: &Salve, fixture: &str, extra: &[&str]) -> Vec<Value> {
    let config = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let payload = fixture_path(fixture).display().to_string();
    let mut args = vec!["plan", "--json", "--config", &config, "--rules", &rules];
    args.extend_from_slice(extra);
    args.push(&payload);
    let out = salve.cli(&args);
    assert!(
        out.status.success(),
        "salve plan {fixture}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("salve plan --json prints a JSON array")
}

#[test]
fn plan_shows_exactly_what_serve_dry_run_decides_for_each_fixture() {
    for fixture in FIXTURES {
        let salve = plan_rules(Salve::builder()).dry_run().start();
        let alerts = crate::support::fixture(fixture)["alerts"]
            .as_array()
            .expect("alerts")
            .len();
        assert_eq!(salve.post_fixture(fixture).status, 200);
        let records = salve.wait_settled(alerts);
        let served: Vec<[String; 6]> = of_kind(&records, "decision")
            .into_iter()
            .map(gist)
            .collect();
        let planned: Vec<[String; 6]> = plan_json(&salve, fixture, &["--dry-run"])
            .iter()
            .map(gist)
            .collect();
        assert_eq!(planned, served, "{fixture}");
        assert!(!served.is_empty(), "{fixture}: the rules should match it");
        assert!(
            of_kind(&records, "outcome").is_empty(),
            "{fixture}: dry-run executed something"
        );
    }
}

#[test]
fn plan_without_dry_run_shows_what_would_execute() {
    let salve = plan_rules(Salve::builder()).write();
    let gists = |fixture: &str, extra: &[&str]| -> Vec<String> {
        plan_json(&salve, fixture, extra)
            .iter()
            .map(|d| gist(d).join(" "))
            .collect()
    };
    assert_eq!(
        gists("firing-group.json", &[]),
        [
            "f25e01c4264703e0 crashloop restart k8s:prod/deployment/checkout execute null",
            "f25e01c4264703e0 page notify notify:oncall execute null",
            "7d7aea9efceb69d1 crashloop restart k8s:prod/deployment/checkout suppress duplicate",
            "7d7aea9efceb69d1 page notify notify:oncall suppress duplicate",
            "5e8f8988de13e677 crashloop restart k8s:prod/deployment/checkout suppress duplicate",
            "5e8f8988de13e677 page notify notify:oncall suppress duplicate",
        ]
    );
    assert_eq!(
        gists("firing-group.json", &["--dry-run"]),
        [
            "f25e01c4264703e0 crashloop restart k8s:prod/deployment/checkout suppress dry_run",
            "f25e01c4264703e0 page notify notify:oncall suppress dry_run",
            "7d7aea9efceb69d1 crashloop restart k8s:prod/deployment/checkout suppress duplicate",
            "7d7aea9efceb69d1 page notify notify:oncall suppress duplicate",
            "5e8f8988de13e677 crashloop restart k8s:prod/deployment/checkout suppress duplicate",
            "5e8f8988de13e677 page notify notify:oncall suppress duplicate",
        ]
    );
    assert_eq!(
        gists("firing-single.json", &[]),
        [
            "75359c27e5221bdd container-down restart docker:container/web-1 execute null",
            "75359c27e5221bdd page notify notify:oncall execute null",
        ]
    );
}

#[test]
fn audit_text_escapes_line_breaks_and_terminal_codes_from_alert_values() {
    let salve = Salve::builder()
        .rule(
            "note",
            "const MATCH = `alertname=~\"Forged.*\"`;\nfn plan(event) { [] }\n",
        )
        .start();
    let forged = "Forged\u{1b}[31m\n2026-01-01T00:00:00.000Z decision    x rule=fix restart docker:container/db -> execute";
    let reply = salve.post_json(
        "/api/v1/events",
        &crate::support::native(&[("alertname", forged)]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let data_dir = salve.data_dir().display().to_string();
    let out = salve.cli(&["audit", "--data-dir", &data_dir]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().count(),
        records.len(),
        "one line a record:\n{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("Forged\\u{1b}[31m\\n2026-01-01"), "{text}");
}

#[test]
fn audit_filters_by_fingerprint_and_time_and_refuses_what_it_cannot_read() {
    let salve = Salve::builder().start();
    for host in ["a", "b"] {
        let reply = salve.post_json(
            "/api/v1/events",
            &crate::support::native(&[("alertname", "Filtered"), ("host", host)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let records = salve.wait_settled(2);
    let fingerprint = s(&of_kind(&records, "received")[1]["event"]["fingerprint"]);
    let data_dir = salve.data_dir().display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["audit", "--data-dir", data_dir.as_str(), "--json"];
        all.extend_from_slice(args);
        salve.cli(&all)
    };
    let out = run(&["--fingerprint", &fingerprint]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let only: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["event"]["labels"]["host"], "b");

    let out = run(&["--since", "2000-01-01T00:00:00Z"]);
    assert!(out.status.success());
    let everything: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(everything.len(), records.len());
    let out = run(&["--since", "2999-01-01T00:00:00Z"]);
    let nothing: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(nothing.is_empty());

    let out = run(&["--kind", "decisions"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--kind: \"decisions\" is not a record kind"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = salve.cli(&["audit", "--data-dir", "/nonexistent/salve-data"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no audit trail here"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = salve.cli(&["check", "--rules", "/nonexistent/salve-rules"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--rules names no folder of rules"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_subcommand_explains_config_and_rules_in_its_help() {
    for (command, flags) in [
        ("serve", &["--config", "--rules"][..]),
        ("check", &["--config", "--rules"][..]),
        ("test", &["--config", "--rules"][..]),
        ("plan", &["--config", "--rules"][..]),
        ("audit", &["--config", "--data-dir"][..]),
    ] {
        let out = std::process::Command::new(crate::support::bin())
            .args([command, "--help"])
            .output()
            .expect("run salve --help");
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in flags {
            let line = help
                .lines()
                .find(|l| l.trim_start().starts_with(flag))
                .unwrap_or_else(|| panic!("{command} --help has no {flag}:\n{help}"));
            let explained = line.trim_start().trim_start_matches(flag).trim_start();
            assert!(
                explained.split_whitespace().count() > 2,
                "{command} {flag} has no help text: {line:?}"
            );
        }
    }
}

/// A rule that tells the log channel what the alert says.
const ECHO: &str = r#"
const MATCH = `alertname=~"Forged.*"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [notify("ops", event.labels.note)]
}
"#;

const FORGED: &str =
    "disk ok\n2026-12-01T03:00:00Z  INFO salve::engine: decision rule=x -> execute \u{1b}[31mred";

/// What salve (started with `args`) logs while it tells the log channel about an alert
/// whose label holds [`FORGED`].
fn log_of_a_forged_alert(args: &[&str]) -> String {
    let mut builder = Salve::builder()
        .config("[notify.ops]\ntype = \"log\"\n")
        .rule("echo", ECHO);
    for arg in args {
        builder = builder.arg(arg);
    }
    let salve = builder.start();
    let reply = salve.post_json(
        "/api/v1/events",
        &crate::support::native(&[("alertname", "ForgedLog"), ("note", FORGED)]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    salve.wait_settled(1);
    salve.logs()
}

#[test]
fn the_log_keeps_one_line_an_event_and_no_terminal_codes_whatever_an_alert_holds() {
    let logs = log_of_a_forged_alert(&[]);
    assert!(
        !logs.contains('\u{1b}'),
        "no raw escape (and no colours off a terminal):\n{logs}"
    );
    let told: Vec<&str> = logs.lines().filter(|l| l.contains("disk ok")).collect();
    assert_eq!(told.len(), 1, "{logs}");
    assert!(
        told[0].contains("disk ok\\n2026-12-01T03:00:00Z"),
        "{}",
        told[0]
    );
    assert!(
        !logs.lines().any(|l| l.starts_with("2026-12-01T03:00:00Z")),
        "a forged line:\n{logs}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_a_line() {
    let logs = log_of_a_forged_alert(&["--log-format", "json"]);
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| !l.starts_with("--- salve serve"))
        .collect();
    assert!(lines.len() >= 2, "{logs}");
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let told = objects
        .iter()
        .find(|o| o["target"] == "salve::notify")
        .unwrap_or_else(|| panic!("no notification in the log:\n{logs}"));
    assert_eq!(told["level"], "WARN");
    assert_eq!(
        told["fields"]["message"], FORGED,
        "the JSON string holds the text exactly"
    );
    assert_eq!(told["fields"]["channel"], "ops");
    assert!(objects
        .iter()
        .any(|o| o["fields"]["message"] == "salve is serving"));
}

#[test]
fn plan_prints_each_rule_error_once_however_many_events_ran_into_it() {
    let salve = Salve::builder()
        .rule(
            "bad",
            "const MATCH = `alertname=~\".+\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    let n = parse_int(\"zz\");\n    []\n}\n",
        )
        .write();
    let payload = fixture_path("firing-group.json").display().to_string();
    let out = salve.cli(&[
        "plan",
        "--config",
        "salve.toml",
        "--rules",
        "rules",
        &payload,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("rules/bad.rhai:4:13:").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("(in 3 events)"), "{stderr}");
}

#[test]
fn the_docs_run_salve_with_one_build_profile() {
    let pages = crate::docs::pages();
    let runs: Vec<&str> = pages
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter(|l| l.contains("cargo run"))
        .collect();
    assert!(runs.len() >= 3, "{runs:?}");
    for line in runs {
        assert!(line.contains("cargo run --release --"), "{line}");
    }
}

#[test]
fn audit_outcome_lines_show_the_alert_and_the_target_and_follow_the_fingerprint_filter() {
    let salve = Salve::builder()
        .config("[exec.mark]\nargv = [\"true\"]\n")
        .rule(
            "mark",
            "const MATCH = `alertname=\"Marked\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [exec(\"mark\")]\n}\n",
        )
        .start();
    let reply = salve.post_json(
        "/api/v1/events",
        &crate::support::native(&[("alertname", "Marked")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let fingerprint = s(&of_kind(&records, "received")[0]["event"]["fingerprint"]);
    let data_dir = salve.data_dir().display().to_string();
    let out = salve.cli(&[
        "audit",
        "--data-dir",
        &data_dir,
        "--fingerprint",
        &fingerprint,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let outcome = text
        .lines()
        .find(|l| l.contains(" outcome "))
        .unwrap_or_else(|| panic!("no outcome line:\n{text}"));
    assert!(
        outcome.contains(&format!(
            "outcome     {fingerprint} rule=mark exec exec:mark -> Ok"
        )),
        "{outcome}"
    );
}
