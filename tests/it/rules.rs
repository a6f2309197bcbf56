//! Rules that misbehave: a loop that never ends, a broken edit at reload.

use crate::support::{decisions, marker, native, of_kind, s, Salve};
use serde_json::json;

#[test]
fn a_rule_that_loops_forever_is_cut_off_and_other_rules_still_act() {
    // Operations run out long before the wall-clock backstop, even in a debug build.
    let salve = Salve::builder()
        .config(&format!(
            "[engine]\nrule_max_operations = 100000\n\n{}",
            marker("mark", "marks.txt")
        ))
        .rule(
            "a-spins",
            r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    loop {}
}
"#,
        )
        .rule(
            "b-acts",
            r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    [exec("mark", [event.labels.container])]
}
"#,
        )
        .start();

    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_settled(1);
    let errors = of_kind(&records, "rule_error");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let path = salve.rules_dir().join("a-spins.rhai");
    assert_eq!(errors[0]["rule"], "a-spins");
    assert_eq!(errors[0]["fingerprint"], "75359c27e5221bdd");
    // The cut-off is reported against the rule's file (Rhai gives no position for it).
    let error = s(&errors[0]["error"]);
    assert!(
        error.starts_with(&path.display().to_string())
            && error
                .ends_with(": plan() was cut off: too many operations (a loop that never ends?)"),
        "{error}"
    );
    assert_eq!(decisions(&records), ["b-acts: exec exec:mark -> execute"]);
    assert_eq!(
        of_kind(&records, "evaluated")[0]["rules"],
        json!(["a-spins", "b-acts"])
    );
    assert_eq!(of_kind(&records, "outcome")[0]["outcome"], "ok");
    assert_eq!(salve.lines("marks.txt"), ["web-1"]);

    // Events keep flowing after it.
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "ContainerDown"), ("container", "web-2")]),
    );
    assert_eq!(reply.status, 200);
    salve.wait_settled(2);
    assert_eq!(salve.lines("marks.txt"), ["web-1", "web-2"]);
    assert_eq!(
        salve.metric("salve_rule_errors_total{rule=\"a-spins\"}"),
        Some(2.0)
    );
}

const MARK_N: &str = r#"
const MATCH = `alertname="ReloadProbe"`;

fn plan(event) {
    [exec("mark", ["old", event.labels.n])]
}
"#;

const BROKEN: &str = r#"
const MATCH = `alertname="ReloadProbe"`;

fn plan(event) {
    let n = ;
    [exec("mark", ["new", n])]
}
"#;

const FIXED: &str = r#"
const MATCH = `alertname="ReloadProbe"`;

fn plan(event) {
    let n = event.labels.n;
    [exec("mark", ["new", n])]
}
"#;

#[test]
fn a_broken_reload_is_refused_and_the_running_rules_keep_acting() {
    let salve = Salve::builder()
        .config(&marker("mark", "marks.txt"))
        .rule("old", MARK_N)
        .start();
    assert_eq!(
        salve.metric("salve_config_last_reload_successful"),
        Some(1.0)
    );

    salve.write_rule("new", BROKEN);
    let reply = salve.post_json("/-/reload", &json!({}));
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(
        reply.body["error"],
        "reload refused; the previous rules keep running"
    );
    let errors = s(&reply.body["detail"]["errors"]);
    let location = format!("{}:5:13:", salve.rules_dir().join("new.rhai").display());
    assert!(errors.starts_with(&location), "{errors}");
    assert_eq!(
        salve.metric("salve_config_last_reload_successful"),
        Some(0.0)
    );
    assert_eq!(salve.metric("salve_rules_loaded"), Some(1.0));

    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "ReloadProbe"), ("n", "1")]),
    );
    assert_eq!(reply.status, 200);
    salve.wait_settled(1);
    assert_eq!(salve.lines("marks.txt"), ["old 1"]);

    salve.write_rule("new", FIXED);
    let reply = salve.post_json("/-/reload", &json!({}));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "status": "reloaded",
            "rules": 2,
            "restart_required": [],
            "probes": { "added": [], "changed": [], "removed": [] },
        })
    );
    assert_eq!(
        salve.metric("salve_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(salve.metric("salve_rules_loaded"), Some(2.0));

    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "ReloadProbe"), ("n", "2")]),
    );
    assert_eq!(reply.status, 200);
    let records = salve.wait_settled(2);
    let mut marks = salve.lines("marks.txt");
    marks.sort();
    assert_eq!(marks, ["new 2", "old 1", "old 2"]);

    let reloads: Vec<_> = of_kind(&records, "reload")
        .into_iter()
        .map(|r| (r["ok"].clone(), r["rules"].clone(), r["error"].is_string()))
        .collect();
    assert_eq!(
        reloads,
        [
            (json!(false), json!(1), true),
            (json!(true), json!(2), false)
        ]
    );
}
