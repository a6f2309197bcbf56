//! Runs the real `salve` binary: a temp folder per test with `salve.toml`, `rules/`
//! and `data/`, the server on an ephemeral loopback port, and helpers that read the
//! audit trail back. Every wait is bounded.

use serde_json::Value;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any test waits for something to happen, on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_salve")
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_path(name: &str) -> PathBuf {
    repo_dir().join("tests/fixtures/alertmanager").join(name)
}

/// A real Alertmanager payload from `tests/fixtures/alertmanager/`.
pub fn fixture(name: &str) -> Value {
    json_file(&fixture_path(name))
}

/// A Kubernetes object as the API server returns it, from `tests/fixtures/k8s/`.
pub fn k8s_fixture(name: &str) -> Value {
    json_file(&repo_dir().join("tests/fixtures/k8s").join(name))
}

fn json_file(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture payload (the JSON files, not the requests that triggered them).
pub const FIXTURES: [&str; 5] = [
    "firing-single.json",
    "firing-group.json",
    "resolved.json",
    "resolved-all.json",
    "firing-subroute.json",
];

/// A loopback port free when asked (another process may take it before it is bound).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A loopback port nothing listens on: a TCP check of it fails at once, for as long as
/// the tests run. The port stays bound without listening (and without SO_REUSEADDR), so
/// no other test's listener nor any connection's source port can take it meanwhile.
pub fn closed_port() -> u16 {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a TCP socket");
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    socket
        .bind(&any_port.into())
        .expect("bind an ephemeral port");
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("the bound port");
    std::mem::forget(socket);
    port
}

/// Polls `probe` until it returns Some, or panics after [`PATIENCE`] with `what`.
pub fn wait_until<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    wait_until_within(PATIENCE, what, probe)
}

/// [`wait_until`] with its own bound, for waits on slower real systems (Docker).
pub fn wait_until_within<T>(
    patience: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("gave up after {patience:?} waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// An exec command that appends its arguments, one line per run, to `{dir}/FILE`.
pub fn marker(name: &str, file: &str) -> String {
    format!(
        "[exec.{name}]\nargv = [\"/bin/sh\", \"-c\", 'echo \"$*\" >> \"{{dir}}/{file}\"', \"sh\"]\n"
    )
}

/// Marks (with the `mark` command) the container of every `ContainerDown` alert.
pub const MARK_CONTAINER: &str = r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    [exec("mark", [event.labels.container])]
}
"#;

/// `Flapping` marks `limited` (with the `mark` command) once an hour per target.
pub const LIMITED: &str = r#"
const MATCH = `alertname="Flapping"`;
const LIMIT = "1 per 1h per target";
fn plan(event) { [exec("mark", ["limited"])] }
"#;

/// Files to write into a test's folder before salve starts.
#[derive(Default)]
pub struct Builder {
    config: String,
    rules: Vec<(String, String)>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dry_run: bool,
    open_files: Option<u32>,
    addresses_in_file: bool,
    bearer: Option<String>,
}

impl Builder {
    /// Every request of the test's client carries `Authorization: Bearer TOKEN` unless
    /// it sets its own.
    pub fn bearer(mut self, token: &str) -> Builder {
        self.bearer = Some(token.to_string());
        self
    }

    /// `salve.toml`; `{dir}` is replaced by the test's folder (for files commands write).
    /// Unless it has a `[docker]` table, `[docker] events = false` is appended, so the
    /// test does not follow the machine's Docker engine.
    pub fn config(mut self, text: &str) -> Builder {
        self.config = text.to_string();
        self
    }

    /// `rules/NAME.rhai`.
    pub fn rule(mut self, name: &str, source: &str) -> Builder {
        self.rules.push((name.to_string(), source.to_string()));
        self
    }

    /// An environment variable for every salve process of this test.
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts salve under `ulimit -n LIMIT` (systemd's default soft limit is 1024).
    pub fn open_files_limit(mut self, limit: u32) -> Builder {
        self.open_files = Some(limit);
        self
    }

    pub fn dry_run(mut self) -> Builder {
        self.dry_run = true;
        self
    }

    /// `listen` and `data_dir` written at the top of `salve.toml` at each start rather
    /// than given as `--listen` and `--data-dir`, which would win over the file.
    pub fn addresses_in_file(mut self) -> Builder {
        self.addresses_in_file = true;
        self
    }

    /// Another argument to `salve serve` (`--log-format json`).
    pub fn arg(mut self, arg: &str) -> Builder {
        self.args.push(arg.to_string());
        self
    }

    /// Writes the files without starting the server (for CLI-only tests).
    pub fn write(self) -> Salve {
        let dir = self.write_folder();
        Salve {
            dir,
            port: 0,
            child: None,
            starts: 0,
            env: self.env,
            args: self.args,
            dry_run: self.dry_run,
            open_files: self.open_files,
            addresses_in_file: self.addresses_in_file,
            scheme: "http",
            client: reqwest::blocking::Client::builder()
                .timeout(PATIENCE)
                .default_headers(authorization(self.bearer.as_deref()))
                .build()
                .expect("HTTP client"),
        }
    }

    /// Writes `salve.toml`, `rules/` and `data/` into a new temp folder, for a test that
    /// runs salve in its own process (`api_router`) and needs no HTTP client.
    pub fn write_folder(&self) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("salve-it-")
            .tempdir()
            .expect("create a temp folder");
        let root = dir.path().to_path_buf();
        fs::create_dir_all(root.join("rules")).expect("create rules/");
        fs::create_dir_all(root.join("data")).expect("create data/");
        let mut config = self.config.replace("{dir}", &root.display().to_string());
        if !config.contains("[docker]") {
            // Every salve on this machine would otherwise follow the same Docker engine
            // and react to the containers the Docker tests make.
            config.push_str("\n[docker]\nevents = false\n");
        }
        fs::write(root.join("salve.toml"), config).expect("write salve.toml");
        for (name, source) in &self.rules {
            fs::write(root.join("rules").join(format!("{name}.rhai")), source)
                .expect("write a rule");
        }
        dir
    }

    /// Writes the files and starts `salve serve`, returning once it is ready.
    pub fn start(self) -> Salve {
        let mut salve = self.write();
        salve.start();
        salve
    }
}

fn authorization(bearer: Option<&str>) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = bearer {
        let value = format!("Bearer {token}").parse().expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    headers
}

/// One test's salve: its folder and, while running, its server process.
pub struct Salve {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    starts: usize,
    env: Vec<(String, String)>,
    args: Vec<String>,
    dry_run: bool,
    open_files: Option<u32>,
    addresses_in_file: bool,
    client: reqwest::blocking::Client,
    scheme: &'static str,
}

/// A response: status and body (JSON when it parses, else a JSON string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Salve {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("salve.toml")
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.dir().join("rules")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// Whether the next `start` runs `salve serve --dry-run`.
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    pub fn write_rule(&self, name: &str, source: &str) {
        fs::write(self.rules_dir().join(format!("{name}.rhai")), source).expect("write a rule");
    }

    /// Starts `salve serve` on the folder (again, after a stop: same data dir) and waits
    /// until it is ready.
    pub fn start(&mut self) {
        self.start_until(true);
    }

    /// Starts `salve serve` and waits only until it answers HTTP, ready or not (a salve
    /// that cannot reach its Docker engine never is).
    pub fn start_unready(&mut self) {
        self.start_until(false);
    }

    fn start_until(&mut self, ready: bool) {
        assert!(self.child.is_none(), "salve is already running");
        for _attempt in 0..3 {
            self.port = free_port();
            self.starts += 1;
            let log_path = self.log_path(self.starts);
            let log = File::create(&log_path).expect("create the log file");
            let mut cmd = match self.open_files {
                None => Command::new(bin()),
                Some(limit) => {
                    let mut sh = Command::new("sh");
                    sh.arg("-c")
                        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                        .arg(bin());
                    sh
                }
            };
            cmd.arg("serve")
                .arg("--config")
                .arg(self.config_path())
                .arg("--rules")
                .arg(self.rules_dir());
            if self.addresses_in_file {
                self.write_addresses();
            } else {
                cmd.arg("--data-dir")
                    .arg(self.data_dir())
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{}", self.port));
            }
            cmd.current_dir(self.dir())
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log));
            if self.dry_run {
                cmd.arg("--dry-run");
            }
            cmd.args(&self.args);
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
            let child = cmd.spawn().expect("spawn salve serve");
            self.child = Some(child);
            match self.wait_ready(ready) {
                Ok(()) => return,
                Err(log) if log.contains("cannot listen") => {
                    // Another test took the port between our probe and salve's bind.
                    self.child = None;
                    continue;
                }
                Err(log) => panic!("salve serve exited before it was ready:\n{log}"),
            }
        }
        panic!("salve serve could not find a free port:\n{}", self.logs());
    }

    /// This start's `listen` and `data_dir`, at the top of `salve.toml` in place of the
    /// last start's.
    fn write_addresses(&self) {
        const SET_HERE: &str = "# set by the test for this start";
        let config = fs::read_to_string(self.config_path()).expect("read salve.toml");
        let rest: Vec<&str> = config.lines().filter(|l| !l.ends_with(SET_HERE)).collect();
        let config = format!(
            "listen = \"127.0.0.1:{}\"  {SET_HERE}\ndata_dir = {:?}  {SET_HERE}\n{}\n",
            self.port,
            self.data_dir().display().to_string(),
            rest.join("\n")
        );
        fs::write(self.config_path(), config).expect("write salve.toml");
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir().join(format!("salve-{n}.log"))
    }

    /// Everything every salve process of this test wrote to stderr.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                let text = fs::read_to_string(self.log_path(n)).unwrap_or_default();
                format!("--- salve serve #{n} ---\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn wait_ready(&mut self, ready: bool) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        let url = self.url("/-/ready");
        loop {
            let child = self.child.as_mut().expect("started");
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
                return Err(format!("exit status {status}\n{log}"));
            }
            let answered = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| !ready || r.status().as_u16() == 200);
            if answered {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.child.take().map(|mut c| {
                    let _ = c.kill();
                    c.wait()
                });
                panic!(
                    "salve serve was not ready after {PATIENCE:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.port)
    }

    /// From now on this test speaks HTTPS to salve, trusting the CA in `ca` and
    /// presenting the client certificate and key in `identity` (PEM files).
    pub fn speak_tls(&mut self, ca: &Path, identity: &[&Path]) {
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(PATIENCE)
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&fs::read(ca).expect("read the CA"))
                    .expect("a PEM CA"),
            );
        if !identity.is_empty() {
            let pem: Vec<u8> = identity
                .iter()
                .flat_map(|p| fs::read(p).expect("read the client identity"))
                .collect();
            builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("a PEM identity"));
        }
        self.client = builder.build().expect("HTTPS client");
        self.scheme = "https";
    }

    fn reply(&self, response: reqwest::Result<reqwest::blocking::Response>) -> Reply {
        let response = response.unwrap_or_else(|e| panic!("request failed: {e}\n{}", self.logs()));
        let status = response.status().as_u16();
        let text = response.text().expect("read the response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.reply(self.client.post(self.url(path)).json(body).send())
    }

    /// Posts one native event with these labels; it must be accepted.
    pub fn post_event(&self, labels: &[(&str, &str)]) {
        let reply = self.post_json("/api/v1/events", &native(labels));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }

    /// Posts a fixture exactly as stored (the bytes Alertmanager's payload became).
    pub fn post_fixture(&self, name: &str) -> Reply {
        let body = fs::read(fixture_path(name)).expect("read fixture");
        self.post_raw("/api/v1/alertmanager", "application/json", body)
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.reply(
            self.client
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body)
                .send(),
        )
    }

    /// Sends a request built on this test's client (headers, methods the helpers lack).
    pub fn send(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        self.reply(request.send())
    }

    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    pub fn get(&self, path: &str) -> Reply {
        self.reply(self.client.get(self.url(path)).send())
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.reply(self.client.delete(self.url(path)).send())
    }

    pub fn metrics(&self) -> String {
        match self.get("/metrics") {
            Reply {
                status: 200,
                body: Value::String(text),
            } => text,
            other => panic!("GET /metrics: {other:?}"),
        }
    }

    /// The value of one sample, e.g. `salve_config_last_reload_successful` or
    /// `salve_requests_rejected_total{path="/api/v1/events",status="415"}`.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        self.metrics().lines().find_map(|line| {
            let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Runs the `salve` CLI in the test's folder.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .current_dir(self.dir())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .expect("run the salve CLI")
    }

    /// One page of `GET /api/v1/audit?QUERY` (before `cursor`): its size in bytes, its
    /// records, and the cursor of the older page if there is one.
    pub fn audit_page(
        &self,
        query: &str,
        cursor: Option<&str>,
    ) -> (usize, Vec<Value>, Option<String>) {
        let mut url = self.url(&format!("/api/v1/audit?{query}"));
        if let Some(cursor) = cursor {
            url.push_str(&format!("&before={cursor}"));
        }
        let reply = self.client.get(url).send().expect("get a page");
        assert_eq!(reply.status().as_u16(), 200);
        let older = reply
            .headers()
            .get("x-salve-older")
            .map(|v| v.to_str().expect("cursor text").to_string());
        let body = reply.bytes().expect("page body");
        let records: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
        (body.len(), records, older)
    }

    /// `salve audit --data-dir D --json`, parsed.
    pub fn audit_json(&self) -> Vec<Value> {
        // Where salve writes: the data dir, or the PostgreSQL its `[store]` names.
        let config = fs::read_to_string(self.config_path()).unwrap_or_default();
        let out = if config.contains("[store]") {
            let config = self.config_path().display().to_string();
            self.cli(&["audit", "--config", &config, "--json"])
        } else {
            let data = self.data_dir().display().to_string();
            self.cli(&["audit", "--data-dir", &data, "--json"])
        };
        assert!(
            out.status.success(),
            "salve audit failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(records)) => records,
            other => panic!("salve audit --json printed {other:?}"),
        }
    }

    /// Waits until `done` holds for the audit trail (read with `salve audit`).
    pub fn wait_for_audit(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait_for_audit_within(PATIENCE, what, done)
    }

    /// [`Salve::wait_for_audit`] with its own bound, for waits on slower real systems.
    pub fn wait_for_audit_within(
        &self,
        patience: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + patience;
        loop {
            let records = self.audit_json();
            if done(&records) {
                return records;
            }
            if Instant::now() >= deadline {
                panic!(
                    "gave up after {patience:?} waiting for: {what}\naudit:\n{}\nlogs:\n{}",
                    serde_json::to_string_pretty(&records).unwrap_or_default(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until at least `received` events were received, each of them evaluated,
    /// and every `execute` decision has its outcome.
    pub fn wait_settled(&self, received: usize) -> Vec<Value> {
        self.wait_for_audit(
            &format!("{received} events received, evaluated and acted on"),
            |records| settled(records, received),
        )
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("salve is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for salve") {
                assert!(
                    status.success(),
                    "salve serve exited with {status} after SIGTERM:\n{}",
                    self.logs()
                );
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("salve serve did not stop after SIGTERM:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Leaves `key` out of the environment of the next start.
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Waits (bounded) for salve to exit by itself, and says how it did.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("salve is running");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait for salve") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("salve serve did not exit by itself:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("salve is running").id()
    }

    /// The server's resident and peak resident memory (`VmRSS`, `VmHWM`), in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.child.as_ref().expect("salve is running").id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("salve is running");
        child.kill().expect("kill -9 salve");
        child.wait().expect("reap salve");
    }

    /// Lines of a file the test's commands write (empty when it does not exist yet).
    pub fn lines(&self, file: &str) -> Vec<String> {
        fs::read_to_string(self.dir().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Salve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Records of one kind, in order.
/// `salve check` refuses `config`, saying `expected` on stderr.
pub fn assert_check_refuses(config: &str, expected: &str) {
    let salve = Salve::builder().config(config).write();
    let out = salve.cli(&["check", "--config", "salve.toml", "--rules", "rules"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{config}\n{stderr}");
    assert!(
        stderr.contains(expected),
        "{config}\nexpected {expected:?} in:\n{stderr}"
    );
}

pub fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

/// Every received event evaluated, every execute decision with an outcome.
pub fn settled(records: &[Value], count: usize) -> bool {
    let received = of_kind(records, "received");
    // An event no rule matched has nothing more recorded about it.
    let events: Vec<&Value> = received
        .iter()
        .filter(|r| r["unmatched"] != true)
        .map(|r| &r["event"]["id"])
        .collect();
    let evaluated: Vec<&Value> = of_kind(records, "evaluated")
        .into_iter()
        .map(|r| &r["event_id"])
        .collect();
    let executes: Vec<&Value> = of_kind(records, "decision")
        .into_iter()
        .filter(|d| d["decision"] == "execute")
        .map(|d| &d["id"])
        .collect();
    let outcomes: Vec<&Value> = of_kind(records, "outcome")
        .into_iter()
        .map(|o| &o["decision_id"])
        .collect();
    received.len() >= count
        && events.iter().all(|id| evaluated.contains(id))
        && executes.iter().all(|id| outcomes.contains(id))
}

/// One decision as a line: `rule: action target -> execute` or `-> suppress (reason)`.
pub fn describe(decision: &Value) -> String {
    let verdict = match decision["reason"].as_str() {
        Some(reason) => format!("{} ({reason})", s(&decision["decision"])),
        None => s(&decision["decision"]),
    };
    format!(
        "{}: {} {} -> {verdict}",
        s(&decision["rule"]),
        s(&decision["action"]),
        s(&decision["target"])
    )
}

/// Every decision record, described.
pub fn decisions(records: &[Value]) -> Vec<String> {
    of_kind(records, "decision")
        .into_iter()
        .map(describe)
        .collect()
}

/// A JSON string's text (or the JSON of anything else).
pub fn s(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

/// A native event for `POST /api/v1/events`.
pub fn native(labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    serde_json::json!({ "labels": labels })
}
