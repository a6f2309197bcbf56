//! `salve check` points at the mistake (file, line, column and a caret) for everything
//! that would otherwise fail only when an alert arrives, runs the rules' own test cases,
//! and passes on the shipped rules, the example config and the samples in docs/.

use crate::support::{repo_dir, Salve};

const BROKEN: &str = r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    let c = ;
    [restart(docker_container(c))]
}
"#;

const GOOD: &str = r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    [restart(docker_container(event.labels.container))]
}
"#;

#[test]
fn check_points_at_a_broken_rule_with_file_line_column_and_caret() {
    let salve = Salve::builder()
        .rule("good", GOOD)
        .rule("broken", BROKEN)
        .write();
    let config = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();

    let out = salve.cli(&["check", "--config", &config, "--rules", &rules]);
    assert_eq!(out.status.code(), Some(1));
    let path = salve.rules_dir().join("broken.rhai");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with(&format!("{}:5:13: ", path.display())),
        "{stderr}"
    );
    let rest: Vec<&str> = stderr.lines().skip(1).collect();
    assert_eq!(
        rest,
        ["  |", "5 |     let c = ;", "  |             ^"],
        "{stderr}"
    );

    std::fs::remove_file(&path).expect("remove the broken rule");
    let out = salve.cli(&["check", "--config", &config, "--rules", &rules]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ok: config from {config}, 1 rule(s) in {rules}\n")
    );
    assert_eq!(out.status.code(), Some(0));
    // It loads, but it would also restart the container when the alert resolves.
    let good = salve.rules_dir().join("good.rhai");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:4:1: warning: plan never reads event.status, so it also acts when the alert resolves",
            good.display()
        )),
        "{stderr}"
    );
}

#[test]
fn the_shipped_rules_pass_their_own_tests() {
    let rules = repo_dir().join("rules");
    assert!(
        rules.is_dir(),
        "the shipped rules folder {} does not exist",
        rules.display()
    );
    let out = std::process::Command::new(crate::support::bin())
        .args(["test", "--rules", "rules"])
        .current_dir(repo_dir())
        .output()
        .expect("run salve test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "salve test --rules rules:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    assert!(!stdout.contains("\n0 passed"), "no case ran:\n{stdout}");

    let out = std::process::Command::new(crate::support::bin())
        .args([
            "test",
            "--config",
            "examples/salve.toml",
            "--rules",
            "examples/rules",
        ])
        .current_dir(repo_dir())
        .output()
        .expect("run salve test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "examples/rules:\n{stdout}");
    assert!(stdout.trim_end().ends_with(" 0 failed"), "{stdout}");
}

fn check_in_repo(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::support::bin())
        .arg("check")
        .args(args)
        .current_dir(repo_dir())
        .output()
        .expect("run salve check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's first command serves the shipped rules on the embedded defaults, and
/// someone who starts from `examples/salve.toml` gets a config that defines every
/// channel and named command the shipped and example rules use.
#[test]
fn the_shipped_rules_check_on_the_embedded_defaults_and_on_the_example_config() {
    for args in [
        &["--rules", "rules"][..],
        &["--config", "examples/salve.toml", "--rules", "rules"],
        &[
            "--config",
            "examples/salve.toml",
            "--rules",
            "examples/rules",
        ],
    ] {
        let (code, stdout, stderr) = check_in_repo(args);
        assert_eq!(code, Some(0), "salve check {args:?}:\n{stdout}{stderr}");
        assert_eq!(stderr, "", "salve check {args:?} draws no warnings");
    }
}

#[test]
fn a_rule_naming_a_channel_or_command_the_config_lacks_fails_check_at_its_position() {
    let salve = Salve::builder()
        .config("[notify.ops]\ntype = \"log\"\n")
        .rule(
            "page",
            "const MATCH = `alertname=\"Down\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [notify(\"ops\", \"down\"), slack(\"oncall\"), exec(\"failover\", [])]\n}\n",
        )
        .write();
    let config = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &config, "--rules", &rules]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = salve.rules_dir().join("page.rhai").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:4:35: slack names channel \"oncall\", which the config does not define (no [notify.oncall]; defined: [\"ops\"])"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:4:51: exec names command \"failover\", which the config does not define (no [exec.failover]; defined: [])"
        )),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("    [notify(\"ops\", \"down\"), slack(\"oncall\"), exec(\"failover\", [])]"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("\"ops\", which"),
        "ops is defined:\n{stderr}"
    );
}

/// `salve check` on one rule: exit code and what it printed on stderr.
fn check_rule(source: &[u8]) -> (Option<i32>, String, String) {
    let salve = Salve::builder()
        .config("[notify.ops]\ntype = \"log\"\n")
        .write();
    let file = salve.rules_dir().join("bad.rhai");
    std::fs::write(&file, source).expect("write the rule");
    let config = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &config, "--rules", &rules]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        file.display().to_string(),
    )
}

const HEADER: &str = "const MATCH = `alertname=\"Down\", container=~\".+\"`;\n";

#[test]
fn check_catches_at_its_position_what_would_fail_only_when_an_alert_arrives() {
    let plan = |body: &str| {
        format!("{HEADER}fn plan(event) {{\n    if event.status != \"firing\" {{ return []; }}\n{body}\n}}\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (
            plan("    [restrat(docker_container(event.labels.container))]"),
            "bad.rhai:4:6: unknown function restrat; did you mean restart?",
        ),
        (
            plan("    [restart(docker_container(event.labels.container), 5)]"),
            "bad.rhai:4:6: restart takes 1 argument(s), not 2",
        ),
        (
            plan("    [restart(docker_container(event.labels.container)).after(\"1 hour\")]"),
            "bad.rhai:4:62: after: \"1 hour\" is longer than the 15m salve will hold an action",
        ),
        (
            plan("    let n = recent(docker_container(event.labels.container), \"restart\", \"fifteen minutes\");\n    []"),
            "bad.rhai:4:73: recent: invalid duration \"fifteen minutes\"",
        ),
        (
            plan("    [restart(systemd_unit(\"nginx\"))]"),
            "bad.rhai:4:27: systemd_unit: \"nginx\" has no type: write the unit's full name, like \"nginx.service\"",
        ),
        (
            plan("    import \"helpers\" as h;\n    []"),
            "bad.rhai:4:5: import is disabled",
        ),
        (
            plan("    [restart(\"web-1\")]"),
            "bad.rhai:4:6: in a trial run (firing event): restart: invalid target \"web-1\": expected docker:container/NAME",
        ),
        (
            plan("    [restart(docker_container(42))]"),
            "bad.rhai:4:14: in a trial run (firing event): docker_container",
        ),
        (
            format!("{HEADER}fn deeper(n) {{ deeper(n + 1) }}\nfn plan(event) {{\n    deeper(0);\n    []\n}}\n"),
            "bad.rhai:3:1: in a trial run (firing event): plan() was cut off: calls nested more than 32 deep",
        ),
        (
            plan("    let s = \"x\";\n    loop { s += s; }"),
            "in a trial run (firing event): Length of string too large",
        ),
        (
            plan("    let a = [];\n    a.pad(20000, 0);\n    []"),
            "bad.rhai:2:1: in a trial run (firing event): Size of array/BLOB too large",
        ),
    ];
    for (source, expected) in cases {
        check_fails_with(&source, expected);
    }

    let (code, stderr, _) =
        check_rule(b"const MATCH = `alertname=\"Down\"`;\n// caf\xe9\nfn plan(event) { [] }\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.rhai:2:7: byte 0xe9 is not UTF-8"),
        "{stderr}"
    );
}

/// `salve check` on `source` as a rule: exit 1, `expected` in its message, a caret under
/// the line. Returns what it printed.
fn check_fails_with(source: &str, expected: &str) -> String {
    let (code, stderr, _) = check_rule(source.as_bytes());
    assert_eq!(code, Some(1), "{source}\n{stderr}");
    assert!(
        stderr.contains(expected),
        "{source}\nexpected {expected:?} in:\n{stderr}"
    );
    assert!(stderr.contains("^"), "a caret under the line:\n{stderr}");
    stderr
}

#[test]
fn check_sees_every_call_however_the_rule_writes_it() {
    let plan = |body: &str| {
        format!("{HEADER}fn plan(event) {{\n    if event.status != \"firing\" {{ return []; }}\n    let c = docker_container(event.labels.container);\n{body}\n}}\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (
            plan("    if recent(c, \"restart\", \"15m\") < 3 { restart(c) } else { notfy(\"oncall\", \"gave up\") }"),
            "bad.rhai:5:62: unknown function notfy; did you mean notify?",
        ),
        (
            plan("    if recent(c, \"restart\", \"15m\") < 3 { restart(c) } else { notify(\"oncall\", \"gave up\") }"),
            "bad.rhai:5:69: notify names channel \"oncall\", which the config does not define",
        ),
        (
            plan("    if recent(c, \"restart\", \"300000y\") < 3 { restart(c) } else { [] }"),
            "bad.rhai:5:29: recent: ",
        ),
        (
            plan("    let name = \"res\" + \"trat\";\n    call(Fn(name), c)"),
            "bad.rhai:6:5: in a trial run (firing event): unknown function restrat(Target); did you mean restart?",
        ),
    ];
    for (source, expected) in cases {
        let stderr = check_fails_with(&source, expected);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Function not found"),
            "{stderr}"
        );
    }
}

#[test]
fn check_warns_about_a_match_for_every_alert_and_a_label_it_does_not_pin() {
    let (code, stderr, file) = check_rule(
        b"const MATCH = `alertname=~\".*\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [notify(\"ops\", event.labels.host), notify(\"ops\", event.labels.team ?? \"-\")]\n}\n",
    );
    assert_eq!(code, Some(0), "warnings do not fail check:\n{stderr}");
    assert!(
        stderr.contains(&format!("{file}:1:1: warning: MATCH matches every alert")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:4:33: warning: event.labels.host is read, but MATCH does not require it"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("event.labels.team is read"),
        "a read with a default is fine:\n{stderr}"
    );
}

/// The rules behind the sample errors in `docs/`; the test runs `salve check` on each and
/// finds the page's text in what it prints, so the docs cannot drift from salve.
const DOCS_SAMPLES: [(&str, &str, &str); 4] = [
    (
        "bad",
        "",
        "const MATCH = `alertname=\"Down\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    let y = x + 1;\n    []\n}\n",
    ),
    ("disk-full", "[notify.ops]\ntype = \"log\"\n", ""),
    (
        "heal",
        "",
        "const MATCH = `alertname=\"Down\", container=~\".+\"`;\n\nfn plan(event) {\n    [restart(docker_container(event.labels.container))]\n}\n",
    ),
    (
        "tell",
        "[notify.ops]\ntype = \"log\"\n",
        "const MATCH = `alertname=\"DiskFull\", host=~\".+\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [slack(\"ops\", \"Disk full on {{ labels.host }\")]\n}\n",
    ),
];

#[test]
fn the_docs_sample_errors_are_what_check_prints() {
    let readme: String = crate::docs::pages()
        .into_iter()
        .map(|(_, text)| text + "\n")
        .collect();
    // Fenced blocks whose first line is `rules/NAME.rhai:...`.
    let mut samples: Vec<(String, String)> = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("```") {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| l.trim_start() != "```")
            .map(|l| l.get(indent..).unwrap_or(""))
            .collect();
        if line.trim_start() != "```" {
            continue;
        }
        if let Some(name) = block
            .first()
            .and_then(|first| first.strip_prefix("rules/"))
            .and_then(|rest| rest.split_once(".rhai:"))
            .map(|(name, _)| name.to_string())
        {
            samples.push((name, block.join("\n")));
        }
    }
    assert_eq!(samples.len(), DOCS_SAMPLES.len(), "{samples:#?}");
    for (name, text) in samples {
        let (_, config, source) = DOCS_SAMPLES
            .iter()
            .find(|(n, _, _)| *n == name)
            .unwrap_or_else(|| panic!("no rule for the docs' sample of rules/{name}.rhai"));
        let salve = Salve::builder().config(config).write();
        let source = if source.is_empty() {
            std::fs::read_to_string(repo_dir().join("rules").join(format!("{name}.rhai")))
                .expect("read a shipped rule")
        } else {
            source.to_string()
        };
        std::fs::write(salve.rules_dir().join(format!("{name}.rhai")), source).expect("write");
        let out = salve.cli(&["check", "--config", "salve.toml", "--rules", "rules"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&text),
            "the docs say:\n{text}\nsalve check says:\n{stderr}"
        );
    }
}

#[test]
fn the_first_rule_of_the_rules_page_passes_check_with_the_example_config() {
    let readme =
        std::fs::read_to_string(repo_dir().join("docs/rules.md")).expect("read docs/rules.md");
    let start = readme
        .find("```rhai\n")
        .expect("a rhai block in docs/rules.md")
        + "```rhai\n".len();
    let source = &readme[start..start + readme[start..].find("```").expect("its end")];
    let salve = Salve::builder().rule("container-down", source).write();
    let config = repo_dir().join("examples/salve.toml").display().to_string();
    let out = salve.cli(&["check", "--config", &config, "--rules", "rules"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{source}\n{stderr}");
    assert_eq!(stderr, "", "no warnings either");
}

#[test]
fn check_runs_the_rules_own_test_cases_and_reports_their_errors_at_the_line() {
    let salve = Salve::builder()
        .rule(
            "tiers",
            "const MATCH = `alertname=\"Down\", tier=~\".+\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    if event.labels.tier == \"db\" { return [restart(docker_container(42))]; }\n    []\n}\n",
        )
        .write();
    std::fs::write(
        salve.rules_dir().join("tiers.test.toml"),
        "[[case]]\nname = \"a database\"\nevents = [{ labels = { alertname = \"Down\", tier = \"db\" } }]\nexpect = []\n",
    )
    .expect("write the cases");
    let out = salve.cli(&["check", "--config", "salve.toml", "--rules", "rules"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("rules/tiers.rhai:4:52: in test case \"a database\": docker_container"),
        "{stderr}"
    );
}
