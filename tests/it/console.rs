//! The console (`/ui/`) driven through `api::app` with `oneshot`, as a browser without
//! JavaScript would: every page and its headers, a hostile label on every page that
//! shows it, forms refused without their CSRF token or by a role that may not, and
//! signing in with an identity's token.

use crate::api_support::{Answer, Api};
use axum::body::Body;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE,
};
use http::Request;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Restarts the container an alert names; under `[policy] dry_run` nothing is done.
const RESTART: &str = r#"
const MATCH = `alertname=~"Hostile|Quiet"`;
fn plan(event) { [restart(docker_container(event.labels.container))] }
"#;

const DRY_RUN: &str = "dry_run = true\n";

/// A browser's cookies, sent with each request as a browser sends them.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn keep(&mut self, answer: &Answer) {
        for value in answer.headers.get_all(SET_COOKIE) {
            let text = value.to_str().expect("a Set-Cookie header of text");
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if text.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, api: &Api, path: &str) -> Answer {
        let request = Request::get(path)
            .header(COOKIE, self.cookie_header())
            .body(Body::empty())
            .expect("a request");
        let answer = api.call(request).await;
        self.keep(&answer);
        answer
    }

    /// The form posted with this browser's CSRF token (as the page would put it).
    async fn post(&mut self, api: &Api, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.cookies.get("salve_csrf").cloned().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(api, path, &all).await
    }

    async fn post_raw(&mut self, api: &Api, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).expect("a form");
        let request = Request::post(path)
            .header(COOKIE, self.cookie_header())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("a request");
        let answer = api.call(request).await;
        self.keep(&answer);
        answer
    }
}

fn html(answer: &Answer) -> &str {
    answer.body.as_str().unwrap_or_default()
}

/// Posts `event` and waits until its decision is in the trail.
async fn decided(api: &Api, event: Value) -> String {
    let answer = api.post_json("/api/v1/events", &event).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let started = Instant::now();
    loop {
        let audit = api.get("/api/v1/audit?kind=decision").await;
        if let Some(decision) = audit.body.as_array().and_then(|a| a.last()) {
            return decision["fingerprint"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no decision recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_in_the_console_frame_with_its_security_headers() {
    let api = Api::start(DRY_RUN, &[("rules/restart.rhai", RESTART)]).await;
    let fingerprint = decided(
        &api,
        json!({ "labels": { "alertname": "Quiet", "container": "web" } }),
    )
    .await;
    let mut browser = Browser::default();
    let pages = [
        "/ui/".to_string(),
        "/ui/decisions".to_string(),
        "/ui/decisions?verdict=suppress&reason=dry_run&kind=all&since=1h".to_string(),
        format!("/ui/alerts/{fingerprint}"),
        "/ui/approvals".to_string(),
        "/ui/rules".to_string(),
        "/ui/state".to_string(),
        "/ui/maintenance".to_string(),
        "/ui/replay".to_string(),
        "/ui/report".to_string(),
    ];
    for page in &pages {
        let answer = browser.get(&api, page).await;
        assert_eq!(answer.status, 200, "{page}: {}", answer.body);
        assert_eq!(
            answer
                .header(CONTENT_SECURITY_POLICY)
                .map(|c| c.split(';').next()),
            Some(Some("default-src 'self'")),
            "{page}"
        );
        assert!(html(&answer).contains("<nav>"), "{page}: {}", answer.body);
        assert!(
            !html(&answer).contains("<script>"),
            "{page}: no inline script"
        );
    }
    // The decision shows on the overview and the list, with a link to its story.
    let overview = browser.get(&api, "/ui/").await;
    assert!(html(&overview).contains(&format!("/ui/alerts/{fingerprint}")));
    // Every replica, this one marked (without a store, it alone, leading).
    let replica = api.engine.state_view().replica.replace('/', "&#x2f;");
    assert!(
        html(&overview).contains(&format!("{replica} <strong>leader</strong> (this one)")),
        "{}",
        overview.body
    );
    let filtered = browser.get(&api, "/ui/decisions?reason=cooldown").await;
    assert!(!html(&filtered).contains(&format!("/ui/alerts/{fingerprint}")));
    // The script and the style sheet are served under their hashed names, for good.
    let script = html(&overview)
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page names its script")
        .replace("&#x2f;", "/");
    let served = browser.get(&api, &script).await;
    assert_eq!(served.status, 200, "{script}");
    assert_eq!(
        served.header(CACHE_CONTROL),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        browser.get(&api, "/ui/static/console.0000.js").await.status,
        404
    );
    // The export takes the filter: one decision, as JSONL and as CSV.
    let jsonl = browser
        .get(&api, "/ui/decisions/export?format=jsonl&rule=restart")
        .await;
    let line: Value = match &jsonl.body {
        Value::String(text) => serde_json::from_str(text.trim()).expect("one JSON line"),
        other => other.clone(),
    };
    assert_eq!(line["reason"], "dry_run", "{}", jsonl.body);
    let csv = browser
        .get(&api, "/ui/decisions/export?format=csv&rule=restart")
        .await;
    assert_eq!(html(&csv).lines().count(), 2, "{}", csv.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_label_is_escaped_on_every_page_that_shows_it() {
    let api = Api::start(DRY_RUN, &[("rules/restart.rhai", RESTART)]).await;
    let fingerprint = decided(
        &api,
        json!({
            "labels": { "alertname": "Hostile", "container": "<script>alert(1)</script>" },
            "annotations": { "summary": "\"><img src=x onerror=alert(2)>" },
            "generator_url": "javascript:alert(3)",
        }),
    )
    .await;
    let mut browser = Browser::default();
    for page in [
        "/ui/".to_string(),
        "/ui/decisions".to_string(),
        format!("/ui/alerts/{fingerprint}"),
        "/ui/decisions?alertname=Hostile".to_string(),
    ] {
        let answer = browser.get(&api, &page).await;
        let body = html(&answer);
        assert_eq!(answer.status, 200, "{page}: {body}");
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;"),
            "{page}: the label is shown, escaped: {body}"
        );
        assert!(!body.contains("<script>alert"), "{page}");
        assert!(!body.contains("<img src=x"), "{page}");
        assert!(
            !body.contains("href=\"javascript:"),
            "{page}: no link to a script"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_the_token_of_its_browser_is_refused_and_with_it_is_done() {
    let api = Api::start("", &[]).await;
    let mut browser = Browser::default();
    assert_eq!(browser.get(&api, "/ui/maintenance").await.status, 200);
    assert!(browser.cookies.contains_key("salve_csrf"));
    let window = [
        ("matchers", "{service=\"db\"}"),
        ("ends_at", "2h"),
        ("comment", "disk swap"),
    ];

    let forged = browser.post_raw(&api, "/ui/maintenance", &window).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let mut wrong = window.to_vec();
    wrong.push(("csrf", "0000"));
    assert_eq!(
        browser
            .post_raw(&api, "/ui/maintenance", &wrong)
            .await
            .status,
        403
    );
    // Another browser's page cannot send this browser's form.
    let mut stranger = Browser::default();
    let theirs = stranger.post(&api, "/ui/maintenance", &window).await;
    assert_eq!(theirs.status, 403);
    assert!(api.engine.windows().is_empty());

    let made = browser.post(&api, "/ui/maintenance", &window).await;
    assert_eq!(made.status, 303, "{}", made.body);
    assert_eq!(made.header(LOCATION), Some("/ui/maintenance"));
    let windows = api.engine.windows();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].comment, "disk swap");

    let ended = browser
        .post(&api, &format!("/ui/maintenance/{}/end", windows[0].id), &[])
        .await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    assert!(api.engine.windows().is_empty());
    let trail = api.get("/api/v1/audit?kind=maintenance").await;
    assert_eq!(
        trail.body.as_array().map(Vec::len),
        Some(2),
        "{}",
        trail.body
    );
}

const IDENTITIES: &str = r#"
[[api.identity]]
name = "grafana"
token_file = "{dir}/viewer"
role = "viewer"

[[api.identity]]
name = "alice"
token_file = "{dir}/alice"
role = "admin"

[[api.identity]]
name = "alertmanager"
token_file = "{dir}/sender"
role = "sender"
"#;

async fn with_identities() -> Api {
    Api::start(
        IDENTITIES,
        &[
            ("viewer", "viewer-token\n"),
            ("alice", "alice-token\n"),
            ("sender", "sender-token\n"),
        ],
    )
    .await
}

async fn signed_in(api: &Api, token: &str) -> Browser {
    let mut browser = Browser::default();
    let page = browser.get(api, "/ui/login?next=%2Fui%2Fstate").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let answer = browser
        .post(api, "/ui/login", &[("token", token), ("next", "/ui/state")])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.header(LOCATION), Some("/ui/state"));
    let session = answer
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("salve_session="))
        .expect("a session cookie")
        .to_string();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_signs_in_and_sees_but_only_an_admin_resets_and_nobody_unknown_gets_in() {
    let api = with_identities().await;
    let mut nobody = Browser::default();
    let answer = nobody.get(&api, "/ui/state").await;
    assert_eq!(answer.status, 303);
    assert_eq!(
        answer.header(LOCATION),
        Some("/ui/login?next=%2Fui%2Fstate")
    );
    assert_eq!(nobody.get(&api, "/ui/").await.status, 303);
    let refused = nobody.post(&api, "/ui/login", &[("token", "guess")]).await;
    assert_eq!(refused.status, 401);
    assert!(!nobody.cookies.contains_key("salve_session"));
    let reset = [
        ("target", "docker:container/web"),
        ("what", "breaker"),
        ("reason", "fixed by hand"),
    ];
    assert_eq!(
        nobody.post(&api, "/ui/state/reset", &reset).await.status,
        401
    );

    let mut viewer = signed_in(&api, "viewer-token").await;
    let state = viewer.get(&api, "/ui/state").await;
    assert_eq!(state.status, 200);
    assert!(html(&state).contains("grafana"));
    let refused = viewer.post(&api, "/ui/state/reset", &reset).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(html(&refused).contains("needs one of: admin"));
    let windows = viewer
        .post(
            &api,
            "/ui/maintenance",
            &[("matchers", "{a=\"b\"}"), ("ends_at", "1h")],
        )
        .await;
    assert_eq!(windows.status, 403);

    let mut sender = signed_in(&api, "sender-token").await;
    assert_eq!(sender.get(&api, "/ui/").await.status, 403);

    let mut admin = signed_in(&api, "alice-token").await;
    let done = admin.post(&api, "/ui/state/reset", &reset).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let trail = api
        .call(
            Request::get("/api/v1/audit?kind=state_reset")
                .header(http::header::AUTHORIZATION, "Bearer alice-token")
                .body(Body::empty())
                .expect("a request"),
        )
        .await;
    assert_eq!(trail.body[0]["by"], "alice", "{}", trail.body);
    assert_eq!(trail.body[0]["reason"], "fixed by hand");

    let out = admin.post(&api, "/ui/logout", &[]).await;
    assert_eq!(out.status, 303);
    assert!(!admin.cookies.contains_key("salve_session"));
    assert_eq!(admin.get(&api, "/ui/state").await.status, 303);
}

/// Asks `sre` (alice) before marking.
const ASKING: &str = r#"
const MATCH = `alertname="DbDown"`;
fn plan(event) { [exec("mark", [event.labels.host]).approval("sre")] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_answers_from_the_inbox_form_and_a_viewer_may_not() {
    let config = format!(
        "{}{}\n[approvals.sre]\nttl = \"10m\"\nidentities = [\"alice\"]\n",
        crate::support::marker("mark", "marks"),
        IDENTITIES
    );
    let api = Api::start(
        &config,
        &[
            ("rules/asking.rhai", ASKING),
            ("viewer", "viewer-token\n"),
            ("alice", "alice-token\n"),
            ("sender", "sender-token\n"),
        ],
    )
    .await;
    let event = json!({ "labels": { "alertname": "DbDown", "host": "db-1" } });
    let answer = api
        .call(
            Request::post("/api/v1/events")
                .header(http::header::AUTHORIZATION, "Bearer sender-token")
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(event.to_string()))
                .expect("a request"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let started = Instant::now();
    let id = loop {
        if let Some(approval) = api.engine.approvals().first() {
            break approval.id.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no approval asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut viewer = signed_in(&api, "viewer-token").await;
    let inbox = viewer.get(&api, "/ui/approvals").await;
    assert!(html(&inbox).contains(&format!("approval-{id}")));
    assert!(
        html(&inbox).contains("viewer may not answer"),
        "{}",
        inbox.body
    );
    let refused = viewer
        .post(
            &api,
            &format!("/ui/approvals/{id}/approve"),
            &[("comment", "yes")],
        )
        .await;
    assert_eq!(refused.status, 403);

    let mut alice = signed_in(&api, "alice-token").await;
    let done = alice
        .post(
            &api,
            &format!("/ui/approvals/{id}/approve"),
            &[("comment", "go")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header(LOCATION), Some("/ui/approvals"));
    let approval = api.engine.approval(&id).expect("the approval");
    assert_eq!(approval.state.as_str(), "approved");
    assert_eq!(
        approval.decided_by.map(|a| (a.via, a.id)),
        Some(("console".into(), "alice".into()))
    );
    let again = alice
        .post(&api, &format!("/ui/approvals/{id}/deny"), &[])
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_and_replay_forms_show_their_result_or_say_what_is_wrong() {
    let api = Api::start(DRY_RUN, &[("rules/restart.rhai", RESTART)]).await;
    decided(
        &api,
        json!({ "labels": { "alertname": "Quiet", "container": "web" } }),
    )
    .await;
    let mut browser = Browser::default();
    browser.get(&api, "/ui/rules").await;

    let payload = json!({ "labels": { "alertname": "Quiet", "container": "db" } }).to_string();
    let planned = browser
        .post(&api, "/ui/rules/plan", &[("payload", &payload)])
        .await;
    assert_eq!(planned.status, 200, "{}", planned.body);
    assert!(html(&planned).contains("id=\"plan\""));
    assert!(
        html(&planned).contains("docker:container&#x2f;db"),
        "{}",
        planned.body
    );
    let broken = browser
        .post(&api, "/ui/rules/plan", &[("payload", "{\"labels\": ")])
        .await;
    assert_eq!(broken.status, 422);
    assert!(
        html(&broken).contains("The payload: malformed JSON at line 1"),
        "{}",
        broken.body
    );

    let replayed = browser.post(&api, "/ui/replay", &[("since", "1h")]).await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    assert!(
        html(&replayed).contains("0 differences"),
        "{}",
        replayed.body
    );
    // A pasted rule that does not compile is refused, saying where.
    let wrong = browser
        .post(
            &api,
            "/ui/replay",
            &[
                ("since", "1h"),
                ("rule", "const MATCH = `a=\"b\"`;\nfn plan(event) { [ }\n"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(html(&wrong).contains("pasted.rhai:2:"), "{}", wrong.body);
}
