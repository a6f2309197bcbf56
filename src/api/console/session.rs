//! Signing in to the console, and the CSRF token of its forms.
//!
//! The session cookie names the identity and when the session ends, signed with that
//! identity's own token: every replica with the same config reads it, and changing a
//! token ends its sessions. The CSRF token is a random value in a `SameSite=Strict`
//! cookie that every form sends back as its `csrf` field: a page elsewhere can neither
//! read the cookie nor set the field to match.

use super::{refusal, render, route_of, Ui};
use crate::api::auth::{identify, identity_of, is_open, same_secret, Access};
use crate::api::{ApiState, Caller, Role};
use crate::config::{ApiAuth, Config};
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::Sha256;

const SESSION: &str = "salve_session";
const CSRF: &str = "salve_csrf";
/// A working day and a night on call.
const SESSION_LASTS: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// A console form is a few fields; a pasted payload or rule is the largest.
const MAX_FORM_BYTES: usize = 1 << 20;

/// The CSRF token of the browser making the request.
#[derive(Debug, Clone)]
pub(super) struct Csrf(pub String);

fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Gives every browser a CSRF token, in a cookie the first time.
pub(super) async fn csrf_cookie(mut request: Request, next: Next) -> Response {
    let jar = CookieJar::from_headers(request.headers());
    let existing = jar
        .get(CSRF)
        .map(|c| c.value().to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    let token = existing.clone().unwrap_or_else(new_token);
    request.extensions_mut().insert(Csrf(token.clone()));
    let mut response = next.run(request).await;
    if existing.is_none() {
        let cookie = Cookie::build((CSRF, token))
            .path("/ui")
            .http_only(true)
            .same_site(SameSite::Strict)
            .build();
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The name and secret of each way to sign in: the identities, the single bearer
/// token (as `api`), or the basic credential (as its user).
fn signer(config: &Config, name: &str) -> Option<(Vec<u8>, Role)> {
    if let Some(identity) = config.identities.iter().find(|i| i.name == name) {
        return Some((identity.token.expose().as_bytes().to_vec(), identity.role));
    }
    match &config.auth {
        Some(ApiAuth::Bearer(token)) if name == "api" => {
            Some((token.as_bytes().to_vec(), Role::Admin))
        }
        Some(ApiAuth::Basic { username, password }) if name == username => {
            Some((format!("{username}:{password}").into_bytes(), Role::Admin))
        }
        _ => None,
    }
}

fn signature(secret: &[u8], name: &str, expires: i64) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(format!("salve-session|{name}|{expires}").as_bytes());
    Some(hex::encode(mac.finalize().into_bytes()))
}

/// The caller a session cookie names, while it holds.
fn by_session(config: &Config, jar: &CookieJar) -> Option<Caller> {
    use base64::Engine as _;
    let value = jar.get(SESSION)?.value().to_string();
    let mut parts = value.splitn(3, '.');
    let (name, expires, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let name = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(name)
            .ok()?,
    )
    .ok()?;
    let expires: i64 = expires.parse().ok()?;
    if expires <= chrono::Utc::now().timestamp() {
        return None;
    }
    let (secret, role) = signer(config, &name)?;
    let expected = signature(&secret, &name, expires)?;
    same_secret(mac.as_bytes(), expected.as_bytes()).then_some(Caller {
        name,
        role,
        via: "session",
    })
}

/// Who a console request is from: its session, else what the API would take.
fn caller_of(config: &Config, request: &Request) -> Option<Caller> {
    by_session(config, &CookieJar::from_headers(request.headers()))
        .or_else(|| identify(config, request))
}

/// Lets through only a caller whose role takes the page or form; sends a browser
/// that is not signed in to the login page, and back afterwards.
pub(super) async fn require_viewer(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = caller_of(&state.engine.runtime().config, &request);
    let csrf = request
        .extensions()
        .get::<Csrf>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    let Some(caller) = caller else {
        if super::changes(request.method()) {
            return refusal(
                StatusCode::UNAUTHORIZED,
                None,
                "Not signed in",
                "Sign in again at /ui/login, then send the form again.",
            );
        }
        let next_page = request
            .uri()
            .path_and_query()
            .map_or("/ui/", |p| p.as_str())
            .to_string();
        let query = serde_urlencoded::to_string([("next", next_page)]).unwrap_or_default();
        return Redirect::to(&format!("/ui/login?{query}")).into_response();
    };
    let access = Access::of(request.method(), &route_of(&request));
    if !caller.role.may(access) {
        let message = format!(
            "{} has the role {}; this needs one of: {}.",
            caller.name,
            caller.role,
            access
                .roles()
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let ui = Ui { caller, csrf };
        return refusal(StatusCode::FORBIDDEN, Some(&ui), "Not your role", &message);
    }
    request.extensions_mut().insert(Ui { caller, csrf });
    next.run(request).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// `GET /ui/login`: the form. An open API needs no signing in.
pub(super) async fn login_page(
    State(state): State<ApiState>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Query(query): Query<LoginQuery>,
) -> Response {
    if is_open(&state.engine.runtime().config) {
        return Redirect::to("/ui/").into_response();
    }
    login_form(StatusCode::OK, &csrf, query.next.as_deref(), "")
}

fn login_form(status: StatusCode, csrf: &Csrf, next: Option<&str>, message: &str) -> Response {
    render::page(
        status,
        None,
        "login.html",
        "login",
        minijinja::context! { login_csrf => csrf.0, next, message },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Who `token` signs in as: an identity, the single bearer token, or `user:password`
/// of the basic credential.
fn signs_in(config: &Config, token: &str) -> Option<String> {
    if let Some(identity) = identity_of(&config.identities, token) {
        return Some(identity.name.clone());
    }
    match &config.auth {
        Some(ApiAuth::Bearer(expected)) if same_secret(token.as_bytes(), expected.as_bytes()) => {
            Some("api".to_string())
        }
        Some(ApiAuth::Basic { username, password })
            if same_secret(
                token.as_bytes(),
                format!("{username}:{password}").as_bytes(),
            ) =>
        {
            Some(username.clone())
        }
        _ => None,
    }
}

fn secure(config: &Config, headers: &HeaderMap) -> bool {
    config.tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// `POST /ui/login`: a session for the token's identity, then the page asked for.
pub(super) async fn login(
    State(state): State<ApiState>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let form: LoginForm = match Checked::from_request(request, &state).await {
        Ok(Checked(form)) => form,
        Err(refused) => return refused,
    };
    let runtime = state.engine.runtime();
    let config = &runtime.config;
    let Some(name) = signs_in(config, form.token.trim()) else {
        tracing::warn!("console: a sign-in with a token that is none of the API's");
        return login_form(
            StatusCode::UNAUTHORIZED,
            &csrf,
            form.next.as_deref(),
            "That token is not one of salve's.",
        );
    };
    let expires = crate::model::later(chrono::Utc::now(), SESSION_LASTS).timestamp();
    let Some(mac) =
        signer(config, &name).and_then(|(secret, _)| signature(&secret, &name, expires))
    else {
        return login_form(
            StatusCode::UNAUTHORIZED,
            &csrf,
            None,
            "That token cannot sign in.",
        );
    };
    use base64::Engine as _;
    let value = format!(
        "{}.{expires}.{mac}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name.as_bytes())
    );
    let cookie = Cookie::build((SESSION, value))
        .path("/")
        .http_only(true)
        .secure(secure(config, &headers))
        .same_site(SameSite::Strict)
        .max_age(time::Duration::try_from(SESSION_LASTS).unwrap_or(time::Duration::ZERO))
        .build();
    tracing::info!(%name, "console: signed in");
    let mut response = super::back_to(form.next.as_deref(), "/ui/");
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct Nothing {}

/// `POST /ui/logout`: the session cookie forgotten.
pub(super) async fn logout(State(state): State<ApiState>, request: Request) -> Response {
    if let Err(refused) = Checked::<Nothing>::from_request(request, &state).await {
        return refused;
    }
    let mut response = Redirect::to("/ui/login").into_response();
    let cookie = Cookie::build((SESSION, ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::ZERO)
        .build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// A console form, taken only with the CSRF token of the browser that sends it.
pub(super) struct Checked<T>(pub T);

#[derive(Debug, Default, Deserialize)]
struct Token {
    #[serde(default)]
    csrf: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Checked<T> {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Response> {
        let ui = request.extensions().get::<Ui>().cloned();
        let expected = request.extensions().get::<Csrf>().map(|c| c.0.clone());
        if request.method() != Method::POST {
            return Err(refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                ui.as_ref(),
                "Not a form",
                "Forms are sent with POST.",
            ));
        }
        let bytes = match axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let message = format!("A console form is at most {MAX_FORM_BYTES} bytes.");
                return Err(refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ui.as_ref(),
                    "Too large",
                    &message,
                ));
            }
        };
        let given: Token = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        let fits = expected.is_some_and(|e| {
            !given.csrf.is_empty() && same_secret(given.csrf.as_bytes(), e.as_bytes())
        });
        if !fits {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                ui.as_ref(),
                "Form refused",
                "This form was not sent from this browser's salve console page (its CSRF token is missing or stale): reload the page and send it again.",
            ));
        }
        serde_urlencoded::from_bytes(&bytes)
            .map(Checked)
            .map_err(|e| {
                refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ui.as_ref(),
                    "Form not understood",
                    &format!("The form: {e}."),
                )
            })
    }
}
