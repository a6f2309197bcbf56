//! The credentials the API requires (`[api]` bearer token or basic auth), compared in
//! constant time; `/-/healthy`, `/-/ready` and `/metrics` stay open.

use super::{ApiError, ApiState};
use crate::config::ApiAuth;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials after the scheme, which HTTP compares without regard to case
/// (RFC 9110: `bearer`, `Bearer` and `BEARER` are one scheme).
fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim_start().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

pub(super) async fn require_auth(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = state.engine.runtime().config.auth.clone();
    request.extensions_mut().insert(Caller {
        name: "api".into(),
        role: Role::Admin,
        via: "token",
    });
    let Some(auth) = auth else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok = match &auth {
        ApiAuth::Bearer(token) => credentials(given, "bearer")
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes())),
        ApiAuth::Basic { username, password } => credentials(given, "basic")
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
    let mut response = ApiError::Unauthorized.into_response();
    if let Ok(value) = challenge.parse() {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

// Stand-in for the identities of `[[api.identity]]`, replaced when they land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Viewer,
    Approver,
    Admin,
}

impl Role {
    pub fn may_approve(self) -> bool {
        matches!(self, Role::Approver | Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub via: &'static str,
}
