//! More than salve can take: answered at once with 503 and `Retry-After`, never held;
//! everything acknowledged is decided; a stop under a backlog ends within its grace.

use crate::support::{native, of_kind, s, wait_until, Salve};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A rule that spends its whole time budget on every alert it matches.
const SLOW: &str = r#"
const MATCH = `alertname="Slow"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    let i = 0;
    loop { i += 1; }
}
"#;

fn notification(n: usize) -> Value {
    let events: Vec<Value> = (0..5)
        .map(|i| native(&[("alertname", "Slow"), ("n", &format!("{n}-{i}"))]))
        .collect();
    Value::Array(events)
}

/// Every acknowledged event id, and whether each was evaluated.
fn undecided(salve: &Salve, acked: &BTreeSet<String>) -> usize {
    let evaluated: BTreeSet<String> = of_kind(&salve.audit_json(), "evaluated")
        .into_iter()
        .map(|r| s(&r["event_id"]))
        .collect();
    acked.difference(&evaluated).count()
}

#[test]
fn a_flood_past_the_backlog_is_refused_at_once_with_retry_after_and_nothing_acknowledged_is_lost() {
    let salve = Salve::builder()
        // Each alert holds the decider for the whole 50 ms: cut off by the time, not by
        // the operations budget, which a fast machine spends in far less, so the
        // backlog is still full when readiness is asked.
        .config("[engine]\nmax_backlog = 20\nrule_timeout = \"50ms\"\nrule_max_operations = 1000000000000\n")
        .rule("slow", SLOW)
        .start();
    let mut acked = BTreeSet::new();
    let mut refused = None;
    for n in 0..40 {
        let started = Instant::now();
        let reply = salve
            .client()
            .post(salve.url("/api/v1/events"))
            .json(&notification(n))
            .send()
            .expect("post");
        let took = started.elapsed();
        let status = reply.status().as_u16();
        let retry_after = reply
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or("").to_string());
        let body: Value = reply.json().expect("json answer");
        if status == 503 {
            refused = Some((took, retry_after, body));
            break;
        }
        assert_eq!(status, 200, "{body}");
        for id in body["ids"].as_array().expect("ids") {
            acked.insert(s(id));
        }
    }
    let (took, retry_after, body) = refused.expect("the flood was never refused");
    assert!(took < Duration::from_secs(1), "the refusal took {took:?}");
    let seconds: u64 = retry_after
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    assert!(
        s(&body["error"]).contains("engine.max_backlog is 20"),
        "{body}"
    );
    let ready = salve.get("/-/ready");
    assert_eq!(ready.status, 503);
    assert!(
        salve
            .metric("salve_intake_rejected_total{reason=\"backlog\"}")
            .is_some_and(|n| n >= 1.0),
        "{}",
        salve.metrics()
    );

    // Once the backlog drains, the same request is taken.
    let reply = wait_until("the backlog to drain", || {
        let reply = salve.post_json("/api/v1/events", &notification(99));
        (reply.status == 200).then_some(reply)
    });
    for id in reply.body["ids"].as_array().expect("ids") {
        acked.insert(s(id));
    }
    wait_until("every acknowledged event to be decided", || {
        (undecided(&salve, &acked) == 0).then_some(())
    });
    let received: BTreeSet<String> = of_kind(&salve.audit_json(), "received")
        .into_iter()
        .map(|r| s(&r["event"]["id"]))
        .collect();
    assert_eq!(received, acked, "refused events are not recorded");
    assert_eq!(salve.get("/-/ready").status, 200);
}

#[test]
fn a_rule_returning_more_intents_than_max_intents_is_cut_and_says_how_many() {
    let salve = Salve::builder()
        .config("[engine]\nmax_intents = 3\n\n[exec.mark]\nargv = [\"true\"]\n")
        .rule(
            "many",
            r#"
const MATCH = `alertname="Many"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    let out = [];
    for i in 0..5 { out.push(exec("mark", [`${i}`])); }
    out
}
"#,
        )
        .start();
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", "Many")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    assert_eq!(of_kind(&records, "decision").len(), 3);
    let errors = of_kind(&records, "rule_error");
    assert_eq!(errors.len(), 1, "{records:#?}");
    assert_eq!(
        errors[0]["error"],
        "plan() returned 5 intents; the 2 past engine.max_intents (3) were dropped"
    );
}

#[test]
fn sigterm_under_a_backlog_exits_within_the_grace_and_the_rest_is_decided_at_the_next_start() {
    // Six slow rules, one per notification: a round cuts each off once, at 1 s each.
    // Their operations are not counted out first: on an idle machine the budget would
    // cut them off in a fraction of a second, and the backlog be gone before the stop.
    let mut builder = Salve::builder().config(
        "[engine]\nshutdown_grace = \"1s\"\nrule_timeout = \"1s\"\nrule_max_operations = 1000000000000\n",
    );
    for n in 0..6 {
        builder = builder.rule(
            &format!("slow{n}"),
            &SLOW.replace("alertname=\"Slow\"", &format!("n=~\"{n}-.*\"")),
        );
    }
    let mut salve = builder.start();
    let mut acked = BTreeSet::new();
    for n in 0..6 {
        let reply = salve.post_json("/api/v1/events", &notification(n));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        for id in reply.body["ids"].as_array().expect("ids") {
            acked.insert(s(id));
        }
    }
    // Six rules cut off at 1 s each, on two cores: more than the grace.
    let started = Instant::now();
    salve.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
    assert!(
        undecided(&salve, &acked) > 0,
        "the backlog was gone before the stop; the test proves nothing"
    );
    salve.start();
    wait_until("the rest to be decided after the restart", || {
        (undecided(&salve, &acked) == 0).then_some(())
    });
}

const LOOPING: &str = r#"
const MATCH = `alertname="Loop"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    let i = 0;
    loop { i += 1; }
}
"#;

const CANARY: &str = r#"
const MATCH = `alertname="Canary"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [exec("mark", [event.labels.n])]
}
"#;

fn looping(n: usize, alerts: usize) -> Value {
    Value::Array(
        (0..alerts)
            .map(|i| native(&[("alertname", "Loop"), ("n", &format!("{n}-{i}"))]))
            .collect(),
    )
}

/// When each event with this alertname was received and evaluated, from the trail.
fn decided_after(records: &[Value], alertname: &str) -> Vec<chrono::Duration> {
    let at = |r: &Value| {
        s(&r["at"])
            .parse::<chrono::DateTime<chrono::Utc>>()
            .expect("record time")
    };
    of_kind(records, "received")
        .into_iter()
        .filter(|r| r["event"]["labels"]["alertname"] == alertname)
        .filter_map(|received| {
            let evaluated = of_kind(records, "evaluated")
                .into_iter()
                .find(|e| e["event_id"] == received["event"]["id"])?;
            Some(at(evaluated) - at(received))
        })
        .collect()
}

#[test]
fn a_looping_rule_does_not_hold_up_alerts_it_does_not_match() {
    // A cut-off costs its round the rule's budget: 100,000 operations is about what the
    // default 1,000,000 costs in a release build, in the tests' debug build.
    let salve = Salve::builder()
        .config("[engine]\nrule_max_operations = 100000\n\n[exec.mark]\nargv = [\"true\"]\n")
        .rule("loop", LOOPING)
        .rule("canary", CANARY)
        .start();
    for n in 0..3 {
        let reply = salve.post_json("/api/v1/events", &looping(n, 500));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let canary = native(&[("alertname", "Canary"), ("n", &n.to_string())]);
        assert_eq!(salve.post_json("/api/v1/events", &canary).status, 200);
    }
    let records = salve.wait_settled(1503);
    let canaries = decided_after(&records, "Canary");
    assert_eq!(canaries.len(), 3);
    assert!(
        canaries.iter().all(|d| *d < chrono::Duration::seconds(1)),
        "healthy alerts waited {canaries:?} behind a looping rule"
    );
}

#[test]
fn a_rule_cut_off_again_and_again_is_quarantined_then_released() {
    let salve = Salve::builder()
        .config(
            r#"
[engine]
quarantine_after = "3 in 1m"
quarantine_for = "2s"

[notify.ops]
type = "webhook"
url = "http://127.0.0.1:9/hook"
retries = 0
timeout = "1s"

[[on_outcome]]
when = ["rule_quarantined"]
notify = "ops"
"#,
        )
        .rule("loop", LOOPING)
        .start();
    let reasons = |salve: &Salve, n: usize| -> Vec<String> {
        let records = salve.wait_settled(n);
        of_kind(&records, "rule_error")
            .into_iter()
            .map(|r| s(&r["reason"]))
            .collect()
    };
    for n in 0..3 {
        assert_eq!(
            salve.post_json("/api/v1/events", &looping(n, 1)).status,
            200
        );
        salve.wait_settled(n + 1);
    }
    assert_eq!(
        salve.post_json("/api/v1/events", &looping(3, 1)).status,
        200
    );
    assert_eq!(
        reasons(&salve, 4),
        ["cut_off", "cut_off", "cut_off", "quarantined"]
    );
    let rules = salve.get("/api/v1/rules");
    assert!(
        rules.body[0]["quarantined_until"].is_string(),
        "{:?}",
        rules.body
    );
    assert_eq!(
        salve.metric("salve_rules_quarantined_total{rule=\"loop\"}"),
        Some(1.0)
    );
    // The channel [[on_outcome]] names is told, through policy and the audit.
    let records = salve.wait_for_audit("the quarantine announced", |records| {
        of_kind(records, "outcome")
            .iter()
            .any(|o| o["rule"] == "on_outcome/ops")
    });
    let told: Vec<&Value> = of_kind(&records, "decision")
        .into_iter()
        .filter(|d| d["rule"] == "on_outcome/ops")
        .collect();
    assert_eq!(told.len(), 1, "{records:#?}");
    assert_eq!(told[0]["params"]["when"], "rule_quarantined");
    assert_eq!(told[0]["params"]["rule"], "loop");
    assert!(
        s(&told[0]["params"]["text"]).starts_with("Rule loop is quarantined until "),
        "{}",
        told[0]["params"]["text"]
    );

    // After the cool-off the rule runs again.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        salve.post_json("/api/v1/events", &looping(4, 1)).status,
        200
    );
    assert_eq!(reasons(&salve, 5)[4], "cut_off");

    // A reload ends a quarantine at once.
    for n in 5..8 {
        assert_eq!(
            salve.post_json("/api/v1/events", &looping(n, 1)).status,
            200
        );
        salve.wait_settled(n + 1);
    }
    assert_eq!(salve.post_json("/-/reload", &Value::Null).status, 200);
    assert_eq!(
        salve.post_json("/api/v1/events", &looping(8, 1)).status,
        200
    );
    assert_eq!(reasons(&salve, 9)[8], "cut_off");
}

/// Writes an HTTP request for `body` on a fresh connection, the first `sent` bytes of
/// the body only, waits `patience`, then hangs up without reading the answer.
fn post_and_hang_up(salve: &Salve, body: &Value, sent: usize, patience: Duration) {
    use std::io::Write;
    let body = serde_json::to_vec(body).expect("encode");
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", salve.port)).expect("connect to salve");
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream
        .write_all(&body[..sent.min(body.len())])
        .expect("send the body");
    std::thread::sleep(patience);
    stream.shutdown(std::net::Shutdown::Both).expect("hang up");
}

#[test]
fn events_of_a_client_that_hangs_up_are_decided_without_a_restart_and_a_torn_body_is_not_taken() {
    let salve = Salve::builder()
        .config("[engine]\nrule_timeout = \"300ms\"\n\n[exec.mark]\nargv = [\"true\"]\n")
        .rule("slow", SLOW)
        .rule("canary", CANARY)
        .start();
    // A backlog first, so the hung-up request waits behind slow rounds.
    for n in 0..4 {
        assert_eq!(
            salve.post_json("/api/v1/events", &notification(n)).status,
            200
        );
    }
    let whole = native(&[("alertname", "Canary"), ("n", "hung-up")]);
    post_and_hang_up(&salve, &whole, usize::MAX, Duration::from_millis(200));
    let torn = native(&[("alertname", "Canary"), ("n", "torn")]);
    post_and_hang_up(&salve, &torn, 20, Duration::from_millis(200));

    let canary_of = |records: &[Value], n: &str| -> Option<String> {
        of_kind(records, "received")
            .into_iter()
            .find(|r| r["event"]["labels"]["n"] == n)
            .map(|r| s(&r["event"]["id"]))
    };
    let records = salve.wait_for_audit("the hung-up client's event to be decided", |records| {
        canary_of(records, "hung-up").is_some_and(|id| {
            of_kind(records, "evaluated")
                .iter()
                .any(|r| s(&r["event_id"]) == id)
        })
    });
    assert!(
        of_kind(&records, "decision")
            .iter()
            .any(|d| d["params"]["args"][0] == "hung-up"),
        "{records:#?}"
    );
    assert_eq!(
        canary_of(&records, "torn"),
        None,
        "a body the client never finished sending is not acknowledged, so not recorded"
    );
}

#[test]
fn the_audit_api_serves_a_large_trail_in_bounded_pages_with_flat_memory() {
    let mut salve = Salve::builder()
        .config("[audit]\nmax_file_bytes = 8000000\nkeep_files = 20\n")
        .start();
    let events: Vec<Value> = (0..50)
        .map(|i| native(&[("alertname", "Paged"), ("n", &i.to_string())]))
        .collect();
    assert_eq!(
        salve
            .post_json("/api/v1/events", &Value::Array(events))
            .status,
        200
    );
    salve.wait_settled(50);
    salve.stop();

    // Older history, as a long storm leaves it: ten rotated files of 4 MB. The
    // checkpoint written at the stop already holds what they say.
    let data = salve.data_dir();
    let lines = std::fs::read_to_string(data.join("audit.jsonl")).expect("read the trail");
    let mut file = String::new();
    while file.len() < 4_000_000 {
        file.push_str(&lines);
    }
    for n in 1..=10 {
        std::fs::write(data.join(format!("audit.jsonl.{n}")), &file).expect("write history");
    }
    let trail_bytes = 10 * file.len() + lines.len();
    salve.start();

    let (before, _) = salve.memory_kib();
    let mut highest = before;
    let mut pages = 0;
    let mut records = 0;
    let mut cursor: Option<String> = None;
    loop {
        let (bytes, page, older) = salve.audit_page("limit=1000000", cursor.as_deref());
        assert!(bytes <= 4 << 20, "a page of {bytes} bytes");
        records += page.len();
        pages += 1;
        highest = highest.max(salve.memory_kib().0);
        match older {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 100, "the cursor never reached the end");
    }
    let expected = (trail_bytes / lines.len()) * lines.lines().count();
    assert!(pages >= 10, "{pages} pages for {trail_bytes} bytes");
    assert_eq!(records, expected, "every record once across the pages");
    let growth_mib = (highest - before) / 1024;
    eprintln!(
        "[overload] audit API: {pages} pages of a {} MB trail, RSS {} MiB -> at most {} MiB",
        trail_bytes / 1_000_000,
        before / 1024,
        highest / 1024
    );
    assert!(
        growth_mib < 32,
        "serving a {} MB trail grew RSS by {growth_mib} MiB (from {} MiB)",
        trail_bytes / 1_000_000,
        before / 1024
    );
}
