//! The functions a rule can call, as documented Rhai modules. Constructors return plain
//! values (targets, intents); questions only read. Which functions act and which tell
//! people is known from these modules alone: the status lint and the template check ask
//! them rather than keeping lists of their own.

use super::EvalContext;
use crate::alertmanager::Matchers;
use crate::model::{parse_duration, Action, Intent, K8sKind, Target};
use chrono::{Datelike, Timelike};
use rhai::plugin::*;
use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, NativeCallContext};
use std::sync::OnceLock;
use std::time::Duration;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// The longest `after()` delay: an action held longer than this is a schedule, not a remediation.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// Every module of the rule API, for the engine to register.
pub(super) fn all() -> [Module; 6] {
    [
        exported_module!(values),
        exported_module!(targets),
        exported_module!(acting),
        exported_module!(options),
        exported_module!(telling),
        exported_module!(questions),
    ]
}

/// The names of the functions whose intents change something.
pub(super) fn acting_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| names(&exported_module!(acting)))
}

/// The names of the functions whose intents tell people (channel first, then texts).
pub(super) fn telling_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| names(&exported_module!(telling)))
}

fn names(module: &Module) -> Vec<String> {
    let mut names: Vec<String> = module
        .gen_fn_signatures_with_mapper(|t| t.into())
        .filter_map(|signature| signature.split('(').next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A literal argument a rule function refuses, as the function and `salve check` say it.
#[derive(Debug, thiserror::Error)]
pub(super) enum ArgumentError {
    #[error("after: {0}")]
    Delay(#[source] crate::model::rate::ParseError),
    #[error("after: {0:?} is longer than the 15m salve will hold an action")]
    DelayTooLong(String),
    #[error("recent: {0}")]
    Window(#[source] crate::model::rate::ParseError),
    #[error("firing: {0}")]
    Matchers(#[source] crate::alertmanager::matcher::MatcherError),
    #[error("now: unknown time zone {0:?}")]
    Zone(String),
    #[error("approval: {0}")]
    ApprovalTtl(#[source] crate::model::rate::ParseError),
    #[error("approval: {0:?} is not between 1s and 24h")]
    ApprovalTtlRange(String),
    #[error("systemd_unit: {0:?} has no type: write the unit's full name, like \"{0}.service\"")]
    UnitWithoutType(String),
}

/// A unit's name as `systemd_unit()` and `salve check` judge it: with its type.
pub(super) fn unit_name(text: &str) -> Result<(), ArgumentError> {
    if text.contains('.') {
        Ok(())
    } else {
        Err(ArgumentError::UnitWithoutType(text.to_string()))
    }
}

/// The time to live of `.approval(group, text)`, as the function and `salve check` judge it.
pub(super) fn approval_ttl(text: &str) -> Result<Duration, ArgumentError> {
    let d = parse_duration(text).map_err(ArgumentError::ApprovalTtl)?;
    if d < Duration::from_secs(1) || d > crate::model::MAX_APPROVAL_TTL {
        return Err(ArgumentError::ApprovalTtlRange(text.to_string()));
    }
    Ok(d)
}

/// The delay of `.after(text)`, as the function and `salve check` judge it.
pub(super) fn delay(text: &str) -> Result<Duration, ArgumentError> {
    let d = parse_duration(text).map_err(ArgumentError::Delay)?;
    if d > MAX_DELAY {
        return Err(ArgumentError::DelayTooLong(text.to_string()));
    }
    Ok(d)
}

/// Where `recent()`'s window `text` starts, counted back from `now`, as the function and
/// `salve check` judge it: a window that reaches past the calendar is an error, not a
/// panic.
pub(super) fn window_start(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, ArgumentError> {
    let d = parse_duration(text).map_err(ArgumentError::Window)?;
    // parse_duration refuses more than 100y, and `earlier` saturates besides.
    Ok(crate::model::earlier(now, d))
}

fn matchers(text: &str) -> Result<Matchers, ArgumentError> {
    Matchers::parse(text).map_err(ArgumentError::Matchers)
}

fn zone(text: &str) -> Result<chrono_tz::Tz, ArgumentError> {
    text.parse()
        .map_err(|_| ArgumentError::Zone(text.to_string()))
}

/// What is wrong with `text` written as argument `index` (0 first) of `function`, judged
/// as the function will judge it when the line runs, so that `salve check` says it
/// before an alert does.
pub(super) fn literal_mistake(function: &str, index: usize, text: &str) -> Option<String> {
    match (function, index) {
        ("recent", 1) => text.parse::<Action>().err().map(|e| format!("recent: {e}")),
        ("recent", 2) => window_start(text, chrono::Utc::now()).err().map(mistake),
        ("after", 1) => delay(text).err().map(mistake),
        ("approval", 2) => approval_ttl(text).err().map(mistake),
        ("firing", 0) => matchers(text).err().map(mistake),
        ("now", 0) => zone(text).err().map(mistake),
        ("systemd_unit", 0) => unit_name(text).err().map(mistake),
        _ => None,
    }
}

/// The message `salve check` lists for an argument the function would refuse.
fn mistake(e: ArgumentError) -> String {
    e.to_string()
}

fn error(message: impl std::fmt::Display) -> Box<EvalAltResult> {
    message.to_string().into()
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
        .ok_or_else(|| error("this function is only available inside plan()"))
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

fn k8s(kind: K8sKind, function: &str, ns: &Dynamic, name: &Dynamic) -> Fallible<Target> {
    Ok(Target::K8s {
        namespace: text(ns, function, "namespace")?,
        kind,
        name: text(name, function, "name")?,
    })
}

fn on(action: Action, function: &str, target: &Dynamic) -> Fallible<Intent> {
    Ok(Intent::new(action, target_of(target, function)?))
}

fn exec_intent(name: &Dynamic) -> Fallible<Intent> {
    Ok(Intent::new(
        Action::Exec,
        Target::Exec {
            name: text(name, "exec", "name")?,
        },
    ))
}

/// A notify intent. Texts written in the rule are templates; text put together at run
/// time is marked `verbatim` and sent as it is.
fn tell(
    channel: &Dynamic,
    function: &str,
    via: Option<&str>,
    subject: Option<&Dynamic>,
    body: &Dynamic,
) -> Fallible<Intent> {
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
        if super::api::built_at_run_time(&subject) {
            verbatim.push("subject");
        }
        intent = intent.with("subject", subject);
    }
    if !body.is_unit() {
        let body = body.to_string();
        if super::api::built_at_run_time(&body) {
            verbatim.push("text");
        }
        intent = intent.with("text", body);
    }
    if !verbatim.is_empty() {
        intent = intent.with("verbatim", verbatim);
    }
    Ok(intent)
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

/// How targets and intents print and what a rule can read of an intent.
// The plugin macro borrows a `&mut` argument through an unwrap of its own making.
#[allow(clippy::unwrap_used)]
#[export_module]
mod values {
    #[rhai_fn(name = "to_string", name = "to_debug")]
    pub fn target_text(target: &mut Target) -> String {
        target.to_string()
    }

    #[rhai_fn(name = "to_string", name = "to_debug")]
    pub fn intent_text(intent: &mut Intent) -> String {
        format!("{} {}", intent.action, intent.target)
    }

    /// The intent's action: `"restart"`, `"notify"`, ...
    #[rhai_fn(get = "action")]
    pub fn action(intent: &mut Intent) -> String {
        intent.action.as_str().to_string()
    }

    /// The target the intent acts on.
    #[rhai_fn(get = "target")]
    pub fn target(intent: &mut Intent) -> Target {
        intent.target.clone()
    }
}

/// What an action is taken on.
#[export_module]
mod targets {
    /// A Docker container by name: `docker_container(event.labels.container)`.
    #[rhai_fn(return_raw)]
    pub fn docker_container(name: Dynamic) -> Fallible<Target> {
        Ok(Target::DockerContainer {
            name: text(&name, "docker_container", "name")?,
        })
    }

    /// A service of a Compose project: every container of it, one at a time.
    #[rhai_fn(return_raw)]
    pub fn compose_service(project: Dynamic, service: Dynamic) -> Fallible<Target> {
        Ok(Target::ComposeService {
            project: text(&project, "compose_service", "project")?,
            service: text(&service, "compose_service", "service")?,
        })
    }

    /// A Docker Swarm service by name.
    #[rhai_fn(return_raw)]
    pub fn swarm_service(name: Dynamic) -> Fallible<Target> {
        Ok(Target::SwarmService {
            name: text(&name, "swarm_service", "name")?,
        })
    }

    /// A Kubernetes Deployment: `k8s_deployment(namespace, name)`.
    #[rhai_fn(return_raw)]
    pub fn k8s_deployment(ns: Dynamic, name: Dynamic) -> Fallible<Target> {
        k8s(K8sKind::Deployment, "k8s_deployment", &ns, &name)
    }

    /// A Kubernetes StatefulSet: `k8s_statefulset(namespace, name)`.
    #[rhai_fn(return_raw)]
    pub fn k8s_statefulset(ns: Dynamic, name: Dynamic) -> Fallible<Target> {
        k8s(K8sKind::StatefulSet, "k8s_statefulset", &ns, &name)
    }

    /// A Kubernetes DaemonSet: `k8s_daemonset(namespace, name)`.
    #[rhai_fn(return_raw)]
    pub fn k8s_daemonset(ns: Dynamic, name: Dynamic) -> Fallible<Target> {
        k8s(K8sKind::DaemonSet, "k8s_daemonset", &ns, &name)
    }

    /// A Kubernetes pod: `k8s_pod(namespace, name)`; its restart is an eviction.
    #[rhai_fn(return_raw)]
    pub fn k8s_pod(ns: Dynamic, name: Dynamic) -> Fallible<Target> {
        k8s(K8sKind::Pod, "k8s_pod", &ns, &name)
    }

    /// A systemd unit by its full name: `systemd_unit("nginx.service")`. salve acts on
    /// it only when `[systemd] units` names it.
    #[rhai_fn(return_raw)]
    pub fn systemd_unit(name: Dynamic) -> Fallible<Target> {
        let name = text(&name, "systemd_unit", "name")?;
        unit_name(&name).map_err(error)?;
        Ok(Target::SystemdUnit { name })
    }
}

/// Intents that change something. A rule that returns one should read `event.status`.
#[export_module]
mod acting {
    /// Restart the target (a Kubernetes workload: `kubectl rollout restart`).
    #[rhai_fn(return_raw)]
    pub fn restart(target: Dynamic) -> Fallible<Intent> {
        on(Action::Restart, "restart", &target)
    }

    /// Stop the target.
    #[rhai_fn(return_raw)]
    pub fn stop(target: Dynamic) -> Fallible<Intent> {
        on(Action::Stop, "stop", &target)
    }

    /// Start the target.
    #[rhai_fn(return_raw)]
    pub fn start(target: Dynamic) -> Fallible<Intent> {
        on(Action::Start, "start", &target)
    }

    /// Kill the target (SIGKILL).
    #[rhai_fn(return_raw)]
    pub fn kill(target: Dynamic) -> Fallible<Intent> {
        on(Action::Kill, "kill", &target)
    }

    /// Kill the target with a signal: `kill(c, "SIGHUP")`.
    #[rhai_fn(name = "kill", return_raw)]
    pub fn kill_with(target: Dynamic, signal: Dynamic) -> Fallible<Intent> {
        Ok(on(Action::Kill, "kill", &target)?.with("signal", text(&signal, "kill", "signal")?))
    }

    /// Reload a systemd unit (its `ExecReload`); `.or_restart()` restarts one that has none.
    #[rhai_fn(return_raw)]
    pub fn reload(target: Dynamic) -> Fallible<Intent> {
        on(Action::Reload, "reload", &target)
    }

    /// Clear a systemd unit's failed state and its restart counter (`systemctl reset-failed`).
    #[rhai_fn(return_raw)]
    pub fn reset_failed(target: Dynamic) -> Fallible<Intent> {
        on(Action::ResetFailed, "reset_failed", &target)
    }

    /// Roll the target back to its previous revision (`kubectl rollout undo`).
    #[rhai_fn(return_raw)]
    pub fn rollback(target: Dynamic) -> Fallible<Intent> {
        on(Action::Rollback, "rollback", &target)
    }

    /// Scale to a count, or relative to the live count: `"+1"`, `"-1"`, `"x2"`.
    #[rhai_fn(return_raw)]
    pub fn scale(target: Dynamic, replicas: Dynamic) -> Fallible<Intent> {
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
    }

    /// Run the named command of `[exec.NAME]`.
    #[rhai_fn(return_raw)]
    pub fn exec(name: Dynamic) -> Fallible<Intent> {
        exec_intent(&name)
    }

    /// Run the named command with arguments appended to its argv.
    #[rhai_fn(name = "exec", return_raw)]
    pub fn exec_with(name: Dynamic, args: Array) -> Fallible<Intent> {
        let args: Vec<serde_json::Value> = args
            .iter()
            .map(|a| serde_json::Value::from(a.to_string()))
            .collect();
        let intent = exec_intent(&name)?;
        Ok(if args.is_empty() {
            intent
        } else {
            intent.with("args", args)
        })
    }
}

/// Options on an intent, written as methods: `restart(c).after("10s").timeout(5)`.
#[export_module]
mod options {
    /// A `reload()` of a unit that cannot reload restarts it instead (systemd's
    /// `ReloadOrRestartUnit`, `systemctl reload-or-restart`).
    #[rhai_fn(return_raw)]
    pub fn or_restart(intent: Intent) -> Fallible<Intent> {
        if intent.action != Action::Reload {
            return Err(error(format!(
                "or_restart: only a reload() can fall back to a restart, not {}",
                intent.action
            )));
        }
        Ok(intent.with("or_restart", true))
    }

    /// Wait this long before acting (at most 15m); the decision is recorded first.
    #[rhai_fn(return_raw)]
    pub fn after(intent: Intent, delay: ImmutableString) -> Fallible<Intent> {
        let d = super::delay(&delay).map_err(error)?;
        Ok(intent.with_delay(d))
    }

    /// Ask a person of `[approvals.GROUP]` first; act only on their yes, decided again
    /// by policy at that moment. The request expires into "no" after the group's `ttl`.
    #[rhai_fn(name = "approval", return_raw)]
    pub fn approval(intent: Intent, group: ImmutableString) -> Fallible<Intent> {
        if group.is_empty() {
            return Err(error("approval: the group is empty"));
        }
        Ok(intent.with_approval(&group, None))
    }

    /// As `approval(group)`, expiring after `ttl` (1s to 24h) instead of the group's.
    #[rhai_fn(name = "approval", return_raw)]
    pub fn approval_for(
        intent: Intent,
        group: ImmutableString,
        ttl: ImmutableString,
    ) -> Fallible<Intent> {
        if group.is_empty() {
            return Err(error("approval: the group is empty"));
        }
        let ttl = super::approval_ttl(&ttl).map_err(error)?;
        Ok(intent.with_approval(&group, Some(ttl)))
    }

    /// Seconds to wait: Docker's stop timeout, Kubernetes' and systemd's verification
    /// (0 skips it).
    #[rhai_fn(return_raw)]
    pub fn timeout(intent: Intent, seconds: i64) -> Fallible<Intent> {
        if !(0..=3600).contains(&seconds) {
            return Err(error(format!(
                "timeout: {seconds} is not between 0 and 3600 seconds"
            )));
        }
        Ok(intent.with("timeout", seconds))
    }

    /// Act on every container of a Compose service at once, not one at a time.
    pub fn all_at_once(intent: Intent) -> Intent {
        intent.with("all_at_once", true)
    }

    /// Keep a scale within `[min, max]` (narrowing the config's bounds, never widening).
    #[rhai_fn(return_raw)]
    pub fn bounds(intent: Intent, min: i64, max: i64) -> Fallible<Intent> {
        if min < 0 || max < min {
            return Err(error(format!(
                "bounds: need 0 <= min <= max, got {min} and {max}"
            )));
        }
        Ok(intent.with("min", min).with("max", max))
    }
}

/// Intents that tell people through a `[notify.NAME]` channel: the channel first, then
/// the texts, which are message templates when written in the rule.
#[export_module]
mod telling {
    /// The channel's own message (its `text` template, else one built from the alert).
    #[rhai_fn(name = "notify", return_raw)]
    pub fn notify_default(channel: Dynamic) -> Fallible<Intent> {
        tell(&channel, "notify", None, None, &Dynamic::UNIT)
    }

    /// A message in the channel's own form.
    #[rhai_fn(return_raw)]
    pub fn notify(channel: Dynamic, body: Dynamic) -> Fallible<Intent> {
        tell(&channel, "notify", None, None, &body)
    }

    /// Slack, with the channel's own message.
    #[rhai_fn(name = "slack", return_raw)]
    pub fn slack_default(channel: Dynamic) -> Fallible<Intent> {
        tell(&channel, "slack", Some("slack"), None, &Dynamic::UNIT)
    }

    /// Slack, with this text.
    #[rhai_fn(return_raw)]
    pub fn slack(channel: Dynamic, body: Dynamic) -> Fallible<Intent> {
        tell(&channel, "slack", Some("slack"), None, &body)
    }

    /// A webhook document with the channel's own text.
    #[rhai_fn(name = "webhook", return_raw)]
    pub fn webhook_default(channel: Dynamic) -> Fallible<Intent> {
        tell(&channel, "webhook", Some("webhook"), None, &Dynamic::UNIT)
    }

    /// A webhook document with this text.
    #[rhai_fn(return_raw)]
    pub fn webhook(channel: Dynamic, body: Dynamic) -> Fallible<Intent> {
        tell(&channel, "webhook", Some("webhook"), None, &body)
    }

    /// An email with the channel's own subject and text.
    #[rhai_fn(name = "email", return_raw)]
    pub fn email_default(channel: Dynamic) -> Fallible<Intent> {
        tell(&channel, "email", Some("email"), None, &Dynamic::UNIT)
    }

    /// An email with this text.
    #[rhai_fn(return_raw)]
    pub fn email(channel: Dynamic, body: Dynamic) -> Fallible<Intent> {
        tell(&channel, "email", Some("email"), None, &body)
    }

    /// An email with this subject and text.
    #[rhai_fn(name = "email", return_raw)]
    pub fn email_with_subject(
        channel: Dynamic,
        subject: Dynamic,
        body: Dynamic,
    ) -> Fallible<Intent> {
        tell(&channel, "email", Some("email"), Some(&subject), &body)
    }
}

/// Read-only questions about the world while a rule plans.
#[export_module]
mod questions {
    /// How often `action` ran on `target` within `window` (`"15m"`), as of the
    /// notification's arrival: `recent(c, "restart", "1h")`.
    #[rhai_fn(return_raw)]
    pub fn recent(
        ctx: NativeCallContext,
        target: Dynamic,
        action: ImmutableString,
        window: ImmutableString,
    ) -> Fallible<i64> {
        let eval = context(&ctx)?;
        let target = target_of(&target, "recent")?;
        let action: Action = action
            .parse()
            .map_err(|e: crate::model::UnknownAction| error(format!("recent: {e}")))?;
        let since = super::window_start(&window, eval.now).map_err(error)?;
        Ok(eval.history.recent(&target, action, since, eval.now) as i64)
    }

    /// Whether an alert matching these Alertmanager matchers is firing.
    #[rhai_fn(return_raw)]
    pub fn firing(ctx: NativeCallContext, matchers: ImmutableString) -> Fallible<bool> {
        let eval = context(&ctx)?;
        let matchers = super::matchers(&matchers).map_err(error)?;
        Ok(eval.history.firing(&matchers, eval.now))
    }

    /// The time in a zone (`"Europe/Berlin"`): year, month, day, hour, minute, second,
    /// weekday, iso, timestamp.
    #[rhai_fn(name = "now", return_raw)]
    pub fn now_in(ctx: NativeCallContext, tz: ImmutableString) -> Fallible<Map> {
        let eval = context(&ctx)?;
        let zone = super::zone(&tz).map_err(error)?;
        Ok(time_map(eval.now.with_timezone(&zone)))
    }

    /// The time in UTC.
    #[rhai_fn(return_raw)]
    pub fn now(ctx: NativeCallContext) -> Fallible<Map> {
        let eval = context(&ctx)?;
        Ok(time_map(eval.now.with_timezone(&chrono_tz::UTC)))
    }
}
