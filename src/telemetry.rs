//! OpenTelemetry traces, one per alert: a root span when an event is accepted, and as
//! its children each rule run, each verdict (an approval asked with it), the answer to
//! an approval, each action to its outcome. Off unless `[tracing] otlp_endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_*ENDPOINT` variables name a collector; then spans are posted as
//! OTLP/HTTP protobuf by a batch exporter on the tokio runtime.
//!
//! Work for one alert crosses tasks (intake, the decide loop, an executor), so the
//! root's context is kept here in memory, keyed by the event's id, for the children to
//! name their parent; never in the trail or a checkpoint. Off, every function here
//! returns at one relaxed atomic load: the hot path does nothing more.

use crate::event::Event;
use crate::model::Decision;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::trace::SdkTracerProvider;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span salve makes for traces; `logging` enables it whatever
/// `RUST_LOG` says, so a quiet log does not silence the traces.
pub(crate) const TARGET: &str = "salve::trace";

static ON: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static ALERTS: Mutex<Alerts> = Mutex::new(Alerts {
    contexts: None,
    order: VecDeque::new(),
});

/// The root contexts of alerts still being worked on. Bounded: the oldest goes first,
/// so an alert held back past `MAX_ALERTS` newer ones starts a trace of its own.
struct Alerts {
    contexts: Option<HashMap<String, Context>>,
    order: VecDeque<String>,
}

const MAX_ALERTS: usize = 65_536;

fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether traces are asked for: the config's endpoint, or the SDK's own variables
/// (`OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none` turn them off).
fn wanted(endpoint: Option<&str>) -> bool {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return false;
    }
    endpoint.is_some()
        || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
}

/// Builds the exporter and its tracer when traces are wanted; must run inside the
/// tokio runtime, whose tasks the batch exporter uses.
pub(crate) fn tracer(
    endpoint: Option<&str>,
) -> Result<Option<opentelemetry_sdk::trace::Tracer>, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    if !wanted(endpoint) {
        return Ok(None);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter.build().map_err(|e| e.to_string())?;
    let batch =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !service_named_by_environment() {
        resource = resource.with_service_name("salve");
    }
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("salve");
    let _ = PROVIDER.set(provider);
    ALERTS.lock().contexts = Some(HashMap::new());
    ON.store(true, Ordering::Relaxed);
    Ok(Some(tracer))
}

/// `OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`: the SDK's
/// names, which win over salve's default.
fn service_named_by_environment() -> bool {
    std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|pair| pair.split('=').next().map(str::trim) == Some("service.name"))
        })
}

/// Sends what is still batched and stops the exporter, within `limit`: at a stop.
pub(crate) async fn flush(limit: Duration) {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    ON.store(false, Ordering::Relaxed);
    // The SDK blocks the calling thread until its exporter task answers.
    let shutdown = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(limit));
    match tokio::time::timeout(limit, shutdown).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "traces not all sent at the stop"),
        _ => tracing::warn!("traces not all sent at the stop: the collector did not answer"),
    }
}

/// The trace id as OTLP and log pipelines write it: 32 hex digits.
fn hex_id(cx: &Context) -> String {
    cx.span().span_context().trace_id().to_string()
}

/// Starts the trace of an accepted event: its root span, which ends at once; what
/// follows for the alert names it as parent.
pub(crate) fn accepted(event: &Event) {
    if !on() {
        return;
    }
    let span = tracing::info_span!(target: TARGET, "alert accepted",
        salve.event_id = %event.id, salve.fingerprint = %event.fingerprint,
        salve.source = %event.source, trace_id = tracing::field::Empty);
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    span.record("trace_id", hex_id(&cx));
    remember(&event.id, cx);
}

/// Keeps `cx` under `key` (an event's id, or the id of a decision that asked for an
/// approval) for the spans that follow; the oldest key goes past `MAX_ALERTS`.
fn remember(key: &str, cx: Context) {
    let mut alerts = ALERTS.lock();
    let alerts = &mut *alerts;
    let Some(contexts) = alerts.contexts.as_mut() else {
        return;
    };
    if contexts.insert(key.to_string(), cx).is_none() {
        alerts.order.push_back(key.to_string());
    }
    while alerts.order.len() > MAX_ALERTS {
        if let Some(oldest) = alerts.order.pop_front() {
            contexts.remove(&oldest);
        }
    }
}

fn context_of(event_id: &str) -> Option<Context> {
    ALERTS.lock().contexts.as_ref()?.get(event_id).cloned()
}

/// The trace id of the alert behind `event_id`, for its records.
pub(crate) fn trace_id(event_id: &str) -> Option<String> {
    if !on() {
        return None;
    }
    context_of(event_id).map(|cx| hex_id(&cx))
}

/// A child of the alert's root span; `Span::none()` when traces are off or the alert
/// has none (accepted before the start, or long forgotten).
fn child(event_id: &str, make: impl FnOnce(&str) -> Span) -> Span {
    if !on() {
        return Span::none();
    }
    let Some(cx) = context_of(event_id) else {
        return Span::none();
    };
    let span = make(&hex_id(&cx));
    let _ = span.set_parent(cx);
    span
}

/// One rule's run for one event.
pub(crate) fn rule_run(event_id: &str, rule: &str) -> Span {
    child(
        event_id,
        |trace_id| tracing::info_span!(target: TARGET, "rule", salve.rule = %rule, trace_id = %trace_id),
    )
}

/// The policy's verdict on one intent; with an approval asked, a span for that too.
pub(crate) fn verdict(decision: &Decision) {
    use crate::model::{Reason, Verdict};
    let verdict = match decision.decision {
        Verdict::Execute => "execute",
        Verdict::Suppress => "suppress",
    };
    let span = child(&decision.event_id, |trace_id| {
        tracing::info_span!(target: TARGET, "policy",
            salve.rule = %decision.rule, salve.target = %decision.target,
            salve.action = %decision.action, salve.verdict = verdict,
            salve.reason = tracing::field::Empty, salve.decision_id = %decision.id,
            trace_id = %trace_id)
    });
    if span.is_none() {
        return;
    }
    if let Some(reason) = decision.reason {
        span.record("salve.reason", reason.as_str());
    }
    if decision.reason == Some(Reason::AwaitingApproval) {
        let _asked = span.in_scope(|| {
            tracing::info_span!(target: TARGET, "approval asked",
                salve.rule = %decision.rule, salve.target = %decision.target)
        });
        // The answer comes later, from a person, and names the decision that asked.
        if let Some(cx) = context_of(&decision.event_id) {
            remember(&decision.id, cx);
        }
    }
}

/// The answer to an approval that the decision `asked_by` asked for: a span in the
/// alert's trace, beside the policy span that asked. `via` says how it came (`api`,
/// `slack`, `link`, `console`; `salve` when it expired or its alert resolved).
pub(crate) fn approval_answered(asked_by: &str, approval_id: &str, state: &str, via: &str) {
    let _answered = child(asked_by, |trace_id| {
        tracing::info_span!(target: TARGET, "approval answered",
            salve.approval_id = %approval_id, salve.approval_state = %state,
            salve.answered_via = %via, trace_id = %trace_id)
    });
}

/// An action's execution; its outcome is recorded on it with [`outcome`].
pub(crate) fn action(decision: &Decision) -> Span {
    child(&decision.event_id, |trace_id| {
        tracing::info_span!(target: TARGET, "action",
            salve.rule = %decision.rule, salve.target = %decision.target,
            salve.action = %decision.action, salve.outcome = tracing::field::Empty,
            trace_id = %trace_id)
    })
}

/// What came of the action `span` is about.
pub(crate) fn outcome(span: &Span, outcome: &str) {
    if !span.is_none() {
        span.record("salve.outcome", outcome);
    }
}
