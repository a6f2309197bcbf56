//! The endpoints behind the API's authentication.

use super::{ApiError, JsonBody};
use crate::audit::{AuditFilter, RecordKind, TrailPosition};
use crate::engine::Engine;
use crate::event::{parse_alertmanager, parse_native, parse_payload, Event, PayloadError};
use crate::ingest::Intake;
use crate::model::{format_duration, parse_duration, MaintenanceWindow, NewMaintenanceWindow};
use crate::replay::Assume;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type Shared = State<Arc<Engine>>;

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    Ok(query.map(|Query(q)| q)?)
}

/// `since` as a duration back from now.
fn since_duration(text: &str) -> Result<std::time::Duration, ApiError> {
    parse_duration(text).map_err(|source| ApiError::BadDuration {
        field: "since",
        source,
    })
}

async fn accept(intake: &Arc<dyn Intake>, events: Vec<Event>) -> Result<Json<Value>, ApiError> {
    let count = events.len();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    // On a task of its own, so that a client that gives up cannot cut the recording
    // short between the disk and the queue: what is on disk is decided now.
    let intake = intake.clone();
    tokio::spawn(async move { intake.accept(events).await }).await??;
    Ok(Json(
        json!({ "status": "accepted", "events": count, "ids": ids }),
    ))
}

pub(super) async fn receive_alertmanager(
    State(intake): State<Arc<dyn Intake>>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let events = parse_alertmanager(&body.0, intake.now()).map_err(|e| native_hint(e, &body.0))?;
    accept(&intake, events).await
}

/// A native event sent to the Alertmanager endpoint fails on a field it never has
/// (`status`, `alerts`); the message then says where such a body belongs. The status
/// and `detail` stay those of the shape error.
fn native_hint(err: PayloadError, body: &[u8]) -> PayloadError {
    let PayloadError::Shape { path, message } = err else {
        return err;
    };
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    let first = match &value {
        Value::Array(items) => items.first(),
        other => Some(other),
    };
    let native = first.is_some_and(|v| v.get("labels").is_some() && v.get("alerts").is_none());
    let message = if native {
        format!(
            "{message}; this looks like a native event (labels at the top level, no alerts): \
             post it to /api/v1/events"
        )
    } else {
        message
    };
    PayloadError::Shape { path, message }
}

pub(super) async fn receive_events(
    State(intake): State<Arc<dyn Intake>>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let events = parse_native(&body.0, intake.now())?;
    accept(&intake, events).await
}

#[derive(Debug, Deserialize)]
pub(super) struct PlanQuery {
    at: Option<DateTime<Utc>>,
    dry_run: Option<bool>,
}

pub(super) async fn plan_payload(
    State(engine): Shared,
    plan_query: Result<Query<PlanQuery>, QueryRejection>,
    body: Result<JsonBody, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let plan_query = query(plan_query)?;
    let body = body?;
    let at = plan_query.at.unwrap_or_else(|| engine.now());
    let events = parse_payload(&body.0, at)?;
    let evaluation = engine.plan(&events, at, plan_query.dry_run);
    Ok(Json(plan_json(&evaluation)))
}

/// A plan as `POST /api/v1/plan` answers it (and the console shows it).
pub(super) fn plan_json(evaluation: &crate::engine::Evaluation) -> Value {
    let errors: Vec<Value> = evaluation
        .rule_errors
        .iter()
        .map(|(rule, e)| json!({ "rule": rule, "error": e.short() }))
        .collect();
    json!({ "decisions": evaluation.decisions, "rule_errors": errors })
}

pub(super) async fn list_rules(State(engine): Shared) -> Json<Value> {
    Json(Value::Array(rules_json(&engine)))
}

/// The loaded rules as `GET /api/v1/rules` lists them (and the console's rules page).
pub(super) fn rules_json(engine: &Engine) -> Vec<Value> {
    let runtime = engine.runtime();
    let quarantined = engine.quarantined();
    runtime
        .rules
        .rules()
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "file": r.path.display().to_string(),
                "match": r.matchers.to_string(),
                "limit": r.limit.map(|l| l.to_string()),
                "cooldown": r.cooldown.map(format_duration),
                "mute": r.mute,
                "dry_run": r.dry_run,
                "quarantined_until": quarantined.get(&r.name).map(|t| t.to_rfc3339()),
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    since: Option<String>,
    rule: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    fingerprint: Option<String>,
    limit: Option<usize>,
    max_bytes: Option<usize>,
    before: Option<String>,
}

/// Audit pages by default: what a browser and `jq` take in without trouble.
const AUDIT_LIMIT: usize = 1000;
const AUDIT_MAX_BYTES: usize = 4 << 20;

pub(super) fn cursor_text(position: TrailPosition) -> String {
    format!("{}-{}", position.inode, position.offset)
}

pub(super) fn parse_cursor(text: &str) -> Option<TrailPosition> {
    let (inode, offset) = text.split_once('-')?;
    Some(TrailPosition {
        inode: inode.parse().ok()?,
        offset: offset.parse().ok()?,
    })
}

/// A record kind as `?kind=` names it, or a 400 naming every kind.
pub(super) fn audit_kind(text: &str) -> Result<RecordKind, ApiError> {
    text.parse::<RecordKind>()
        .map_err(|e| ApiError::unaccepted("kind", format!("kind: {e}"), RecordKind::names()))
}

pub(super) async fn read_audit(
    State(engine): Shared,
    audit_query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let audit_query = query(audit_query)?;
    let since = match &audit_query.since {
        None => None,
        Some(s) => Some(crate::model::earlier(engine.now(), since_duration(s)?)),
    };
    let kind = audit_query.kind.as_deref().map(audit_kind).transpose()?;
    let filter = AuditFilter {
        since,
        rule: audit_query.rule,
        target: audit_query.target,
        kind,
        fingerprint: audit_query.fingerprint,
        also: None,
    };
    let limit = audit_query.limit.unwrap_or(AUDIT_LIMIT).max(1);
    let max_bytes = audit_query.max_bytes.unwrap_or(AUDIT_MAX_BYTES).max(1);
    let before = match &audit_query.before {
        None => None,
        Some(text) => Some(parse_cursor(text).ok_or_else(|| ApiError::BadCursor(text.clone()))?),
    };
    let page = engine
        .audit_records(filter, limit, max_bytes, before)
        .await?;
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        page.json_array(),
    )
        .into_response();
    if let Some(older) = page.older {
        if let Ok(value) = cursor_text(older).parse() {
            response.headers_mut().insert("x-salve-older", value);
        }
    }
    Ok(response)
}

/// `GET /api/v1/state`: breakers, cooldowns, limits and budgets with when each clears,
/// quarantined rules, approvals waiting, the lead and the mode.
pub(super) async fn state(State(engine): Shared) -> Json<crate::engine::StateView> {
    Json(engine.state_view())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetRequest {
    target: crate::model::Target,
    what: String,
    reason: String,
}

/// `POST /api/v1/state/reset` (`admin`): closes a target's breakers, clears its
/// cooldowns or lets its rule limits count afresh, by hand, recorded with who and why.
pub(super) async fn reset_state(
    State(engine): Shared,
    axum::Extension(caller): axum::Extension<super::Caller>,
    body: JsonBody,
) -> Result<Json<crate::engine::StateView>, ApiError> {
    let request: ResetRequest = body.parse()?;
    if !crate::engine::RESETTABLE.contains(&request.what.as_str()) {
        return Err(ApiError::unaccepted(
            "what",
            format!(
                "what: {:?} cannot be reset (one of {})",
                request.what,
                crate::engine::RESETTABLE.join(", ")
            ),
            crate::engine::RESETTABLE,
        ));
    }
    if request.reason.trim().is_empty() {
        return Err(ApiError::Shape {
            field: "reason".into(),
            message: "say why: the trail keeps it".into(),
        });
    }
    engine
        .reset_state(request.target, request.what, request.reason, caller.name)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(Json(engine.state_view()))
}

pub(super) async fn list_windows(State(engine): Shared) -> Json<Vec<MaintenanceWindow>> {
    Json(engine.windows())
}

pub(super) async fn create_window(
    State(engine): Shared,
    body: JsonBody,
) -> Result<(StatusCode, Json<MaintenanceWindow>), ApiError> {
    let new: NewMaintenanceWindow = body.parse()?;
    let window = engine.create_window(new).await?;
    Ok((StatusCode::CREATED, Json(window)))
}

#[derive(Debug, Deserialize)]
pub(super) struct DeleteQuery {
    id: Option<String>,
    deleted_by: Option<String>,
}

pub(super) async fn delete_window_query(
    State(engine): Shared,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let id = query.id.ok_or(ApiError::NoWindowNamed)?;
    engine.delete_window(id, query.deleted_by).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete_window(
    State(engine): Shared,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    engine.delete_window(id, query.deleted_by).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn reload(State(engine): Shared) -> Result<Json<Value>, ApiError> {
    let reloaded = engine.reload().await?;
    Ok(Json(json!({
        "status": "reloaded",
        "rules": reloaded.rules,
        "restart_required": reloaded.restart_required,
        "probes": reloaded.probes,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    since: Option<String>,
}

/// `salve report` over HTTP: the probes' figures and remediation per target.
pub(super) async fn report(
    State(engine): Shared,
    report_query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<crate::report::Report>, ApiError> {
    let report_query = query(report_query)?;
    let window = report_query.since.as_deref().unwrap_or("24h");
    let d = since_duration(window)?;
    let until = engine.now();
    let since = crate::model::earlier(until, d);
    let trail = engine.trail_reader();
    let dir = engine.data_dir().to_path_buf();
    let report =
        tokio::task::spawn_blocking(move || crate::report::report(&trail, &dir, since, until))
            .await??;
    Ok(Json(report))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayRequest {
    /// A duration back from now (default `24h`) or an RFC 3339 time.
    since: Option<String>,
    until: Option<DateTime<Utc>>,
    /// `ok` (default) or `failed`.
    #[serde(default)]
    assume: Assume,
    /// `recorded` (default), `approved` or `denied`.
    #[serde(default)]
    approvals: crate::replay::Answers,
    /// `true`: what would live have done, as `salve replay --dry-run`.
    #[serde(default)]
    dry_run: bool,
}

/// `salve replay` over HTTP, with the rules and config as they are loaded.
pub(super) async fn replay(
    State(engine): Shared,
    body: JsonBody,
) -> Result<Json<crate::replay::Replay>, ApiError> {
    let request: ReplayRequest = body.parse().map_err(|e| match &e {
        // A choice among names, answered as a bad `?kind=` is (and as `assume` was
        // before it was typed): 400 with what it accepts, not 422 like a wrong shape.
        ApiError::Shape { field, .. } if field == "assume" => {
            ApiError::unaccepted("assume", e.to_string(), Assume::names())
        }
        ApiError::Shape { field, .. } if field == "approvals" => {
            ApiError::unaccepted("approvals", e.to_string(), crate::replay::Answers::names())
        }
        _ => e,
    })?;
    let now = engine.now();
    let window = request.since.as_deref().unwrap_or("24h");
    let since = crate::model::time_or_ago(window, now).map_err(|source| ApiError::BadDuration {
        field: "since",
        source,
    })?;
    let until = request.until.unwrap_or(now);
    let mode = if request.dry_run {
        crate::replay::Mode::Live
    } else {
        crate::replay::Mode::AsRecorded
    };
    let runtime = engine.runtime();
    let trail = engine.trail_reader();
    let replay = tokio::task::spawn_blocking(move || {
        crate::replay::replay(
            &trail,
            &runtime,
            since,
            until,
            request.assume,
            request.approvals,
            mode,
        )
    })
    .await??;
    Ok(Json(replay))
}
