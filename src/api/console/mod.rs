//! The console at `/ui/`: server-rendered pages over the engine's own methods, for the
//! people on call. Every page works without JavaScript (plain links and forms, each
//! answered with a redirect back); `console.js` only adds the live rows, the pause
//! toggle and forms answered in place. The pages send `Content-Security-Policy:
//! default-src 'self'`, so nothing inline runs, and every label and annotation is
//! escaped by the templates (they come from outside).
//!
//! Who may see and do what is the API's roles (`auth.rs`); a browser is known by the
//! session cookie that `/ui/login` sets from an identity's token, by a trusted proxy's
//! header, or by nothing at all when the API is open. Every form carries the CSRF token
//! of its browser's `salve_csrf` cookie (`session.rs`).

mod assets;
mod forms;
mod pages;
mod render;
mod session;
mod story;
mod svg;

pub(super) use render::Ui;

use super::ApiState;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

/// The console's routes, for `api::app` to merge.
pub(super) fn routes(state: ApiState) -> Router<ApiState> {
    let behind_login = Router::new()
        .route("/ui/", get(pages::overview))
        .route("/ui/decisions", get(pages::decisions))
        .route("/ui/decisions/export", get(pages::export))
        .route("/ui/alerts/{fingerprint}", get(story::alert))
        .route("/ui/approvals", get(pages::approvals))
        .route("/ui/approvals/{id}/approve", post(forms::approve))
        .route("/ui/approvals/{id}/deny", post(forms::deny))
        .route("/ui/rules", get(pages::rules))
        .route("/ui/rules/plan", post(forms::plan))
        .route("/ui/state", get(pages::state))
        .route("/ui/state/reset", post(forms::reset))
        .route(
            "/ui/maintenance",
            get(pages::maintenance).post(forms::create_window),
        )
        .route("/ui/maintenance/check", get(forms::check_matchers))
        .route("/ui/maintenance/{id}/end", post(forms::end_window))
        .route("/ui/replay", get(pages::replay).post(forms::replay))
        .route("/ui/report", get(pages::report))
        // The API's stream, for a browser that holds a session rather than a token.
        .route("/ui/stream", get(super::stream::stream))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_viewer,
        ));
    Router::new()
        .merge(behind_login)
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/static/{name}", get(assets::serve))
        .layer(middleware::from_fn(session::csrf_cookie))
        .layer(middleware::from_fn(guard_headers))
}

/// What every console answer carries: nothing runs but the console's own file, nothing
/// frames it, nothing sniffs its types, and its addresses (which name alerts) stay here.
async fn guard_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The route a request matched, as the roles table knows it.
fn route_of(request: &Request) -> String {
    request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    )
}

/// Back to the page a form was sent from (`back`, a path of the console's own), or
/// to `fallback`. Never elsewhere: a form's field is the sender's to set.
fn back_to(back: Option<&str>, fallback: &str) -> Response {
    let to = back
        .filter(|b| b.starts_with("/ui/") && !b.starts_with("/ui//") && !b.contains('\\'))
        .unwrap_or(fallback);
    Redirect::to(to).into_response()
}

/// A console form's refusal, as a page a person reads (the API's JSON is for tools).
fn refusal(status: StatusCode, ui: Option<&Ui>, title: &str, message: &str) -> Response {
    render::page(
        status,
        ui,
        "message.html",
        "",
        minijinja::context! { title, message },
    )
}

/// Whether `method` changes something (and so needs the form's CSRF token).
fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
