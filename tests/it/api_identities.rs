//! Named API identities and their roles (`[[api.identity]]`), the single `[api]` token
//! beside them, and the trusted proxy's header (`[api.proxy]`): who may call which
//! route, what a caller told no hears (401 or 403, whole), and the config mistakes
//! `salve check` refuses. Most drive `api::app` with `oneshot`; one runs the real
//! listener, which alone knows the peer's address.

use crate::api_support::{Answer, Api};
use crate::support::{fixture, native, Salve};
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::Request;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The single token (`admin-token`) and identities of three roles.
const TEAM: &str = r#"
[api]
bearer_token_file = "{dir}/admin-token"

[[api.identity]]
name = "alertmanager"
token_file = "{dir}/sender"
role = "sender"

[[api.identity]]
name = "grafana"
token_file = "{dir}/viewer"
role = "viewer"

[[api.identity]]
name = "alice"
token_file = "{dir}/alice"
role = "admin"
"#;

/// The files `TEAM` names.
const TOKENS: [(&str, &str); 4] = [
    ("admin-token", "the-admin-token\n"),
    ("sender", "the-sender-token\n"),
    ("viewer", "the-viewer-token\n"),
    ("alice", "the-alice-token\n"),
];

/// A request to `path`, with `Authorization` when given and a JSON body when given.
fn request(
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    let body = match body {
        Some(body) => {
            request = request.header(CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    request.body(body).expect("a request")
}

/// `method path` as the holder of `token`.
async fn call_as(api: &Api, token: &str, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let authorization = format!("Bearer {token}");
    api.call(request(method, path, Some(&authorization), body))
        .await
}

/// A maintenance window for an hour from now.
fn window() -> Value {
    let ends_at = chrono::Utc::now() + chrono::Duration::hours(1);
    json!({
        "matchers": "alertname=\"Note\"",
        "ends_at": ends_at.to_rfc3339(),
        "created_by": "test",
    })
}

/// The 403 a caller gets for a route their role does not take.
fn forbidden(name: &str, role: &str, route: &str, needs: &[&str]) -> Value {
    let needs_text = match needs {
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
        [] => String::new(),
    };
    json!({
        "error": format!("{name} has the role {role}; {route} needs {needs_text}"),
        "detail": { "caller": name, "role": role, "needs": needs },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_posts_alerts_but_may_not_read_the_audit_or_reload() {
    let api = Api::start(TEAM, &TOKENS).await;
    let sender = "the-sender-token";
    let alerts = fixture("firing-single.json");
    let answer = call_as(&api, sender, "POST", "/api/v1/alertmanager", Some(&alerts)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let event = native(&[("alertname", "Note")]);
    let answer = call_as(&api, sender, "POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let answer = call_as(&api, sender, "GET", "/api/v1/audit", None).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            403,
            forbidden(
                "alertmanager",
                "sender",
                "GET /api/v1/audit",
                &["viewer", "approver", "admin"],
            )
        )
    );
    let answer = call_as(&api, sender, "POST", "/-/reload", None).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            403,
            forbidden("alertmanager", "sender", "POST /-/reload", &["admin"])
        )
    );
    let answer = call_as(&api, sender, "POST", "/api/v1/plan", Some(&event)).await;
    assert_eq!(answer.status, 403, "a plan is a viewer's: {}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_and_plans_but_may_neither_open_a_window_nor_send_alerts() {
    let api = Api::start(TEAM, &TOKENS).await;
    let viewer = "the-viewer-token";
    for path in [
        "/api/v1/audit",
        "/api/v1/rules",
        "/api/v1/maintenance",
        "/api/v1/report",
    ] {
        let answer = call_as(&api, viewer, "GET", path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    let event = native(&[("alertname", "Note")]);
    let answer = call_as(&api, viewer, "POST", "/api/v1/plan", Some(&event)).await;
    assert_eq!(
        (answer.status, answer.body),
        (200, json!({ "decisions": [], "rule_errors": [] }))
    );

    let answer = call_as(&api, viewer, "POST", "/api/v1/maintenance", Some(&window())).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            403,
            forbidden("grafana", "viewer", "POST /api/v1/maintenance", &["admin"])
        )
    );
    let answer = call_as(&api, viewer, "POST", "/api/v1/events", Some(&event)).await;
    assert_eq!(
        (answer.status, answer.body),
        (
            403,
            forbidden(
                "grafana",
                "viewer",
                "POST /api/v1/events",
                &["sender", "admin"]
            )
        )
    );
    let answer = call_as(&api, viewer, "GET", "/api/v1/maintenance", None).await;
    assert_eq!(
        (answer.status, answer.body),
        (200, json!([])),
        "no window was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_identity_and_the_single_token_may_do_everything() {
    let api = Api::start(TEAM, &TOKENS).await;
    for admin in ["the-alice-token", "the-admin-token"] {
        let answer = call_as(&api, admin, "POST", "/api/v1/maintenance", Some(&window())).await;
        assert_eq!(answer.status, 201, "{admin}: {}", answer.body);
        let id = answer.body["id"]
            .as_str()
            .expect("the window's id")
            .to_string();
        let path = format!("/api/v1/maintenance/{id}");
        assert_eq!(
            call_as(&api, admin, "DELETE", &path, None).await.status,
            204
        );
        let answer = call_as(&api, admin, "POST", "/-/reload", None).await;
        assert_eq!(answer.status, 200, "{admin}: {}", answer.body);
        let answer = call_as(&api, admin, "GET", "/api/v1/audit?kind=reload", None).await;
        assert_eq!(answer.status, 200, "{admin}: {}", answer.body);
        let event = native(&[("alertname", "Note")]);
        let answer = call_as(&api, admin, "POST", "/api/v1/events", Some(&event)).await;
        assert_eq!(answer.status, 200, "{admin}: {}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_is_a_401_with_a_challenge() {
    let api = Api::start(TEAM, &TOKENS).await;
    let refused = [
        None,
        Some("Bearer wrong"),
        Some("Bearer the-sender-toke"),
        Some("Bearer the-sender-token-and-more"),
        Some("Basic dGhlLXNlbmRlci10b2tlbg=="),
    ];
    for authorization in refused {
        let answer = api
            .call(request("GET", "/api/v1/rules", authorization, None))
            .await;
        assert_eq!(
            (answer.status, &answer.body),
            (401, &json!({ "error": "missing or wrong credentials" })),
            "{authorization:?}"
        );
        assert_eq!(answer.header(WWW_AUTHENTICATE), Some("Bearer"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_without_the_single_token_refuse_a_request_without_one() {
    let config =
        "[[api.identity]]\nname = \"grafana\"\ntoken_file = \"{dir}/viewer\"\nrole = \"viewer\"\n";
    let api = Api::start(config, &TOKENS).await;
    assert_eq!(api.get("/api/v1/rules").await.status, 401);
    let answer = call_as(&api, "the-admin-token", "GET", "/api/v1/rules", None).await;
    assert_eq!(answer.status, 401, "no single token is configured");
    let answer = call_as(&api, "the-viewer-token", "GET", "/api/v1/rules", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    for open in ["/-/healthy", "/-/ready", "/metrics"] {
        assert_eq!(api.get(open).await.status, 200, "{open}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_beside_identities_offers_both_challenges_and_is_an_admin() {
    let config = "[api]\nbasic_auth_username = \"salve\"\nbasic_auth_password_file = \"{dir}/admin-token\"\n\
                  [[api.identity]]\nname = \"alertmanager\"\ntoken_file = \"{dir}/sender\"\nrole = \"sender\"\n";
    let api = Api::start(config, &TOKENS).await;
    let answer = api.get("/api/v1/rules").await;
    assert_eq!(answer.status, 401);
    let challenges: Vec<&str> = answer
        .headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(challenges, ["Bearer", "Basic realm=\"salve\""]);
    // base64("salve:the-admin-token")
    let basic = Some("Basic c2FsdmU6dGhlLWFkbWluLXRva2Vu");
    let answer = api.call(request("POST", "/-/reload", basic, None)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = call_as(&api, "the-sender-token", "GET", "/api/v1/rules", None).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_changed_in_its_file_is_the_one_taken_after_a_reload() {
    let api = Api::start(TEAM, &TOKENS).await;
    std::fs::write(api.dir().join("viewer"), "a-rotated-token\n").expect("rotate the token");
    let answer = call_as(&api, "the-viewer-token", "GET", "/api/v1/rules", None).await;
    assert_eq!(answer.status, 200, "the old token until the reload");
    let answer = call_as(&api, "the-admin-token", "POST", "/-/reload", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = call_as(&api, "the-viewer-token", "GET", "/api/v1/rules", None).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let answer = call_as(&api, "a-rotated-token", "GET", "/api/v1/rules", None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// A request carrying the proxy's header, from `peer` when given (as the listener
/// would say).
fn proxied(
    method: &str,
    path: &str,
    user: &str,
    peer: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut request = request(method, path, None, body);
    request
        .headers_mut()
        .insert("x-forwarded-email", user.parse().expect("a header value"));
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().expect("a socket address");
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_header_names_the_caller_only_from_the_proxy() {
    let config = TEAM.to_string()
        + "\n[api.proxy]\nheader = \"X-Forwarded-Email\"\nfrom = [\"127.0.0.1/32\", \"::1/128\"]\n";
    let api = Api::start(&config, &TOKENS).await;
    let user = "bob@example.com";
    for peer in ["127.0.0.1:50000", "[::1]:50000", "[::ffff:127.0.0.1]:50000"] {
        let answer = api
            .call(proxied("GET", "/api/v1/audit", user, Some(peer), None))
            .await;
        assert_eq!(answer.status, 200, "{peer}: {}", answer.body);
    }
    let answer = api
        .call(proxied(
            "POST",
            "/api/v1/maintenance",
            user,
            Some("127.0.0.1:1"),
            Some(&window()),
        ))
        .await;
    assert_eq!(
        (answer.status, answer.body),
        (
            403,
            forbidden(user, "viewer", "POST /api/v1/maintenance", &["admin"])
        ),
        "a proxy's users are viewers unless [api.proxy] role says otherwise"
    );
    for peer in [Some("10.0.0.9:50000"), Some("127.0.0.2:50000"), None] {
        let answer = api
            .call(proxied("GET", "/api/v1/audit", user, peer, None))
            .await;
        assert_eq!(answer.status, 401, "{peer:?}: {}", answer.body);
    }
    let mut twice = proxied("GET", "/api/v1/audit", user, Some("127.0.0.1:1"), None);
    twice.headers_mut().append(
        "x-forwarded-email",
        "mallory@example.com".parse().expect("a value"),
    );
    assert_eq!(api.call(twice).await.status, 401, "a header given twice");
    let empty = proxied("GET", "/api/v1/audit", " ", Some("127.0.0.1:1"), None);
    assert_eq!(api.call(empty).await.status, 401, "an empty name");

    let without = Api::start(TEAM, &TOKENS).await;
    let answer = without
        .call(proxied(
            "GET",
            "/api/v1/audit",
            user,
            Some("127.0.0.1:1"),
            None,
        ))
        .await;
    assert_eq!(
        answer.status, 401,
        "no [api.proxy]: the header is no one's word"
    );
}

#[test]
fn the_listener_gives_the_peer_address_so_only_the_proxy_is_believed() {
    let config = |from: &str| {
        format!(
            "[[api.identity]]\nname = \"ops\"\ntoken_env = \"SALVE_IT_OPS_TOKEN\"\nrole = \"admin\"\n\
             [api.proxy]\nheader = \"X-Forwarded-User\"\nfrom = [{from}]\nrole = \"admin\"\n\
             [docker]\nevents = false\n"
        )
    };
    let mut salve = Salve::builder()
        .config(&config("\"10.0.0.0/8\""))
        .env("SALVE_IT_OPS_TOKEN", "the-ops-token")
        .start();
    let audit = |salve: &Salve| {
        let request = salve.client().get(salve.url("/api/v1/audit"));
        salve
            .send(request.header("X-Forwarded-User", "carol"))
            .status
    };
    assert_eq!(audit(&salve), 401, "a loopback peer is not 10.0.0.0/8");

    std::fs::write(salve.config_path(), config("\"127.0.0.1\", \"::1\""))
        .expect("rewrite salve.toml");
    let reload = salve.client().post(salve.url("/-/reload"));
    assert_eq!(salve.send(reload.bearer_auth("the-ops-token")).status, 200);
    assert_eq!(audit(&salve), 200, "the proxy's address, after the reload");
    salve.stop();
}

/// `salve check` refuses `config` (tokens in the files of `TOKENS`), saying `expected`.
fn assert_refused(config: &str, expected: &str) {
    let salve = Salve::builder().config(config).write();
    for (file, token) in TOKENS {
        std::fs::write(salve.dir().join(file), token).expect("write a token");
    }
    let out = salve.cli(&["check", "--config", "salve.toml", "--rules", "rules"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{config}\n{stderr}");
    assert!(
        stderr.contains(expected),
        "{config}\nexpected {expected:?} in:\n{stderr}"
    );
    assert!(
        !stderr.contains("the-sender-token"),
        "a token is never printed: {stderr}"
    );
}

#[test]
fn check_refuses_a_name_or_token_used_twice_and_a_role_salve_does_not_have() {
    let identity = |name: &str, file: &str, role: &str| {
        format!("[[api.identity]]\nname = \"{name}\"\ntoken_file = \"{{dir}}/{file}\"\nrole = \"{role}\"\n")
    };
    assert_refused(
        &format!(
            "{}{}",
            identity("ci", "sender", "sender"),
            identity("ci", "viewer", "viewer")
        ),
        "api.identity[1].name: \"ci\" is already the name of api.identity[0]",
    );
    assert_refused(
        &format!(
            "{}{}",
            identity("ci", "sender", "sender"),
            identity("deploy", "sender", "admin")
        ),
        "api.identity[1].token_file: \"deploy\" has the same token as api.identity[0] (\"ci\"): \
         each identity needs its own",
    );
    assert_refused(
        &identity("ci", "sender", "boss"),
        "api.identity[0].role: unknown variant `boss`, expected one of `sender`, `viewer`, \
         `approver`, `admin`",
    );
    assert_refused(
        &identity("", "sender", "sender"),
        "api.identity[0].name: is empty",
    );
    assert_refused(
        "[api.proxy]\nheader = \"X-Forwarded-Email\"\nfrom = [\"localhost\"]\nrole = \"viewer\"\n",
        "api.proxy.from[0]: \"localhost\" is not an IP address or a network",
    );
}
