//! Rules as their authors meet them: load errors, evaluation, isolation, matching.

use super::{EvalContext, RuleError, RuleSet};
use crate::event::{Event, Fingerprint, Labels, Status};
use crate::model::{Intent, NoHistory};
use chrono::Utc;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn load(files: &[(&str, &str)]) -> Result<RuleSet, Vec<RuleError>> {
    let intervals: HashSet<String> = ["weekly-maintenance".to_string()].into_iter().collect();
    let sources = files
        .iter()
        .map(|(name, text)| {
            (
                PathBuf::from(format!("rules/{name}.rhai")),
                text.to_string(),
            )
        })
        .collect();
    RuleSet::from_sources(sources, &intervals, Duration::from_millis(40))
}

pub(super) fn load_err(text: &str) -> String {
    match load(&[("bad", text)]) {
        Ok(_) => panic!("rule should not load"),
        Err(errors) => errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn event(labels: &[(&str, &str)]) -> Event {
    let labels: Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Event {
        id: "e1".into(),
        source: "test".into(),
        status: Status::Firing,
        fingerprint: Fingerprint::of_labels(&labels),
        labels,
        annotations: Labels::new(),
        starts_at: Utc::now(),
        ends_at: None,
        generator_url: String::new(),
        received_at: Utc::now(),
    }
}

fn ctx() -> EvalContext {
    EvalContext {
        now: Utc::now(),
        history: Arc::new(NoHistory),
    }
}

fn run(set: &RuleSet, name: &str, e: &Event) -> Result<Vec<Intent>, RuleError> {
    let rule = set.get(name).expect("rule loaded");
    set.evaluate(rule, e, &ctx())
}

#[test]
fn syntax_error_points_at_file_line_and_column_with_a_caret() {
    let text = "const MATCH = `alertname=\"X\"`;\nfn plan(event) {\n    let y = ;\n}\n";
    assert_eq!(
        load_err(text),
        "rules/bad.rhai:3:13: Unexpected ';'\n  |\n3 |     let y = ;\n  |             ^"
    );
}

#[test]
fn bad_matcher_points_into_the_match_string() {
    let text = "// restart things\nconst MATCH = `alertname=\"X\", severity=~\"crit(\"`;\nfn plan(event) { [] }\n";
    let err = load_err(text);
    assert!(err.starts_with("rules/bad.rhai:2:"), "{err}");
    assert!(err.contains("MATCH: invalid regex"), "{err}");
}

#[test]
fn missing_match_or_plan_and_unknown_mute_are_refused() {
    assert_eq!(
        load_err("fn plan(event) { [] }"),
        "rules/bad.rhai:1:1: a rule needs `const MATCH = \"...\";` (Alertmanager matchers)\n  |\n1 | fn plan(event) { [] }\n  | ^"
    );
    assert!(load_err("const MATCH = `a=\"b\"`;").contains("a rule needs `fn plan(event)"));
    let err =
        load_err("const MATCH = `a=\"b\"`;\nconst MUTE = [\"weekend\"];\nfn plan(event) { [] }");
    assert!(
        err.starts_with("rules/bad.rhai:2:1: MUTE names time interval \"weekend\""),
        "{err}"
    );
    assert!(
        load_err("const MATCH = `a=\"b\"`; const LIMIT = \"lots\"; fn plan(e) { [] }")
            .contains("LIMIT: invalid rate \"lots\"")
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let errors = load(&[
        ("one", "fn plan(e) { [] }"),
        ("two", "const MATCH = 1; fn plan(e) { [] }"),
    ])
    .expect_err("errors");
    let files: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, vec!["rules/one.rhai", "rules/two.rhai"]);
}

#[test]
fn plan_returns_intents_as_values() {
    let set = load(&[(
        "r",
        r#"const MATCH = `alertname="Down"`;
           fn plan(event) {
               let c = docker_container(event.labels.container);
               [restart(c), scale(k8s_deployment("prod", "api"), "+1"), exec("reload-nginx", ["--now", 3]), notify("ops", `down: ${event.labels.container}`)]
           }"#,
    )])
    .expect("loads");
    let intents = run(
        &set,
        "r",
        &event(&[("alertname", "Down"), ("container", "web-1")]),
    )
    .expect("plans");
    let json = serde_json::to_value(&intents).expect("json");
    assert_eq!(
        json,
        serde_json::json!([
            { "action": "restart", "target": "docker:container/web-1" },
            { "action": "scale", "target": "k8s:prod/deployment/api", "params": { "replicas": "+1" } },
            { "action": "exec", "target": "exec:reload-nginx", "params": { "args": ["--now", "3"] } },
            { "action": "notify", "target": "notify:ops", "params": { "text": "down: web-1" } },
        ])
    );
}

#[test]
fn a_missing_label_is_a_clear_rule_error() {
    let set = load(&[("r", "const MATCH = `alertname=\"Down\"`;\nfn plan(event) {\n  [restart(docker_container(event.labels.container))]\n}")]).expect("loads");
    let err = run(&set, "r", &event(&[("alertname", "Down")])).expect_err("fails");
    assert!(
        err.short().starts_with("rules/r.rhai:3:"),
        "{}",
        err.short()
    );
    assert!(
        err.message
            .contains("docker_container: name must be a string, got ()"),
        "{}",
        err.message
    );
}

#[test]
fn an_endless_loop_is_cut_off_and_says_so() {
    // A budget of operations a loop spends long before the backstop, however slow
    // the build or busy the machine.
    let set = RuleSet::from_sources(
        vec![(
            PathBuf::from("rules/spin.rhai"),
            "const MATCH = `alertname=\"Down\"`;\nfn plan(event) { loop { } }".to_string(),
        )],
        &HashSet::new(),
        super::RuleBudget {
            operations: 100_000,
            backstop: Duration::from_secs(30),
        },
    )
    .expect("loads");
    let err = run(&set, "spin", &event(&[("alertname", "Down")])).expect_err("cut off");
    // Cut off by the operations budget, which judges the rule alone (no longer by the
    // wall clock, which a busy machine reaches first).
    assert!(
        err.message
            .contains("plan() was cut off: too many operations"),
        "{}",
        err.message
    );
}

#[test]
fn rules_cannot_import_files_or_eval() {
    let err = load_err("import \"/etc/passwd\" as p;\nconst MATCH = `a=\"b\"`;\nfn plan(e) { [] }");
    assert!(!err.is_empty());
    let set = load(&[(
        "r",
        "const MATCH = `a=\"b\"`;\nfn plan(e) { import \"x\" as m; [] }",
    )]);
    if let Ok(set) = set {
        assert!(run(&set, "r", &event(&[("a", "b")])).is_err());
    }
    assert!(load(&[("r", "const MATCH = `a=\"b\"`;\nfn plan(e) { eval(\"1\") }")]).is_err());
}

#[test]
fn returning_something_other_than_intents_is_an_error() {
    let set = load(&[(
        "r",
        "const MATCH = `a=\"b\"`;\nfn plan(e) { [restart(docker_container(\"x\")), 42] }",
    )])
    .expect("loads");
    let err = run(&set, "r", &event(&[("a", "b")])).expect_err("bad return");
    assert_eq!(
        err.message,
        "plan() returned i64 at index 1, where an intent (restart(...), notify(...), ...) belongs"
    );
}

#[test]
fn matching_uses_alertmanager_semantics_and_the_index() {
    let mut files: Vec<(String, String)> = (0..2000)
        .map(|i| {
            (
                format!("gen{i:04}"),
                format!("const MATCH = `alertname=\"Alert{i}\"`;\nfn plan(e) {{ [] }}"),
            )
        })
        .collect();
    files.push((
        "any-critical".into(),
        "const MATCH = `severity=~\"critical|page\"`;\nfn plan(e) { [] }".into(),
    ));
    files.push((
        "no-team".into(),
        "const MATCH = `alertname=\"Alert7\", team=\"\"`;\nfn plan(e) { [] }".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let set = load(&refs).expect("loads");
    let names = |labels: &[(&str, &str)]| -> Vec<String> {
        set.matching(&event(labels).labels)
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(
        names(&[("alertname", "Alert7"), ("severity", "critical")]),
        vec!["any-critical", "gen0007", "no-team"]
    );
    assert_eq!(
        names(&[
            ("alertname", "Alert7"),
            ("team", "db"),
            ("severity", "criticality")
        ]),
        vec!["gen0007"]
    );
    assert!(names(&[("alertname", "Other")]).is_empty());
}

#[test]
fn a_rule_that_changes_its_event_does_not_change_it_for_the_next_rule() {
    let set = load(&[
        (
            "a-meddler",
            "const MATCH = `alertname=\"X\"`;\nfn plan(event) { event.labels.container = \"other\"; [restart(docker_container(event.labels.container))] }",
        ),
        (
            "b-reader",
            "const MATCH = `alertname=\"X\"`;\nfn plan(event) { [restart(docker_container(event.labels.container))] }",
        ),
    ])
    .expect("rules load");
    let e = event(&[("alertname", "X"), ("container", "web-1")]);
    let targets: Vec<String> = ["a-meddler", "b-reader"]
        .iter()
        .map(|name| {
            let rule = set.get(name).expect("rule loaded");
            let intents = set
                .evaluate_prepared(rule, super::ScriptEvent::of(&e), &ctx())
                .expect("plan runs");
            intents[0].target.to_string()
        })
        .collect();
    assert_eq!(
        targets,
        ["docker:container/other", "docker:container/web-1"]
    );
}

#[test]
fn only_text_written_in_the_rule_is_a_template() {
    let set = load(&[(
        "tell",
        r#"
const MATCH = `alertname="Down"`;
fn plan(event) {
    let held = "{{ labels.host }} is down";
    [
        notify("a", "{{ labels.host }} is down"),
        notify("b", held),
        notify("c", "down: " + event.labels.note),
        notify("d", `down: ${event.labels.note}`),
        email("e", event.labels.note, "{{ labels.host }}"),
        notify("f", "down: " + event.labels.host),
    ]
}
"#,
    )])
    .expect("loads");
    let e = event(&[
        ("alertname", "Down"),
        ("host", "web-1"),
        ("note", "{{ 7 * 7 }}"),
    ]);
    let intents = run(&set, "tell", &e).expect("plans");
    let verbatim: Vec<(String, Option<&serde_json::Value>)> = intents
        .iter()
        .map(|i| (i.target.to_string(), i.params.get("verbatim")))
        .collect();
    let text = serde_json::json!(["text"]);
    let subject = serde_json::json!(["subject"]);
    assert_eq!(
        verbatim,
        [
            ("notify:a".to_string(), None),
            ("notify:b".to_string(), None),
            ("notify:c".to_string(), Some(&text)),
            ("notify:d".to_string(), Some(&text)),
            ("notify:e".to_string(), Some(&subject)),
            ("notify:f".to_string(), None),
        ]
    );
}
