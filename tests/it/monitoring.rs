//! `examples/monitoring/`: the alerting rules on salve itself pass `promtool check
//! rules` and their unit tests, and every metric a rule or a dashboard panel names is
//! one a running salve exports.

use crate::support::{repo_dir, Salve};
use std::collections::BTreeSet;
use std::process::Command;

fn monitoring_dir() -> std::path::PathBuf {
    repo_dir().join("examples/monitoring")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e} (apt-get install prometheus)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alerts_on_salve_itself_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "salve.rules.yml"]);
    assert!(checked.contains("SUCCESS: 13 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "salve.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The families a metric name belongs to: a counter's `_total`, a histogram's
/// `_bucket`, `_sum` and `_count` are its family's samples.
fn family(name: &str) -> String {
    for suffix in ["_total", "_bucket", "_sum", "_count"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return stem.to_string();
        }
    }
    name.to_string()
}

fn named_in(text: &str) -> BTreeSet<String> {
    let metric = regex::Regex::new(r"\bsalve_[a-z_]+").expect("a pattern");
    metric.find_iter(text).map(|m| family(m.as_str())).collect()
}

#[test]
fn every_metric_a_rule_or_a_panel_names_is_one_salve_exports() {
    let salve = Salve::builder().start();
    let exported: BTreeSet<String> = salve
        .metrics()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let rules =
        std::fs::read_to_string(monitoring_dir().join("salve.rules.yml")).expect("read the rules");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 15, "{} panels", panels.len());
    let mut expressions = rules.clone();
    for panel in panels {
        let targets = panel["targets"].as_array().expect("a panel's targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("a query");
            assert!(!named_in(expr).is_empty(), "{expr} names no salve metric");
            expressions.push_str(expr);
            expressions.push('\n');
        }
    }
    let shown = named_in(&expressions);
    let missing: Vec<&String> = shown
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\nexported: {exported:?}"
    );
    // And the other way: the dashboard leaves out no family salve exports, save the
    // one that only names the build.
    let unshown: Vec<&String> = exported
        .iter()
        .filter(|name| !shown.contains(*name) && name.as_str() != "salve_build_info")
        .collect();
    assert!(unshown.is_empty(), "exported but on no panel: {unshown:?}");
}
