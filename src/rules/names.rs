//! The channels and commands a rule names, checked against the config at load: a rule
//! that notifies a channel or runs a command the config does not define is a
//! `file:line:col` error at `salve check`, not a failed action in the middle of an
//! incident. Only names written in the rule as literals can be checked this way.

use super::calls;
use super::functions::telling_names;
use super::{RuleError, RuleSet};
use std::collections::HashSet;

/// What the config defines that rules may name.
pub struct Defined<'a> {
    pub channels: &'a HashSet<&'a str>,
    pub commands: &'a HashSet<&'a str>,
    /// `[approvals.NAME]` groups, which `.approval(NAME)` asks.
    pub groups: &'a HashSet<&'a str>,
}

impl RuleSet {
    /// Every literal channel or command name that `defined` lacks, at its position.
    pub fn undefined_names(&self, defined: &Defined<'_>) -> Vec<RuleError> {
        let mut errors = Vec::new();
        for rule in self.rules() {
            calls::each_call(&rule.ast, &mut |call| {
                let function = call.name;
                let (what, known, index) = if function == "approval" {
                    ("approval group", defined.groups, 1)
                } else if function == "exec" {
                    ("command", defined.commands, 0)
                } else if telling_names().iter().any(|n| n == function) {
                    ("channel", defined.channels, 0)
                } else {
                    return true;
                };
                if let Some((name, pos)) = call.literal(index) {
                    if !known.contains(name.as_str()) {
                        let mut names: Vec<&&str> = known.iter().collect();
                        names.sort();
                        let section = match what {
                            "command" => "exec",
                            "channel" => "notify",
                            _ => "approvals",
                        };
                        errors.push(RuleError::at(
                            &rule.path,
                            rule.source(),
                            pos,
                            format!(
                                "{function} names {what} {name:?}, which the config does not define \
                                 (no [{section}.{name}]; defined: {names:?})"
                            ),
                        ));
                    }
                }
                true
            });
        }
        errors
    }
}
