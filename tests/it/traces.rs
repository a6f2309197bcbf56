//! Traces: with `[tracing] otlp_endpoint`, one OpenTelemetry trace per alert reaches an
//! OTLP/HTTP collector (here a small one inside the test), and its id is in the
//! alert's records; without it, nothing is sent and no record carries a trace id.

use crate::support::{marker, of_kind, settled, Salve, MARK_CONTAINER};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// An OTLP/HTTP collector: takes `POST /v1/traces` (protobuf) and keeps the spans.
struct Collector {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<usize>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
        let port = listener.local_addr().expect("collector address").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let (kept, counted) = (spans.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (kept, counted) = (kept.clone(), counted.clone());
                std::thread::spawn(move || serve(stream, &kept, &counted));
            }
        });
        Collector {
            port,
            spans,
            requests,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans").clone()
    }

    fn requests(&self) -> usize {
        *self.requests.lock().expect("requests")
    }
}

/// Answers the requests of one connection (the exporter keeps it alive).
fn serve(stream: std::net::TcpStream, spans: &Mutex<Vec<Span>>, requests: &Mutex<usize>) {
    let mut writer = stream.try_clone().expect("clone the connection");
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        *requests.lock().expect("requests") += 1;
        let status = if request_line.starts_with("POST /v1/traces ") {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP body");
            let mut kept = spans.lock().expect("spans");
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    kept.extend(scope.spans);
                }
            }
            "200 OK"
        } else {
            "404 Not Found"
        };
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[test]
fn one_alert_is_one_trace_from_intake_to_its_outcome() {
    let collector = Collector::start();
    let config = format!(
        "{}\n[tracing]\notlp_endpoint = \"http://127.0.0.1:{}\"\n",
        marker("mark", "marks.txt"),
        collector.port
    );
    let salve = Salve::builder()
        .config(&config)
        .rule("container-down", MARK_CONTAINER)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start();
    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_for_audit("the alert's outcome", |r| settled(r, 1));
    let spans = spans_named(
        &collector,
        &salve,
        &["alert accepted", "rule", "policy", "action"],
    );

    let root = named(&spans, "alert accepted")[0];
    assert!(
        root.parent_span_id.is_empty(),
        "the root has a parent: {root:?}"
    );
    assert!(
        spans.iter().all(|s| s.trace_id == root.trace_id),
        "{spans:#?}"
    );
    let rule = named(&spans, "rule")[0];
    let policy = named(&spans, "policy")[0];
    let action = named(&spans, "action")[0];
    for child in [rule, policy, action] {
        assert_eq!(child.parent_span_id, root.span_id, "{child:?}");
    }
    assert_eq!(
        attribute(rule, "salve.rule").as_deref(),
        Some("container-down")
    );
    assert_eq!(
        attribute(policy, "salve.rule").as_deref(),
        Some("container-down")
    );
    assert_eq!(
        attribute(policy, "salve.verdict").as_deref(),
        Some("execute")
    );
    assert_eq!(attribute(policy, "salve.action").as_deref(), Some("exec"));
    assert!(attribute(policy, "salve.target").is_some(), "{policy:?}");
    assert_eq!(attribute(action, "salve.outcome").as_deref(), Some("ok"));

    let trace_id = hex::encode(&root.trace_id);
    let received = of_kind(&records, "received")[0];
    assert_eq!(received["trace_id"], trace_id.as_str(), "{received}");
    let decision = of_kind(&records, "decision")[0];
    assert_eq!(decision["trace_id"], trace_id.as_str(), "{decision}");
    let outcome = of_kind(&records, "outcome")[0];
    assert_eq!(outcome["trace_id"], trace_id.as_str(), "{outcome}");
    assert!(
        salve.logs().contains(&trace_id),
        "no log line names the trace:\n{}",
        salve.logs()
    );
}

/// Waits for spans of every name in `names` to arrive.
fn spans_named(collector: &Collector, salve: &Salve, names: &[&str]) -> Vec<Span> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let spans = collector.spans();
        if names.iter().all(|name| !named(&spans, name).is_empty()) {
            return spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the alert's spans did not all arrive ({} requests): {:?}\nlogs:\n{}",
            collector.requests(),
            spans.iter().map(|s| &s.name).collect::<Vec<_>>(),
            salve.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_approval_asked_answered_and_acted_on_is_in_the_alert_trace() {
    let collector = Collector::start();
    let tracing = format!(
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:{}\"\n",
        collector.port
    );
    let salve = crate::approvals::builder(".approval(\"sre\")", &tracing)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start();
    let id = crate::approvals::asked(&salve);
    let reply = crate::approvals::answer(&salve, &id, "approve", "go");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let spans = spans_named(
        &collector,
        &salve,
        &[
            "alert accepted",
            "approval asked",
            "approval answered",
            "action",
        ],
    );
    let root = named(&spans, "alert accepted")[0];
    assert!(
        spans.iter().all(|s| s.trace_id == root.trace_id),
        "{spans:#?}"
    );
    let answered = named(&spans, "approval answered")[0];
    assert_eq!(answered.parent_span_id, root.span_id, "{answered:?}");
    assert_eq!(attribute(answered, "salve.approval_id"), Some(id));
    assert_eq!(
        attribute(answered, "salve.approval_state").as_deref(),
        Some("approved")
    );
    assert_eq!(
        attribute(answered, "salve.answered_via").as_deref(),
        Some("api")
    );
    let action = named(&spans, "action")[0];
    assert_eq!(action.parent_span_id, root.span_id, "{action:?}");
    assert_eq!(attribute(action, "salve.outcome").as_deref(), Some("ok"));
    assert!(
        answered.start_time_unix_nano <= action.start_time_unix_nano,
        "the action ran before its approval: {answered:?} {action:?}"
    );
}

#[test]
fn without_tracing_nothing_is_sent_and_no_record_has_a_trace_id() {
    let collector = Collector::start();
    let salve = Salve::builder()
        .config(&marker("mark", "marks.txt"))
        .rule("container-down", MARK_CONTAINER)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start();
    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_for_audit("the alert's outcome", |r| settled(r, 1));
    assert!(
        records.iter().all(|r| r.get("trace_id").is_none()),
        "{records:#?}"
    );
    assert!(!salve.logs().contains("trace_id"), "{}", salve.logs());
    assert_eq!(collector.requests(), 0);
}
