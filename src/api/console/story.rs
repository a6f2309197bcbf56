//! `GET /ui/alerts/{fingerprint}`: one alert's story, in the order it happened: the
//! event, the rules that matched, what they asked for, the policy's verdict with its
//! reason and the numbers behind it, the action and its outcome, and what holds its
//! targets back now.

use super::pages::records;
use super::{render, Ui};
use crate::audit::AuditFilter;
use crate::engine::Engine;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use minijinja::{context, Value};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// An alert's records the story shows at most (the newest, told oldest first).
const STORY_RECORDS: usize = 500;

pub(super) async fn alert(
    State(engine): State<Arc<Engine>>,
    Extension(ui): Extension<Ui>,
    Path(fingerprint): Path<String>,
) -> Response {
    let filter = AuditFilter {
        fingerprint: Some(fingerprint.clone()),
        ..AuditFilter::default()
    };
    let (mut story, older) = match records(&engine, filter, STORY_RECORDS, None).await {
        Ok(found) => found,
        Err(e) => return super::refusal(StatusCode::INTERNAL_SERVER_ERROR, Some(&ui), "Alert", &e),
    };
    story.reverse();
    // Decisions and outcomes name their alert by fingerprint; approvals by the
    // decision that asked.
    let event = story
        .iter()
        .rev()
        .find(|r| r["kind"] == "received" || r["kind"] == "reconsidered")
        .map(|r| r["event"].clone());
    let Some(event) = event else {
        return super::refusal(
            StatusCode::NOT_FOUND,
            Some(&ui),
            "No such alert",
            &format!("The trail holds nothing about an alert with fingerprint {fingerprint}: it may be older than the trail's retention."),
        );
    };
    let targets: BTreeSet<String> = story
        .iter()
        .filter_map(|r| r["target"].as_str().map(str::to_string))
        .collect();
    let state = engine.state_view();
    let holds = |items: Vec<Json>| -> Vec<Json> {
        items
            .into_iter()
            .filter(|v| v["target"].as_str().is_some_and(|t| targets.contains(t)))
            .collect()
    };
    let safety = serde_json::to_value(&state.safety).unwrap_or_default();
    let list = |key: &str| safety[key].as_array().cloned().unwrap_or_default();
    let approvals: Vec<_> = engine
        .approvals()
        .into_iter()
        .filter(|a| a.fingerprint.0 == fingerprint)
        .collect();
    let replay_since = story
        .first()
        .and_then(|r| r["at"].as_str())
        .and_then(|at| at.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .map(|at| crate::model::earlier(at, std::time::Duration::from_secs(1)).to_rfc3339())
        .unwrap_or_else(|| "24h".to_string());
    let data = context! {
        fingerprint,
        event => Value::from_serialize(&event),
        story => Value::from_serialize(&story),
        truncated => older.is_some(),
        breakers => Value::from_serialize(holds(list("breakers"))),
        cooldowns => Value::from_serialize(holds(list("cooldowns"))),
        limits => Value::from_serialize(holds(list("limits"))),
        approvals => Value::from_serialize(&approvals),
        replay_since,
        firing_since => engine.firing_since(&crate::event::Fingerprint(event["fingerprint"].as_str().unwrap_or_default().to_string())).map(|t| t.to_rfc3339()),
    };
    render::page(StatusCode::OK, Some(&ui), "alert.html", "decisions", data)
}
