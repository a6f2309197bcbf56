//! What the webhook endpoints take, what they refuse, and how they say so.

use crate::support::{fixture, native, of_kind, s, Salve, FIXTURES};
use serde_json::{json, Value};

/// The event salve must make of one alert of a fixture (without its id and arrival time).
fn expected_event(alert: &Value) -> Value {
    let mut event = json!({
        "source": "alertmanager",
        "status": alert["status"],
        "labels": alert["labels"],
        "annotations": alert["annotations"],
        "starts_at": alert["startsAt"],
        "fingerprint": alert["fingerprint"],
    });
    if alert["generatorURL"] != "" {
        event["generator_url"] = alert["generatorURL"].clone();
    }
    // Go's zero time means "no end" and is not kept.
    if alert["endsAt"] != "0001-01-01T00:00:00Z" {
        event["ends_at"] = alert["endsAt"].clone();
    }
    event
}

#[test]
fn every_alertmanager_fixture_is_accepted_as_one_event_per_alert() {
    let salve = Salve::builder().start();
    let mut acked: Vec<(String, Vec<String>)> = Vec::new();
    for name in FIXTURES {
        let reply = salve.post_fixture(name);
        assert_eq!(reply.status, 200, "{name}: {:?}", reply.body);
        let alerts = fixture(name)["alerts"].as_array().expect("alerts").len();
        let ids: Vec<String> = reply.body["ids"]
            .as_array()
            .expect("ids in the answer")
            .iter()
            .map(s)
            .collect();
        assert_eq!(
            reply.body,
            json!({ "status": "accepted", "events": alerts, "ids": ids }),
            "{name}"
        );
        acked.push((name.to_string(), ids));
    }

    let total: usize = acked.iter().map(|(_, ids)| ids.len()).sum();
    let records = salve.wait_settled(total);
    let received = of_kind(&records, "received");
    assert_eq!(received.len(), total, "one received record per alert");
    let mut received = received.into_iter();
    for (name, ids) in acked {
        for (alert, id) in fixture(&name)["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .zip(ids)
        {
            let mut event = received.next().expect("a received record")["event"].clone();
            assert_eq!(
                event["id"],
                id.as_str(),
                "{name}: events are recorded in order"
            );
            let map = event.as_object_mut().expect("event is an object");
            map.remove("id");
            assert!(map.remove("received_at").is_some(), "{name}: received_at");
            assert_eq!(event, expected_event(alert), "{name}");
        }
    }
}

/// The error answer's body: JSON with an `error` string.
fn error_text(body: &Value) -> String {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body is not {{\"error\": ...}}: {body}"))
        .to_string()
}

#[test]
fn bad_webhook_requests_are_refused_with_a_json_error_and_lose_nothing() {
    let salve = Salve::builder()
        .config("[api]\nmax_body_bytes = 1024\n")
        .start();
    let am = "/api/v1/alertmanager";

    // Malformed JSON: 400, with the line and column of the mistake.
    let reply = salve.post_raw(
        am,
        "application/json",
        b"{\n  \"status\": \"firing\",\n  \"alerts\": [\n}".to_vec(),
    );
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert!(
        error_text(&reply.body).starts_with("malformed JSON at line 4, column 1:"),
        "{}",
        reply.body
    );
    assert_eq!(reply.body["detail"], json!({ "line": 4, "column": 1 }));

    // The wrong content type: 415, whatever the body.
    let good = std::fs::read(crate::support::fixture_path("firing-subroute.json")).expect("read");
    let reply = salve.post_raw(am, "text/plain", good.clone());
    assert_eq!(reply.status, 415, "{:?}", reply.body);
    assert_eq!(
        error_text(&reply.body),
        "expected Content-Type: application/json, got \"text/plain\""
    );

    // Over `api.max_body_bytes`: 413.
    let mut big = b"{\"padding\": \"".to_vec();
    big.resize(2048 - 2, b'x');
    big.extend_from_slice(b"\"}");
    let reply = salve.post_raw(am, "application/json", big);
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(
        error_text(&reply.body),
        "request body is larger than the configured limit (api.max_body_bytes)"
    );

    // Not UTF-8: 400, naming the byte.
    let reply = salve.post_raw(
        am,
        "application/json",
        b"{\"status\": \"fi\xffring\"}".to_vec(),
    );
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "error": "body is not valid UTF-8 (at byte 14)", "detail": { "byte": 14 } })
    );

    // Valid JSON that is not an Alertmanager payload: 422, naming the field.
    let reply = salve.post_json(am, &json!({ "foo": 1 }));
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert!(
        error_text(&reply.body).contains("missing field `status`"),
        "{}",
        reply.body
    );
    let reply = salve.post_json(
        am,
        &json!({ "status": "firing", "alerts": [{ "labels": {} }] }),
    );
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "error": "field `alerts[0]`: missing field `status`",
            "detail": { "field": "alerts[0]" }
        })
    );
    let reply = salve.post_json(
        am,
        &json!({ "status": "firing", "alerts": [{ "status": "firing", "labels": {} }] }),
    );
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "error": "field `alerts[0]`: missing field `startsAt`",
            "detail": { "field": "alerts[0]" }
        })
    );

    // Native events are checked the same way.
    let reply = salve.post_json("/api/v1/events", &json!({ "labels": {} }));
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "error": "field `labels`: an event needs at least one label",
            "detail": { "field": "labels" }
        })
    );
    let reply = salve.post_json(
        "/api/v1/events",
        &json!([native(&[("alertname", "Ok")]), { "labels": { "a": "b" }, "colour": "red" }]),
    );
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(reply.body["detail"], json!({ "field": "[1].colour" }));
    assert!(
        error_text(&reply.body).starts_with("field `[1].colour`: unknown field `colour`"),
        "{}",
        reply.body
    );

    // After all of that a good payload still works, and nothing else got in.
    let reply = salve.post_raw(am, "application/json", good);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let received: Vec<&Value> = of_kind(&records, "received")
        .into_iter()
        .map(|r| &r["event"]["labels"]["alertname"])
        .collect();
    assert_eq!(received, vec!["DiskFull"]);
    // No rule matches it: the received record says so, and nothing follows it.
    assert_eq!(of_kind(&records, "received")[0]["unmatched"], true);
    assert!(of_kind(&records, "evaluated").is_empty());

    let rejected = |path: &str, status: u16| {
        salve.metric(&format!(
            "salve_requests_rejected_total{{path=\"{path}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(
        [
            rejected(am, 400),
            rejected(am, 413),
            rejected(am, 415),
            rejected(am, 422),
            rejected("/api/v1/events", 422),
        ],
        [Some(2.0), Some(1.0), Some(1.0), Some(3.0), Some(2.0)],
        "{}",
        salve.metrics()
    );
    assert_eq!(
        salve.metric("salve_events_received_total{source=\"alertmanager\"}"),
        Some(1.0)
    );
}

#[test]
fn api_requires_the_configured_bearer_token() {
    let token = "s3cret-token-for-tests";
    let salve = Salve::builder()
        .config("[api]\nbearer_token_env = \"SALVE_TEST_TOKEN\"\n")
        .env("SALVE_TEST_TOKEN", token)
        .start();
    let body = std::fs::read(crate::support::fixture_path("firing-single.json")).expect("read");
    let url = salve.url("/api/v1/alertmanager");
    let post = || {
        salve
            .client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
    };

    let reply = salve.send(post());
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "error": "missing or wrong credentials" })
    );
    let reply = salve.send(post().bearer_auth("wrong"));
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    let reply = salve.send(post().bearer_auth(token));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // The scheme is matched without regard to case, as HTTP says.
    let rules = salve
        .client()
        .get(salve.url("/api/v1/rules"))
        .header("authorization", format!("bearer {token}"));
    assert_eq!(salve.send(rules).status, 200);

    // Health, readiness and metrics stay open for probes and Prometheus.
    assert_eq!(salve.get("/-/healthy").status, 200);
    assert_eq!(salve.get("/-/ready").status, 200);
    assert_eq!(salve.get("/api/v1/rules").status, 401);

    let records = salve.wait_settled(1);
    assert_eq!(of_kind(&records, "received").len(), 1);
    assert_eq!(
        salve.metric("salve_requests_rejected_total{path=\"/api/v1/alertmanager\",status=\"401\"}"),
        Some(2.0)
    );
    // The secret shows up nowhere salve writes.
    let trail = serde_json::to_string(&records).expect("JSON");
    assert!(!trail.contains(token), "the token is in the audit trail");
    assert!(!salve.logs().contains(token), "the token is in the logs");
}

#[test]
fn the_audit_api_answers_with_the_newest_records_that_match() {
    let salve = Salve::builder()
        .rule(
            "note",
            "const MATCH = `alertname=\"Noted\"`;\nfn plan(event) { [] }\n",
        )
        .start();
    let mut ids = Vec::new();
    for host in ["a", "b", "c"] {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Noted"), ("host", host)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        ids.push(s(&reply.body["ids"][0]));
    }
    salve.wait_settled(3);

    let reply = salve.get("/api/v1/audit?kind=received&limit=2");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let hosts: Vec<String> = reply
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| s(&r["event"]["labels"]["host"]))
        .collect();
    assert_eq!(hosts, ["b", "c"], "the newest two, oldest first");

    let reply = salve.get("/api/v1/audit?kind=evaluated&since=1h");
    let evaluated: Vec<String> = reply
        .body
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| s(&r["event_id"]))
        .collect();
    assert_eq!(evaluated, ids);

    let reply = salve.get("/api/v1/audit?since=yesterday");
    assert_eq!(reply.status, 400);
    assert!(
        s(&reply.body["error"]).starts_with("since: "),
        "{:?}",
        reply.body
    );
}

#[test]
fn a_bad_audit_kind_or_replay_assume_is_a_400_naming_the_accepted_values() {
    let salve = Salve::builder().start();

    // A typo in `?kind=` once matched nothing and answered 200 with no records.
    let reply = salve.get("/api/v1/audit?kind=decisions");
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(
        reply.body,
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
    let reply = salve.get("/api/v1/audit?kind=reload");
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let reply = salve.post_json("/api/v1/replay", &json!({ "assume": "sometimes" }));
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "error": "field `assume`: \"sometimes\" is not an outcome to assume (one of ok, failed)",
            "detail": { "field": "assume", "accepted": ["ok", "failed"] },
        })
    );
    let reply = salve.post_json("/api/v1/replay", &json!({ "assume": "failed" }));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[test]
fn an_alert_past_the_label_bounds_is_refused_with_422_naming_it_and_nothing_is_recorded() {
    let salve = Salve::builder()
        .config("[api]\nmax_labels = 4\nmax_label_value_bytes = 16\nmax_annotations_bytes = 64\n")
        .start();
    let mut body = fixture("firing-group.json");
    let alerts = body["alerts"].as_array_mut().expect("alerts");
    for alert in alerts.iter_mut() {
        alert["labels"] = json!({ "alertname": "Disk", "instance": "a" });
        alert["annotations"] = json!({});
    }
    alerts[1]["labels"]["instance"] = json!("x".repeat(17));
    let reply = salve.post_json("/api/v1/alertmanager", &body);
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "error": "alert 1: label \"instance\" has 17 bytes, more than api.max_label_value_bytes (16)",
            "detail": { "alert": 1, "label": "instance" }
        })
    );

    let alerts = body["alerts"].as_array_mut().expect("alerts");
    alerts[1]["labels"] = json!({ "alertname": "Disk", "a": "1", "b": "2", "c": "3", "d": "4" });
    let reply = salve.post_json("/api/v1/alertmanager", &body);
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.body["error"],
        "alert 1: 5 labels, more than api.max_labels (4)"
    );

    let alerts = body["alerts"].as_array_mut().expect("alerts");
    alerts[1]["labels"] = json!({ "alertname": "Disk", "instance": "b" });
    alerts[0]["annotations"] = json!({ "description": "y".repeat(60) });
    let reply = salve.post_json("/api/v1/alertmanager", &body);
    assert_eq!(reply.status, 422, "{:?}", reply.body);
    assert_eq!(
        reply.body["error"],
        "alert 0: annotations of 71 bytes, more than api.max_annotations_bytes (64)"
    );

    let native = salve.post_json(
        "/api/v1/events",
        &json!([{ "labels": { "a": "1" } }, { "labels": { "huge": "z".repeat(17) } }]),
    );
    assert_eq!(native.status, 422, "{:?}", native.body);
    assert_eq!(
        native.body["detail"],
        json!({ "alert": 1, "label": "huge" })
    );

    assert!(
        of_kind(&salve.audit_json(), "received").is_empty(),
        "nothing of a refused payload is recorded"
    );
}

#[test]
fn the_audit_api_answers_in_bounded_pages_and_its_cursor_reaches_the_oldest_record() {
    let salve = Salve::builder()
        .config("[audit]\nmax_file_bytes = 30000\n")
        .start();
    let mut posted = Vec::new();
    for batch in 0..30 {
        let events: Vec<Value> = (0..10)
            .map(|i| native(&[("alertname", "Paged"), ("n", &format!("{batch}-{i}"))]))
            .collect();
        let reply = salve.post_json("/api/v1/events", &Value::Array(events));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        posted.extend(reply.body["ids"].as_array().expect("ids").iter().map(s));
    }
    salve.wait_settled(300);

    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let (bytes, records, older) =
            salve.audit_page("kind=received&max_bytes=20000", before.as_deref());
        assert!(bytes <= 20000, "a page of {bytes} bytes");
        pages.push(records.iter().map(|r| s(&r["event"]["id"])).collect());
        match older {
            Some(cursor) => before = Some(cursor),
            None => break,
        }
        assert!(pages.len() < 100, "the cursor never reached the end");
    }
    assert!(
        pages.len() > 1,
        "one page held everything: the test proves nothing"
    );
    let all: Vec<String> = pages.into_iter().rev().flatten().collect();
    assert_eq!(
        all, posted,
        "every record once, oldest first, across the pages"
    );
    let reply = salve.get("/api/v1/audit?before=nonsense");
    assert_eq!(reply.status, 400);
}

#[test]
fn an_empty_rules_folder_is_ready_with_a_warning_that_nothing_will_be_done() {
    let mut salve = Salve::builder().start();
    let ready = salve.get("/-/ready");
    assert_eq!(ready.status, 200);
    let body = s(&ready.body);
    assert!(
        body.contains("warning: no rules loaded from ")
            && body.contains("nothing is done about them"),
        "{body}"
    );
    assert!(salve.logs().contains("no rules loaded"), "{}", salve.logs());

    salve.write_rule(
        "quiet",
        "const MATCH = `alertname=\"X\"`;\nfn plan(event) { [] }\n",
    );
    salve.stop();
    salve.start();
    assert_eq!(s(&salve.get("/-/ready").body), "salve is ready.\n");
}
