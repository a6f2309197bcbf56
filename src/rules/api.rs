//! The functions a rule can call. Constructors return plain values; queries only read.

use super::{EvalContext, Rule, RuleError};
use crate::alertmanager::Matchers;
use crate::event::Event;
use crate::model::rate::parse_duration;
use crate::model::{Action, Intent, K8sKind, Target};
use chrono::{Datelike, Timelike};
use rhai::{
    Array, CallFnOptions, Dynamic, Engine, EvalAltResult, ImmutableString, Map, NativeCallContext,
    Position, Scope,
};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

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
fn built_at_run_time(text: &str) -> bool {
    crate::template::has_template_syntax(text)
        && !TEMPLATES.with(|t| {
            t.borrow()
                .as_ref()
                .is_some_and(|literals| literals.iter().any(|l| l.as_str() == text))
        })
}

/// The longest `after()` delay: an action held longer than this is a schedule, not a remediation.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

const TIMEOUT_MARK: &str = "salve: rule time budget exceeded";

pub(super) fn build_engine() -> Engine {
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
    engine.set_max_operations(50_000_000);
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
    register(&mut engine);
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
    event: &Dynamic,
    ctx: &EvalContext,
) -> Result<Vec<Intent>, RuleError> {
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
        (event.clone(),),
    );
    DEADLINE.with(|d| d.set(None));
    TEMPLATES.with(|t| *t.borrow_mut() = None);
    let value = result.map_err(|err| {
        let pos = err.position();
        let message = match *err {
            EvalAltResult::ErrorTerminated(..) => format!(
                "plan() was cut off after {}: it ran past the rule time budget (a loop that never ends?)",
                crate::model::rate::format_duration(timeout)
            ),
            EvalAltResult::ErrorTooManyOperations(..) => "plan() was cut off: too many operations (a loop that never ends?)".to_string(),
            other => other.to_string(),
        };
        RuleError::at(&rule.path, rule.source(), pos, message)
    })?;
    intents_from(value)
        .map_err(|message| RuleError::at(&rule.path, rule.source(), Position::NONE, message))
}

fn intents_from(value: Dynamic) -> Result<Vec<Intent>, String> {
    if value.is_unit() {
        return Ok(Vec::new());
    }
    if value.is::<Intent>() {
        return Ok(vec![value.cast::<Intent>()]);
    }
    let type_name = value.type_name().to_string();
    let items: Array = value
        .try_cast::<Array>()
        .ok_or_else(|| format!("plan() must return an array of intents, not {type_name}"))?;
    let mut intents = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        if item.is_unit() {
            continue;
        }
        let item_type = item.type_name().to_string();
        let intent = item
            .try_cast::<Intent>()
            .ok_or_else(|| format!("plan() returned {item_type} at index {i}, where an intent (restart(...), notify(...), ...) belongs"))?;
        intents.push(intent);
    }
    Ok(intents)
}

fn error(message: String) -> Box<EvalAltResult> {
    message.into()
}

fn text(value: &Dynamic, function: &str, param: &str) -> Fallible<String> {
    match value.clone().into_immutable_string() {
        Ok(s) if !s.is_empty() => Ok(s.to_string()),
        Ok(_) => Err(error(format!("{function}: {param} is empty"))),
        Err(ty) => Err(error(format!(
            "{function}: {param} must be a string, got {ty} (a label the event does not have?)"
        ))),
    }
}

fn context(ctx: &NativeCallContext) -> Fallible<EvalContext> {
    ctx.tag()
        .and_then(|tag| tag.clone().try_cast::<EvalContext>())
        .ok_or_else(|| error("this function is only available inside plan()".into()))
}

fn target_of(value: &Dynamic, function: &str) -> Fallible<Target> {
    if let Some(t) = value.clone().try_cast::<Target>() {
        return Ok(t);
    }
    if let Ok(s) = value.clone().into_immutable_string() {
        return s
            .parse::<Target>()
            .map_err(|e| error(format!("{function}: {e}")));
    }
    Err(error(format!(
        "{function}: expected a target such as docker_container(\"web-1\"), got {}",
        value.type_name()
    )))
}

fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Target>("Target");
    engine.register_fn("to_string", |t: &mut Target| t.to_string());
    engine.register_fn("to_debug", |t: &mut Target| t.to_string());
    engine.register_type_with_name::<Intent>("Intent");
    engine.register_fn("to_string", |i: &mut Intent| {
        format!("{} {}", i.action, i.target)
    });
    engine.register_fn("to_debug", |i: &mut Intent| {
        format!("{} {}", i.action, i.target)
    });
    engine.register_get("action", |i: &mut Intent| i.action.as_str().to_string());
    engine.register_get("target", |i: &mut Intent| i.target.clone());

    // Targets.
    engine.register_fn("docker_container", |name: Dynamic| -> Fallible<Target> {
        Ok(Target::DockerContainer {
            name: text(&name, "docker_container", "name")?,
        })
    });
    engine.register_fn(
        "compose_service",
        |project: Dynamic, service: Dynamic| -> Fallible<Target> {
            Ok(Target::ComposeService {
                project: text(&project, "compose_service", "project")?,
                service: text(&service, "compose_service", "service")?,
            })
        },
    );
    engine.register_fn("swarm_service", |name: Dynamic| -> Fallible<Target> {
        Ok(Target::SwarmService {
            name: text(&name, "swarm_service", "name")?,
        })
    });
    for (function, kind) in [
        ("k8s_deployment", K8sKind::Deployment),
        ("k8s_statefulset", K8sKind::StatefulSet),
        ("k8s_daemonset", K8sKind::DaemonSet),
        ("k8s_pod", K8sKind::Pod),
    ] {
        engine.register_fn(
            function,
            move |ns: Dynamic, name: Dynamic| -> Fallible<Target> {
                Ok(Target::K8s {
                    namespace: text(&ns, function, "namespace")?,
                    kind,
                    name: text(&name, function, "name")?,
                })
            },
        );
    }

    // Intents on targets.
    for (function, action) in [
        ("restart", Action::Restart),
        ("stop", Action::Stop),
        ("start", Action::Start),
        ("kill", Action::Kill),
        ("rollback", Action::Rollback),
    ] {
        engine.register_fn(function, move |target: Dynamic| -> Fallible<Intent> {
            Ok(Intent::new(action, target_of(&target, function)?))
        });
    }
    engine.register_fn(
        "kill",
        |target: Dynamic, signal: Dynamic| -> Fallible<Intent> {
            Ok(Intent::new(Action::Kill, target_of(&target, "kill")?)
                .with("signal", text(&signal, "kill", "signal")?))
        },
    );
    engine.register_fn(
        "scale",
        |target: Dynamic, replicas: Dynamic| -> Fallible<Intent> {
            let target = target_of(&target, "scale")?;
            let replicas = if let Ok(n) = replicas.as_int() {
                if n < 0 {
                    return Err(error(format!(
                        "scale: replicas must not be negative, got {n}"
                    )));
                }
                serde_json::Value::from(n)
            } else {
                // Relative forms ("+1", "x2") are the executor's to resolve against the live count.
                let s = text(&replicas, "scale", "replicas")?;
                let valid = s
                    .strip_prefix('+')
                    .or_else(|| s.strip_prefix('-'))
                    .or_else(|| s.strip_prefix('x'));
                if valid.is_none_or(|n| n.parse::<u32>().is_err()) {
                    return Err(error(format!(
                        "scale: replicas must be a number, \"+N\", \"-N\" or \"xN\", got {s:?}"
                    )));
                }
                serde_json::Value::from(s)
            };
            Ok(Intent::new(Action::Scale, target).with("replicas", replicas))
        },
    );

    // Options on an intent, written as methods: restart(c).after("10s").timeout(5).
    engine.register_fn(
        "after",
        |intent: Intent, delay: ImmutableString| -> Fallible<Intent> {
            let d = parse_duration(&delay).map_err(|e| error(format!("after: {e}")))?;
            if d > MAX_DELAY {
                return Err(error(format!(
                    "after: {delay:?} is longer than the 15m salve will hold an action"
                )));
            }
            Ok(intent.with("delay_ms", d.as_millis() as u64))
        },
    );
    engine.register_fn(
        "timeout",
        |intent: Intent, seconds: i64| -> Fallible<Intent> {
            if !(0..=3600).contains(&seconds) {
                return Err(error(format!(
                    "timeout: {seconds} is not between 0 and 3600 seconds"
                )));
            }
            Ok(intent.with("timeout", seconds))
        },
    );
    engine.register_fn("all_at_once", |intent: Intent| {
        intent.with("all_at_once", true)
    });
    engine.register_fn(
        "bounds",
        |intent: Intent, min: i64, max: i64| -> Fallible<Intent> {
            if min < 0 || max < min {
                return Err(error(format!(
                    "bounds: need 0 <= min <= max, got {min} and {max}"
                )));
            }
            Ok(intent.with("min", min).with("max", max))
        },
    );

    // Named commands.
    engine.register_fn("exec", |name: Dynamic| -> Fallible<Intent> {
        Ok(Intent::new(
            Action::Exec,
            Target::Exec {
                name: text(&name, "exec", "name")?,
            },
        ))
    });
    engine.register_fn("exec", |name: Dynamic, args: Array| -> Fallible<Intent> {
        let args: Vec<serde_json::Value> = args
            .iter()
            .map(|a| serde_json::Value::from(a.to_string()))
            .collect();
        let intent = Intent::new(
            Action::Exec,
            Target::Exec {
                name: text(&name, "exec", "name")?,
            },
        );
        Ok(if args.is_empty() {
            intent
        } else {
            intent.with("args", args)
        })
    });

    // Notifications.
    let notify = |channel: &Dynamic,
                  function: &str,
                  via: Option<&str>,
                  subject: Option<&Dynamic>,
                  body: &Dynamic|
     -> Fallible<Intent> {
        let mut intent = Intent::new(
            Action::Notify,
            Target::Notify {
                channel: text(channel, function, "channel")?,
            },
        );
        if let Some(via) = via {
            intent = intent.with("via", via);
        }
        let mut verbatim = Vec::new();
        if let Some(subject) = subject {
            let subject = subject.to_string();
            if built_at_run_time(&subject) {
                verbatim.push("subject");
            }
            intent = intent.with("subject", subject);
        }
        if !body.is_unit() {
            let body = body.to_string();
            if built_at_run_time(&body) {
                verbatim.push("text");
            }
            intent = intent.with("text", body);
        }
        if !verbatim.is_empty() {
            intent = intent.with("verbatim", verbatim);
        }
        Ok(intent)
    };
    engine.register_fn("notify", move |channel: Dynamic, body: Dynamic| {
        notify(&channel, "notify", None, None, &body)
    });
    engine.register_fn("notify", move |channel: Dynamic| {
        notify(&channel, "notify", None, None, &Dynamic::UNIT)
    });
    engine.register_fn("slack", move |channel: Dynamic, body: Dynamic| {
        notify(&channel, "slack", Some("slack"), None, &body)
    });
    // Without text: the channel's `text` template, else a message built from the alert.
    engine.register_fn("slack", move |channel: Dynamic| {
        notify(&channel, "slack", Some("slack"), None, &Dynamic::UNIT)
    });
    engine.register_fn("email", move |channel: Dynamic| {
        notify(&channel, "email", Some("email"), None, &Dynamic::UNIT)
    });
    engine.register_fn("webhook", move |channel: Dynamic, body: Dynamic| {
        notify(&channel, "webhook", Some("webhook"), None, &body)
    });
    engine.register_fn("webhook", move |channel: Dynamic| {
        notify(&channel, "webhook", Some("webhook"), None, &Dynamic::UNIT)
    });
    engine.register_fn("email", move |channel: Dynamic, body: Dynamic| {
        notify(&channel, "email", Some("email"), None, &body)
    });
    engine.register_fn(
        "email",
        move |channel: Dynamic, subject: Dynamic, body: Dynamic| {
            notify(&channel, "email", Some("email"), Some(&subject), &body)
        },
    );

    // Read-only questions.
    engine.register_fn(
        "recent",
        |ctx: NativeCallContext,
         target: Dynamic,
         action: ImmutableString,
         window: ImmutableString|
         -> Fallible<i64> {
            let eval = context(&ctx)?;
            let target = target_of(&target, "recent")?;
            let action: Action = action
                .parse()
                .map_err(|e: String| error(format!("recent: {e}")))?;
            let window = parse_duration(&window).map_err(|e| error(format!("recent: {e}")))?;
            let window =
                chrono::Duration::from_std(window).map_err(|e| error(format!("recent: {e}")))?;
            Ok(eval
                .history
                .recent(&target, action, eval.now - window, eval.now) as i64)
        },
    );
    engine.register_fn(
        "firing",
        |ctx: NativeCallContext, matchers: ImmutableString| -> Fallible<bool> {
            let eval = context(&ctx)?;
            let matchers = Matchers::parse(&matchers).map_err(|e| error(format!("firing: {e}")))?;
            Ok(eval.history.firing(&matchers, eval.now))
        },
    );
    engine.register_fn(
        "now",
        |ctx: NativeCallContext, tz: ImmutableString| -> Fallible<Map> {
            let eval = context(&ctx)?;
            let zone: chrono_tz::Tz = tz
                .parse()
                .map_err(|_| error(format!("now: unknown time zone {tz:?}")))?;
            Ok(time_map(eval.now.with_timezone(&zone)))
        },
    );
    engine.register_fn("now", |ctx: NativeCallContext| -> Fallible<Map> {
        let eval = context(&ctx)?;
        Ok(time_map(eval.now.with_timezone(&chrono_tz::UTC)))
    });
}

fn time_map(t: chrono::DateTime<chrono_tz::Tz>) -> Map {
    let mut map = Map::new();
    map.insert("year".into(), i64::from(t.year()).into());
    map.insert("month".into(), i64::from(t.month()).into());
    map.insert("day".into(), i64::from(t.day()).into());
    map.insert("hour".into(), i64::from(t.hour()).into());
    map.insert("minute".into(), i64::from(t.minute()).into());
    map.insert("second".into(), i64::from(t.second()).into());
    map.insert(
        "weekday".into(),
        t.format("%A").to_string().to_lowercase().into(),
    );
    map.insert("iso".into(), t.to_rfc3339().into());
    map.insert("timestamp".into(), t.timestamp().into());
    map
}
