//! What `salve check` (and every load) finds in a rule before any alert arrives: the
//! mistakes Rhai would only report when the line runs (a misspelt function, a wrong
//! number of arguments, a duration that does not parse, an `import`), in every call
//! whatever its form, and, in `check`, a trial run of `plan()` on events built from the
//! rule's `MATCH`. A call the run cannot find is told in the same words as the check's.

use super::calls::{self, Call};
use super::{api, EvalContext, Rule, RuleError, RuleSet};
use crate::alertmanager::Matchers;
use crate::event::{Event, Fingerprint, Labels, Status};
use crate::model::NoHistory;
use chrono::{DateTime, Utc};
use rhai::{ASTNode, EvalAltResult, Expr, FnPtr, Position, Stmt, AST};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Functions Rhai handles itself rather than through a registered function.
const KEYWORDS: [&str; 9] = [
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// One way to call a function: how many arguments, and their names and types when Rhai
/// knows them.
struct Overload {
    arity: usize,
    params: Vec<String>,
}

/// Every function of the engine by name, from Rhai's metadata.
fn signatures() -> &'static HashMap<String, Vec<Overload>> {
    static SIGNATURES: OnceLock<HashMap<String, Vec<Overload>>> = OnceLock::new();
    SIGNATURES.get_or_init(|| {
        let metadata: serde_json::Value = api::build_engine(super::RuleBudget::DEFAULT_OPERATIONS)
            .gen_fn_metadata_to_json(true)
            .ok()
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        let mut found: HashMap<String, Vec<Overload>> = HashMap::new();
        for f in metadata["functions"].as_array().into_iter().flatten() {
            let (Some(name), Some(arity)) = (f["name"].as_str(), f["numParams"].as_u64()) else {
                continue;
            };
            let params = f["params"].as_array().into_iter().flatten().map(|p| {
                let ty = readable_type(p["type"].as_str().unwrap_or("?"));
                match p["name"].as_str() {
                    Some(n) => format!("{n}: {ty}"),
                    None => ty.to_string(),
                }
            });
            found.entry(name.to_string()).or_default().push(Overload {
                arity: arity as usize,
                params: params.collect(),
            });
        }
        found
    })
}

/// A parameter's type as rules know it.
fn readable_type(rust: &str) -> &str {
    match rust.rsplit("::").next().unwrap_or(rust) {
        "ImmutableString" | "&str" | "String" | "&mut ImmutableString" | "&mut String" => "string",
        "Dynamic" => "any",
        "INT" => "i64",
        "Array" | "&mut Array" => "array",
        "Map" | "&mut Map" => "map",
        other => other.trim_start_matches("&mut "),
    }
}

/// Every function a rule can call: name → the numbers of arguments it takes.
fn registered() -> &'static HashMap<String, BTreeSet<usize>> {
    static ARITIES: OnceLock<HashMap<String, BTreeSet<usize>>> = OnceLock::new();
    ARITIES.get_or_init(|| {
        signatures()
            .iter()
            .map(|(name, ways)| (name.clone(), ways.iter().map(|w| w.arity).collect()))
            .collect()
    })
}

/// The functions a rule can call, its own included.
fn known(ast: &AST) -> HashMap<String, BTreeSet<usize>> {
    let mut known = registered().clone();
    for f in ast.iter_functions() {
        known
            .entry(f.name.to_string())
            .or_default()
            .insert(f.params.len());
    }
    known
}

/// The first mistake a rule makes that the syntax tree shows: `import`, a function that
/// does not exist or is given a wrong number of arguments, a literal argument the
/// function will refuse (a duration that does not parse, an unknown time zone). Every
/// call is checked, in whatever form the rule writes it (see `calls`).
pub(super) fn static_error(ast: &AST, path: &Path, source: &str) -> Option<RuleError> {
    let known = known(ast);
    let mut found: Option<RuleError> = None;
    calls::walk(ast, &mut |nodes: &[ASTNode]| {
        let mistake = match nodes.last() {
            Some(ASTNode::Stmt(Stmt::Import(_, pos))) => Some((
                *pos,
                "import is disabled: a rule is one file, and reads nothing but its event".into(),
            )),
            // Rhai turns `Fn("notfy")` into a constant; `call` looks the name up when
            // the line runs.
            Some(ASTNode::Expr(Expr::DynamicConstant(value, pos))) => value
                .read_lock::<FnPtr>()
                .filter(|f| !known.contains_key(f.fn_name()))
                .map(|f| (*pos, unknown_function(&known, f.fn_name(), ""))),
            _ => calls::call_of(nodes).and_then(|call| call_error(&known, &call)),
        };
        found = mistake.map(|(pos, m)| RuleError::at(path, source, pos, m));
        found.is_none()
    });
    found
}

/// What is wrong with one call, and where.
fn call_error(
    known: &HashMap<String, BTreeSet<usize>>,
    call: &Call<'_>,
) -> Option<(Position, String)> {
    if let Some(message) = call_mistake(known, call.name, call.arity()) {
        return Some((call.pos, message));
    }
    (0..call.arity()).find_map(|i| {
        let (text, pos) = call.literal(i)?;
        super::functions::literal_mistake(call.name, i, text).map(|m| (pos, m))
    })
}

/// Rhai's `Function not found: restrat (Target)` in salve's words: `unknown function
/// restrat(Target); did you mean restart?`, or, when the function exists but not for
/// these types, what it takes.
pub(super) fn not_found(ast: &AST, signature: &str) -> String {
    let (name, args) = match signature.split_once(" (") {
        Some((name, rest)) => (name.trim(), format!("({rest}")),
        None => (signature.trim(), String::new()),
    };
    let args = args.replace("&str | ImmutableString | String", "string");
    let known = known(ast);
    if !known.contains_key(name) {
        return unknown_function(&known, name, &args);
    }
    let registered = signatures().get(name).into_iter().flatten().map(|w| {
        if w.params.len() == w.arity {
            format!("({})", w.params.join(", "))
        } else {
            format!("{} argument(s)", w.arity)
        }
    });
    let own = ast
        .iter_functions()
        .filter(|f| f.name == name)
        .map(|f| format!("({})", f.params.join(", ")));
    let mut ways: Vec<String> = registered.chain(own).collect();
    ways.sort();
    ways.dedup();
    let shown = ways.len().min(4);
    let more = match ways.len() - shown {
        0 => String::new(),
        n => format!(" (or {n} more)"),
    };
    format!(
        "{name} does not take {args}: it takes {}{more}",
        ways[..shown].join(" or ")
    )
}

fn unknown_function(known: &HashMap<String, BTreeSet<usize>>, name: &str, args: &str) -> String {
    let hint = closest(name, known.keys().map(String::as_str))
        .map(|n| format!("; did you mean {n}?"))
        .unwrap_or_default();
    format!("unknown function {name}{args}{hint}")
}

fn call_mistake(
    known: &HashMap<String, BTreeSet<usize>>,
    name: &str,
    args: usize,
) -> Option<String> {
    // Operators are calls too; only named functions are checked.
    if !name.starts_with(|c: char| c.is_alphabetic() || c == '_') || KEYWORDS.contains(&name) {
        return None;
    }
    match known.get(name) {
        None => Some(unknown_function(known, name, "")),
        Some(counts) if !counts.contains(&args) => {
            let counts: Vec<String> = counts.iter().map(usize::to_string).collect();
            Some(format!(
                "{name} takes {} argument(s), not {args}",
                counts.join(" or ")
            ))
        }
        Some(_) => None,
    }
}

/// The known name nearest to a misspelt one (at most two edits away).
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .filter(|k| !k.contains('$') && k.starts_with(|c: char| c.is_alphabetic()))
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The labels and annotations a rule reads by name (`event.labels.NAME`), each with
/// whether the rule copes with its absence: every read has a `??` default, or the rule
/// compares it with `()` somewhere.
pub(super) fn names_read(ast: &AST) -> HashMap<(&'static str, String), (Position, bool)> {
    // (first position, every read defaulted, compared with () somewhere)
    let mut read: HashMap<(&'static str, String), (Position, bool, bool)> = HashMap::new();
    calls::walk(ast, &mut |nodes: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::Dot(dot, _, _))) = nodes.last() else {
            return true;
        };
        let Expr::Property(map, _) = &dot.lhs else {
            return true;
        };
        let kind = match map.2.as_str() {
            "labels" => "labels",
            "annotations" => "annotations",
            _ => return true,
        };
        let (name, pos) = match &dot.rhs {
            Expr::Property(p, pos) => (p.2.to_string(), *pos),
            Expr::Dot(inner, _, _) | Expr::Index(inner, _, _) => match &inner.lhs {
                Expr::Property(p, pos) => (p.2.to_string(), *pos),
                _ => return true,
            },
            _ => return true,
        };
        // `event.labels.x ?? "default"`: the read is left of the `??`.
        let defaulted = nodes.iter().any(|n| match n {
            ASTNode::Expr(Expr::Coalesce(_, op)) => pos < *op,
            _ => false,
        });
        let compared_with_unit = nodes.iter().rev().skip(1).take(3).any(|n| match n {
            ASTNode::Expr(Expr::FnCall(call, _)) => {
                matches!(call.name.as_str(), "==" | "!=")
                    && call.args.iter().any(|a| matches!(a, Expr::Unit(_)))
            }
            _ => false,
        });
        let entry = read.entry((kind, name)).or_insert((pos, true, false));
        entry.1 &= defaulted;
        entry.2 |= compared_with_unit;
        true
    });
    read.into_iter()
        .map(|(name, (pos, defaulted, guarded))| (name, (pos, defaulted || guarded)))
        .collect()
}

/// Warnings from what the rule reads and what its `MATCH` promises.
pub(super) fn warnings(
    ast: &AST,
    matchers: &Matchers,
    path: &Path,
    source: &str,
) -> Vec<RuleError> {
    let mut found = Vec::new();
    if matchers.match_everything() {
        found.push(RuleError::at_offset(
            path,
            source,
            super::error::const_position(source, "MATCH"),
            "warning: MATCH matches every alert (each of its matchers matches an absent label); pin at least an alertname".into(),
        ));
    }
    let mut unpinned: Vec<(Position, String)> = names_read(ast)
        .into_iter()
        .filter(|((kind, name), (_, defaulted))| {
            *kind == "labels" && !defaulted && !pinned(matchers, name)
        })
        .map(|((_, name), (pos, _))| (pos, name))
        .collect();
    unpinned.sort();
    for (pos, name) in unpinned {
        found.push(RuleError::at(
            path,
            source,
            pos,
            format!(
                "warning: event.labels.{name} is read, but MATCH does not require it and no `??` gives a default: \
                 an alert without it gives () here; add {name}=~\".+\" to MATCH or write `event.labels.{name} ?? \"...\"`"
            ),
        ));
    }
    found
}

/// Whether every event `matchers` select has label `name` (a matcher that an absent
/// label fails).
fn pinned(matchers: &Matchers, name: &str) -> bool {
    matchers
        .iter()
        .any(|m| m.name == name && !m.matches_value(""))
}

/// Trial runs answer every `recent()` with 0 and `firing()` with false.
impl RuleSet {
    /// Runs each rule's `plan()` on a firing and a resolved event built from its `MATCH`
    /// (every label it reads given a value) and returns the errors that are mistakes in
    /// the rule whatever the alert: an unknown function, a wrong type, a limit hit, a
    /// duration that does not parse. Errors that depend on a label's value (a number
    /// that does not parse) are left to the rule's tests.
    pub fn trial_errors(&self, now: DateTime<Utc>) -> Vec<RuleError> {
        let ctx = EvalContext {
            now,
            history: Arc::new(NoHistory),
        };
        let mut errors = Vec::new();
        for rule in self.rules() {
            for status in [Status::Firing, Status::Resolved] {
                let event = trial_event(rule, status, now);
                let dynamic = api::event_to_dynamic(&event);
                let Err(err) = api::run_plan(&self.engine, self.timeout, rule, dynamic, &ctx)
                else {
                    continue;
                };
                if matches!(*err, EvalAltResult::ErrorArithmetic(..)) {
                    continue;
                }
                let mut error = api::plan_error(rule, self.timeout, *err);
                error.message = format!(
                    "in a trial run ({} event): {}",
                    status.as_str(),
                    error.message
                );
                if !errors.contains(&error) {
                    errors.push(error);
                }
                break;
            }
        }
        errors
    }
}

/// An event `rule` matches as far as its `MATCH` says, with a value for every label and
/// annotation the rule reads.
fn trial_event(rule: &Rule, status: Status, now: DateTime<Utc>) -> Event {
    let mut labels = Labels::new();
    for m in rule.matchers.iter() {
        if let Some(value) = sample_value(m) {
            labels.insert(m.name.clone(), value);
        }
    }
    let mut annotations = Labels::new();
    for ((kind, name), _) in names_read(&rule.ast) {
        let into = if kind == "labels" {
            &mut labels
        } else {
            &mut annotations
        };
        into.entry(name).or_insert_with(|| "1".to_string());
    }
    Event {
        id: "trial".into(),
        source: "trial".into(),
        status,
        fingerprint: Fingerprint::of_labels(&labels),
        labels,
        annotations,
        starts_at: crate::model::earlier(now, std::time::Duration::from_secs(300)),
        ends_at: (status == Status::Resolved).then_some(now),
        generator_url: String::new(),
        received_at: now,
    }
}

/// A value `m` accepts, when one is easy to find: its own for `=`, the first
/// alternative of a regex of alternatives.
fn sample_value(m: &crate::alertmanager::Matcher) -> Option<String> {
    use crate::alertmanager::MatchOp;
    match m.op {
        MatchOp::Equal => Some(m.value.clone()),
        MatchOp::Regex => m
            .value
            .split('|')
            .map(|alt| {
                alt.trim_matches(|c| matches!(c, '^' | '$' | '(' | ')'))
                    .to_string()
            })
            .chain(["1".to_string()])
            .find(|candidate| m.matches_value(candidate)),
        MatchOp::NotEqual | MatchOp::NotRegex => None,
    }
}
