//! `salve check` sees every call, in whatever form a rule writes it: a statement, a
//! branch's bare value, a `return`, an expression, a closure, another `fn`, a `switch`
//! arm, a `break` value. Each test is a form that once loaded and failed only when the
//! line ran.

use super::tests::{load, load_err};
use super::Defined;
use chrono::Utc;
use std::collections::HashSet;

const MATCH: &str = "const MATCH = `alertname=\"Down\", container=~\".+\"`;\n";

/// A rule whose `plan` reads the status, then runs `body` with `c` a container.
fn rule(body: &str) -> String {
    format!(
        "{MATCH}fn plan(event) {{\n    if event.status != \"firing\" {{ return []; }}\n    let c = docker_container(event.labels.container);\n{body}\n}}\n"
    )
}

/// The first line of the load error (`file:line:col: message`).
fn first_line(text: &str) -> String {
    load_err(text)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

const NOTFY: &str = "unknown function notfy; did you mean notify?";

#[test]
fn a_misspelt_call_written_as_a_statement_is_an_error() {
    assert_eq!(
        first_line(&rule("    notfy(\"oncall\", \"gave up\");\n    []")),
        format!("rules/bad.rhai:5:5: {NOTFY}")
    );
}

#[test]
fn a_misspelt_call_as_a_bare_branch_value_is_an_error() {
    let err = load_err(&rule(
        "    if recent(c, \"restart\", \"15m\") < 3 { restart(c) } else { notfy(\"oncall\", \"gave up\") }",
    ));
    assert!(
        err.starts_with(&format!("rules/bad.rhai:5:62: {NOTFY}\n")),
        "{err}"
    );
    assert!(
        err.ends_with(&format!("\n  | {}^", " ".repeat(61))),
        "the caret is under notfy:\n{err}"
    );
}

#[test]
fn a_misspelt_call_after_return_is_an_error() {
    assert_eq!(
        first_line(&rule("    return notfy(\"oncall\", \"gave up\");")),
        format!("rules/bad.rhai:5:12: {NOTFY}")
    );
}

#[test]
fn a_misspelt_call_inside_an_expression_is_an_error() {
    assert_eq!(
        first_line(&rule(
            "    let told = notfy(\"oncall\", \"gave up\");\n    [told]"
        )),
        format!("rules/bad.rhai:5:16: {NOTFY}")
    );
}

#[test]
fn a_misspelt_call_inside_a_closure_is_an_error() {
    assert_eq!(
        first_line(&rule(
            "    let tell = |who| notfy(who, \"gave up\");\n    [\"oncall\"].map(tell)"
        )),
        format!("rules/bad.rhai:5:22: {NOTFY}")
    );
}

#[test]
fn a_misspelt_call_inside_another_fn_of_the_rule_is_an_error() {
    let text = format!(
        "{MATCH}fn give_up(who) {{\n    notfy(who, \"gave up\")\n}}\nfn plan(event) {{\n    if event.status != \"firing\" {{ return []; }}\n    give_up(\"oncall\")\n}}\n"
    );
    assert_eq!(first_line(&text), format!("rules/bad.rhai:3:5: {NOTFY}"));
}

#[test]
fn a_misspelt_call_in_a_switch_arm_or_a_break_value_is_an_error() {
    assert_eq!(
        first_line(&rule(
            "    switch event.labels.severity ?? \"\" {\n        \"page\" => { notfy(\"oncall\", \"gave up\") }\n        _ => []\n    }"
        )),
        format!("rules/bad.rhai:6:21: {NOTFY}")
    );
    assert_eq!(
        first_line(&rule(
            "    loop {\n        break notfy(\"oncall\", \"gave up\");\n    }"
        )),
        format!("rules/bad.rhai:6:15: {NOTFY}")
    );
}

#[test]
fn a_wrong_number_of_arguments_in_a_bare_call_says_what_the_function_takes() {
    assert_eq!(
        first_line(&rule("    if true { restart(c, 5) } else { [] }")),
        "rules/bad.rhai:5:15: restart takes 1 argument(s), not 2"
    );
    assert_eq!(
        first_line(&rule(
            "    email(\"ops\");\n    email(\"ops\", \"a\", \"b\", \"c\")"
        )),
        "rules/bad.rhai:6:5: email takes 1 or 2 or 3 argument(s), not 4"
    );
}

#[test]
fn a_function_named_in_fn_must_exist() {
    assert_eq!(
        first_line(&rule(
            "    let tell = Fn(\"notfy\");\n    tell.call(\"oncall\", \"x\")"
        )),
        format!("rules/bad.rhai:5:16: {NOTFY}")
    );
}

/// `undefined_names` of a rule, against a config with channel `ops` and command `reload`.
fn undefined(body: &str) -> Vec<String> {
    let set = load(&[("bad", &rule(body))]).expect("the rule loads");
    let channels: HashSet<&str> = ["ops"].into_iter().collect();
    let commands: HashSet<&str> = ["reload"].into_iter().collect();
    let groups: HashSet<&str> = ["sre"].into_iter().collect();
    set.undefined_names(&Defined {
        channels: &channels,
        commands: &commands,
        groups: &groups,
    })
    .iter()
    .map(|e| e.short())
    .collect()
}

#[test]
fn a_channel_the_config_lacks_is_an_error_in_a_bare_call() {
    assert_eq!(
        undefined("    if recent(c, \"restart\", \"15m\") < 3 { restart(c) } else { notify(\"oncall\", \"gave up\") }"),
        ["rules/bad.rhai:5:69: notify names channel \"oncall\", which the config does not define (no [notify.oncall]; defined: [\"ops\"])"]
    );
    assert_eq!(
        undefined("    slack(\"pager\", \"x\");\n    return \"oncall\".email(\"x\");"),
        [
            "rules/bad.rhai:5:11: slack names channel \"pager\", which the config does not define (no [notify.pager]; defined: [\"ops\"])",
            "rules/bad.rhai:6:12: email names channel \"oncall\", which the config does not define (no [notify.oncall]; defined: [\"ops\"])",
        ]
    );
}

#[test]
fn a_command_the_config_lacks_is_an_error_in_a_bare_call() {
    assert_eq!(
        undefined("    if recent(c, \"restart\", \"1h\") < 3 { exec(\"reload\") } else { exec(\"relaod\", [\"--now\"]) }"),
        ["rules/bad.rhai:5:70: exec names command \"relaod\", which the config does not define (no [exec.relaod]; defined: [\"reload\"])"]
    );
}

#[test]
fn an_approval_group_the_config_lacks_is_an_error_and_a_ttl_past_a_day_too() {
    assert_eq!(
        undefined("    [restart(c).approval(\"sre\"), restart(c).approval(\"sreh\", \"5m\")]"),
        ["rules/bad.rhai:5:54: approval names approval group \"sreh\", which the config does not define (no [approvals.sreh]; defined: [\"sre\"])"]
    );
    let err = first_line(&rule("    [restart(c).approval(\"sre\", \"2d\")]"));
    assert!(
        err.contains("approval: \"2d\" is not between 1s and 24h"),
        "{err}"
    );
}

#[test]
fn a_bad_literal_duration_is_an_error_at_its_position_and_no_panic() {
    let err = first_line(&rule(
        "    let n = if true { recent(c, \"restart\", \"soon\") } else { 0 };\n    []",
    ));
    assert!(
        err.starts_with("rules/bad.rhai:5:44: recent: invalid duration \"soon\""),
        "{err}"
    );
    // Counting back 300000 years from now passes chrono's calendar: once a panic in
    // `salve check`'s trial run.
    let err = first_line(&rule(
        "    if recent(c, \"restart\", \"300000y\") < 3 { restart(c) } else { [] }",
    ));
    assert!(
        err.starts_with("rules/bad.rhai:5:29: recent: ") && err.contains("\"300000y\""),
        "{err}"
    );
    assert_eq!(
        first_line(&rule("    return after(restart(c), \"1 hour\");")),
        "rules/bad.rhai:5:30: after: \"1 hour\" is longer than the 15m salve will hold an action"
    );
}

#[test]
fn other_literal_arguments_the_function_refuses_are_errors() {
    assert_eq!(
        first_line(&rule(
            "    if recent(c, \"restrat\", \"15m\") > 0 { return []; }\n    [restart(c)]"
        )),
        "rules/bad.rhai:5:18: recent: unknown action \"restrat\""
    );
    assert!(first_line(&rule(
        "    if firing(`alertname=~\"(\"`) { return []; }\n    [restart(c)]"
    ))
    .starts_with("rules/bad.rhai:5:15: firing: "),);
    assert_eq!(
        first_line(&rule(
            "    if now(\"Europe/Berln\").hour < 6 { [] } else { restart(c) }"
        )),
        "rules/bad.rhai:5:12: now: unknown time zone \"Europe/Berln\""
    );
}

#[test]
fn a_broken_template_in_a_bare_call_is_an_error() {
    assert!(
        first_line(&rule("    notify(\"ops\", \"{{ labels.host \")"))
            .starts_with("rules/bad.rhai:5:19: notify: template error: "),
    );
}

#[test]
fn a_bare_acting_call_without_reading_the_status_is_warned_about() {
    let text = format!(
        "{MATCH}fn plan(event) {{\n    restart(docker_container(event.labels.container))\n}}\n"
    );
    let set = load(&[("heal", &text)]).expect("warnings never stop a rule");
    let warnings: Vec<String> = set.warnings().map(|w| w.short()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("rules/heal.rhai:2:1: warning: plan never reads event.status"),
        "{warnings:?}"
    );
}

#[test]
fn rules_that_call_what_exists_in_any_form_load() {
    let text = rule(
        r#"    let page = |who| notify(who, "gave up on {{ labels.container }}");
    let up = |s| s.to_upper();
    let n = recent(c, "restart", "15m");
    switch n {
        0 => { return restart(c).after("10s").timeout(5); }
        1 => restart(c).after("1m"),
        _ => {}
    }
    if firing(`alertname="HostDown"`) || now("Europe/Berlin").hour < 6 { return []; }
    let names = ["ops"].map(|x| up.call(x)).filter(|x| x.len() > 0);
    let tell = Fn("page");
    [page.call("ops"), tell.call("ops"), exec("reload", names)]
}
fn page(who) {
    loop { break notify(who); }"#,
    );
    let set = load(&[("good", &text)]).unwrap_or_else(|e| panic!("{}", e[0]));
    assert_eq!(set.trial_errors(Utc::now()), []);
}

#[test]
fn a_call_the_trial_run_cannot_find_is_reported_in_salves_words() {
    let errors = |body: &str| -> Vec<String> {
        let set = load(&[("bad", &rule(body))]).unwrap_or_else(|e| panic!("{}", e[0]));
        set.trial_errors(Utc::now())
            .iter()
            .map(|e| e.short())
            .collect()
    };
    assert_eq!(
        errors("    let name = \"res\" + \"trat\";\n    [call(Fn(name), c)]"),
        ["rules/bad.rhai:6:6: in a trial run (firing event): unknown function restrat(Target); did you mean restart?"]
    );
    assert_eq!(
        errors("    [restart(c).timeout(\"5\")]"),
        ["rules/bad.rhai:5:17: in a trial run (firing event): timeout does not take (Intent, string): it takes (intent: Intent, seconds: i64)"]
    );
    assert_eq!(
        errors("    [1].map(|n| restart(docker_container(n)))"),
        ["rules/bad.rhai:5:25: in a trial run (firing event): docker_container: name must be a string, got i64 (a label the event does not have?)"]
    );
}
