//! The console's pages, each read from the engine as the API reads it.

use super::{render, Ui};
use crate::audit::{AuditFilter, AuditRecord, Entry, RecordKind, RecordTest};
use crate::engine::Engine;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::HashSet;
use std::sync::Arc;

type Shared = State<Arc<Engine>>;

/// Records to a page, and what a list's JSON or CSV export takes at most.
const PAGE_ROWS: usize = 50;
const EXPORT_ROWS: usize = 100_000;
const MAX_BYTES: usize = 64 << 20;
/// The window of "lately": probes down, a rule's counts.
const A_DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The page, or only its rows when `console.js` asks for them to fill the list in place.
fn show(headers: &HeaderMap, ui: &Ui, template: &str, nav: &str, data: Value) -> Response {
    if headers.contains_key("x-salve-rows") {
        render::fragment(template, "rows", data, ui)
    } else {
        render::page(StatusCode::OK, Some(ui), template, nav, data)
    }
}

/// A field of a form left empty is no filter.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A time as a form gives it: RFC 3339, or a duration back from now (`2h`).
pub(super) fn moment(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    crate::model::time_or_ago(text, now).map_err(|e| {
        format!("{text:?} is neither a time (RFC 3339) nor a duration back from now: {e}")
    })
}

/// Records of the trail as the templates read them: JSON values, newest first (the
/// newest `limit` that `filter` selects).
pub(super) async fn records(
    engine: &Engine,
    filter: AuditFilter,
    limit: usize,
    before: Option<crate::audit::TrailPosition>,
) -> Result<(Vec<Json>, Option<crate::audit::TrailPosition>), String> {
    let page = engine
        .audit_records(filter, limit, MAX_BYTES, before)
        .await
        .map_err(|e| e.to_string())?;
    let values = page
        .records
        .iter()
        .rev()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok((values, page.older))
}

/// `GET /ui/`: whether salve will act next, and what it did last.
pub(super) async fn overview(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    headers: HeaderMap,
) -> Response {
    let state = engine.state_view();
    let now = engine.now();
    let windows: Vec<_> = engine
        .windows()
        .into_iter()
        .filter(|w| w.starts_at <= now && now < w.ends_at)
        .collect();
    let decisions = AuditFilter {
        kind: Some(RecordKind::Decision),
        ..AuditFilter::default()
    };
    let (recent, _) = records(&engine, decisions, 15, None)
        .await
        .unwrap_or_default();
    let probes_down = probes_down(&engine, now).await;
    let nearly_spent: Vec<_> = state.safety.limits.iter().filter(|l| l.left <= 1).collect();
    let data = context! {
        state => Value::from_serialize(&state),
        windows => Value::from_serialize(&windows),
        records => Value::from_serialize(&recent),
        probes_down => Value::from_serialize(&probes_down),
        nearly_spent => Value::from_serialize(&nearly_spent),
        live => "decision",
    };
    show(&headers, &ui, "overview.html", "overview", data)
}

/// Probes whose last word, in the last day, is that they fail.
async fn probes_down(engine: &Engine, now: DateTime<Utc>) -> Vec<Json> {
    let filter = AuditFilter {
        since: Some(crate::model::earlier(now, A_DAY)),
        kind: Some(RecordKind::Received),
        also: Some(RecordTest(Arc::new(
            |r: &AuditRecord| matches!(&r.entry, Entry::Received { event, .. } if event.source == "probe"),
        ))),
        ..AuditFilter::default()
    };
    let (received, _) = records(engine, filter, 2000, None)
        .await
        .unwrap_or_default();
    let mut seen = HashSet::new();
    received
        .into_iter()
        .filter(|r| seen.insert(r["event"]["fingerprint"].to_string()))
        .filter(|r| r["event"]["status"] == "firing")
        .collect()
}

/// The decisions page's filters, kept in its address.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(super) struct DecisionQuery {
    rule: Option<String>,
    action: Option<String>,
    target: Option<String>,
    alertname: Option<String>,
    fingerprint: Option<String>,
    verdict: Option<String>,
    reason: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// `decision` (default), `outcome`, or `all` of both.
    kind: Option<String>,
    before: Option<String>,
}

/// Whether `record` passes the filters the trail's own filter does not know.
fn passes(
    query: &DecisionQuery,
    until: Option<DateTime<Utc>>,
    fingerprints: &Option<HashSet<String>>,
    record: &AuditRecord,
) -> bool {
    let (action, verdict, reason, outcome, fingerprint) = match &record.entry {
        Entry::Decision(d) => (
            d.action.as_str(),
            Some(match d.decision {
                crate::model::Verdict::Execute => "execute",
                crate::model::Verdict::Suppress => "suppress",
            }),
            d.reason.map(|r| r.as_str()),
            None,
            d.fingerprint.0.as_str(),
        ),
        Entry::Outcome(o) => (
            o.action.as_str(),
            None,
            None,
            Some(o.outcome.outcome.as_str()),
            o.fingerprint.as_ref().map_or("", |f| f.0.as_str()),
        ),
        _ => return false,
    };
    let kind = given(&query.kind).unwrap_or("decision");
    let kind_fits = match kind {
        "all" => true,
        "outcome" => outcome.is_some(),
        _ => verdict.is_some(),
    };
    kind_fits
        && until.is_none_or(|u| record.at <= u)
        && given(&query.action).is_none_or(|a| a == action)
        && given(&query.verdict).is_none_or(|v| verdict == Some(v))
        && given(&query.reason).is_none_or(|r| reason == Some(r))
        && given(&query.outcome).is_none_or(|o| outcome == Some(o))
        && fingerprints
            .as_ref()
            .is_none_or(|set| set.contains(fingerprint))
}

/// The fingerprints of the alerts named `alertname` that arrived since `since`.
async fn named(engine: &Engine, alertname: &str, since: Option<DateTime<Utc>>) -> HashSet<String> {
    let name = alertname.to_string();
    let filter = AuditFilter {
        since,
        kind: Some(RecordKind::Received),
        also: Some(RecordTest(Arc::new(
            move |r: &AuditRecord| matches!(&r.entry, Entry::Received { event, .. } if event.labels.get("alertname") == Some(&name)),
        ))),
        ..AuditFilter::default()
    };
    let (received, _) = records(engine, filter, EXPORT_ROWS, None)
        .await
        .unwrap_or_default();
    received
        .iter()
        .filter_map(|r| r["event"]["fingerprint"].as_str().map(str::to_string))
        .collect()
}

/// The trail filter a decisions query makes.
async fn decision_filter(engine: &Engine, query: &DecisionQuery) -> Result<AuditFilter, String> {
    let now = engine.now();
    let since = given(&query.since).map(|s| moment(s, now)).transpose()?;
    let until = given(&query.until).map(|s| moment(s, now)).transpose()?;
    let fingerprints = match given(&query.alertname) {
        Some(name) => Some(named(engine, name, since).await),
        None => None,
    };
    let kept = query.clone();
    Ok(AuditFilter {
        since,
        rule: given(&query.rule).map(str::to_string),
        target: given(&query.target).map(str::to_string),
        fingerprint: given(&query.fingerprint).map(str::to_string),
        kind: None,
        also: Some(RecordTest(Arc::new(move |r: &AuditRecord| {
            passes(&kept, until, &fingerprints, r)
        }))),
    })
}

/// `GET /ui/decisions`: the trail's decisions and outcomes, newest first, filtered.
pub(super) async fn decisions(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    headers: HeaderMap,
    Query(query): Query<DecisionQuery>,
) -> Response {
    let (rows, older, problem) = match decision_filter(&engine, &query).await {
        Ok(filter) => {
            let before = given(&query.before).and_then(crate::api::handlers::parse_cursor);
            match records(&engine, filter, PAGE_ROWS, before).await {
                Ok((rows, older)) => (rows, older, None),
                Err(e) => (Vec::new(), None, Some(e)),
            }
        }
        Err(e) => (Vec::new(), None, Some(e)),
    };
    let mut next = query.clone();
    next.before = older.map(crate::api::handlers::cursor_text);
    let mut first = query.clone();
    first.before = None;
    let data = context! {
        q => Value::from_serialize(&query),
        records => Value::from_serialize(&rows),
        problem,
        older => next.before.is_some().then(|| serde_urlencoded::to_string(&next).unwrap_or_default()),
        filters => serde_urlencoded::to_string(&first).unwrap_or_default(),
        reasons => crate::model::Reason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        live => (query.before.is_none()).then_some("decision"),
    };
    show(&headers, &ui, "decisions.html", "decisions", data)
}

#[derive(Debug, Deserialize)]
pub(super) struct ExportQuery {
    #[serde(default)]
    format: String,
    #[serde(flatten)]
    filters: DecisionQuery,
}

/// `GET /ui/decisions/export?format=jsonl|csv`: the whole filtered set, oldest first.
pub(super) async fn export(State(engine): Shared, Query(query): Query<ExportQuery>) -> Response {
    let filter = match decision_filter(&engine, &query.filters).await {
        Ok(filter) => filter,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let page = match engine
        .audit_records(filter, EXPORT_ROWS, MAX_BYTES, None)
        .await
    {
        Ok(page) => page,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let lines = page.records.iter();
    if query.format == "csv" {
        let mut out =
            String::from("at,kind,rule,action,target,verdict,reason,outcome,fingerprint,detail\n");
        for line in lines {
            if let Ok(r) = serde_json::from_str::<Json>(line) {
                out.push_str(&csv_row(&r));
            }
        }
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"salve-decisions.csv\"",
                ),
            ],
            out,
        )
            .into_response()
    } else {
        let out: String = lines.map(|l| format!("{l}\n")).collect();
        (
            [
                (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"salve-decisions.jsonl\"",
                ),
            ],
            out,
        )
            .into_response()
    }
}

/// One record as a CSV line (RFC 4180 quoting); a cell that a spreadsheet would run
/// as a formula is quoted as text.
fn csv_row(r: &Json) -> String {
    let text = |key: &str| r[key].as_str().unwrap_or_default().to_string();
    let outcome = if r["kind"] == "outcome" {
        text("outcome")
    } else {
        String::new()
    };
    let cells = [
        text("at"),
        text("kind"),
        text("rule"),
        text("action"),
        text("target"),
        text("decision"),
        text("reason"),
        outcome,
        text("fingerprint"),
        if r["kind"] == "outcome" {
            text("error")
        } else {
            text("detail")
        },
    ];
    let quoted: Vec<String> = cells
        .iter()
        .map(|c| {
            let c = if c.starts_with(['=', '+', '-', '@']) {
                format!("'{c}")
            } else {
                c.clone()
            };
            format!("\"{}\"", c.replace('"', "\"\""))
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

/// `GET /ui/approvals`: what waits for a person, with the time left, and what was
/// answered.
pub(super) async fn approvals(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    headers: HeaderMap,
) -> Response {
    let all = engine.approvals();
    let (pending, history): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|a| a.state == crate::model::ApprovalState::Pending);
    let data = context! {
        pending => Value::from_serialize(&pending),
        history => Value::from_serialize(history.iter().rev().take(100).collect::<Vec<_>>()),
        may_approve => ui.caller.role.may_approve(),
        live => "approval",
    };
    show(&headers, &ui, "approvals.html", "approvals", data)
}

/// The rules as loaded, each with its decisions of the last day.
pub(super) async fn rules_data(engine: &Engine) -> Value {
    let since = crate::model::earlier(engine.now(), A_DAY);
    let filter = AuditFilter {
        since: Some(since),
        kind: Some(RecordKind::Decision),
        ..AuditFilter::default()
    };
    let (recent, _) = records(engine, filter, EXPORT_ROWS, None)
        .await
        .unwrap_or_default();
    let reloads = AuditFilter {
        kind: Some(RecordKind::Reload),
        ..AuditFilter::default()
    };
    let (last_reload, _) = records(engine, reloads, 1, None).await.unwrap_or_default();
    // Counted in one pass: a rule's share of a day's decisions, for every rule.
    let mut counts: std::collections::HashMap<&str, (usize, usize)> =
        std::collections::HashMap::new();
    for d in &recent {
        let count = counts
            .entry(d["rule"].as_str().unwrap_or_default())
            .or_default();
        if d["decision"] == "execute" {
            count.0 += 1;
        } else {
            count.1 += 1;
        }
    }
    let mut rules = crate::api::handlers::rules_json(engine);
    for rule in &mut rules {
        let (executed, suppressed) = rule["name"]
            .as_str()
            .and_then(|name| counts.get(name))
            .copied()
            .unwrap_or_default();
        rule["executed"] = executed.into();
        rule["suppressed"] = suppressed.into();
    }
    context! {
        rules => Value::from_serialize(&rules),
        last_reload => Value::from_serialize(last_reload.first()),
    }
}

/// `GET /ui/rules`: each rule, its file, counts and quarantine; a payload to plan.
pub(super) async fn rules(State(engine): Shared, Extension(ui): Extension<Ui>) -> Response {
    let data = rules_data(&engine).await;
    render::page(StatusCode::OK, Some(&ui), "rules.html", "rules", data)
}

/// `GET /ui/state`: breakers, cooldowns, limits and budgets, with the forms that
/// clear them.
pub(super) async fn state(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    headers: HeaderMap,
) -> Response {
    let state = engine.state_view();
    let data = context! {
        state => Value::from_serialize(&state),
        admin => ui.caller.role == crate::api::Role::Admin,
        live => "state_reset",
    };
    show(&headers, &ui, "state.html", "state", data)
}

/// `GET /ui/maintenance`: the windows, a form for a new one, and an end to each.
pub(super) async fn maintenance(State(engine): Shared, Extension(ui): Extension<Ui>) -> Response {
    let now = engine.now();
    let windows: Vec<Json> = engine
        .windows()
        .into_iter()
        .map(|w| {
            let active = w.starts_at <= now && now < w.ends_at;
            let mut v = serde_json::to_value(&w).unwrap_or_default();
            v["active"] = active.into();
            v
        })
        .collect();
    let data = context! {
        windows => Value::from_serialize(&windows),
        admin => ui.caller.role == crate::api::Role::Admin,
        default_end => crate::model::later(now, std::time::Duration::from_secs(3600)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    render::page(
        StatusCode::OK,
        Some(&ui),
        "maintenance.html",
        "maintenance",
        data,
    )
}

/// `GET /ui/replay`: the form; `POST` (in `forms.rs`) shows the differences.
pub(super) async fn replay(Extension(ui): Extension<Ui>) -> Response {
    let data = context! { since => "24h", result => Value::UNDEFINED };
    render::page(StatusCode::OK, Some(&ui), "replay.html", "replay", data)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ReportQuery {
    since: Option<String>,
}

/// `GET /ui/report`: the probes' uptime and latency, and what salve's actions came to
/// per target, drawn where people would rather look than read.
pub(super) async fn report(
    State(engine): Shared,
    Extension(ui): Extension<Ui>,
    Query(query): Query<ReportQuery>,
) -> Response {
    let window = given(&query.since).unwrap_or("24h").to_string();
    let until = engine.now();
    let since = match moment(&window, until) {
        Ok(since) => since,
        Err(e) => return super::refusal(StatusCode::BAD_REQUEST, Some(&ui), "Report", &e),
    };
    let trail = engine.trail_reader();
    let dir = engine.data_dir().to_path_buf();
    let report =
        tokio::task::spawn_blocking(move || crate::report::report(&trail, &dir, since, until))
            .await;
    let report = match report {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            return super::refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&ui),
                "Report",
                &e.to_string(),
            )
        }
        Err(e) => {
            return super::refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(&ui),
                "Report",
                &e.to_string(),
            )
        }
    };
    let data = context! {
        report => Value::from_serialize(&report),
        since => window,
        uptime => super::svg::bars(report.probes.iter().map(|p| (p.probe.clone(), p.uptime_percent, format!("{:.2}%", p.uptime_percent))), 100.0),
        p95 => super::svg::bars(report.probes.iter().map(|p| (p.probe.clone(), p.p95_ms as f64, format!("{} ms", p.p95_ms))), 0.0),
        recovery => super::svg::bars(report.targets.iter().map(|t| (t.target.clone(), t.recovery_rate * 100.0, format!("{:.0}%", t.recovery_rate * 100.0))), 100.0),
    };
    render::page(StatusCode::OK, Some(&ui), "report.html", "report", data)
}
