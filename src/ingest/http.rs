//! The HTTP API: webhooks in, plans, rules, audit, maintenance, health, metrics.

use crate::audit::{AuditFilter, AuditRecord, Entry, MaintenanceChange};
use crate::config::ApiAuth;
use crate::engine::{plan, Engine};
use crate::event::{parse_alertmanager, parse_json, parse_native, parse_payload, PayloadError};
use crate::model::rate::{format_duration, parse_duration};
use crate::model::{MaintenanceWindow, NewMaintenanceWindow};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Every error the API answers with: a status and `{"error": ..., "detail": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            detail: Value::Null,
        }
    }

    fn with_detail(mut self, detail: Value) -> ApiError {
        self.detail = detail;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if !self.detail.is_null() {
            body["detail"] = self.detail;
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<PayloadError> for ApiError {
    fn from(err: PayloadError) -> ApiError {
        match &err {
            PayloadError::Syntax { line, column, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, err.to_string())
                    .with_detail(json!({ "line": line, "column": column }))
            }
            PayloadError::Shape { path, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
                    .with_detail(json!({ "field": path }))
            }
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than the configured limit (api.max_body_bytes)".to_string()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    }
}

type Shared = State<Arc<Engine>>;

/// The whole API as a router, so tests can drive it without a socket.
pub fn app(engine: Arc<Engine>) -> Router {
    let max_body = engine.runtime().config.max_body_bytes;
    let protected = Router::new()
        .route("/api/v1/alertmanager", post(receive_alertmanager))
        .route("/api/v1/events", post(receive_events))
        .route("/api/v1/plan", post(plan_payload))
        .route("/api/v1/rules", get(list_rules))
        .route("/api/v1/audit", get(read_audit))
        .route(
            "/api/v1/maintenance",
            get(list_windows)
                .post(create_window)
                .delete(delete_window_query),
        )
        .route("/api/v1/maintenance/{id}", delete(delete_window))
        .route("/-/reload", post(reload).put(reload))
        .route_layer(middleware::from_fn_with_state(engine.clone(), require_auth));
    Router::new()
        .merge(protected)
        .route("/-/healthy", get(|| async { "salve is healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            engine.clone(),
            count_rejections,
        ))
        .with_state(engine)
}

async fn count_rejections(State(engine): Shared, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        engine.metrics.request_rejected(&path, status.as_u16());
    }
    response
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_auth(State(engine): Shared, request: Request, next: Next) -> Response {
    let auth = engine.runtime().config.auth.clone();
    let Some(auth) = auth else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = match &auth {
        ApiAuth::Bearer(token) => given
            .strip_prefix("Bearer ")
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes())),
        ApiAuth::Basic { username, password } => given
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .is_some_and(|decoded| {
                constant_time_eq(&decoded, format!("{username}:{password}").as_bytes())
            }),
    };
    if ok {
        return next.run(request).await;
    }
    let challenge = match auth {
        ApiAuth::Bearer(_) => "Bearer",
        ApiAuth::Basic { .. } => "Basic realm=\"salve\"",
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong credentials").into_response();
    if let Ok(value) = challenge.parse() {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Content type and body checks shared by every endpoint that takes JSON.
fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: application/json, got {content_type:?}"),
        ));
    }
    let body = body?;
    if let Err(e) = std::str::from_utf8(&body) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
        .with_detail(json!({ "byte": e.valid_up_to() })));
    }
    Ok(body)
}

async fn accept(
    engine: &Engine,
    events: Vec<crate::event::Event>,
) -> Result<Json<Value>, ApiError> {
    let count = events.len();
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    engine.accept(events).await.map_err(|e| {
        tracing::error!(error = %e, "refusing events that cannot be recorded");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot record events durably: {e}"),
        )
    })?;
    Ok(Json(
        json!({ "status": "accepted", "events": count, "ids": ids }),
    ))
}

async fn receive_alertmanager(
    State(engine): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(&headers, body)?;
    let events = parse_alertmanager(&body, engine.now())?;
    accept(&engine, events).await
}

async fn receive_events(
    State(engine): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(&headers, body)?;
    let events = parse_native(&body, engine.now())?;
    accept(&engine, events).await
}

#[derive(Debug, Deserialize)]
struct PlanQuery {
    at: Option<DateTime<Utc>>,
    dry_run: Option<bool>,
}

async fn plan_payload(
    State(engine): Shared,
    query: Result<Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let body = json_body(&headers, body)?;
    let at = query.at.unwrap_or_else(|| engine.now());
    let events = parse_payload(&body, at)?;
    let runtime = engine.runtime();
    let state = engine.state.read().clone();
    let dry_run = query.dry_run.unwrap_or(runtime.settings.dry_run);
    let evaluation = plan(&runtime, state, &events, at, dry_run);
    let errors: Vec<Value> = evaluation
        .rule_errors
        .iter()
        .map(|(rule, e)| json!({ "rule": rule, "error": e.short() }))
        .collect();
    Ok(Json(
        json!({ "decisions": evaluation.decisions, "rule_errors": errors }),
    ))
}

async fn list_rules(State(engine): Shared) -> Json<Value> {
    let runtime = engine.runtime();
    let rules: Vec<Value> = runtime
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
            })
        })
        .collect();
    Json(Value::Array(rules))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    since: Option<String>,
    rule: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    fingerprint: Option<String>,
    limit: Option<usize>,
}

async fn read_audit(
    State(engine): Shared,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let since = match &query.since {
        None => None,
        Some(s) => {
            let d = parse_duration(s)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("since: {e}")))?;
            Some(engine.now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
        }
    };
    let filter = AuditFilter {
        since,
        rule: query.rule,
        target: query.target,
        kind: query.kind,
        fingerprint: query.fingerprint,
    };
    let limit = query.limit.unwrap_or(1000);
    let dir = engine.audit.dir().to_path_buf();
    let records =
        tokio::task::spawn_blocking(move || crate::audit::newest_records(&dir, &filter, limit))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(records))
}

async fn list_windows(State(engine): Shared) -> Json<Vec<MaintenanceWindow>> {
    let now = engine.now();
    let windows = engine
        .state
        .read()
        .windows()
        .filter(|w| w.ends_at > now)
        .cloned()
        .collect();
    Json(windows)
}

async fn create_window(
    State(engine): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<MaintenanceWindow>), ApiError> {
    let body = json_body(&headers, body)?;
    let value = parse_json(&body)?;
    let new: NewMaintenanceWindow = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("field `{path}`: {}", e.into_inner()),
        )
        .with_detail(json!({ "field": path }))
    })?;
    let now = engine.now();
    let starts_at = new.starts_at.unwrap_or(now);
    if new.ends_at <= starts_at {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ends_at must be after starts_at",
        )
        .with_detail(json!({ "field": "ends_at" })));
    }
    if new.created_by.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "created_by must say who made the window",
        )
        .with_detail(json!({ "field": "created_by" })));
    }
    let window = MaintenanceWindow {
        id: uuid::Uuid::now_v7().to_string(),
        matchers: new.matchers,
        starts_at,
        ends_at: new.ends_at,
        created_by: new.created_by,
        comment: new.comment,
        created_at: now,
    };
    let record = AuditRecord::new(
        now,
        Entry::Maintenance(MaintenanceChange::Created {
            window: window.clone(),
        }),
    );
    record_window_change(&engine, record).await?;
    tracing::info!(id = %window.id, matchers = %window.matchers, by = %window.created_by, "maintenance window created");
    Ok((StatusCode::CREATED, Json(window)))
}

async fn record_window_change(engine: &Engine, record: AuditRecord) -> Result<(), ApiError> {
    engine
        .audit
        .append(std::slice::from_ref(&record))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot record the change: {e}"),
            )
        })?;
    let ttl = engine.runtime().settings.firing_ttl;
    engine.state.write().apply(&record, ttl);
    Ok(())
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    id: Option<String>,
    deleted_by: Option<String>,
}

async fn delete_window_query(
    State(engine): Shared,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let id = query
        .id
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "name the window: ?id=..."))?;
    remove_window(&engine, id, query.deleted_by).await
}

async fn delete_window(
    State(engine): Shared,
    Path(id): Path<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    remove_window(&engine, id, query.deleted_by).await
}

async fn remove_window(
    engine: &Engine,
    id: String,
    deleted_by: Option<String>,
) -> Result<StatusCode, ApiError> {
    if engine.state.read().window(&id).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no maintenance window {id}"),
        ));
    }
    let record = AuditRecord::new(
        engine.now(),
        Entry::Maintenance(MaintenanceChange::Deleted {
            id,
            deleted_by: deleted_by.unwrap_or_default(),
        }),
    );
    record_window_change(engine, record).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reload(State(engine): Shared) -> Result<Json<Value>, ApiError> {
    match engine.reload().await {
        Ok(rules) => Ok(Json(json!({ "status": "reloaded", "rules": rules }))),
        Err(message) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "reload refused; the previous rules keep running",
        )
        .with_detail(json!({ "errors": message }))),
    }
}

async fn ready(State(engine): Shared) -> Response {
    if engine.is_ready() {
        (StatusCode::OK, "salve is ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("salve is not ready: {}.\n", engine.not_ready_reason()),
        )
            .into_response()
    }
}

async fn metrics(State(engine): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        engine.metrics.render(),
    )
        .into_response()
}
