//! The rule engine: one hardened Rhai engine with the rule API registered, the event as
//! scripts see it, and `plan()` called within its time budget.

use super::{EvalContext, Rule, RuleError};
use crate::event::Event;
use crate::model::{Intent, Target};
use rhai::{Array, CallFnOptions, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Scope};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    /// When the `plan()` running on this thread must stop. Per thread, because the
    /// engine is shared and `on_progress` has no per-call state.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The template literals of the rule whose `plan()` runs on this thread: text equal
    /// to one was written in the rule; any other text was put together at run time.
    static TEMPLATES: RefCell<Option<Arc<[ImmutableString]>>> = const { RefCell::new(None) };
}

/// Whether `text` would be read as template code without having been written as one
/// in the rule (a label value with `{{` pasted into a message): then it is sent as is.
pub(super) fn built_at_run_time(text: &str) -> bool {
    crate::template::has_template_syntax(text)
        && !TEMPLATES.with(|t| {
            t.borrow()
                .as_ref()
                .is_some_and(|literals| literals.iter().any(|l| l.as_str() == text))
        })
}

const TIMEOUT_MARK: &str = "salve: rule time budget exceeded";

pub(super) fn build_engine(max_operations: u64) -> Engine {
    let mut engine = Engine::new();
    // Rules are pure: no `import` (it would read files), no `eval`, output only to our log.
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.set_strict_variables(true);
    engine.set_max_call_levels(32);
    engine.set_max_expr_depths(64, 32);
    engine.set_max_string_size(64 * 1024);
    engine.set_max_array_size(10_000);
    engine.set_max_map_size(10_000);
    engine.set_max_operations(max_operations.max(1));
    engine.set_max_variables(1_000);
    engine.on_print(|text| tracing::info!(target: "salve::rule", "{text}"));
    engine.on_debug(
        |text, source, pos| tracing::debug!(target: "salve::rule", ?source, %pos, "{text}"),
    );
    engine.on_progress(|ops| {
        if ops % 512 != 0 {
            return None;
        }
        let expired = DEADLINE.with(|d| d.get().is_some_and(|deadline| Instant::now() >= deadline));
        expired.then(|| Dynamic::from(TIMEOUT_MARK))
    });
    engine.register_type_with_name::<Target>("Target");
    engine.register_type_with_name::<Intent>("Intent");
    for module in super::functions::all() {
        engine.register_global_module(module.into());
    }
    engine
}

/// Runs a rule's top-level statements once, at load: `import` (refused by the module
/// resolver) and errors outside `plan()` surface here rather than never.
pub(super) fn run_top_level(
    engine: &Engine,
    timeout: Duration,
    ast: &rhai::AST,
) -> Result<(), Box<EvalAltResult>> {
    DEADLINE.with(|d| d.set(Some(Instant::now() + timeout)));
    let result = engine.run_ast(ast);
    DEADLINE.with(|d| d.set(None));
    result
}

pub(super) fn event_to_dynamic(event: &Event) -> Dynamic {
    let to_map = |labels: &crate::event::Labels| -> Dynamic {
        let map: Map = labels
            .iter()
            .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
            .collect();
        Dynamic::from_map(map)
    };
    let mut map = Map::new();
    map.insert("id".into(), event.id.clone().into());
    map.insert("source".into(), event.source.clone().into());
    map.insert("status".into(), event.status.as_str().into());
    map.insert("labels".into(), to_map(&event.labels));
    map.insert("annotations".into(), to_map(&event.annotations));
    map.insert("fingerprint".into(), event.fingerprint.0.clone().into());
    map.insert("starts_at".into(), event.starts_at.to_rfc3339().into());
    map.insert(
        "ends_at".into(),
        event
            .ends_at
            .map(|t| Dynamic::from(t.to_rfc3339()))
            .unwrap_or(Dynamic::UNIT),
    );
    map.insert("generator_url".into(), event.generator_url.clone().into());
    Dynamic::from_map(map)
}

pub(super) fn call_plan(
    engine: &Engine,
    timeout: Duration,
    rule: &Rule,
    event: Dynamic,
    ctx: &EvalContext,
) -> Result<Vec<Intent>, RuleError> {
    let value = run_plan(engine, timeout, rule, event, ctx)
        .map_err(|err| plan_error(rule, timeout, *err))?;
    intents_from(value).map_err(|e| {
        let at = super::error::fn_position(rule.source(), "plan");
        RuleError::at_offset(&rule.path, rule.source(), at, e.to_string())
    })
}

/// `plan(event)` within the time budget, its error as Rhai gives it.
pub(super) fn run_plan(
    engine: &Engine,
    timeout: Duration,
    rule: &Rule,
    event: Dynamic,
    ctx: &EvalContext,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let options = CallFnOptions::new()
        .eval_ast(false)
        .rewind_scope(true)
        .with_tag(ctx.clone());
    DEADLINE.with(|d| d.set(Some(Instant::now() + timeout)));
    TEMPLATES.with(|t| *t.borrow_mut() = rule.templates.clone());
    let result = engine.call_fn_with_options::<Dynamic>(
        options,
        &mut Scope::new(),
        &rule.ast,
        "plan",
        (event,),
    );
    DEADLINE.with(|d| d.set(None));
    TEMPLATES.with(|t| *t.borrow_mut() = None);
    result
}

/// A failed `plan()` as the rule's error, at its position.
pub(super) fn plan_error(rule: &Rule, timeout: Duration, err: EvalAltResult) -> RuleError {
    let err = innermost(err);
    let pos = err.position();
    let cut_off = matches!(
        err,
        EvalAltResult::ErrorTerminated(..)
            | EvalAltResult::ErrorTooManyOperations(..)
            | EvalAltResult::ErrorDataTooLarge(..)
            | EvalAltResult::ErrorStackOverflow(..)
    );
    let message = match err {
        EvalAltResult::ErrorTerminated(..) => format!(
            "plan() was cut off after {}: it ran past the rule time budget (a loop that never ends?)",
            crate::model::rate::format_duration(timeout)
        ),
        EvalAltResult::ErrorTooManyOperations(..) => {
            "plan() was cut off: too many operations (a loop that never ends?)".to_string()
        }
        EvalAltResult::ErrorStackOverflow(..) => {
            "plan() was cut off: calls nested more than 32 deep (a function that calls itself without end?)".to_string()
        }
        // The rule API's own errors say what is wrong; "Runtime error: " adds nothing.
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        EvalAltResult::ErrorFunctionNotFound(signature, _) => {
            super::checks::not_found(&rule.ast, &signature)
        }
        other => other.to_string(),
    };
    if pos.is_none() {
        // Limits hit inside the engine (stack, sizes) may carry no position: point at plan.
        let at = super::error::fn_position(rule.source(), "plan");
        return RuleError::at_offset(&rule.path, rule.source(), at, message).cut_off(cut_off);
    }
    RuleError::at(&rule.path, rule.source(), pos, message).cut_off(cut_off)
}

/// The error a closure or function raised, where it raised it: Rhai wraps it in "in
/// closure call" at the call, or at no position at all when a native function (`map`,
/// `filter`) made the call.
fn innermost(err: EvalAltResult) -> EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, pos) => {
            let mut inner = innermost(*inner);
            if inner.position().is_none() {
                inner.set_position(pos);
            }
            inner
        }
        other => other,
    }
}

/// What `plan()` returned that is not intents.
#[derive(Debug, thiserror::Error)]
enum NotIntents {
    #[error("plan() must return an array of intents, not {0}")]
    NotAnArray(String),
    #[error("plan() returned {item_type} at index {index}, where an intent (restart(...), notify(...), ...) belongs")]
    NotAnIntent { item_type: String, index: usize },
}

fn intents_from(value: Dynamic) -> Result<Vec<Intent>, NotIntents> {
    if value.is_unit() {
        return Ok(Vec::new());
    }
    if value.is::<Intent>() {
        return Ok(vec![value.cast::<Intent>()]);
    }
    let type_name = value.type_name().to_string();
    let items: Array = value
        .try_cast::<Array>()
        .ok_or(NotIntents::NotAnArray(type_name))?;
    let mut intents = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if item.is_unit() {
            continue;
        }
        let item_type = item.type_name().to_string();
        let intent = item.try_cast::<Intent>().ok_or(NotIntents::NotAnIntent {
            item_type,
            index: i,
        })?;
        intents.push(intent);
    }
    Ok(intents)
}
