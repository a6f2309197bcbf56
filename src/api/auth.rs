//! Who calls the API, and whether their role takes the route. A caller is named by a
//! `[[api.identity]]` token, by the header of a trusted `[api.proxy]`, or by the single
//! `[api]` credential (bearer token or basic auth); with none of them configured, the
//! API is open as it always was. Secrets are compared in constant time; `/-/healthy`,
//! `/-/ready` and `/metrics` stay open (they are not behind this layer).

use super::{ApiError, ApiState};
use crate::config::{ApiAuth, ApiIdentity, Config, TrustedProxy};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::SocketAddr;
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// What an API caller may do. The roles are not a ladder: a viewer may not send
/// events and a sender may not read.
// The derived order is for sorting only: ask `may` or `may_approve`, never compare roles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Posts alerts and events (`POST /api/v1/alertmanager`, `POST /api/v1/events`), nothing else.
    Sender,
    /// Reads: every `GET` under `/api/v1/`, and `POST /api/v1/plan`.
    Viewer,
    /// A viewer who may also approve or deny an action that waits for a person.
    Approver,
    /// Everything: maintenance windows, reload, replay, and what the others may.
    Admin,
}

impl Role {
    /// The roles, as the config and the API write them.
    pub const ALL: [Role; 4] = [Role::Sender, Role::Viewer, Role::Approver, Role::Admin];

    pub fn may_approve(self) -> bool {
        matches!(self, Role::Approver | Role::Admin)
    }

    /// Whether this role takes a route of this kind.
    pub(super) fn may(self, access: Access) -> bool {
        access.roles().contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a request, as every protected handler can read it
/// (`axum::Extension<Caller>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// How the caller was known: `"identity"` (an `[[api.identity]]` token), `"proxy"`
    /// (the trusted proxy's header), `"token"` (the single `[api]` bearer token or basic
    /// auth) or `"open"` (no credentials configured).
    pub via: &'static str,
}

impl Caller {
    /// No credentials are configured: anything goes, as before identities existed.
    fn open() -> Caller {
        Caller {
            name: "anonymous".to_string(),
            role: Role::Admin,
            via: "open",
        }
    }

    /// The single `[api]` credential, which predates roles and so may do everything.
    fn single_token() -> Caller {
        Caller {
            name: "api".to_string(),
            role: Role::Admin,
            via: "token",
        }
    }
}

/// What a route does, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Send,
    Read,
    Approve,
    Administer,
}

impl Access {
    /// The kind of a route, by its method and its pattern (`/api/v1/maintenance/{id}`).
    /// A route not named here is the admin's, so an endpoint added later is closed to
    /// the other roles until it is placed.
    pub(super) fn of(method: &Method, route: &str) -> Access {
        let reads = method == Method::GET || method == Method::HEAD;
        let posts = method == Method::POST;
        let approves = (route.starts_with("/api/v1/approvals/")
            || route.starts_with("/ui/approvals/"))
            && (route.ends_with("/approve") || route.ends_with("/deny"));
        let reads_api = route.starts_with("/api/v1/") || route.starts_with("/ui/");
        match route {
            "/api/v1/alertmanager" | "/api/v1/events" if posts => Access::Send,
            "/api/v1/plan" | "/ui/rules/plan" if posts => Access::Read,
            _ if reads && reads_api => Access::Read,
            _ if posts && approves => Access::Approve,
            _ => Access::Administer,
        }
    }

    /// The roles that take it.
    pub(super) fn roles(self) -> &'static [Role] {
        match self {
            Access::Send => &[Role::Sender, Role::Admin],
            Access::Read => &[Role::Viewer, Role::Approver, Role::Admin],
            Access::Approve => &[Role::Approver, Role::Admin],
            Access::Administer => &[Role::Admin],
        }
    }
}

/// Equal or not, in a time that says nothing of either's content or length: both are
/// hashed first, so a wrong guess learns nothing from how long its refusal took.
pub(super) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(given)
        .as_slice()
        .ct_eq(Sha256::digest(expected).as_slice())
        .into()
}

/// The identity whose token `given` is. Every identity's token is compared and the
/// match is taken without a branch, so the time does not tell which one matched, or
/// whether one did.
pub(super) fn identity_of<'a>(
    identities: &'a [ApiIdentity],
    given: &str,
) -> Option<&'a ApiIdentity> {
    let digest = Sha256::digest(given.as_bytes());
    // The index of the match plus one; 0 is none.
    let mut found = 0u64;
    for (i, identity) in (1u64..).zip(identities) {
        let hit = digest
            .as_slice()
            .ct_eq(Sha256::digest(identity.token.expose().as_bytes()).as_slice());
        found.conditional_assign(&i, hit);
    }
    let index = usize::try_from(found.checked_sub(1)?).ok()?;
    identities.get(index)
}

/// The credentials after the scheme, which HTTP compares without regard to case
/// (RFC 9110: `bearer`, `Bearer` and `BEARER` are one scheme).
fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim_start().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// The caller `Authorization` names: an identity's token, else the single credential.
fn by_credentials(config: &Config, headers: &HeaderMap) -> Option<Caller> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(token) = credentials(given, "bearer").map(str::trim) {
        let identity = identity_of(&config.identities, token);
        // Compared whether or not an identity matched: the time does not tell which
        // kind of token was right.
        let single = matches!(&config.auth, Some(ApiAuth::Bearer(expected))
            if same_secret(token.as_bytes(), expected.as_bytes()));
        return match identity {
            Some(identity) => Some(Caller {
                name: identity.name.clone(),
                role: identity.role,
                via: "identity",
            }),
            None => single.then(Caller::single_token),
        };
    }
    let Some(ApiAuth::Basic { username, password }) = &config.auth else {
        return None;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials(given, "basic")?.trim())
        .ok()?;
    same_secret(&decoded, format!("{username}:{password}").as_bytes()).then(Caller::single_token)
}

/// The user a trusted proxy names. A header from any other address is no one's word,
/// and neither is a header given twice: a proxy that appends to what the client sent
/// rather than replacing it would otherwise pass the client's choice on.
fn by_proxy(proxy: &TrustedProxy, request: &Request) -> Option<Caller> {
    let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
    if !proxy.trusts(peer.ip()) {
        return None;
    }
    let mut values = request.headers().get_all(&proxy.header).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let name = value.to_str().ok()?.trim();
    (!name.is_empty()).then(|| Caller {
        name: name.to_string(),
        role: proxy.role,
        via: "proxy",
    })
}

/// No credentials of any kind are configured: the API (and the console) is open.
pub(super) fn is_open(config: &Config) -> bool {
    config.auth.is_none() && config.identities.is_empty() && config.proxy.is_none()
}

/// Who makes `request`; None when credentials are required and none are right. A
/// right token is taken before the proxy's header, which a proxy may send beside an
/// `Authorization` of its own (oauth2-proxy's ID token).
pub(super) fn identify(config: &Config, request: &Request) -> Option<Caller> {
    if is_open(config) {
        return Some(Caller::open());
    }
    by_credentials(config, request.headers()).or_else(|| by_proxy(config.proxy.as_ref()?, request))
}

/// 401 with a challenge for each scheme that could succeed.
fn unauthorized(config: &Config) -> Response {
    let mut challenges = Vec::new();
    if !config.identities.is_empty() || matches!(config.auth, Some(ApiAuth::Bearer(_))) {
        challenges.push("Bearer");
    }
    if matches!(config.auth, Some(ApiAuth::Basic { .. })) {
        challenges.push("Basic realm=\"salve\"");
    }
    if challenges.is_empty() {
        // Only a proxy's header would do, which no client can send; a 401 still names
        // a scheme (RFC 9110).
        challenges.push("Bearer");
    }
    let mut response = ApiError::Unauthorized.into_response();
    for challenge in challenges {
        response.headers_mut().append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// Puts the [`Caller`] into the request for its handler, or answers 401 (no right
/// credentials) or 403 (a role that does not take the route).
pub(super) async fn require_auth(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = {
        let runtime = state.engine.runtime();
        match identify(&runtime.config, &request) {
            Some(caller) => caller,
            None => return unauthorized(&runtime.config),
        }
    };
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(path.as_str(), MatchedPath::as_str);
    let access = Access::of(request.method(), route);
    if !caller.role.may(access) {
        return ApiError::Forbidden {
            method: request.method().to_string(),
            path,
            name: caller.name,
            role: caller.role,
            needs: access.roles().to_vec(),
        }
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_takes_the_routes_of_its_row_in_the_table() {
        let routes = [
            (Method::POST, "/api/v1/alertmanager"),
            (Method::POST, "/api/v1/events"),
            (Method::GET, "/api/v1/audit"),
            (Method::HEAD, "/api/v1/rules"),
            (Method::POST, "/api/v1/plan"),
            (Method::POST, "/api/v1/approvals/{id}/approve"),
            (Method::POST, "/api/v1/approvals/{id}/deny"),
            (Method::POST, "/api/v1/maintenance"),
            (Method::DELETE, "/api/v1/maintenance/{id}"),
            (Method::POST, "/api/v1/replay"),
            (Method::PUT, "/-/reload"),
            (Method::POST, "/api/v1/approvals/{id}/cancel"),
            (Method::GET, "/ui/state"),
            (Method::POST, "/ui/rules/plan"),
            (Method::POST, "/ui/approvals/{id}/approve"),
            (Method::POST, "/ui/state/reset"),
        ];
        let table: Vec<String> = Role::ALL
            .iter()
            .map(|role| {
                let allowed: Vec<String> = routes
                    .iter()
                    .filter(|(method, route)| role.may(Access::of(method, route)))
                    .map(|(method, route)| format!("{method} {route}"))
                    .collect();
                format!("{role}: {}", allowed.join(", "))
            })
            .collect();
        assert_eq!(
            table,
            [
                "sender: POST /api/v1/alertmanager, POST /api/v1/events",
                "viewer: GET /api/v1/audit, HEAD /api/v1/rules, POST /api/v1/plan, GET /ui/state, \
                 POST /ui/rules/plan",
                "approver: GET /api/v1/audit, HEAD /api/v1/rules, POST /api/v1/plan, \
                 POST /api/v1/approvals/{id}/approve, POST /api/v1/approvals/{id}/deny, \
                 GET /ui/state, POST /ui/rules/plan, POST /ui/approvals/{id}/approve",
                "admin: POST /api/v1/alertmanager, POST /api/v1/events, GET /api/v1/audit, \
                 HEAD /api/v1/rules, POST /api/v1/plan, POST /api/v1/approvals/{id}/approve, \
                 POST /api/v1/approvals/{id}/deny, POST /api/v1/maintenance, \
                 DELETE /api/v1/maintenance/{id}, POST /api/v1/replay, PUT /-/reload, \
                 POST /api/v1/approvals/{id}/cancel, GET /ui/state, POST /ui/rules/plan, \
                 POST /ui/approvals/{id}/approve, POST /ui/state/reset",
            ]
        );
        assert_eq!(Role::ALL.map(Role::may_approve), [false, false, true, true]);
    }

    #[test]
    fn a_token_names_the_one_identity_it_belongs_to() {
        let identity = |name: &str, token: &str| ApiIdentity {
            name: name.to_string(),
            token: crate::model::Secret(token.to_string()),
            role: Role::Viewer,
        };
        let identities = [identity("alice", "a-token"), identity("bob", "b-token")];
        let named = |given: &str| identity_of(&identities, given).map(|i| i.name.as_str());
        assert_eq!(named("a-token"), Some("alice"));
        assert_eq!(named("b-token"), Some("bob"));
        assert_eq!(named("b-toke"), None);
        assert_eq!(named(""), None);
        assert!(identity_of(&[], "a-token").is_none());
    }
}
