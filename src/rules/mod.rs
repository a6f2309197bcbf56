//! Rules: `.rhai` files that turn an event into intents. Pure; the engine acts.

mod api;
mod calls;
#[cfg(test)]
mod calls_tests;
mod checks;
mod error;
mod functions;
mod lint;
mod names;
mod templates;
#[cfg(test)]
mod tests;

pub use error::RuleError;
pub use names::Defined;

use crate::alertmanager::Matchers;
use crate::event::{Event, Labels};
use crate::model::{parse_duration, History, Intent, RateLimit};
use chrono::{DateTime, Utc};
use rhai::{Dynamic, Engine, AST};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a rule's `plan()` may see of the world besides its event.
#[derive(Clone)]
pub struct EvalContext {
    pub now: DateTime<Utc>,
    pub history: Arc<dyn History>,
}

/// A loaded, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub path: PathBuf,
    pub matchers: Matchers,
    pub limit: Option<RateLimit>,
    pub cooldown: Option<Duration>,
    pub mute: Vec<String>,
    pub dry_run: bool,
    /// What loads but looks wrong (`salve check` prints it, `serve` logs it).
    pub warnings: Vec<RuleError>,
    /// The line of the rule's first `.approval(...)`, which an approval request names.
    pub asks_at_line: Option<usize>,
    /// The string literals that are message templates: only these are rendered.
    templates: Option<Arc<[rhai::ImmutableString]>>,
    source: Arc<str>,
    ast: AST,
}

/// What one `plan()` may spend. Operations judge the rule: the same rule on the same
/// event spends the same whatever else the machine does, so only a rule that loops or
/// does far too much is cut off (and, again and again, quarantined). Wall-clock time is
/// a backstop, wide enough that a busy machine never reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleBudget {
    /// Rhai operations (`[engine] rule_max_operations`).
    pub operations: u64,
    /// Wall-clock time (`[engine] rule_timeout`).
    pub backstop: Duration,
}

impl RuleBudget {
    /// About 30 ms of one core on this kind of machine for a plain loop in a release
    /// build; a rule that reads labels and returns a few intents spends hundreds.
    pub const DEFAULT_OPERATIONS: u64 = 1_000_000;
    pub const DEFAULT_BACKSTOP: Duration = Duration::from_secs(1);
}

impl Default for RuleBudget {
    fn default() -> RuleBudget {
        RuleBudget {
            operations: RuleBudget::DEFAULT_OPERATIONS,
            backstop: RuleBudget::DEFAULT_BACKSTOP,
        }
    }
}

/// A wall-clock backstop with the default operations budget.
impl From<Duration> for RuleBudget {
    fn from(backstop: Duration) -> RuleBudget {
        RuleBudget {
            backstop,
            ..RuleBudget::default()
        }
    }
}

/// All rules of a folder, indexed by their equality matchers.
pub struct RuleSet {
    engine: Arc<Engine>,
    timeout: Duration,
    rules: Vec<Rule>,
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
    unindexed: Vec<usize>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// Loads every `*.rhai` in `dir`. All errors are collected, so one `salve check`
    /// shows every broken rule at once. A missing folder is an empty rule set.
    pub fn load_dir(
        dir: &Path,
        known_intervals: &HashSet<String>,
        budget: impl Into<RuleBudget>,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(vec![RuleError::io(dir, &e)]),
        };
        paths.sort();
        let mut sources = Vec::with_capacity(paths.len());
        let mut errors = Vec::new();
        for path in paths {
            match std::fs::read(&path).map(String::from_utf8) {
                Ok(Ok(text)) => sources.push((path, text)),
                Ok(Err(not_utf8)) => {
                    let at = not_utf8.utf8_error().valid_up_to();
                    let text = String::from_utf8_lossy(not_utf8.as_bytes()).into_owned();
                    let byte = not_utf8.as_bytes().get(at).copied().unwrap_or(0);
                    // The lossy text has the same bytes up to `at`.
                    errors.push(RuleError::at_offset(
                        &path,
                        &text,
                        Some(at),
                        format!("byte 0x{byte:02x} is not UTF-8: a rule is UTF-8 text"),
                    ));
                }
                Err(e) => errors.push(RuleError::io(&path, &e)),
            }
        }
        match RuleSet::from_sources(sources, known_intervals, budget) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }

    pub fn from_sources(
        sources: Vec<(PathBuf, String)>,
        known_intervals: &HashSet<String>,
        budget: impl Into<RuleBudget>,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let RuleBudget {
            operations,
            backstop: timeout,
        } = budget.into();
        let engine = Arc::new(api::build_engine(operations));
        let mut rules = Vec::with_capacity(sources.len());
        let mut errors = Vec::new();
        for (path, text) in sources {
            match compile_rule(&engine, timeout, &path, text, known_intervals) {
                Ok(rule) => rules.push(rule),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Names are file stems of one folder, so unique: an in-place sort needs no buffer.
        rules.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut by_label: HashMap<String, HashMap<String, Vec<usize>>> = HashMap::new();
        let mut unindexed = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match rule.matchers.index_key() {
                Some((name, value)) => by_label
                    .entry(name.to_string())
                    .or_default()
                    .entry(value.to_string())
                    .or_default()
                    .push(i),
                None => unindexed.push(i),
            }
        }
        Ok(RuleSet {
            engine,
            timeout,
            rules,
            by_label,
            unindexed,
        })
    }

    pub fn empty() -> RuleSet {
        RuleSet {
            engine: Arc::new(api::build_engine(RuleBudget::DEFAULT_OPERATIONS)),
            timeout: RuleBudget::DEFAULT_BACKSTOP,
            rules: Vec::new(),
            by_label: HashMap::new(),
            unindexed: Vec::new(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Every rule's warnings, in rule order.
    pub fn warnings(&self) -> impl Iterator<Item = &RuleError> {
        self.rules.iter().flat_map(|r| r.warnings.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// Rules whose matchers select these labels, in file-name order. Only rules
    /// indexed under one of the labels' values, plus those with no equality matcher,
    /// are checked at all, so the cost follows the matches, not the rule count.
    pub fn matching(&self, labels: &Labels) -> Vec<&Rule> {
        let mut candidates: Vec<usize> = self.unindexed.clone();
        for (name, value) in labels {
            if let Some(ids) = self.by_label.get(name).and_then(|values| values.get(value)) {
                candidates.extend_from_slice(ids);
            }
        }
        candidates.sort_unstable();
        candidates
            .into_iter()
            .map(|i| &self.rules[i])
            .filter(|rule| rule.matchers.matches(labels))
            .collect()
    }

    /// Whether any rule selects these labels: `matching` without building the list,
    /// for the intake's question "is there anything to decide?".
    pub fn matches_any(&self, labels: &Labels) -> bool {
        let indexed = labels.iter().flat_map(|(name, value)| {
            self.by_label
                .get(name)
                .and_then(|values| values.get(value))
                .into_iter()
                .flatten()
        });
        self.unindexed
            .iter()
            .chain(indexed)
            .any(|i| self.rules[*i].matchers.matches(labels))
    }

    /// Runs `rule`'s `plan(event)`. Errors (including a time-out) are the rule's, never salve's.
    pub fn evaluate(
        &self,
        rule: &Rule,
        event: &Event,
        ctx: &EvalContext,
    ) -> Result<Vec<Intent>, RuleError> {
        self.evaluate_prepared(rule, ScriptEvent::of(event), ctx)
    }

    /// `evaluate` with the event already in the scripts' form, which the call takes.
    pub fn evaluate_prepared(
        &self,
        rule: &Rule,
        event: ScriptEvent,
        ctx: &EvalContext,
    ) -> Result<Vec<Intent>, RuleError> {
        api::call_plan(&self.engine, self.timeout, rule, event.0, ctx)
    }
}

/// An event as rules see it: one for each `plan()` call, which takes it (so no rule
/// sees what another did to it). Building one costs about what copying one did, and
/// it is dropped where the rule ran, not on the thread that decides.
pub struct ScriptEvent(Dynamic);

impl ScriptEvent {
    pub fn of(event: &Event) -> ScriptEvent {
        ScriptEvent(api::event_to_dynamic(event))
    }
}

fn compile_rule(
    engine: &Engine,
    timeout: Duration,
    path: &Path,
    text: String,
    known_intervals: &HashSet<String>,
) -> Result<Rule, RuleError> {
    let source: Arc<str> = Arc::from(text);
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut ast = engine
        .compile(&*source)
        .map_err(|e| RuleError::at(path, &source, e.position(), e.to_string()))?;

    api::run_top_level(engine, timeout, &ast)
        .map_err(|e| RuleError::at(path, &source, e.position(), e.to_string()))?;
    if let Some(error) = checks::static_error(&ast, path, &source) {
        return Err(error);
    }
    let templates = templates::check(&ast, path, &source)?;
    let mut warnings = lint::warnings(&ast, path, &source);

    let constants = Constants::of(&ast, path, &source);
    let matchers = constants.matchers()?;
    let limit = constants
        .string("LIMIT")?
        .map(|l| RateLimit::parse(&l).map_err(|e| constants.at("LIMIT", format!("LIMIT: {e}"))))
        .transpose()?;
    let cooldown = constants
        .string("COOLDOWN")?
        .map(|c| parse_duration(&c).map_err(|e| constants.at("COOLDOWN", format!("COOLDOWN: {e}"))))
        .transpose()?;
    let dry_run = constants.dry_run()?;
    let mute = constants.mute(known_intervals)?;
    let mut asks_at_line = None;
    calls::each_call(&ast, &mut |call| {
        if call.name == "approval" {
            asks_at_line = call.pos.line();
        }
        asks_at_line.is_none()
    });

    warnings.extend(checks::warnings(&ast, &matchers, path, &source));
    check_plan(&ast, path, &source)?;

    // plan() is called without the top level (eval_ast(false)), whose constants were
    // read above: the rule keeps only its functions.
    ast.clear_statements();
    Ok(Rule {
        name,
        path: path.to_path_buf(),
        matchers,
        limit,
        cooldown,
        mute,
        dry_run,
        warnings,
        asks_at_line,
        templates,
        source,
        ast,
    })
}

/// A rule's top-level constants (`MATCH`, `LIMIT`, `COOLDOWN`, `MUTE`, `DRY_RUN`), read
/// with errors that point at their declaration.
struct Constants<'a> {
    values: HashMap<String, Dynamic>,
    path: &'a Path,
    source: &'a str,
}

impl<'a> Constants<'a> {
    fn of(ast: &rhai::AST, path: &'a Path, source: &'a str) -> Constants<'a> {
        let values = ast
            .iter_literal_variables(true, false)
            .map(|(n, _, v)| (n.to_string(), v))
            .collect();
        Constants {
            values,
            path,
            source,
        }
    }

    /// Where `name` is declared, if it is.
    fn declared(&self, name: &str) -> Option<usize> {
        error::const_position(self.source, name)
    }

    /// An error at the declaration of `name`.
    fn at(&self, name: &str, message: String) -> RuleError {
        RuleError::at_offset(self.path, self.source, self.declared(name), message)
    }

    /// The literal string `key` holds, if the rule declares it.
    fn string(&self, key: &str) -> Result<Option<String>, RuleError> {
        match self.values.get(key) {
            None if self.declared(key).is_some() => {
                Err(self.at(key, format!("{key} must be a literal string")))
            }
            None => Ok(None),
            Some(v) => v
                .clone()
                .into_string()
                .map(Some)
                .map_err(|ty| self.at(key, format!("{key} must be a string, not {ty}"))),
        }
    }

    /// `MATCH`, which every rule has; an error points at the column within it.
    fn matchers(&self) -> Result<Matchers, RuleError> {
        let match_text = self.string("MATCH")?.ok_or_else(|| {
            RuleError::at_offset(
                self.path,
                self.source,
                None,
                "a rule needs `const MATCH = \"...\";` (Alertmanager matchers)".to_string(),
            )
        })?;
        Matchers::parse(&match_text).map_err(|e| {
            let char_offset = match_text
                .char_indices()
                .nth(e.column.saturating_sub(1))
                .map(|(i, _)| i)
                .unwrap_or(0);
            let offset = self.declared("MATCH").and_then(|o| {
                self.source[o..]
                    .find(&match_text)
                    .map(|p| o + p + char_offset)
            });
            RuleError::at_offset(
                self.path,
                self.source,
                offset,
                format!("MATCH: {}", e.message),
            )
        })
    }

    fn dry_run(&self) -> Result<bool, RuleError> {
        let not_a_bool = || self.at("DRY_RUN", "DRY_RUN must be true or false".into());
        match self.values.get("DRY_RUN") {
            None if self.declared("DRY_RUN").is_some() => Err(not_a_bool()),
            None => Ok(false),
            Some(v) => v.as_bool().map_err(|_| not_a_bool()),
        }
    }

    /// `MUTE`: names of time intervals, each of which the config must define.
    fn mute(&self, known_intervals: &HashSet<String>) -> Result<Vec<String>, RuleError> {
        let items = match self.values.get("MUTE") {
            None if self.declared("MUTE").is_some() => {
                return Err(self.at(
                    "MUTE",
                    "MUTE must be a literal array of time interval names".into(),
                ))
            }
            None => return Ok(Vec::new()),
            Some(v) => v
                .clone()
                .into_typed_array::<rhai::ImmutableString>()
                .map_err(|_| {
                    self.at(
                        "MUTE",
                        "MUTE must be an array of strings, e.g. [\"weekly-maintenance\"]".into(),
                    )
                })?,
        };
        let mut names = Vec::with_capacity(items.len());
        for item in items {
            if !known_intervals.contains(item.as_str()) {
                let mut known: Vec<&String> = known_intervals.iter().collect();
                known.sort();
                return Err(self.at(
                    "MUTE",
                    format!("MUTE names time interval {item:?}, which the config does not define (defined: {known:?})"),
                ));
            }
            names.push(item.to_string());
        }
        Ok(names)
    }
}

/// A rule has `fn plan(event)`, of one parameter.
fn check_plan(ast: &rhai::AST, path: &Path, source: &str) -> Result<(), RuleError> {
    match ast.iter_functions().find(|f| f.name == "plan") {
        Some(f) if f.params.len() == 1 => Ok(()),
        Some(f) => Err(RuleError::at_offset(
            path,
            source,
            error::fn_position(source, "plan"),
            format!(
                "plan must take exactly one parameter (the event), not {}",
                f.params.len()
            ),
        )),
        None => Err(RuleError::at_offset(
            path,
            source,
            None,
            "a rule needs `fn plan(event) { ... }` returning an array of intents".into(),
        )),
    }
}

impl Rule {
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl RuleSet {
    /// A rule set holding just the named rule, sharing the engine (for `salve test`).
    pub fn only(&self, name: &str) -> Option<RuleSet> {
        let rule = self.get(name)?.clone();
        let unindexed = vec![0];
        Some(RuleSet {
            engine: self.engine.clone(),
            timeout: self.timeout,
            rules: vec![rule],
            by_label: HashMap::new(),
            unindexed,
        })
    }
}
