//! A channel's `rate`: messages past it arrive as one summary, delivered to a real
//! loopback listener when the rate allows; none is lost, at a stop neither.

use crate::notify_support::{stable_outcome, Receiver, Request};
use crate::support::{assert_check_refuses, native, of_kind, s, wait_until, Salve};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// salve with a webhook channel `ticketing` at `rate`, told about every `Disk*` alert.
fn salve_with_rate(receiver: &Receiver, rate: &str) -> Salve {
    Salve::builder()
        .config(&format!(
            r#"
[notify.ticketing]
type = "webhook"
url = "{url}"
rate = "{rate}"
"#,
            url = receiver.url("/hook"),
        ))
        .rule(
            "tell",
            r#"
const MATCH = `alertname=~"Disk.+"`;

fn plan(event) {
    [webhook("ticketing", "{{ alertname }} is firing on {{ labels.host }}")]
}
"#,
        )
        .start()
}

fn fire(salve: &Salve, alerts: &[&str]) {
    for alertname in alerts {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", alertname), ("host", "host-a")]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
}

/// Each outcome by the alertname of its event, minus what changes from run to run.
fn outcomes_by_alert(records: &[Value]) -> Vec<(String, Value)> {
    let alertname = |event_id: &Value| {
        of_kind(records, "received")
            .into_iter()
            .find(|r| &r["event"]["id"] == event_id)
            .map(|r| s(&r["event"]["labels"]["alertname"]))
            .unwrap_or_default()
    };
    let mut found: Vec<(String, Value)> = of_kind(records, "outcome")
        .into_iter()
        .map(|o| {
            let name = alertname(&o["event_id"]);
            (name, stable_outcome(o, &[]))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// The `- TIME LINE` items of a summary's text, without their times.
fn listed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[test]
fn messages_past_a_channels_rate_arrive_as_one_summary_when_the_rate_allows() {
    let ticketing = Receiver::start(&[]);
    let salve = salve_with_rate(&ticketing, "2 per 5s");
    let alerts = ["Disk1", "Disk2", "Disk3", "Disk4", "Disk5"];
    fire(&salve, &alerts);
    let records = salve.wait_settled(alerts.len());

    // Two went out; three were held, and the trail says so rather than "ok".
    let outcomes = outcomes_by_alert(&records);
    let sent = json!({
        "rule": "tell", "action": "notify", "target": "notify:ticketing", "outcome": "ok",
        "detail": { "channel": "ticketing", "type": "webhook", "attempts": 1, "status": 200 },
    });
    let folded = json!({
        "rule": "tell", "action": "notify", "target": "notify:ticketing", "outcome": "skipped",
        "error": "held for a summary: channel ticketing reached its rate (2 per 5s); the summary is sent when the rate allows",
        "reason": "folded_into_summary",
        "detail": { "channel": "ticketing", "type": "webhook", "folded_into_summary": true },
    });
    let held: BTreeSet<String> = outcomes
        .iter()
        .filter(|(_, o)| *o == folded)
        .map(|(name, _)| format!("{name} is firing on host-a"))
        .collect();
    let went: Vec<&String> = outcomes
        .iter()
        .filter(|(_, o)| *o == sent)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        (went.len(), held.len(), outcomes.len()),
        (2, 3, 5),
        "{outcomes:#?}"
    );

    let requests: Vec<Request> = wait_until("the summary", || {
        let requests = ticketing.requests();
        (requests.len() >= 3).then_some(requests)
    });
    let documents: Vec<Value> = requests.iter().map(Request::json).collect();
    let texts: Vec<String> = documents.iter().map(|d| s(&d["text"])).collect();
    let one_by_one: BTreeSet<String> = went
        .iter()
        .map(|name| format!("{name} is firing on host-a"))
        .collect();
    assert_eq!(
        texts[..2].iter().cloned().collect::<BTreeSet<_>>(),
        one_by_one
    );

    // The summary: one message, through the same channel, naming each held message.
    let mut summary = documents[2].clone();
    let text = s(&summary["text"]);
    for part in ["sent_at", "text"] {
        summary.as_object_mut().and_then(|d| d.remove(part));
    }
    assert_eq!(
        summary,
        json!({
            "channel": "ticketing",
            "action": "notify",
            "via": "summary",
            "subject": "salve: 3 more messages to ticketing, held by its rate (2 per 5s)",
        })
    );
    assert_eq!(
        text.lines().next(),
        Some("3 more messages to ticketing while its rate (2 per 5s) was reached:")
    );
    assert_eq!(listed(&text), held, "{text}");
    // It waited for the first message to leave the window (less what that took to send).
    let waited = requests[2].at.duration_since(requests[0].at);
    assert!(waited >= Duration::from_secs(4), "{waited:?}");

    // Counted; and once its summary is sent, nothing more is held to come.
    wait_until("the summary to be counted", || {
        salve
            .metric(r#"salve_notification_summaries_total{channel="ticketing",outcome="ok"}"#)
            .filter(|n| *n == 1.0)
    });
    assert_eq!(
        salve.metric(r#"salve_notifications_folded_total{channel="ticketing"}"#),
        Some(3.0)
    );
    assert_eq!(ticketing.requests().len(), 3);
}

#[test]
fn messages_held_when_salve_stops_are_named_in_its_log() {
    let ticketing = Receiver::start(&[]);
    let mut salve = salve_with_rate(&ticketing, "1 per 1h");
    fire(&salve, &["DiskA", "DiskB", "DiskC"]);
    salve.wait_settled(3);
    assert_eq!(ticketing.requests().len(), 1);
    salve.stop();
    let logs = salve.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("stopping with messages held by the channel's rate"))
        .unwrap_or_else(|| panic!("no word of the held messages:\n{logs}"));
    let sent = s(&ticketing.requests()[0].json()["text"]);
    let held: Vec<&str> = ["DiskA", "DiskB", "DiskC"]
        .into_iter()
        .filter(|name| !sent.starts_with(name))
        .collect();
    assert_eq!(held.len(), 2, "{sent}");
    for name in held {
        assert!(
            line.contains(&format!("{name} is firing on host-a")),
            "{name} missing from: {line}"
        );
    }
    assert!(
        line.contains("their summary was not sent: 2 more messages to ticketing"),
        "{line}"
    );
}

#[test]
fn check_refuses_a_channel_rate_it_cannot_keep() {
    let channel = |rate: &str| format!("[notify.ops]\ntype = \"log\"\nrate = \"{rate}\"\n");
    for (rate, expected) in [
        (
            "fast",
            "notify.ops.rate: invalid rate \"fast\": write it like \"5 per 1m\"",
        ),
        (
            "5 per 1m per target",
            "notify.ops.rate: \"5 per 1m per target\": a channel's rate counts every message to it",
        ),
        (
            "0 per 1m",
            "notify.ops.rate: \"0 per 1m\": at least 1 message per window",
        ),
    ] {
        assert_check_refuses(&channel(rate), expected);
    }
}
