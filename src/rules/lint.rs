//! Warnings for rules that load but probably do not do what their author meant. They
//! never stop a rule from loading: `salve check` prints them, `serve` logs them.

use super::calls;
use super::functions::acting_names;
use super::RuleError;
use rhai::{ASTNode, Expr, AST};
use std::path::Path;

pub(super) fn warnings(ast: &AST, path: &Path, source: &str) -> Vec<RuleError> {
    // A rule that only tells people may well want to speak on recovery too.
    let mut acts = false;
    calls::each_call(ast, &mut |call| {
        acts |= acting_names().iter().any(|n| n == call.name);
        !acts
    });
    let mut reads_status = false;
    calls::walk(ast, &mut |nodes: &[ASTNode]| {
        match nodes.last() {
            Some(ASTNode::Expr(Expr::Property(property, _))) => {
                reads_status |= property.2 == "status";
            }
            // event["status"]
            Some(ASTNode::Expr(Expr::StringConstant(text, _))) => {
                reads_status |= text.as_str() == "status";
            }
            _ => {}
        }
        !reads_status
    });
    let mut found = Vec::new();
    if acts && !reads_status {
        // Alertmanager sends recoveries (send_resolved) and the Docker source reports a
        // container turning healthy: a rule blind to status acts on both.
        found.push(RuleError::at_offset(
            path,
            source,
            super::error::fn_position(source, "plan"),
            "warning: plan never reads event.status, so it also acts when the alert resolves; \
             start it with `if event.status != \"firing\" { return []; }`"
                .into(),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleSet;
    use std::collections::HashSet;
    use std::path::PathBuf;
    use std::time::Duration;

    fn warnings(source: &str) -> Vec<String> {
        let rules = RuleSet::from_sources(
            vec![(PathBuf::from("rules/heal.rhai"), source.to_string())],
            &HashSet::new(),
            Duration::from_millis(100),
        )
        .expect("the rule loads: warnings never stop it");
        rules.warnings().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_rule_that_acts_without_reading_the_status_is_warned_about() {
        let found = warnings(
            "const MATCH = `alertname=\"Down\", container=~\".+\"`;\n\nfn plan(event) {\n    [restart(docker_container(event.labels.container))]\n}\n",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "rules/heal.rhai:3:1: warning: plan never reads event.status, so it also acts when the alert resolves"
            ),
            "{}",
            found[0]
        );
        assert!(found[0].contains("3 | fn plan(event) {"), "{}", found[0]);
    }

    #[test]
    fn rules_that_read_the_status_or_only_notify_are_not_warned_about() {
        for source in [
            "const MATCH = `alertname=\"Down\"`;\nfn plan(event) { if event.status != \"firing\" { return []; } [exec(\"fix\")] }\n",
            "const MATCH = `alertname=\"Down\"`;\nfn plan(event) { if event[\"status\"] == \"firing\" { [exec(\"fix\")] } else { [] } }\n",
            "const MATCH = `alertname=\"Down\"`;\nfn plan(event) { [notify(\"ops\", \"{{ alertname }} is {{ status }}\")] }\n",
        ] {
            assert_eq!(warnings(source), Vec::<String>::new(), "{source}");
        }
    }
}
