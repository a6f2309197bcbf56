//! `GET /api/v1/stream`: the trail as server-sent events, each record as
//! `GET /api/v1/audit` gives it with its cursor as the event's id, resumed with
//! `Last-Event-ID` without a gap or a record twice.

use crate::support::{native, Salve};
use serde_json::Value;
use std::io::BufRead;
use std::time::Duration;

const CONFIG: &str = r#"
[exec.works]
argv = ["/bin/true"]
"#;

const RULE: &str = r#"
const MATCH = `alertname="Works"`;
fn plan(event) { [exec("works")] }
"#;

/// An open stream, read an event at a time.
struct Events {
    lines: std::io::BufReader<reqwest::blocking::Response>,
}

impl Events {
    fn open(salve: &Salve, last_event_id: Option<&str>) -> Events {
        // Bounded, so a missing event fails the test rather than hanging it.
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        let mut request = client.get(salve.url("/api/v1/stream"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().expect("the stream opens");
        assert_eq!(response.status(), 200);
        let media = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default();
        assert_eq!(media, "text/event-stream");
        Events {
            lines: std::io::BufReader::new(response),
        }
    }

    /// The next event's id and record (keep-alive comments passed over).
    fn next(&mut self) -> (String, Value) {
        let (mut id, mut data) = (None, None);
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("the stream goes on");
            assert!(n > 0, "the stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if let (Some(id), Some(data)) = (id.take(), data.take()) {
                    return (id, data);
                }
            } else if let Some(value) = line.strip_prefix("id: ") {
                id = Some(value.to_string());
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(value).expect("data is one JSON record"));
            }
        }
    }

    /// Events up to and including the first `kind` record.
    fn until(&mut self, kind: &str) -> Vec<(String, Value)> {
        let mut events = Vec::new();
        loop {
            let event = self.next();
            let done = event.1["kind"] == kind;
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

fn fire(salve: &Salve, n: &str) {
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Works"), ("n", n)]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[test]
fn the_stream_sends_each_record_as_the_audit_has_it_and_resumes_after_the_last_id() {
    let mut salve = Salve::builder().config(CONFIG).rule("works", RULE).start();
    let mut live = Events::open(&salve, None);
    fire(&salve, "1");
    let first = live.until("decision");
    let (decision_id, decision) = first.last().cloned().expect("a decision");
    assert_eq!(first[0].1["kind"], "received", "{first:#?}");
    assert_eq!(decision["decision"], "execute");
    let audit = salve.wait_settled(1);
    let at = audit.iter().position(|r| r == &decision);
    let at = at.expect("the record as GET /api/v1/audit has it");
    // The id is the record's cursor: the audit page before it ends just before it.
    let before = salve.get(&format!("/api/v1/audit?before={decision_id}"));
    assert_eq!(
        before.body.as_array().map(Vec::len),
        Some(at),
        "{:#}",
        before.body
    );

    // Records written while no one listened come first on a resume, then live ones.
    fire(&salve, "2");
    let audit = salve.wait_settled(2);
    let after: Vec<&Value> = audit[at + 1..].iter().collect();
    let mut resumed = Events::open(&salve, Some(&decision_id));
    let again: Vec<(String, Value)> = (0..after.len()).map(|_| resumed.next()).collect();
    let records: Vec<&Value> = again.iter().map(|(_, r)| r).collect();
    assert_eq!(
        records, after,
        "every record after the last id, and only those"
    );
    let mut ids: Vec<&String> = again.iter().map(|(id, _)| id).collect();
    ids.dedup();
    assert_eq!(ids.len(), again.len(), "each record once");
    assert!(!ids.contains(&&decision_id));
    fire(&salve, "3");
    let third = resumed.next();
    assert_eq!(third.1["kind"], "received");
    assert_eq!(third.1["event"]["labels"]["n"], "3");
    // The stream that never left saw the same records under the same ids.
    let rest: Vec<(String, Value)> = (0..=again.len()).map(|_| live.next()).collect();
    assert_eq!(rest[..again.len()], again[..]);
    assert_eq!(rest[again.len()], third);
    // A stopping salve ends its streams rather than wait for their clients.
    salve.stop();
    let mut tail = String::new();
    let _ = std::io::Read::read_to_string(&mut live.lines, &mut tail);
}

#[test]
fn the_stream_filters_by_kind_and_wants_a_reader() {
    let salve = Salve::builder()
        .config(&format!(
            "{CONFIG}\n[api]\nbearer_token_env = \"ADMIN_TOKEN\"\n\n[[api.identity]]\nname = \"grafana\"\ntoken_env = \"VIEWER_TOKEN\"\nrole = \"viewer\"\n"
        ))
        .rule("works", RULE)
        .env("ADMIN_TOKEN", "admin-token")
        .env("VIEWER_TOKEN", "viewer-token")
        .bearer("admin-token")
        .start();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let anonymous = client
        .get(salve.url("/api/v1/stream"))
        .send()
        .expect("an answer");
    assert_eq!(anonymous.status(), 401);
    let misspelt = client
        .get(salve.url("/api/v1/stream?kind=decisions"))
        .bearer_auth("viewer-token")
        .send()
        .expect("an answer");
    assert_eq!(misspelt.status(), 400, "a kind that is not one");

    let viewer = client
        .get(salve.url("/api/v1/stream?kind=outcome"))
        .bearer_auth("viewer-token")
        .send()
        .expect("the stream opens");
    assert_eq!(viewer.status(), 200);
    let mut events = Events {
        lines: std::io::BufReader::new(viewer),
    };
    fire(&salve, "1");
    let (_, outcome) = events.next();
    assert_eq!(outcome["kind"], "outcome", "{outcome:#}");
    assert_eq!(outcome["outcome"], "ok");
}

#[test]
fn the_stream_follows_a_trail_in_postgresql_and_resumes_after_the_last_id() {
    let pg = crate::postgres_support::Postgres::start();
    let mut salve = Salve::builder()
        .config(&format!(
            "[store]\npostgres_url_file = \"{{dir}}/postgres-url\"\n{CONFIG}"
        ))
        .rule("works", RULE)
        .write();
    std::fs::write(salve.dir().join("postgres-url"), pg.url()).expect("write the URL file");
    salve.start();
    let mut live = Events::open(&salve, None);
    fire(&salve, "1");
    let first = live.until("decision");
    let (decision_id, decision) = first.last().cloned().expect("a decision");
    assert_eq!(decision["decision"], "execute", "{first:#?}");
    fire(&salve, "2");
    let audit = salve.wait_settled(2);
    let at = audit.iter().position(|r| r == &decision);
    let after = &audit[at.expect("the decision as the audit has it") + 1..];
    let mut resumed = Events::open(&salve, Some(&decision_id));
    let again: Vec<Value> = (0..after.len()).map(|_| resumed.next().1).collect();
    assert_eq!(
        again, after,
        "every record after the last id, and only those"
    );
}
