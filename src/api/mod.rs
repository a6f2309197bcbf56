//! The HTTP API, whole: webhooks in (Alertmanager and native events), plans, rules,
//! audit, maintenance windows, reload, health, readiness and metrics. Handlers call
//! the engine's methods; the webhook endpoints see it only as an [`Intake`], like any
//! other source.

mod approvals;
mod auth;
mod body;
mod console;
mod error;
mod handlers;
mod links;
mod slack;
mod stream;

pub use auth::{Caller, Role};
pub use body::{BodyLimits, JsonBody};
pub use error::ApiError;
pub use slack::SlackError;

use crate::engine::Engine;
use crate::ingest::Intake;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

/// What handlers are given: the engine's methods, and the same engine as a source.
#[derive(Clone)]
pub struct ApiState {
    engine: Arc<Engine>,
    intake: Arc<dyn Intake>,
}

impl FromRef<ApiState> for Arc<dyn Intake> {
    fn from_ref(state: &ApiState) -> Arc<dyn Intake> {
        state.intake.clone()
    }
}

impl FromRef<ApiState> for Arc<Engine> {
    fn from_ref(state: &ApiState) -> Arc<Engine> {
        state.engine.clone()
    }
}

/// The whole API as a router, so tests can drive it without a socket.
pub fn app(engine: Arc<Engine>) -> Router {
    let state = ApiState {
        intake: engine.clone(),
        engine,
    };
    let protected = Router::new()
        .route("/api/v1/alertmanager", post(handlers::receive_alertmanager))
        .route("/api/v1/events", post(handlers::receive_events))
        .route("/api/v1/plan", post(handlers::plan_payload))
        .route("/api/v1/rules", get(handlers::list_rules))
        .route("/api/v1/audit", get(handlers::read_audit))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/report", get(handlers::report))
        .route("/api/v1/replay", post(handlers::replay))
        .route(
            "/api/v1/maintenance",
            get(handlers::list_windows)
                .post(handlers::create_window)
                .delete(handlers::delete_window_query),
        )
        .route("/api/v1/maintenance/{id}", delete(handlers::delete_window))
        .route("/api/v1/state", get(handlers::state))
        .route("/api/v1/state/reset", post(handlers::reset_state))
        .route("/api/v1/approvals", get(approvals::list))
        .route("/api/v1/approvals/{id}", get(approvals::show))
        .route("/api/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/api/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/-/reload", post(handlers::reload).put(handlers::reload))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ));
    let routes = Router::new()
        .merge(protected)
        .merge(console::routes(state.clone()))
        .route("/-/healthy", get(|| async { "salve is healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        // Outside `protected`: Slack cannot send the API's credentials; its requests
        // are checked against its signature instead (`slack.rs`).
        .route("/api/v1/slack/interactions", post(slack::interactions))
        // Signed links: the token is the credential.
        .route(
            "/approvals/link/{token}",
            get(links::show).post(links::answer),
        )
        .fallback(|| async { ApiError::NoSuchEndpoint })
        // The body is limited by `read_body`, to what the config says at the time.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), body_limits))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_rejections,
        ))
        .with_state(state);
    // Outside the routes: a layer on them would run inside each path's method router,
    // before it adds `Allow` to its 405.
    Router::new()
        .fallback_service(routes)
        .layer(middleware::from_fn(explain_method_not_allowed))
}

/// `[api] max_body_bytes` and `body_read_timeout` as the config says now, so that a
/// reload changes them for the requests that follow.
async fn body_limits(State(state): State<ApiState>, mut request: Request, next: Next) -> Response {
    let limits = {
        let runtime = state.engine.runtime();
        BodyLimits {
            max_bytes: runtime.config.max_body_bytes,
            read_timeout: runtime.config.connections.body_read_timeout,
        }
    };
    request.extensions_mut().insert(limits);
    next.run(request).await
}

async fn count_rejections(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        state
            .engine
            .metrics()
            .request_rejected(&path, status.as_u16());
    }
    response
}

/// axum answers a method a path does not take with an empty 405 and `Allow`; salve
/// says the same in its one error shape.
async fn explain_method_not_allowed(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let allowed = allow
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    let mut answer = ApiError::MethodNotAllowed {
        path,
        method: method.to_string(),
        allow: allowed,
    }
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&allow) {
        answer.headers_mut().insert(header::ALLOW, value);
    }
    answer
}

async fn ready(State(engine): State<Arc<Engine>>) -> Response {
    match engine.not_ready_reason() {
        None => {
            let mut body = String::from("salve is ready.\n");
            for warning in engine.readiness_warnings() {
                body.push_str(&format!("warning: {warning}.\n"));
            }
            (StatusCode::OK, body).into_response()
        }
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("salve is not ready: {why}.\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(engine): State<Arc<Engine>>) -> Response {
    engine.refresh_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        engine.metrics().render(),
    )
        .into_response()
}
