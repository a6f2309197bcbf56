//! The listeners notification tests deliver to, on loopback ports: an HTTP receiver
//! standing in for Slack and webhook endpoints (scripted statuses, every request
//! recorded) and a real SMTP server (Debian's `python3-aiosmtpd`).

use crate::support::{of_kind, wait_until, Salve};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver does with one request.
#[derive(Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// 429 Too Many Requests with `Retry-After: SECONDS`.
    TooMany(u64),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1: answers requests with `script` in order (200
/// once it runs out), one request per connection.
pub struct Receiver {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    pub fn start(script: &[Reply]) -> Receiver {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
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

/// An outcome record without what changes from run to run (times, ids), nor `also`.
pub fn stable_outcome(outcome: &Value, also: &[&str]) -> Value {
    let mut o = outcome.clone();
    if let Some(map) = o.as_object_mut() {
        for volatile in [
            "at",
            "decision_id",
            "event_id",
            "fingerprint",
            "duration_ms",
            "kind",
        ]
        .iter()
        .chain(also)
        {
            map.remove(*volatile);
        }
    }
    o
}

/// Outcomes by target, minus what changes from run to run.
pub fn outcomes(records: &[Value]) -> BTreeMap<String, Value> {
    of_kind(records, "outcome")
        .into_iter()
        .map(|o| {
            let mut o = stable_outcome(o, &["rule"]);
            let map = o.as_object_mut().expect("object");
            let target = map
                .remove("target")
                .and_then(|t| t.as_str().map(str::to_string))
                .unwrap_or_default();
            (target, o)
        })
        .collect()
}

/// Debian's python3-aiosmtpd, saving every message to a maildir.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
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
    pub fn start() -> SmtpServer {
        SmtpServer::start_with("aiosmtpd.handlers.Mailbox", &[])
    }

    /// With the handler [`SCRIPTED_HANDLER`].
    pub fn start_scripted() -> SmtpServer {
        SmtpServer::start_with("salve_scripted.Scripted", &[])
    }

    /// Requires STARTTLS with this certificate and key before MAIL.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> SmtpServer {
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
    pub fn start_auth(user: &str, password: &str) -> SmtpServer {
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

    pub fn messages(&self) -> Vec<String> {
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

pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn message_body(message: &str) -> &str {
    message
        .split_once("\r\n\r\n")
        .or_else(|| message.split_once("\n\n"))
        .map(|(_, b)| b)
        .unwrap_or_default()
}

/// A quoted-printable body (RFC 2045) as text: soft line breaks joined, `=XX` decoded.
pub fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let mut bytes = Vec::new();
    let mut rest = joined.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if first == b'=' => {
                bytes.push(byte);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(first);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The hex HMAC-SHA256 of `body` under `key`, as salve signs a webhook.
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The form Slack posts for a click on the button `action_id` of approval `id` by
/// the user `user` (`block_actions`, as Slack sends it, trimmed of what salve ignores).
pub fn slack_click(user: &str, action_id: &str, id: &str, response_url: &str) -> String {
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": { "id": user, "username": "ada", "name": "ada", "team_id": "T0001" },
        "team": { "id": "T0001", "domain": "example" },
        "api_app_id": "A0001",
        "trigger_id": "1.2.3",
        "response_url": response_url,
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": "b1",
            "value": id,
            "text": { "type": "plain_text", "text": "Approve" },
            "action_ts": "1700000000.000100"
        }]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).expect("a form")
}

/// `X-Slack-Signature` for `body` sent at `at` (Unix seconds), signed with `secret`
/// as Slack signs it.
pub fn slack_signature(secret: &str, at: i64, body: &str) -> String {
    let signed = format!("v0:{at}:{body}");
    format!("v0={}", hmac_hex(secret.as_bytes(), signed.as_bytes()))
}

/// Posts one native event named `alertname` and returns the trail once its actions
/// have outcomes.
pub fn fire_and_settle(salve: &Salve, alertname: &str) -> Vec<Value> {
    salve.post_event(&[("alertname", alertname)]);
    salve.wait_settled(1)
}

/// The key webhook channels sign with, and the tests check signatures against.
pub const SECRET: &str = "s3cret-signing-key";

/// Removes what changes from run to run (ids, clocks) anywhere in a document.
pub fn stable(mut value: Value) -> Value {
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
