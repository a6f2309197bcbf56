//! The console's forms: each checked for its CSRF token (`Checked`), done through the
//! same engine method as its API endpoint, and answered with a redirect back to the
//! page it came from (or with the page showing what went wrong).

use super::session::Checked;
use super::{back_to, pages, refusal, render, Ui};
use crate::engine::{Answer, Engine};
use crate::model::{Actor, NewMaintenanceWindow};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDateTime, Utc};
use minijinja::{context, Value};
use serde::Deserialize;
use std::sync::Arc;

type Shared = State<Arc<Engine>>;

#[derive(Debug, Deserialize)]
pub(super) struct AnswerForm {
    #[serde(default)]
    comment: String,
    back: Option<String>,
}

pub(super) async fn approve(
    engine: Shared,
    ui: Extension<Ui>,
    id: Path<String>,
    form: Checked<AnswerForm>,
) -> Response {
    answer(engine, ui, id, form, true).await
}

pub(super) async fn deny(
    engine: Shared,
    ui: Extension<Ui>,
    id: Path<String>,
    form: Checked<AnswerForm>,
) -> Response {
    answer(engine, ui, id, form, false).await
}

/// An approver's answer, as the API takes it (`via` is `console`; the group's
/// `identities` name who may answer).
async fn answer(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Path(id): Path<String>,
    Checked(form): Checked<AnswerForm>,
    approve: bool,
) -> Response {
    let answer = Answer {
        approve,
        actor: Actor {
            via: "console".into(),
            id: ui.caller.name.clone(),
            name: ui.caller.name.clone(),
        },
        team: None,
        comment: form.comment,
    };
    match engine.answer_approval(&id, answer).await {
        Ok(_) => back_to(form.back.as_deref(), "/ui/approvals"),
        Err(e) => refusal(
            crate::api::error::approval_status(&e),
            Some(&ui),
            "Answer not taken",
            &e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct PlanForm {
    payload: String,
}

/// `POST /ui/rules/plan`: what the rules would ask for this payload, and what the
/// policy would say now. Nothing is recorded or done.
pub(super) async fn plan(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Checked(form): Checked<PlanForm>,
) -> Response {
    let now = engine.now();
    let (plan, problem) = match crate::event::parse_payload(form.payload.as_bytes(), now) {
        Ok(events) => {
            let evaluation = engine.plan(&events, now, None);
            (Some(crate::api::handlers::plan_json(&evaluation)), None)
        }
        Err(e) => (None, Some(format!("The payload: {e}"))),
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let data = context! {
        ..pages::rules_data(&engine).await,
        ..context! { payload => form.payload, plan => Value::from_serialize(&plan), problem }
    };
    render::page(status, Some(&ui), "rules.html", "rules", data)
}

#[derive(Debug, Deserialize)]
pub(super) struct ResetForm {
    target: String,
    what: String,
    #[serde(default)]
    reason: String,
}

/// `POST /ui/state/reset` (admin): as `POST /api/v1/state/reset`.
pub(super) async fn reset(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Checked(form): Checked<ResetForm>,
) -> Response {
    if form.reason.trim().is_empty() {
        return refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&ui),
            "Say why",
            "A reset needs a reason: the trail keeps it beside your name.",
        );
    }
    let target = match form.target.parse::<crate::model::Target>() {
        Ok(target) => target,
        Err(e) => {
            return refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&ui),
                "No such target",
                &e.to_string(),
            )
        }
    };
    if !crate::engine::RESETTABLE.contains(&form.what.as_str()) {
        let message = format!(
            "{:?} cannot be reset (one of {}).",
            form.what,
            crate::engine::RESETTABLE.join(", ")
        );
        return refusal(StatusCode::BAD_REQUEST, Some(&ui), "Not reset", &message);
    }
    match engine
        .reset_state(target, form.what, form.reason, ui.caller.name.clone())
        .await
    {
        Ok(()) => back_to(None, "/ui/state"),
        Err(e) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&ui),
            "Not reset",
            &e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct WindowForm {
    #[serde(default)]
    matchers: String,
    #[serde(default)]
    all: Option<String>,
    #[serde(default)]
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    comment: String,
}

/// A time as a person types it: RFC 3339, `2026-12-07T15:00` (UTC, as a browser's
/// `datetime-local` sends it), or a duration ahead of now (`2h`).
fn ahead(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = text.parse::<DateTime<Utc>>() {
        return Ok(at);
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    crate::model::parse_duration(text.trim_start_matches('+'))
        .map(|d| crate::model::later(now, d))
        .map_err(|_| {
            format!(
                "{text:?} is neither a time (2026-12-07T15:00, UTC) nor a duration from now (2h)"
            )
        })
}

/// `POST /ui/maintenance` (admin): a new window, as `POST /api/v1/maintenance`.
pub(super) async fn create_window(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Checked(form): Checked<WindowForm>,
) -> Response {
    let now = engine.now();
    let refused = |message: String| {
        refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&ui),
            "Window not made",
            &message,
        )
    };
    let ends_at = match ahead(&form.ends_at, now) {
        Ok(at) => at,
        Err(e) => return refused(format!("Ends: {e}.")),
    };
    let starts_at = match form.starts_at.trim() {
        "" => None,
        text => match ahead(text, now) {
            Ok(at) => Some(at),
            Err(e) => return refused(format!("Starts: {e}.")),
        },
    };
    let matchers = match form.matchers.trim() {
        "" => None,
        text => match text.parse::<crate::alertmanager::Matchers>() {
            Ok(m) => Some(m),
            Err(e) => return refused(format!("Matchers: {e}.")),
        },
    };
    let new = NewMaintenanceWindow {
        matchers,
        all: form.all.is_some(),
        starts_at,
        ends_at,
        created_by: ui.caller.name.clone(),
        comment: form.comment,
    };
    match engine.create_window(new).await {
        Ok(_) => back_to(None, "/ui/maintenance"),
        Err(e) => refused(e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct MatchersQuery {
    #[serde(default)]
    matchers: String,
}

/// `GET /ui/maintenance/check?matchers=...`: whether the matchers read, for the form
/// to say so as they are typed.
pub(super) async fn check_matchers(Query(query): Query<MatchersQuery>) -> Response {
    let answer = match query.matchers.trim() {
        "" => {
            serde_json::json!({ "ok": false, "error": "no matchers: only \"all\" mutes every alert" })
        }
        text => match text.parse::<crate::alertmanager::Matchers>() {
            Ok(m) => serde_json::json!({ "ok": true, "matchers": m.to_string() }),
            Err(e) => serde_json::json!({ "ok": false, "error": e.to_string() }),
        },
    };
    Json(answer).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct Nothing {}

/// `POST /ui/maintenance/{id}/end` (admin): the window ends now.
pub(super) async fn end_window(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Path(id): Path<String>,
    Checked(_): Checked<Nothing>,
) -> Response {
    match engine.delete_window(id, Some(ui.caller.name.clone())).await {
        Ok(()) => back_to(None, "/ui/maintenance"),
        Err(e) => refusal(
            StatusCode::NOT_FOUND,
            Some(&ui),
            "Window not ended",
            &e.to_string(),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplayForm {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    rules_dir: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    assume: String,
    #[serde(default)]
    approvals: String,
    #[serde(default)]
    dry_run: Option<String>,
}

/// `POST /ui/replay` (admin): the window replayed with the rules in force, a folder of
/// rules, or one pasted rule; the differences from what was recorded.
pub(super) async fn replay(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Checked(form): Checked<ReplayForm>,
) -> Response {
    let outcome = replayed(&engine, &form).await;
    let (result, problem) = match outcome {
        Ok(result) => (Some(result), None),
        Err(e) => (None, Some(e)),
    };
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let data = context! {
        since => form.since, until => form.until, rule => form.rule, rules_dir => form.rules_dir,
        fingerprint => form.fingerprint, assume => form.assume, approvals => form.approvals,
        dry_run => form.dry_run.is_some(),
        result => Value::from_serialize(&result), problem,
    };
    render::page(status, Some(&ui), "replay.html", "replay", data)
}

async fn replayed(engine: &Engine, form: &ReplayForm) -> Result<serde_json::Value, String> {
    let now = engine.now();
    let since = match form.since.trim() {
        "" => crate::model::earlier(now, std::time::Duration::from_secs(86_400)),
        text => pages::moment(text, now).map_err(|e| format!("Since: {e}"))?,
    };
    let until = match form.until.trim() {
        "" => now,
        text => text
            .parse::<DateTime<Utc>>()
            .map_err(|e| format!("Until: {e}"))?,
    };
    let assume = match form.assume.trim() {
        "" => crate::replay::Assume::default(),
        text => text.parse().map_err(|e| format!("Assume: {e}"))?,
    };
    let answers = match form.approvals.trim() {
        "" => crate::replay::Answers::default(),
        text => text.parse().map_err(|e| format!("Approvals: {e}"))?,
    };
    let mode = if form.dry_run.is_some() {
        crate::replay::Mode::Live
    } else {
        crate::replay::Mode::AsRecorded
    };
    let in_force = engine.runtime();
    let pasted = (!form.rule.trim().is_empty()).then(|| form.rule.clone());
    let folder = form.rules_dir.trim().to_string();
    let trail = engine.trail_reader();
    let fingerprint = form.fingerprint.trim().to_string();
    let replay = tokio::task::spawn_blocking(move || -> Result<crate::replay::Replay, String> {
        let scratch;
        let runtime = if let Some(rule) = pasted {
            scratch = tempfile::Builder::new()
                .prefix("salve-console-replay")
                .tempdir()
                .map_err(|e| format!("a folder for the pasted rule: {e}"))?;
            std::fs::write(scratch.path().join("pasted.rhai"), rule)
                .map_err(|e| format!("the pasted rule: {e}"))?;
            Arc::new(
                in_force
                    .with_rules_from(scratch.path())
                    .map_err(|e| e.to_string())?,
            )
        } else if !folder.is_empty() {
            Arc::new(
                in_force
                    .with_rules_from(std::path::Path::new(&folder))
                    .map_err(|e| e.to_string())?,
            )
        } else {
            in_force
        };
        crate::replay::replay(&trail, &runtime, since, until, assume, answers, mode)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    let mut value = serde_json::to_value(&replay).map_err(|e| e.to_string())?;
    if !fingerprint.is_empty() {
        if let Some(differences) = value["differences"].as_array_mut() {
            differences.retain(|d| d["fingerprint"] == fingerprint.as_str());
        }
    }
    value["text"] = replay.text().into();
    Ok(value)
}
