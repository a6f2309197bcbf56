//! Notifications delivered to real listeners started by the tests on loopback ports:
//! HTTP receivers standing in for Slack and webhook endpoints (scripted statuses, every
//! request recorded) and a real SMTP server (Debian's `python3-aiosmtpd`).

use crate::support::{native, of_kind, wait_until, Salve};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver does with one request.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// 429 Too Many Requests with `Retry-After: SECONDS`.
    TooMany(u64),
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    /// Lowercase names.
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: std::time::Instant,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1: answers requests with `script` in order (200
/// once it runs out), one request per connection.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(script: &[Reply]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let mut script: std::collections::VecDeque<Reply> = script.iter().copied().collect();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                recorded.lock().expect("lock").push(request);
                match script.pop_front().unwrap_or(Reply::Status(200)) {
                    Reply::Hang => held.push(stream),
                    Reply::TooMany(seconds) => {
                        let mut stream = stream;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 429 Too Many Requests\r\nretry-after: {seconds}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        );
                    }
                    Reply::Status(code) => {
                        let mut stream = stream;
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} Scripted\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        );
                    }
                }
            }
        });
        Receiver { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        path,
        headers,
        body,
        at: std::time::Instant::now(),
    })
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Outcomes by target, minus what changes from run to run.
fn outcomes(records: &[Value]) -> BTreeMap<String, Value> {
    of_kind(records, "outcome")
        .into_iter()
        .map(|o| {
            let mut o = o.clone();
            let map = o.as_object_mut().expect("object");
            for volatile in [
                "at",
                "decision_id",
                "event_id",
                "duration_ms",
                "kind",
                "rule",
            ] {
                map.remove(volatile);
            }
            let target = map
                .remove("target")
                .and_then(|t| t.as_str().map(str::to_string))
                .unwrap_or_default();
            (target, o)
        })
        .collect()
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
    [
        webhook("ticketing", text),
        slack("ops", text),
        webhook("rejecting", text),
        webhook("silent", text),
        notify("nowhere", text),
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
        assert_eq!(
            document,
            json!({
                "channel": "ticketing",
                "action": "notify",
                "via": "webhook",
                "text": "disk full on host-a",
            })
        );
    }

    let slacked = slack.requests();
    assert_eq!(slacked.len(), 1, "{slacked:?}");
    assert_eq!(slacked[0].path, "/services/T000/B000/XXXX");
    assert_eq!(slacked[0].json(), json!({ "text": "disk full on host-a" }));
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
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", "Busy")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let outcomes = outcomes(&records);
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

/// Debian's python3-aiosmtpd, saving every message to a maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// A Mailbox that answers RCPT from a script: `refused@` gets 550, `later@` gets 451
/// the first time and is accepted after.
const SCRIPTED_HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox


class Scripted(Mailbox):
    tries = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused@"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("later@"):
            Scripted.tries[address] = Scripted.tries.get(address, 0) + 1
            if Scripted.tries[address] == 1:
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

/// aiosmtpd's Controller requiring AUTH (PLAIN or LOGIN) as USER with PASSWORD, without TLS.
const AUTH_SERVER: &str = r#"
import sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, user, password = sys.argv[1:5]


def authenticate(server, session, envelope, mechanism, data):
    ok = (
        isinstance(data, LoginPassword)
        and data.login == user.encode()
        and data.password == password.encode()
    )
    # handled=False: aiosmtpd answers 535 itself.
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Mailbox(maildir),
    hostname="127.0.0.1",
    port=int(port),
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
while True:
    time.sleep(3600)
"#;

impl SmtpServer {
    fn start() -> SmtpServer {
        SmtpServer::start_with("aiosmtpd.handlers.Mailbox", &[])
    }

    /// With the handler [`SCRIPTED_HANDLER`].
    fn start_scripted() -> SmtpServer {
        SmtpServer::start_with("salve_scripted.Scripted", &[])
    }

    /// Requires STARTTLS with this certificate and key before MAIL.
    fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> SmtpServer {
        SmtpServer::start_with(
            "aiosmtpd.handlers.Mailbox",
            &[
                "--tlscert".as_ref(),
                cert.as_os_str(),
                "--tlskey".as_ref(),
                key.as_os_str(),
            ],
        )
    }

    fn start_with(handler: &str, options: &[&std::ffi::OsStr]) -> SmtpServer {
        SmtpServer::launch(|port, maildir| {
            let mut argv: Vec<std::ffi::OsString> =
                vec!["-m".into(), "aiosmtpd".into(), "-n".into()];
            argv.extend(options.iter().map(|o| o.to_os_string()));
            argv.extend([
                "-l".into(),
                format!("127.0.0.1:{port}").into(),
                "-c".into(),
                handler.into(),
                maildir.as_os_str().to_os_string(),
            ]);
            argv
        })
    }

    /// Requires AUTH as `user` with `password`.
    fn start_auth(user: &str, password: &str) -> SmtpServer {
        SmtpServer::launch(|port, maildir| {
            vec![
                "salve_auth_server.py".into(),
                port.to_string().into(),
                maildir.as_os_str().to_os_string(),
                user.into(),
                password.into(),
            ]
        })
    }

    fn launch(argv: impl FnOnce(u16, &std::path::Path) -> Vec<std::ffi::OsString>) -> SmtpServer {
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import aiosmtpd"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .unwrap_or_else(|| {
                panic!(
                    "this test needs a real SMTP server: install Debian's python3-aiosmtpd \
                     (apt-get install -y python3-aiosmtpd; .ci/run does)"
                )
            });
        let dir = tempfile::tempdir().expect("temp folder");
        let maildir = dir.path().join("maildir");
        std::fs::write(dir.path().join("salve_scripted.py"), SCRIPTED_HANDLER)
            .expect("write the handler");
        std::fs::write(dir.path().join("salve_auth_server.py"), AUTH_SERVER)
            .expect("write the server");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(python)
            .args(argv(port, &maildir))
            .current_dir(dir.path())
            .env("PYTHONPATH", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        wait_until("aiosmtpd to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        SmtpServer {
            child,
            port,
            maildir,
            _dir: dir,
        }
    }

    fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read a message"))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
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
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", "Mail")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let outcomes = outcomes(&records);
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

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl CLI.
fn make_certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("this test needs the openssl command to make certificates");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=salve test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn email_over_starttls_trusts_the_configured_ca_only() {
    let certs = tempfile::tempdir().expect("temp folder");
    make_certificates(certs.path());
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
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", "Tls")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let outcomes = outcomes(&records);
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
    ];
    for (config, expected) in cases {
        let salve = Salve::builder().config(config).write();
        let path = salve.config_path().display().to_string();
        let rules = salve.rules_dir().display().to_string();
        let out = salve.cli(&["check", "--config", &path, "--rules", &rules]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{config}\n{stderr}");
        assert!(
            stderr.contains(expected),
            "{config}\nexpected {expected:?} in:\n{stderr}"
        );
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
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", "Auth")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let outcomes = outcomes(&records);
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
