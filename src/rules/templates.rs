//! Message templates written in rules are checked at load: each string literal passed
//! to `notify`, `email`, `slack` or `webhook` after the channel must compile, so a
//! broken template is a `file:line:col` error at `salve check`, not a failed message
//! in the middle of an incident.

//!
//! Only text written in the rule is a template. Text put together at run time (`"down: "
//! + event.labels.x`, `` `${x}` ``) is sent as it is: values from an alert are data, and
//! a label holding `{{` must not turn into template code or break the message.

use super::calls;
use super::functions::telling_names;
use super::RuleError;
use rhai::{ASTNode, Expr, ImmutableString, AST};
use std::path::Path;
use std::sync::Arc;

/// Checks the templates passed to the notify functions and returns the rule's string
/// literals that are templates (`None` when it has none, as most rules), in one walk.
pub(super) fn check(
    ast: &AST,
    path: &Path,
    source: &str,
) -> Result<Option<Arc<[ImmutableString]>>, RuleError> {
    let mut first: Option<RuleError> = None;
    let mut literals: Vec<ImmutableString> = Vec::new();
    calls::walk(ast, &mut |nodes: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::StringConstant(text, _))) = nodes.last() {
            if crate::template::has_template_syntax(text) && !literals.contains(text) {
                literals.push(text.clone());
            }
        }
        let Some(call) = calls::call_of(nodes) else {
            return true;
        };
        if !telling_names().iter().any(|n| n == call.name) {
            return true;
        }
        // The first argument names the channel; the rest are subject and text.
        for (text, pos) in (1..call.arity()).filter_map(|i| call.literal(i)) {
            if let Err(e) = crate::template::check(text) {
                first = Some(RuleError::at(
                    path,
                    source,
                    pos,
                    format!("{}: {e}", call.name),
                ));
                return false;
            }
        }
        true
    });
    match first {
        Some(e) => Err(e),
        None => Ok((!literals.is_empty()).then(|| literals.into())),
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleSet;
    use std::collections::HashSet;
    use std::path::PathBuf;
    use std::time::Duration;

    fn load(source: &str) -> Result<(), String> {
        RuleSet::from_sources(
            vec![(PathBuf::from("rules/tell.rhai"), source.to_string())],
            &HashSet::new(),
            Duration::from_millis(100),
        )
        .map(|_| ())
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn a_broken_template_in_a_rule_is_reported_where_it_is_written() {
        let err = load(
            "const MATCH = `alertname=\"X\"`;\n\nfn plan(event) {\n    [slack(\"ops\", \"{{ labels.host }} is down\"),\n     email(\"oncall\", \"ok {{ status }}\", \"{{ annotations.summary \")]\n}\n",
        )
        .expect_err("broken template");
        assert!(
            err.starts_with(
                "rules/tell.rhai:5:41: email: template error: syntax error: unexpected end of input"
            ),
            "{err}"
        );
        assert!(err.contains("5 |      email("), "{err}");
    }

    #[test]
    fn unknown_filters_are_found_and_good_templates_pass() {
        let err = load(
            "const MATCH = `alertname=\"X\"`;\nfn plan(event) { [notify(\"ops\", \"{{ labels.host | shout }}\")] }\n",
        )
        .expect_err("unknown filter");
        assert!(
            err.starts_with("rules/tell.rhai:2:33: notify: template error: unknown filter: filter shout is unknown"),
            "{err}"
        );
        load("const MATCH = `alertname=\"X\"`;\nfn plan(event) { [webhook(\"t\", \"{% if status == 'firing' %}{{ labels.host | upper }}{% endif %}\")] }\n")
            .expect("a good template loads");
    }
}
