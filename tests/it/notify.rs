//! Notifications delivered to real listeners started by the tests on loopback ports
//! (`notify_support`): HTTP receivers standing in for Slack and webhook endpoints and a
//! real SMTP server.

use crate::notify_support::{header, message_body, outcomes, Receiver, Reply, Request, SmtpServer};
use crate::support::{native, of_kind, s, wait_until, Salve};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Posts one native event named `alertname` and returns the trail once its actions
/// have outcomes.
fn fire_and_settle(salve: &Salve, alertname: &str) -> Vec<Value> {
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", alertname)]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    salve.wait_settled(1)
}

const SECRET: &str = "s3cret-signing-key";
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

#[test]
fn email_reaches_a_real_smtp_server_and_a_dead_one_is_retried() {
    let smtp = SmtpServer::start();
    let dead_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let salve = Salve::builder()
        .config(&format!(
            r#"
[notify.oncall]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["oncall@example.org"]
cc = ["lead@example.org"]

[notify.down]
type = "email"
smtp = "smtp://127.0.0.1:{dead_port}"
from = "salve@example.org"
to = ["oncall@example.org"]
retries = 2
backoff = "50ms"
"#,
            port = smtp.port,
        ))
        .rule(
            "page",
            r#"
const MATCH = `alertname="DiskFull"`;

fn plan(event) {
    [
        email("oncall", "DiskFull on " + event.labels.host, "The disk on " + event.labels.host + " is full."),
        email("down", "the body"),
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
    let outcomes = outcomes(&records);
    assert_eq!(
        outcomes["notify:oncall"],
        json!({
            "action": "notify", "outcome": "ok",
            "detail": { "channel": "oncall", "type": "email", "attempts": 1, "smtp_status": 250 },
        }),
        "{}",
        salve.logs()
    );
    let down = &outcomes["notify:down"];
    assert_eq!(down["outcome"], "failed", "{down}");
    assert_eq!(down["detail"]["attempts"], 3, "{down}");
    assert!(
        down["error"]
            .as_str()
            .is_some_and(|e| e.contains("gave up after 3 attempts")),
        "{down}"
    );

    let messages = wait_until("the message in the maildir", || {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    });
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(
        header(message, "To"),
        Some("oncall@example.org"),
        "{message}"
    );
    assert_eq!(header(message, "Cc"), Some("lead@example.org"), "{message}");
    assert_eq!(
        header(message, "From"),
        Some("salve@example.org"),
        "{message}"
    );
    assert_eq!(
        header(message, "Subject"),
        Some("DiskFull on host-a"),
        "{message}"
    );
    let body = message
        .split_once("\n\n")
        .or_else(|| message.split_once("\r\n\r\n"))
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert_eq!(body.trim(), "The disk on host-a is full.", "{message}");
}

#[test]
fn smtp_4xx_is_retried_and_5xx_is_not() {
    let smtp = SmtpServer::start_scripted();
    let salve = Salve::builder()
        .config(&format!(
            r#"
[notify.refused]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["refused@example.org"]
backoff = "50ms"

[notify.later]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["later@example.org"]
backoff = "50ms"
"#,
            port = smtp.port,
        ))
        .rule(
            "page",
            r#"
const MATCH = `alertname="Mail"`;

fn plan(event) {
    [email("refused", "s1", "b1"), email("later", "s2", "b2")]
}
"#,
        )
        .start();
    let outcomes = outcomes(&fire_and_settle(&salve, "Mail"));
    assert_eq!(
        outcomes["notify:later"],
        json!({
            "action": "notify", "outcome": "ok",
            "detail": { "channel": "later", "type": "email", "attempts": 2, "smtp_status": 250 },
        }),
        "{}",
        salve.logs()
    );
    let refused = &outcomes["notify:refused"];
    assert_eq!(refused["outcome"], "failed", "{refused}");
    assert_eq!(
        refused["detail"],
        json!({ "channel": "refused", "type": "email", "attempts": 1, "smtp_status": 550 }),
        "{refused}"
    );
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("SMTP: ") && e.contains("no such mailbox")),
        "{refused}"
    );
    eprintln!("[notify] SMTP 550: {}", refused["error"]);
    let messages = wait_until("the retried message in the maildir", || {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    });
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(header(&messages[0], "Subject"), Some("s2"));
}

#[test]
fn email_over_starttls_trusts_the_configured_ca_only() {
    let certs = tempfile::tempdir().expect("temp folder");
    crate::certs::make_certificates(certs.path());
    let smtp = SmtpServer::start_tls(
        &certs.path().join("server.pem"),
        &certs.path().join("server.key"),
    );
    let salve = Salve::builder()
        .config(&format!(
            r#"
[notify.secure]
type = "email"
smtp = "smtp://127.0.0.1:{port}?tls=starttls"
ca_file = "{ca}"
from = "salve@example.org"
to = ["oncall@example.org"]

[notify.untrusted]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
tls = "starttls"
from = "salve@example.org"
to = ["oncall@example.org"]
retries = 0
"#,
            port = smtp.port,
            ca = certs.path().join("ca.pem").display(),
        ))
        .rule(
            "page",
            r#"
const MATCH = `alertname="Tls"`;

fn plan(event) {
    [email("secure", "over TLS", "encrypted body"), email("untrusted", "no", "never sent")]
}
"#,
        )
        .start();
    let outcomes = outcomes(&fire_and_settle(&salve, "Tls"));
    assert_eq!(
        outcomes["notify:secure"],
        json!({
            "action": "notify", "outcome": "ok",
            "detail": { "channel": "secure", "type": "email", "attempts": 1, "smtp_status": 250 },
        }),
        "{}",
        salve.logs()
    );
    let untrusted = &outcomes["notify:untrusted"];
    assert_eq!(untrusted["outcome"], "failed", "{untrusted}");
    eprintln!(
        "[notify] STARTTLS with an unknown CA: {}",
        untrusted["error"]
    );
    let messages = wait_until("the message in the maildir", || {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    });
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(header(&messages[0], "Subject"), Some("over TLS"));
}

#[test]
fn check_rejects_bad_channels_with_the_key_at_fault() {
    let cases = [
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\nfrom = \"a@b.org\"\n",
            "notify.ops.from: does not apply to a channel of type \"slack\"",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl_env = \"SALVE_TEST_NEVER_SET\"\n",
            "notify.ops.url: environment variable SALVE_TEST_NEVER_SET is not set",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\n",
            "notify.ops.url: needs url, url_env or url_file",
        ),
        (
            "[notify.hook]\ntype = \"webhook\"\nurl = \"ftp://127.0.0.1/x\"\n",
            "notify.hook.url: needs an http:// or https:// URL",
        ),
        (
            "[notify.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1/x\"\ntimeout = \"soon\"\n",
            "notify.hook.timeout:",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"http://127.0.0.1:25\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
            "notify.mail.smtp: scheme \"http\": use smtp:// or smtps://",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\ntls = \"maybe\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
            "notify.mail.tls: \"maybe\": use \"none\", \"starttls\" or \"tls\"",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"a@b.org\"\n",
            "notify.mail.to: needs at least one recipient",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"not an address\"\nto = [\"c@d.org\"]\n",
            "notify.mail.from: \"not an address\"",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\nusername = \"salve\"\n",
            "notify.mail.username: username and password_file/password_env go together",
        ),
        ("[notify.x]\ntype = \"pager\"\n", "unknown variant `pager`"),
        (
            "[api]\nbasic_auth_password_env = \"HOME\"\n",
            "api.basic_auth_password_env: needs basic_auth_username (without it the API would be open)",
        ),
        (
            "[api]\nbasic_auth_username = \"salve\"\n",
            "api.basic_auth_username: needs basic_auth_password_file or basic_auth_password_env",
        ),
        (
            "[api]\nbearer_token_file = \"/dev/null\"\n",
            "api.bearer_token_file: the token is empty",
        ),
        (
            "[api]\nbearer_token_env = \"HOME\"\nbasic_auth_username = \"salve\"\nbasic_auth_password_env = \"HOME\"\n",
            "api.basic_auth_username: give bearer_token_file/_env or basic auth, not both",
        ),
        (
            "[api]\ntls_cert_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
            "api.tls_cert_file: needs api.tls_key_file",
        ),
        (
            "[api]\nclient_ca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
            "api.client_ca_file: client certificates need TLS",
        ),
        (
            "[api]\ntls_cert_file = \"/nonexistent/server.pem\"\ntls_key_file = \"/nonexistent/server.key\"\n",
            "api.tls_cert_file: /nonexistent/server.pem:",
        ),
        (
            "[api]\ntls_cert_file = \"/dev/null\"\ntls_key_file = \"/dev/null\"\n",
            "api.tls_cert_file: /dev/null holds no PEM certificate",
        ),
        (
            "[[on_outcome]]\nwhen = [\"failed\"]\nnotify = \"nowhere\"\n",
            "on_outcome[0].notify: no channel [notify.nowhere] (defined: [])",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\n[[on_outcome]]\nwhen = [\"failed\"]\nnotify = \"ops\"\nlimit = \"often\"\n",
            "on_outcome[0].limit:",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\n[[on_outcome]]\nwhen = [\"sometimes\"]\nnotify = \"ops\"\n",
            "unknown variant `sometimes`",
        ),
    ];
    for (config, expected) in cases {
        crate::support::assert_check_refuses(config, expected);
    }
}

#[test]
fn email_authenticates_with_a_password_from_the_environment() {
    const PASSWORD: &str = "smtp-pass-42";
    let smtp = SmtpServer::start_auth("salve", PASSWORD);
    let password_file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(password_file.path(), "wrong-password\n").expect("write");
    let salve = Salve::builder()
        .config(&format!(
            r#"
[notify.good]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["oncall@example.org"]
username = "salve"
password_env = "SMTP_PASSWORD"

[notify.bad]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["oncall@example.org"]
username = "salve"
password_file = "{password_file}"
backoff = "50ms"
"#,
            port = smtp.port,
            password_file = password_file.path().display(),
        ))
        .env("SMTP_PASSWORD", PASSWORD)
        .rule(
            "page",
            r#"
const MATCH = `alertname="Auth"`;

fn plan(event) {
    [email("good", "signed in", "hello"), email("bad", "refused", "never")]
}
"#,
        )
        .start();
    let outcomes = outcomes(&fire_and_settle(&salve, "Auth"));
    assert_eq!(
        outcomes["notify:good"],
        json!({
            "action": "notify", "outcome": "ok",
            "detail": { "channel": "good", "type": "email", "attempts": 1, "smtp_status": 250 },
        }),
        "{}",
        salve.logs()
    );
    let bad = &outcomes["notify:bad"];
    eprintln!("[notify] SMTP AUTH with a wrong password: {}", bad["error"]);
    assert_eq!(bad["outcome"], "failed", "{bad}");
    assert_eq!(bad["detail"]["attempts"], 1, "{bad}");
    assert_eq!(bad["detail"]["smtp_status"], 535, "{bad}");
    let messages = wait_until("the message in the maildir", || {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    });
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(header(&messages[0], "Subject"), Some("signed in"));
    let audit = serde_json::to_string(&salve.audit_json()).expect("JSON");
    let logs = salve.logs();
    for secret in [PASSWORD, "wrong-password"] {
        assert!(!audit.contains(secret), "{secret} in the audit");
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
}

#[test]
fn a_channel_that_keeps_failing_opens_its_breaker() {
    let rejecting = Receiver::start(&[Reply::Status(400); 10]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[policy]
breaker_failures = 2

[notify.rejecting]
type = "webhook"
url = "{url}"
"#,
            url = rejecting.url("/hook"),
        ))
        .rule(
            "tell",
            r#"
const MATCH = `alertname="Loud"`;

fn plan(event) {
    [webhook("rejecting", "about " + event.labels.host)]
}
"#,
        )
        .start();
    for (n, host) in ["a", "b", "c"].into_iter().enumerate() {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Loud"), ("host", host)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        salve.wait_settled(n + 1);
    }
    let records = salve.wait_settled(3);
    assert_eq!(
        crate::support::decisions(&records),
        [
            "tell: notify notify:rejecting -> execute",
            "tell: notify notify:rejecting -> execute",
            "tell: notify notify:rejecting -> suppress (circuit_open)",
        ]
    );
    assert_eq!(rejecting.requests().len(), 2);
}

/// Removes what changes from run to run (ids, clocks) anywhere in a document.
fn stable(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in ["id", "event_id", "received_at", "sent_at", "duration_ms"] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// What the fixture's alert (`firing-single.json`) reads as when no text is given.
const DEFAULT_TEXT: &str = "[FIRING] ContainerDown (critical): Container web-1 is down
container=web-1 instance=host-a:9323 job=cadvisor service=web
Source: http://prometheus.local:9090/graph?g0.expr=up%3D%3D0
Runbook: https://runbooks.example/container-down
salve (rule tell): exec exec:heal";

#[test]
fn messages_carry_the_alert_rendered_from_templates_or_by_default() {
    let smtp = SmtpServer::start();
    let slack = Receiver::start(&[]);
    let ticketing = Receiver::start(&[]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[exec.heal]
argv = ["true"]

[notify.oncall]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["oncall@example.org"]

[notify.ops]
type = "slack"
url = "{slack}"

[notify.ticketing]
type = "webhook"
url = "{ticketing}"
secret_env = "HOOK_SECRET"

[notify.plain]
type = "webhook"
url = "{ticketing}"
"#,
            port = smtp.port,
            slack = slack.url("/slack"),
            ticketing = ticketing.url("/hook"),
        ))
        .env("HOOK_SECRET", SECRET)
        .rule(
            "tell",
            r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    [
        exec("heal"),
        email("oncall", "{{ labels.alertname }} ({{ labels.severity }}): {{ annotations.summary }}",
              "{{ annotations.summary }} on {{ labels.instance }}, {{ status }} since {{ starts_at }}.\nRunbook: {{ annotations.runbook_url }}\nsalve: {{ action }} {{ target }} ({{ decision }})"),
        slack("ops"),
        webhook("ticketing"),
        // Put together at run time: data, sent as it is, never read as template code.
        webhook("plain", "{{ labels.job | " + event.labels.job + " }}"),
    ]
}
"#,
        )
        .start();
    let reply = salve.post_fixture("firing-single.json");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let outcomes = outcomes(&records);
    for channel in ["oncall", "ops", "ticketing", "plain"] {
        let outcome = outcomes.get(&format!("notify:{channel}"));
        assert_eq!(
            outcome.map(|o| o["outcome"].clone()),
            Some(json!("ok")),
            "{channel}: {records:#?}\n{}",
            salve.logs()
        );
    }
    let plain: Vec<Request> = ticketing
        .requests()
        .into_iter()
        .filter(|r| r.json()["channel"] == "plain")
        .collect();
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0].json()["text"], "{{ labels.job | cadvisor }}");
    assert_eq!(
        plain[0].json()["intent"]["params"]["verbatim"],
        json!(["text"])
    );

    let messages = wait_until("the message in the maildir", || {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    });
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        header(&messages[0], "Subject"),
        Some("ContainerDown (critical): Container web-1 is down"),
        "{}",
        messages[0]
    );
    assert_eq!(
        // Quoted-printable: a soft line break is `=` at the end of a line.
        message_body(&messages[0])
            .replace("\r\n", "\n")
            .replace("=\n", "")
            .trim(),
        "Container web-1 is down on host-a:9323, firing since 2026-11-22T22:39:08.658669699+00:00.\n\
         Runbook: https://runbooks.example/container-down\n\
         salve: exec exec:heal (execute)",
        "{}",
        messages[0]
    );

    let slacked = slack.requests();
    assert_eq!(slacked.len(), 1, "{slacked:?}");
    let field =
        |name: &str, value: &str| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") });
    assert_eq!(
        slacked[0].json(),
        json!({
            "text": DEFAULT_TEXT,
            "blocks": [
                { "type": "header", "text": { "type": "plain_text", "text": "🔥 FIRING: ContainerDown", "emoji": true } },
                { "type": "section", "text": { "type": "mrkdwn", "text": "Container web-1 is down" } },
                { "type": "section", "fields": [
                    field("Status", "firing"), field("Severity", "critical"),
                    field("container", "web-1"), field("instance", "host-a:9323"),
                    field("job", "cadvisor"), field("service", "web"),
                ] },
                { "type": "context", "elements": [{ "type": "mrkdwn", "text": "salve (rule tell): exec exec:heal" }] },
                { "type": "actions", "elements": [
                    { "type": "button", "text": { "type": "plain_text", "text": "Source" },
                      "url": "http://prometheus.local:9090/graph?g0.expr=up%3D%3D0" },
                    { "type": "button", "text": { "type": "plain_text", "text": "Runbook" },
                      "url": "https://runbooks.example/container-down" },
                ] },
            ],
        })
    );

    let hooks: Vec<Request> = ticketing
        .requests()
        .into_iter()
        .filter(|r| r.json()["channel"] == "ticketing")
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(
        hooks[0].headers["x-salve-signature"],
        format!("sha256={}", hmac_hex(SECRET.as_bytes(), &hooks[0].body))
    );
    let document = stable(hooks[0].json());
    let fixture = crate::support::fixture("firing-single.json");
    let alert = &fixture["alerts"][0];
    let decision = |action: &str, target: &str, params: Value| {
        let mut d = json!({
            "fingerprint": "75359c27e5221bdd",
            "starts_at": "2026-11-22T22:39:08.658669699Z",
            "status": "firing", "rule": "tell",
            "action": action, "target": target, "decision": "execute",
        });
        if params != json!({}) {
            d["params"] = params;
        }
        d
    };
    assert_eq!(
        document,
        json!({
            "channel": "ticketing",
            "action": "notify",
            "via": "webhook",
            "text": DEFAULT_TEXT,
            "event": {
                "source": "alertmanager",
                "status": "firing",
                "labels": alert["labels"],
                "annotations": alert["annotations"],
                "starts_at": "2026-11-22T22:39:08.658669699Z",
                "fingerprint": "75359c27e5221bdd",
                "generator_url": alert["generatorURL"],
            },
            "intent": { "action": "notify", "target": "notify:ticketing", "params": { "via": "webhook" } },
            "decision": decision("notify", "notify:ticketing", json!({ "via": "webhook" })),
            "actions": [
                decision("exec", "exec:heal", json!({})),
                document["actions"][1].clone(),
                decision("notify", "notify:ops", json!({ "via": "slack" })),
                document["actions"][3].clone(),
            ],
        }),
        "{document:#}"
    );
    assert_eq!(document["actions"][1]["target"], "notify:oncall");
    assert_eq!(document["actions"][3]["target"], "notify:plain");
}

#[test]
fn a_failing_action_is_reported_to_the_outcome_channel_and_a_failing_report_stops_there() {
    let ticketing = Receiver::start(&[]);
    let rejecting = Receiver::start(&[Reply::Status(400); 10]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[policy]
breaker_failures = 2

[exec.broken]
argv = ["false"]

[notify.ticketing]
type = "webhook"
url = "{ticketing}"
secret_env = "HOOK_SECRET"

[notify.rejecting]
type = "webhook"
url = "{rejecting}"

[[on_outcome]]
when = ["failed", "circuit_open"]
notify = "ticketing"

[[on_outcome]]
when = ["failed"]
notify = "rejecting"
actions = ["exec"]
"#,
            ticketing = ticketing.url("/hook"),
            rejecting = rejecting.url("/hook"),
        ))
        .env("HOOK_SECRET", SECRET)
        .rule(
            "heal",
            r#"
const MATCH = `alertname="Broken"`;

fn plan(event) {
    [exec("broken")]
}
"#,
        )
        .start();
    for (n, host) in ["a", "b"].into_iter().enumerate() {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Broken"), ("host", host)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        // The exec, then a message to each outcome channel.
        salve.wait_for_audit("the failure and both reports", |records| {
            of_kind(records, "outcome").len() >= 3 * (n + 1)
        });
    }
    let records = salve.wait_settled(2);
    assert_eq!(
        crate::support::decisions(&records),
        [
            "heal: exec exec:broken -> execute",
            "on_outcome/ticketing: notify notify:ticketing -> execute",
            "on_outcome/rejecting: notify notify:rejecting -> execute",
            "heal: exec exec:broken -> execute",
            "on_outcome/ticketing: notify notify:ticketing -> execute",
            "on_outcome/rejecting: notify notify:rejecting -> execute",
        ],
        "{}",
        salve.logs()
    );
    // The rejected reports failed, and nothing reported on them.
    assert_eq!(of_kind(&records, "outcome").len(), 6);
    assert_eq!(rejecting.requests().len(), 2);

    let hooks = ticketing.requests();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let mut texts = Vec::new();
    for (hook, when) in hooks.iter().zip(["failed", "circuit_open"]) {
        assert_eq!(
            hook.headers["x-salve-signature"],
            format!("sha256={}", hmac_hex(SECRET.as_bytes(), &hook.body))
        );
        let document = stable(hook.json());
        let report = &document["report"];
        assert_eq!(report["when"], when, "{document:#}");
        assert_eq!(report["decision"]["rule"], "heal");
        assert_eq!(report["decision"]["target"], "exec:broken");
        assert_eq!(report["outcome"]["outcome"], "failed");
        assert_eq!(document["decision"]["rule"], "on_outcome/ticketing");
        assert_eq!(
            document["intent"]["params"],
            json!({ "via": "on_outcome", "when": when, "reports": hook.json()["report"]["decision"]["id"] })
        );
        assert_eq!(document["event"]["labels"]["alertname"], "Broken");
        texts.push(s(&document["text"]));
    }
    let error = s(&stable(hooks[0].json())["report"]["outcome"]["error"]);
    assert_eq!(
        texts,
        [
            format!("salve could not exec exec:broken: {error} (rule heal)\nAlert: [FIRING] Broken\nhost=a"),
            format!("salve stopped trying to exec exec:broken: it failed too many times in a row and its circuit breaker is open; last error: {error} (rule heal)\nAlert: [FIRING] Broken\nhost=b"),
        ],
        "{texts:#?}"
    );
}

#[test]
fn an_action_interrupted_by_a_stop_is_reported_at_the_next_start_and_not_run_again() {
    let oncall = Receiver::start(&[]);
    let mut salve = Salve::builder()
        .config(&format!(
            r#"
[exec.drain]
argv = ["/bin/sh", "-c", 'echo started >> "{{dir}}/started.txt"; sleep 5']

[notify.oncall]
type = "webhook"
url = "{url}"

[[on_outcome]]
when = ["abandoned"]
notify = "oncall"
"#,
            url = oncall.url("/hook"),
        ))
        .rule(
            "drain",
            r#"
const MATCH = `alertname="NodeDraining"`;

fn plan(event) {
    [exec("drain")]
}
"#,
        )
        .start();
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "NodeDraining"), ("node", "worker-3")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    wait_until("the command to start", || {
        (salve.lines("started.txt") == ["started"]).then_some(())
    });
    salve.kill9();
    assert!(oncall.requests().is_empty());

    salve.start();
    let records = salve.wait_for_audit("the interrupted action and its report", |records| {
        of_kind(records, "outcome").len() >= 2
    });
    assert_eq!(
        crate::support::decisions(&records),
        [
            "drain: exec exec:drain -> execute",
            "on_outcome/oncall: notify notify:oncall -> execute",
        ],
        "{}",
        salve.logs()
    );
    let hooks = oncall.requests();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let document = stable(hooks[0].json());
    assert_eq!(document["report"]["when"], "abandoned", "{document:#}");
    assert_eq!(document["report"]["outcome"]["outcome"], "abandoned");
    assert_eq!(document["report"]["decision"]["target"], "exec:drain");
    assert_eq!(document["event"]["labels"]["node"], "worker-3");
    assert_eq!(
        s(&document["text"]),
        "salve stopped in the middle of exec on exec:drain and will not repeat it: check whether it took effect (rule drain)\nAlert: [FIRING] NodeDraining\nnode=worker-3"
    );
    assert_eq!(
        salve.metric(r#"salve_actions_total{action="exec",outcome="abandoned"}"#),
        Some(1.0),
        "{}",
        salve.metrics()
    );
    // Not run again, and not reported again by a further restart.
    salve.stop();
    salve.start();
    salve.wait_settled(1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(salve.lines("started.txt"), ["started"]);
    assert_eq!(oncall.requests().len(), 1);
}

#[test]
fn check_points_at_a_broken_template() {
    let salve = Salve::builder()
        .rule(
            "tell",
            r#"const MATCH = `alertname="DiskFull"`;

fn plan(event) {
    [slack("ops", "Disk full on {{ labels.host }"), email("oncall", "{{ labels.host | shout }}")]
}
"#,
        )
        .write();
    let path = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &path, "--rules", &rules]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tell.rhai:4:19: slack: template error: syntax error: unexpected `}`"),
        "{stderr}"
    );
    eprintln!("[notify] salve check on a broken template:\n{stderr}");

    let salve = Salve::builder()
        .config("[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\ntext = \"{% if status %}open\"\n")
        .write();
    let path = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &path, "--rules", &rules]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notify.ops.text: template error: syntax error: unexpected end of input"),
        "{stderr}"
    );
}
