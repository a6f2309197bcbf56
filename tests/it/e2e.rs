//! The real client: Prometheus scrapes a target this test runs, fires an alert through a
//! real Alertmanager into salve, and salve's `exec` brings the target back.

use crate::support::{free_port, of_kind, s, Salve};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// End-to-end waits cover Prometheus' scrape, rule evaluation, `for`, and Alertmanager's
/// group_wait: seconds each.
const E2E_PATIENCE: Duration = Duration::from_secs(60);

pub fn require(binary: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.exists())
    });
    found
        .unwrap_or_else(|| panic!("{binary} is missing: install Debian's {package} (.ci/run does)"))
}

/// A scrape target serving `demo_healthy 0` while `broken` exists, else `demo_healthy 1`.
pub struct Target {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Target {
    pub fn start(broken: PathBuf) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the target");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf);
                        let value = if broken.exists() { 0 } else { 1 };
                        let body = format!("# TYPE demo_healthy gauge\ndemo_healthy {value}\n");
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Target { port, stop }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A child process killed when the test ends, however it ends.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(name: &'static str, binary: &Path, args: &[String], log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Alertmanager on `port`, with `dir/alertmanager.yml`, no cluster.
fn start_alertmanager(binary: &Path, dir: &Path, port: u16) -> Daemon {
    Daemon::start(
        "alertmanager",
        binary,
        &[
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
        ],
        dir.join("alertmanager.log"),
    )
}

/// Prometheus and Alertmanager on loopback ports, alerting `DemoDown` into `salve`.
pub struct Stack {
    pub prometheus: Daemon,
    pub alertmanager: Daemon,
    _target: Target,
}

/// `DemoDown` while the demo target reports unhealthy.
pub const DEMO_RULES: &str = r#"groups:
  - name: demo
    interval: 1s
    rules:
      - alert: DemoDown
        expr: demo_healthy == 0
        for: 1s
        labels:
          severity: critical
        annotations:
          summary: "The demo target reports unhealthy"
"#;

/// Prometheus (scraping `target`, alerting by `rules`) and Alertmanager, sending to
/// `webhook`.
pub fn start_stack(
    dir: &Path,
    webhook: &str,
    rules: &str,
    target: Target,
    repeat_interval: &str,
) -> Stack {
    let prometheus_bin = require("prometheus", "prometheus");
    let alertmanager_bin = require("prometheus-alertmanager", "prometheus-alertmanager");
    let am_port = free_port();
    let prom_port = free_port();
    let am_config = format!(
        r#"route:
  receiver: salve
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: {repeat_interval}
receivers:
  - name: salve
    webhook_configs:
      - url: {url}
        send_resolved: true
"#,
        url = webhook
    );
    std::fs::write(dir.join("alertmanager.yml"), am_config).expect("write alertmanager.yml");
    std::fs::write(dir.join("rules.yml"), rules).expect("write rules.yml");
    let prom_config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ['{rules}']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{am_port}']
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ['127.0.0.1:{target}']
"#,
        rules = dir.join("rules.yml").display(),
        target = target.port
    );
    std::fs::write(dir.join("prometheus.yml"), prom_config).expect("write prometheus.yml");
    let alertmanager = start_alertmanager(&alertmanager_bin, dir, am_port);
    let prometheus = Daemon::start(
        "prometheus",
        &prometheus_bin,
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        dir.join("prometheus.log"),
    );
    Stack {
        prometheus,
        alertmanager,
        _target: target,
    }
}

fn wait_audit(
    salve: &Salve,
    stack: &Stack,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + E2E_PATIENCE;
    loop {
        let records = salve.audit_json();
        if done(&records) {
            return records;
        }
        if Instant::now() >= deadline {
            panic!(
                "gave up after {E2E_PATIENCE:?} waiting for: {what}\n--- audit:\n{records:#?}\n--- salve:\n{}\n--- prometheus:\n{}\n--- alertmanager:\n{}",
                salve.logs(),
                stack.prometheus.log(),
                stack.alertmanager.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn received_demo(records: &[Value], status: &str) -> usize {
    of_kind(records, "received")
        .iter()
        .filter(|r| {
            s(&r["event"]["labels"]["alertname"]) == "DemoDown"
                && s(&r["event"]["status"]) == status
        })
        .count()
}

fn demo_decisions(records: &[Value]) -> Vec<String> {
    of_kind(records, "decision")
        .iter()
        .filter(|d| s(&d["target"]) == "exec:heal")
        .map(|d| match d["reason"].as_str() {
            Some(reason) => format!("{} ({reason})", s(&d["decision"])),
            None => s(&d["decision"]),
        })
        .collect()
}

const HEAL_RULE: &str = r#"const MATCH = `alertname="DemoDown"`;
fn plan(event) {
    if event.status == "firing" { [exec("heal")] } else { [] }
}"#;

#[test]
fn a_real_alert_from_prometheus_through_alertmanager_is_healed_once_and_resolves() {
    let salve = Salve::builder()
        .config(
            r#"[exec.heal]
argv = ["/bin/sh", "-c", "echo healed >> {dir}/healed.log; rm -f {dir}/broken"]
timeout = "5s"
"#,
        )
        .rule("heal", HEAL_RULE)
        .start();
    let dir = salve.dir().to_path_buf();
    std::fs::write(dir.join("broken"), "").expect("break the target");
    let broke_at = Instant::now();
    let stack = start_stack(
        &dir,
        &salve.url("/api/v1/alertmanager"),
        DEMO_RULES,
        Target::start(dir.join("broken")),
        "1h",
    );

    let records = wait_audit(
        &salve,
        &stack,
        "the alert to fire, be healed and resolve",
        |r| received_demo(r, "resolved") >= 1,
    );
    eprintln!(
        "target broken → resolved notification in salve: {} ms",
        broke_at.elapsed().as_millis()
    );
    assert_eq!(demo_decisions(&records), vec!["execute"]);
    let outcome = of_kind(&records, "outcome")
        .into_iter()
        .find(|o| s(&o["target"]) == "exec:heal")
        .cloned();
    let outcome = outcome.expect("an outcome for the heal command");
    assert_eq!(
        (
            s(&outcome["outcome"]),
            outcome["detail"]["exit_code"].clone()
        ),
        ("ok".into(), Value::from(0))
    );
    assert!(
        !dir.join("broken").exists(),
        "the command brought the target back"
    );
    assert_eq!(salve.lines("healed.log").len(), 1);

    // The whole episode, as `salve audit --json` tells it: received, decided, executed, resolved.
    let kinds: Vec<String> = records
        .iter()
        .filter(|r| {
            s(&r["event"]["labels"]["alertname"]) == "DemoDown" || s(&r["target"]) == "exec:heal"
        })
        .map(|r| match s(&r["kind"]).as_str() {
            "received" => format!("received {}", s(&r["event"]["status"])),
            "decision" => format!("decision {}", s(&r["decision"])),
            "outcome" => format!("outcome {}", s(&r["outcome"])),
            other => other.to_string(),
        })
        .collect();
    let first_resolved = kinds
        .iter()
        .position(|k| k == "received resolved")
        .expect("resolved");
    assert_eq!(
        kinds[..first_resolved]
            .iter()
            .filter(|k| !k.starts_with("received firing"))
            .cloned()
            .collect::<Vec<_>>(),
        vec!["decision execute", "outcome ok"],
        "episode: {kinds:?}"
    );
}

#[test]
fn alertmanager_resending_a_lasting_problem_makes_salve_act_exactly_once() {
    let salve = Salve::builder()
        .config(
            r#"[exec.heal]
argv = ["/bin/sh", "-c", "echo tried >> {dir}/healed.log"]
timeout = "5s"
"#,
        )
        .rule("heal", HEAL_RULE)
        .start();
    let dir = salve.dir().to_path_buf();
    std::fs::write(dir.join("broken"), "").expect("break the target");
    let stack = start_stack(
        &dir,
        &salve.url("/api/v1/alertmanager"),
        DEMO_RULES,
        Target::start(dir.join("broken")),
        "2s",
    );
    let records = wait_audit(
        &salve,
        &stack,
        "three deliveries of the firing group",
        |r| received_demo(r, "firing") >= 3,
    );
    let decisions = demo_decisions(&records);
    assert_eq!(decisions[0], "execute");
    assert!(
        decisions[1..].iter().all(|d| d == "suppress (dedup)"),
        "{decisions:?}"
    );
    assert_eq!(salve.lines("healed.log").len(), 1);
}

#[test]
fn an_alert_inside_a_maintenance_window_is_suppressed_and_nothing_runs() {
    let salve = Salve::builder()
        .config(
            r#"[exec.heal]
argv = ["/bin/sh", "-c", "echo healed >> {dir}/healed.log"]

[[time_intervals]]
name = "always"
[[time_intervals.time_intervals]]
times = [{ start_time = "00:00", end_time = "24:00" }]
"#,
        )
        .rule(
            "heal",
            &HEAL_RULE.replace("fn plan", "const MUTE = [\"always\"];\nfn plan"),
        )
        .start();
    let dir = salve.dir().to_path_buf();
    std::fs::write(dir.join("broken"), "").expect("break the target");
    let stack = start_stack(
        &dir,
        &salve.url("/api/v1/alertmanager"),
        DEMO_RULES,
        Target::start(dir.join("broken")),
        "1h",
    );
    let records = wait_audit(&salve, &stack, "the firing alert", |r| {
        !demo_decisions(r).is_empty()
    });
    assert_eq!(demo_decisions(&records)[0], "suppress (maintenance)");
    assert!(of_kind(&records, "outcome").is_empty());
    assert!(salve.lines("healed.log").is_empty());
}

#[test]
fn the_shipped_alertmanager_and_prometheus_examples_pass_their_own_checkers() {
    let root = crate::support::repo_dir();
    let amtool = require("amtool", "prometheus-alertmanager");
    let promtool = require("promtool", "prometheus");
    let checks = [
        (&amtool, vec!["check-config"], "examples/alertmanager.yml"),
        (
            &amtool,
            vec!["check-config"],
            "examples/kubernetes/alertmanager-receiver.yml",
        ),
        (
            &promtool,
            vec!["check", "rules"],
            "examples/prometheus-rules.yml",
        ),
        (
            &promtool,
            vec!["check", "rules"],
            "examples/kubernetes/prometheus-rules.yml",
        ),
    ];
    for (tool, args, file) in checks {
        let out = Command::new(tool)
            .args(&args)
            .arg(root.join(file))
            .output()
            .expect("run the checker");
        assert!(
            out.status.success(),
            "{} {} {file}: {}{}",
            tool.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The serial of the certificate salve presents, read with `openssl s_client` (which
/// presents the client certificate in `dir`).
fn served_serial(dir: &Path, port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -CAfile ca.pem -cert cert.pem -key key.pem </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .current_dir(dir)
        .output()
        .expect("run openssl s_client");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn alertmanager_posts_over_tls_with_a_client_certificate_and_a_client_without_one_is_refused() {
    let alertmanager_bin = require("prometheus-alertmanager", "prometheus-alertmanager");
    let mut salve = Salve::builder()
        .config(
            "[api]\ntls_cert_file = \"{dir}/server.pem\"\ntls_key_file = \"{dir}/server.key\"\nclient_ca_file = \"{dir}/ca.pem\"\n",
        )
        .rule(
            "demo",
            "const MATCH = `alertname=\"TlsDemo\"`;\nfn plan(event) { [] }\n",
        )
        .write();
    let dir = salve.dir().to_path_buf();
    crate::certs::make_certificates(&dir);
    salve.speak_tls(
        &dir.join("ca.pem"),
        &[&dir.join("cert.pem"), &dir.join("key.pem")],
    );
    salve.start();
    assert_eq!(salve.get("/-/ready").status, 200);

    // Debian's Alertmanager, presenting the client certificate salve requires.
    let am_port = free_port();
    let am_config = format!(
        r#"route:
  receiver: salve
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: salve
    webhook_configs:
      - url: {url}
        send_resolved: false
        http_config:
          tls_config:
            ca_file: {dir}/ca.pem
            cert_file: {dir}/cert.pem
            key_file: {dir}/key.pem
"#,
        url = salve.url("/api/v1/alertmanager"),
        dir = dir.display()
    );
    std::fs::write(dir.join("alertmanager.yml"), am_config).expect("write alertmanager.yml");
    let alertmanager = start_alertmanager(&alertmanager_bin, &dir, am_port);
    let plain = reqwest::blocking::Client::new();
    let alert = serde_json::json!([{ "labels": { "alertname": "TlsDemo", "instance": "host-a" } }]);
    let deadline = Instant::now() + E2E_PATIENCE;
    loop {
        let posted = plain
            .post(format!("http://127.0.0.1:{am_port}/api/v2/alerts"))
            .json(&alert)
            .send();
        if posted.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never took the alert:\n{}",
            alertmanager.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + E2E_PATIENCE;
    let received = loop {
        let records = salve.audit_json();
        let found: Vec<Value> = of_kind(&records, "received")
            .into_iter()
            .filter(|r| r["event"]["labels"]["alertname"] == "TlsDemo")
            .cloned()
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no alert came over TLS:\n--- alertmanager:\n{}\n--- salve:\n{}",
            alertmanager.log(),
            salve.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(received[0]["event"]["source"], "alertmanager");
    assert_eq!(received[0]["event"]["labels"]["instance"], "host-a");

    // A client that trusts salve's CA but presents no certificate is refused in the
    // handshake, on every path; plain HTTP gets nowhere either.
    let stranger = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(dir.join("ca.pem")).expect("read the CA"),
            )
            .expect("a PEM CA"),
        )
        .build()
        .expect("client");
    for path in ["/-/healthy", "/api/v1/alertmanager"] {
        let tried = stranger.get(salve.url(path)).send();
        assert!(
            tried.is_err(),
            "{path} answered a client without a certificate: {tried:?}"
        );
    }
    let cleartext = plain
        .get(format!("http://127.0.0.1:{}/-/healthy", salve.port))
        .send();
    assert!(
        cleartext.map_or(true, |r| !r.status().is_success()),
        "plain HTTP was served"
    );

    // New certificates are read at SIGHUP.
    let before = served_serial(&dir, salve.port);
    assert!(before.starts_with("serial="), "{before:?}");
    crate::certs::make_certificates(&dir);
    let status = Command::new("kill")
        .args(["-HUP", &salve.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + E2E_PATIENCE;
    loop {
        let now = served_serial(&dir, salve.port);
        if now.starts_with("serial=") && now != before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old certificate is still served:\n{}",
            salve.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        salve.logs().contains("TLS certificates reloaded"),
        "{}",
        salve.logs()
    );
}
