//! The API's error shapes and credentials, driven through `api::app` with
//! `tower::ServiceExt::oneshot`: no socket, no child process, one request a call. What
//! a client sees break (a status, `{"error", "detail"}`, a header) is compared whole.

use crate::api_support::Api;
use crate::notify_support::{slack_click, slack_signature};
use crate::support::native;
use axum::body::Body;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::Request;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_with_its_line_and_column() {
    let api = Api::start("", &[]).await;
    let answer = api
        .post(
            "/api/v1/alertmanager",
            "application/json",
            "{\n  \"status\": \"firing\",\n  \"alerts\": [\n}",
        )
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.body["detail"], json!({ "line": 4, "column": 1 }));
    assert!(
        answer.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("malformed JSON at line 4, column 1:")),
        "{}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_of_the_wrong_shape_is_a_422_naming_the_field() {
    let api = Api::start("", &[]).await;
    let answer = api
        .post_json(
            "/api/v1/alertmanager",
            &json!({ "status": "firing", "alerts": [{ "labels": {} }] }),
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "error": "field `alerts[0]`: missing field `status`",
            "detail": { "field": "alerts[0]" }
        })
    );

    let answer = api
        .post_json("/api/v1/events", &json!({ "labels": {} }))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "error": "field `labels`: an event needs at least one label",
            "detail": { "field": "labels" }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_event_posted_as_alertmanager_is_told_where_it_belongs() {
    let api = Api::start("", &[]).await;
    let hint = "this looks like a native event (labels at the top level, no alerts): \
                post it to /api/v1/events";
    for body in [
        native(&[("alertname", "DiskFull")]),
        json!([native(&[("alertname", "DiskFull")])]),
    ] {
        let answer = api.post_json("/api/v1/alertmanager", &body).await;
        assert_eq!(answer.status, 422, "{}", answer.body);
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(error.ends_with(hint), "{}", answer.body);
        assert!(
            answer.body["detail"]["field"].is_string(),
            "{}",
            answer.body
        );
    }
    let answer = api
        .post_json(
            "/api/v1/alertmanager",
            &native(&[("alertname", "DiskFull")]),
        )
        .await;
    assert!(
        answer.body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("missing field `status`; ")),
        "{}",
        answer.body
    );
    assert_eq!(answer.body["detail"], json!({ "field": "." }));
    // A webhook of the wrong shape gets no such hint.
    let answer = api
        .post_json(
            "/api/v1/alertmanager",
            &json!({ "alerts": [], "labels": {} }),
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.body);
    assert!(
        !answer.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("native"),
        "{}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_413_and_another_media_type_a_415() {
    let api = Api::start("[api]\nmax_body_bytes = 1024\n", &[]).await;
    let mut big = b"{\"padding\": \"".to_vec();
    big.resize(2048 - 2, b'x');
    big.extend_from_slice(b"\"}");
    let answer = api
        .post("/api/v1/alertmanager", "application/json", big)
        .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "error": "request body is larger than the configured limit (api.max_body_bytes)" })
    );

    let answer = api
        .post(
            "/api/v1/events",
            "text/plain",
            native(&[("alertname", "Note")]).to_string(),
        )
        .await;
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "error": "expected Content-Type: application/json, got \"text/plain\"" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_audit_kind_or_replay_assume_is_a_400_listing_the_accepted_values() {
    let api = Api::start("", &[]).await;
    let answer = api.get("/api/v1/audit?kind=decisions").await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "error": "kind: \"decisions\" is not a record kind (one of received, decision, \
                      outcome, rule_error, evaluated, maintenance, reload, reconsidered, approval_requested, approval_decided, state_reset)",
            "detail": {
                "field": "kind",
                "accepted": ["received", "decision", "outcome", "rule_error", "evaluated",
                             "maintenance", "reload", "reconsidered",
                             "approval_requested", "approval_decided", "state_reset"],
            },
        })
    );
    assert_eq!(api.get("/api/v1/audit?kind=reload").await.status, 200);

    let answer = api
        .post_json("/api/v1/replay", &json!({ "assume": "sometimes" }))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "error": "field `assume`: \"sometimes\" is not an outcome to assume (one of ok, failed)",
            "detail": { "field": "assume", "accepted": ["ok", "failed"] },
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_is_a_404_and_a_wrong_method_a_405_naming_the_allowed_ones() {
    let api = Api::start("", &[]).await;
    let answer = api.get("/api/v1/nothing-here").await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(answer.body, json!({ "error": "no such endpoint" }));

    let answer = api.get("/api/v1/events").await;
    assert_eq!(answer.status, 405, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({
            "error": "/api/v1/events does not take GET; it takes POST",
            "detail": { "allow": ["POST"] },
        })
    );
    assert_eq!(answer.header(ALLOW), Some("POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_is_required_on_the_api_but_not_on_health_and_metrics() {
    let api = Api::start(
        "[api]\nbearer_token_file = \"{dir}/token\"\n",
        &[("token", "router-token\n")],
    )
    .await;
    let rules = |authorization: Option<&str>| {
        let mut request = Request::get("/api/v1/rules");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        request.body(Body::empty()).expect("a request")
    };
    for refused in [None, Some("Bearer wrong"), Some("Basic cm91dGVyLXRva2Vu")] {
        let answer = api.call(rules(refused)).await;
        assert_eq!(answer.status, 401, "{refused:?}: {}", answer.body);
        assert_eq!(
            answer.body,
            json!({ "error": "missing or wrong credentials" })
        );
        assert_eq!(answer.header(WWW_AUTHENTICATE), Some("Bearer"));
    }
    // The scheme is compared without regard to case (RFC 9110).
    for accepted in ["Bearer router-token", "bearer router-token"] {
        let answer = api.call(rules(Some(accepted))).await;
        assert_eq!(answer.status, 200, "{accepted}: {}", answer.body);
    }
    for open in ["/-/healthy", "/-/ready", "/metrics"] {
        assert_eq!(api.get(open).await.status, 200, "{open}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_required_with_its_realm_when_configured() {
    let api = Api::start(
        "[api]\nbasic_auth_username = \"salve\"\nbasic_auth_password_file = \"{dir}/password\"\n",
        &[("password", "hunter2")],
    )
    .await;
    let audit = |authorization: &str| {
        Request::get("/api/v1/audit")
            .header(AUTHORIZATION, authorization)
            .body(Body::empty())
            .expect("a request")
    };
    // base64("salve:wrong"), then base64("salve:hunter2").
    let answer = api.call(audit("Basic c2FsdmU6d3Jvbmc=")).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.header(WWW_AUTHENTICATE),
        Some("Basic realm=\"salve\"")
    );
    let answer = api.call(audit("Basic c2FsdmU6aHVudGVyMg==")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_the_backlog_takes_or_a_stopping_salve_is_a_503_with_retry_after() {
    let api = Api::start("[engine]\nmax_backlog = 1\n", &[]).await;
    let two = json!([
        native(&[("alertname", "Note"), ("n", "1")]),
        native(&[("alertname", "Note"), ("n", "2")])
    ]);
    let answer = api.post_json("/api/v1/events", &two).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    let seconds: u64 = answer
        .header(RETRY_AFTER)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in whole seconds: {:?}", answer.headers));
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");

    api.engine.begin_stop();
    let answer = api
        .post_json("/api/v1/events", &native(&[("alertname", "Note")]))
        .await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header(RETRY_AFTER), Some("5"));
}

/// A request as Slack sends it to the interactions endpoint, signed with `secret`.
fn slack_request(secret: &str, at: i64, body: &str) -> Request<Body> {
    Request::post("/api/v1/slack/interactions")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", at.to_string())
        .header("x-slack-signature", slack_signature(secret, at, body))
        .body(Body::from(body.to_string()))
        .expect("a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_interactions_are_checked_by_their_signature_not_the_api_token() {
    let api = Api::start(
        "[api]\nbearer_token_file = \"{dir}/token\"\n\n[notify.ops]\ntype = \"slack\"\n\
         url = \"http://127.0.0.1:9/slack\"\nsigning_secret_file = \"{dir}/signing\"\n",
        &[
            ("token", "router-token\n"),
            ("signing", "router-slack-secret\n"),
        ],
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let secret = "router-slack-secret";
    let click = slack_click("U1", "approve", "no-such-approval", "");
    // Past the token check, which Slack cannot pass: a click on no approval is a 404.
    let answer = api.call(slack_request(secret, now, &click)).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "error": "no approval no-such-approval" })
    );
    let refused = [
        (slack_request("another secret", now, &click), "X-Slack-Signature does not match the body under any Slack channel's signing secret"),
        (slack_request(secret, now - 301, &click), "X-Slack-Request-Timestamp is 301s behind salve's clock, more than the 5 minutes a request may be"),
        (slack_request(secret, now + 400, &click), "X-Slack-Request-Timestamp is 400s ahead of salve's clock, more than the 5 minutes a request may be"),
        (Request::post("/api/v1/slack/interactions").body(Body::from(click.clone())).expect("a request"), "not signed by Slack: no X-Slack-Request-Timestamp"),
    ];
    for (request, error) in refused {
        let answer = api.call(request).await;
        assert_eq!(answer.status, 401, "{}", answer.body);
        assert_eq!(answer.body, json!({ "error": error }));
        assert_eq!(answer.header(WWW_AUTHENTICATE), None);
    }
    let malformed = [
        ("a=b", "the form has no payload field"),
        ("payload=%7B", "payload is not Slack's interaction JSON: EOF while parsing an object at line 1 column 1"),
    ];
    for (body, error) in malformed {
        let answer = api.call(slack_request(secret, now, body)).await;
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.body, json!({ "error": error }));
    }
    // A click on a link button in the message: acknowledged, nothing done.
    let link = slack_click("U1", "source", "", "");
    let answer = api.call(slack_request(secret, now, &link)).await;
    assert_eq!((answer.status, answer.body), (200, json!("")));
    let metrics = api.engine.metrics().render();
    assert!(
        metrics.contains(
            "salve_requests_rejected_total{path=\"/api/v1/slack/interactions\",status=\"401\"} 4"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_signing_secret_slack_interactions_are_a_404_saying_how_to_turn_them_on() {
    let api = Api::start(
        "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:9/slack\"\n",
        &[],
    )
    .await;
    let click = slack_click("U1", "approve", "a-1", "");
    let answer = api
        .call(slack_request(
            "anything",
            chrono::Utc::now().timestamp(),
            &click,
        ))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert_eq!(
        answer.body,
        json!({ "error": "Slack interactions are off: no [notify.NAME] channel of type \"slack\" has signing_secret_file or signing_secret_env" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_the_state_lists_this_replica_alone_as_the_leader() {
    let api = Api::start("", &[]).await;
    let answer = api.get("/api/v1/state").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let state = &answer.body;
    assert_eq!(state["leader"], true);
    let replicas = state["replicas"].as_array().expect("replicas is a list");
    assert_eq!(replicas.len(), 1, "{state}");
    let this = &replicas[0];
    assert_eq!(this["name"], state["replica"]);
    assert_eq!(this["this"], true);
    assert_eq!(this["leader"], true);
    assert!(this["seen_at"].is_string(), "{this}");
    // No trail in PostgreSQL, so no position in one.
    assert!(this.get("followed").is_none(), "{this}");
}
