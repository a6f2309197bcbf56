//! Webhook and Slack channels against an HTTP receiver the test runs on loopback
//! (`notify_support`): requests signed, retried, refused and timed out, and a 429's
//! `Retry-After` honoured unless it asks too long.

use crate::notify_support::{fire_and_settle, hmac_hex, outcomes, Receiver, Reply, SECRET};
use crate::support::{native, Salve};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "bearer-token-xyz";

#[test]
fn webhooks_and_slack_are_signed_retried_refused_and_timed_out() {
    let ticketing = Receiver::start(&[Reply::Status(500), Reply::Status(200)]);
    let slack = Receiver::start(&[]);
    let rejecting = Receiver::start(&[Reply::Status(400)]);
    let silent = Receiver::start(&[Reply::Hang]);
    let token_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(token_file.path(), format!("{TOKEN}\n")).expect("write the token");

    let salve = Salve::builder()
        .config(&format!(
            r#"
[notify.ticketing]
type = "webhook"
url = "{ticketing}"
secret_env = "HOOK_SECRET"
bearer_token_file = "{token_file}"
backoff = "50ms"

[notify.ops]
type = "slack"
url_env = "SLACK_WEBHOOK_URL"

[notify.rejecting]
type = "webhook"
url = "{rejecting}"
backoff = "50ms"

[notify.silent]
type = "webhook"
url = "{silent}"
timeout = "300ms"
"#,
            ticketing = ticketing.url("/hook"),
            rejecting = rejecting.url("/hook"),
            silent = silent.url("/hook"),
            token_file = token_file.path().display(),
        ))
        .env("HOOK_SECRET", SECRET)
        .env("SLACK_WEBHOOK_URL", &slack.url("/services/T000/B000/XXXX"))
        .rule(
            "tell",
            r#"
const MATCH = `alertname="DiskFull"`;

fn plan(event) {
    let text = "disk full on " + event.labels.host;
    // A channel named at run time: `salve check` cannot know it, the executor can.
    let nowhere = event.labels.channel ?? "nowhere";
    [
        webhook("ticketing", text),
        slack("ops", text),
        webhook("rejecting", text),
        webhook("silent", text),
        notify(nowhere, text),
    ]
}
"#,
        )
        .start();

    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "DiskFull"), ("host", "host-a")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);

    assert_eq!(
        outcomes(&records),
        BTreeMap::from([
            (
                "notify:nowhere".to_string(),
                json!({
                    "action": "notify", "outcome": "failed",
                    "error": "no notification channel named \"nowhere\" in the config",
                    "detail": { "channel": "nowhere" },
                })
            ),
            (
                "notify:ops".to_string(),
                json!({
                    "action": "notify", "outcome": "ok",
                    "detail": { "channel": "ops", "type": "slack", "attempts": 1, "status": 200 },
                })
            ),
            (
                "notify:rejecting".to_string(),
                json!({
                    "action": "notify", "outcome": "failed",
                    "error": "HTTP 400 Bad Request",
                    "detail": { "channel": "rejecting", "type": "webhook", "attempts": 1, "status": 400 },
                })
            ),
            (
                "notify:silent".to_string(),
                json!({
                    "action": "notify", "outcome": "failed",
                    "error": "timed out after 300ms",
                    "detail": { "channel": "silent", "type": "webhook", "attempts": 1 },
                })
            ),
            (
                "notify:ticketing".to_string(),
                json!({
                    "action": "notify", "outcome": "ok",
                    "detail": { "channel": "ticketing", "type": "webhook", "attempts": 2, "status": 200 },
                })
            ),
        ]),
        "{}",
        salve.logs()
    );

    // The 500 was retried and the message delivered once after it.
    let hooks = ticketing.requests();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    for hook in &hooks {
        assert_eq!(hook.path, "/hook");
        assert_eq!(hook.headers["content-type"], "application/json");
        assert_eq!(hook.headers["authorization"], format!("Bearer {TOKEN}"));
        // A receiver verifies the signature over the exact bytes it received.
        assert_eq!(
            hook.headers["x-salve-signature"],
            format!("sha256={}", hmac_hex(SECRET.as_bytes(), &hook.body))
        );
        assert_ne!(
            hook.headers["x-salve-signature"],
            format!("sha256={}", hmac_hex(b"another key", &hook.body))
        );
        let mut document = hook.json();
        let sent_at = document
            .as_object_mut()
            .and_then(|d| d.remove("sent_at"))
            .expect("sent_at");
        chrono::DateTime::parse_from_rfc3339(sent_at.as_str().expect("a string"))
            .expect("sent_at is RFC 3339");
        for part in ["event", "decision", "actions"] {
            document.as_object_mut().and_then(|d| d.remove(part));
        }
        assert_eq!(
            document,
            json!({
                "channel": "ticketing",
                "action": "notify",
                "via": "webhook",
                "text": "disk full on host-a",
                "intent": {
                    "action": "notify", "target": "notify:ticketing",
                    "params": { "text": "disk full on host-a", "via": "webhook" },
                },
            })
        );
    }

    let slacked = slack.requests();
    assert_eq!(slacked.len(), 1, "{slacked:?}");
    assert_eq!(slacked[0].path, "/services/T000/B000/XXXX");
    assert_eq!(slacked[0].json()["text"], "disk full on host-a");
    assert!(!slacked[0].headers.contains_key("x-salve-signature"));

    // A 400 is not retried; the receiver that never answers got the request once.
    assert_eq!(rejecting.requests().len(), 1);
    assert_eq!(silent.requests().len(), 1);

    // Secrets stay out of the audit and the logs.
    let audit = serde_json::to_string(&salve.audit_json()).expect("JSON");
    let logs = salve.logs();
    for secret in [SECRET, TOKEN, "T000/B000/XXXX"] {
        assert!(!audit.contains(secret), "{secret} in the audit");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[test]
fn a_429_is_retried_after_its_retry_after_unless_that_is_too_long() {
    let busy = Receiver::start(&[Reply::TooMany(1), Reply::Status(204)]);
    let swamped = Receiver::start(&[Reply::TooMany(3600)]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[notify.busy]
type = "webhook"
url = "{busy}"
backoff = "10ms"

[notify.swamped]
type = "slack"
url = "{swamped}"
"#,
            busy = busy.url("/hook"),
            swamped = swamped.url("/slack"),
        ))
        .rule(
            "tell",
            r#"
const MATCH = `alertname="Busy"`;

fn plan(event) {
    [webhook("busy", "one"), slack("swamped", "two")]
}
"#,
        )
        .start();
    let outcomes = outcomes(&fire_and_settle(&salve, "Busy"));
    assert_eq!(
        outcomes["notify:busy"],
        json!({
            "action": "notify", "outcome": "ok",
            "detail": { "channel": "busy", "type": "webhook", "attempts": 2, "status": 204 },
        })
    );
    assert_eq!(
        outcomes["notify:swamped"],
        json!({
            "action": "notify", "outcome": "failed",
            "error": "HTTP 429 Too Many Requests: the receiver asks to retry after 3600s, longer than salve waits",
            "detail": { "channel": "swamped", "type": "slack", "attempts": 1, "status": 429 },
        })
    );
    // Retry-After (1 s) wins over the 10 ms back-off.
    let requests = busy.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    eprintln!(
        "[notify] 429 with Retry-After: 1 → retried after {} ms",
        waited.as_millis()
    );
    assert_eq!(swamped.requests().len(), 1);
}
