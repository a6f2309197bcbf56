//! Email channels against a real SMTP server the test runs (`notify_support`): delivery,
//! retries of a dead server and of a 4xx (never a 5xx), STARTTLS trusting the configured CA
//! only, and a password read from the environment.

use crate::notify_support::{fire_and_settle, header, outcomes, SmtpServer};
use crate::support::{native, wait_until, Salve};
use serde_json::json;
use std::net::TcpListener;

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
