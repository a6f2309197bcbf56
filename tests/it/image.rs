//! The container image (`Dockerfile`, `FROM scratch`), built from the release binary
//! with this machine's Docker and nothing pulled, and run for real: read-only as uid
//! 65532 with its data on a volume, resolving a peer's name on a network the test
//! makes, speaking TLS to it, keeping time zones, and, fed by Debian's Prometheus and
//! Alertmanager, restarting a labelled container through the mounted Docker socket.

use crate::docker_support::{docker, docker_ok, inspect, Scope, HEALTHY};
use crate::e2e::{start_stack, Target};
use crate::support::repo_dir;
use chrono::Timelike;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TAG: &str = "salve-it-image:latest";

/// The four libraries `ldd` may name; the image holds these and no others.
const LIBRARIES: [&str; 5] = [
    "linux-vdso.so.1",
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
];

/// The image of this test run's own binary, once per run: `docker build -t TAG .` with
/// the binary `cargo test` built (stripped of its debug information, as a release
/// build has none) in place of `target/release/salve`, so that the tests need no
/// release build; the Dockerfile, the libraries and all else are the release image's.
pub fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_dir();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_salve"));
        let profile = binary.parent().expect("the binary's folder").to_path_buf();
        let staged = profile.join("salve-image");
        std::fs::create_dir_all(&staged).expect("a folder for the image's binary");
        let stripped = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(staged.join("salve"))
            .arg(&binary)
            .status()
            .expect("run strip (binutils)");
        assert!(stripped.success(), "strip failed");
        let ldd = Command::new("ldd").arg(&binary).output().expect("run ldd");
        let linked = String::from_utf8_lossy(&ldd.stdout).to_string();
        for line in linked.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            let base = Path::new(name)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(name);
            assert!(
                LIBRARIES.contains(&base),
                "the binary loads {base}, which the image does not hold:\n{linked}"
            );
        }
        let relative = |path: &Path| -> String {
            path.strip_prefix(&root)
                .unwrap_or_else(|_| panic!("{} is not inside the repository", path.display()))
                .display()
                .to_string()
        };
        let revision = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&root)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let build = Command::new("docker")
            .args(["build", "-q", "-t", TAG, "--build-arg"])
            .arg(format!("REVISION={revision}"))
            .arg("--build-arg")
            .arg(format!("BINARY={}", relative(&staged.join("salve"))))
            .arg("--build-arg")
            .arg(format!("LIBS={}", relative(&profile.join("salve-libs"))))
            .arg(".")
            .current_dir(&root)
            .output()
            .expect("run docker build");
        assert!(
            build.status.success(),
            "docker build failed:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
    });
    TAG
}

/// Containers, networks and volumes this test made, removed when it ends.
#[derive(Default)]
struct Made {
    containers: Vec<String>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for c in &self.containers {
            docker(&["rm", "-f", "-v", c]);
        }
        for n in &self.networks {
            docker(&["network", "rm", n]);
        }
        for v in &self.volumes {
            docker(&["volume", "rm", "-f", v]);
        }
    }
}

impl Made {
    fn network(&mut self, name: &str) -> String {
        docker_ok(&["network", "create", name]);
        self.networks.push(name.to_string());
        name.to_string()
    }

    /// `docker run -d --name NAME ARGS... IMAGE COMMAND...` of the salve image, read-only
    /// with a tmpfs `/tmp`, as docs/image.md runs it.
    fn salve(&mut self, name: &str, args: &[&str], command: &[&str]) -> String {
        let mut all = vec![
            "run",
            "-d",
            "--name",
            name,
            "--read-only",
            "--tmpfs",
            "/tmp",
        ];
        all.extend_from_slice(args);
        all.push(image());
        all.extend_from_slice(command);
        docker_ok(&all);
        self.containers.push(name.to_string());
        name.to_string()
    }
}

/// A folder the image's user (65532) can read, holding `files`.
fn readable_folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a folder");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("a folder");
        }
        std::fs::write(&path, text).expect("write a file");
    }
    open_to_all(dir.path());
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
    dir
}

fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).expect("read a folder").flatten() {
        let path = entry.path();
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
        if path.is_dir() {
            open_to_all(&path);
        }
    }
}

/// The loopback address Docker published the container's 9095 on.
fn published(container: &str) -> String {
    let port = docker_ok(&["port", container, "9095/tcp"]);
    format!("http://{}", port.lines().next().unwrap_or_default().trim())
}

fn wait_for<T>(what: &str, container: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let logs = docker(&["logs", container]);
            panic!(
                "{what}: gave up after 120 s\n--- {container}:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the salve in `container`, published at `base`, says it is ready.
fn wait_ready(base: &str, container: &str) {
    wait_for("salve in the image to be ready", container, || {
        get(&format!("{base}/-/ready")).filter(|(status, _)| *status == 200)
    });
}

fn get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let reply = client.get(url).send().ok()?;
    let status = reply.status().as_u16();
    Some((status, reply.text().unwrap_or_default()))
}

fn metric(base: &str, sample: &str) -> Option<f64> {
    let (_, text) = get(&format!("{base}/metrics"))?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

fn audit(base: &str) -> Vec<Value> {
    get(&format!("{base}/api/v1/audit"))
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or_default()
}

/// An hour's window around now in Kathmandu (UTC+5:45), which in UTC would not hold
/// now: only a time zone database makes it mute.
fn kathmandu_window() -> (String, String) {
    let local = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Kathmandu);
    let minutes = i64::from(local.hour() * 60 + local.minute());
    let start = (minutes - 30).max(0);
    let end = (minutes + 30).min(24 * 60);
    let hhmm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
    (hhmm(start), hhmm(end))
}

#[test]
fn the_image_runs_read_only_as_65532_resolves_names_speaks_tls_and_keeps_time_zones() {
    let run = format!("salve-it-img-{}", std::process::id());
    let mut made = Made::default();
    let net = made.network(&format!("{run}-net"));
    let peer = format!("{run}-peer");

    let certs = readable_folder(&[]);
    crate::certs::make_certificates(certs.path());
    crate::certs::signed(
        certs.path(),
        "/CN=peer",
        &format!(
            "subjectAltName=DNS:{peer}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
        ("peer.key", "peer.pem"),
    );
    open_to_all(certs.path());
    let certs_mount = format!("{}:/certs:ro", certs.path().display());

    // The peer: the image itself, serving HTTPS with a certificate for its name.
    let peer_config = readable_folder(&[(
        "salve.toml",
        "listen = \"0.0.0.0:9443\"\n[api]\ntls_cert_file = \"/certs/peer.pem\"\ntls_key_file = \"/certs/peer.key\"\n",
    )]);
    let peer_mount = format!("{}:/etc/salve:ro", peer_config.path().display());
    made.salve(
        &peer,
        &["--network", &net, "-v", &certs_mount, "-v", &peer_mount],
        &[],
    );

    let (start, end) = kathmandu_window();
    let config = format!(
        r#"listen = "0.0.0.0:9095"
data_dir = "/var/lib/salve"
rules_dir = "/etc/salve/rules"

[[time_intervals]]
name = "kathmandu-now"
[[time_intervals.time_intervals]]
times = [{{ start_time = "{start}", end_time = "{end}" }}]
location = "Asia/Kathmandu"

[exec.nothing]
argv = ["/usr/bin/salve", "--version"]

[[probe]]
name = "peer"
http = "https://{peer}:9443/-/healthy"
ca_file = "/certs/ca.pem"
interval = "1s"
timeout = "900ms"
failure_threshold = 1

[[probe]]
name = "peer-untrusted"
http = "https://{peer}:9443/-/healthy"
interval = "1s"
timeout = "900ms"
failure_threshold = 1
"#
    );
    let rule = "const MATCH = `alertname=\"Muted\"`;\nconst MUTE = [\"kathmandu-now\"];\nfn plan(event) { [exec(\"nothing\", [])] }\n";
    let folder = readable_folder(&[("salve.toml", &config), ("rules/muted.rhai", rule)]);
    let config_mount = format!("{}:/etc/salve:ro", folder.path().display());
    let volume = format!("{run}-data");
    made.volumes.push(volume.clone());
    let data_mount = format!("{volume}:/var/lib/salve");
    let main = made.salve(
        &format!("{run}-main"),
        &[
            "--network",
            &net,
            "-v",
            &data_mount,
            "-v",
            &config_mount,
            "-v",
            &certs_mount,
            "-p",
            "127.0.0.1::9095",
        ],
        &[],
    );
    assert_eq!(inspect(&main, "{{.Config.User}}"), "65532:65532");
    let base = published(&main);
    wait_ready(&base, &main);

    // The peer's name resolves and its certificate verifies against the CA given; the
    // same peer without that CA is refused by TLS, not by anything missing.
    wait_for("the probe of the peer by name over TLS", &main, || {
        metric(&base, "salve_probe_up{probe=\"peer\"}").filter(|up| *up == 1.0)
    });
    wait_for("the untrusted probe refused by TLS", &main, || {
        metric(
            &base,
            "salve_probe_failures_total{class=\"tls\",probe=\"peer-untrusted\"}",
        )
        .or_else(|| {
            metric(
                &base,
                "salve_probe_failures_total{probe=\"peer-untrusted\",class=\"tls\"}",
            )
        })
        .filter(|n| *n >= 1.0)
    });

    // Kathmandu's hour mutes the rule now.
    let client = reqwest::blocking::Client::new();
    let posted = client
        .post(format!("{base}/api/v1/events"))
        .json(&json!({ "labels": { "alertname": "Muted" } }))
        .send()
        .expect("post an event");
    assert_eq!(posted.status().as_u16(), 200);
    let decision = wait_for("the muted decision", &main, || {
        audit(&base).into_iter().find(|r| r["kind"] == "decision")
    });
    assert_eq!(decision["reason"], "maintenance", "{decision:#}");

    // Its data is on the volume: a new container on it remembers.
    docker_ok(&["restart", "-t", "5", &main]);
    let base = published(&main);
    wait_ready(&base, &main);
    assert!(audit(&base).iter().any(|r| r["id"] == decision["id"]));
    let version = docker_ok(&["run", "--rm", image(), "--version"]);
    assert!(version.contains("revision"), "{version}");

    // On its own defaults (no mount at all) it starts and is ready.
    let alone = made.salve(&format!("{run}-alone"), &["-p", "127.0.0.1::9095"], &[]);
    let base = published(&alone);
    wait_ready(&base, &alone);
}

#[test]
fn alertmanager_tells_the_image_and_it_restarts_a_labelled_container() {
    let scope = Scope::new();
    let web = scope.run("web", &[], &HEALTHY);
    let started_before = inspect(&web, "{{.State.StartedAt}}");
    let run = format!("{}-img", scope.run_id);
    let mut made = Made::default();
    let net = made.network(&format!("{run}-net"));
    let config = format!(
        "listen = \"0.0.0.0:9095\"\ndata_dir = \"/var/lib/salve\"\nrules_dir = \"/etc/salve/rules\"\n\n[docker]\nlabel = \"salve.test={}\"\n",
        scope.run_id
    );
    let rule = "const MATCH = `alertname=\"ContainerDown\", container=~\".+\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [restart(docker_container(event.labels.container))]\n}\n";
    let folder = readable_folder(&[("salve.toml", &config), ("rules/restart.rhai", rule)]);
    let config_mount = format!("{}:/etc/salve:ro", folder.path().display());
    let socket_group = std::fs::metadata("/var/run/docker.sock")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m).to_string())
        .expect("the Docker socket");
    let main = made.salve(
        &format!("{run}-salve"),
        &[
            "--network",
            &net,
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "--group-add",
            &socket_group,
            "-v",
            &config_mount,
            "-p",
            "127.0.0.1::9095",
        ],
        &[],
    );
    let base = published(&main);
    wait_ready(&base, &main);

    let dir = folder.path().join("stack");
    std::fs::create_dir_all(&dir).expect("a folder for Prometheus and Alertmanager");
    let rules = format!(
        "groups:\n  - name: image\n    interval: 1s\n    rules:\n      - alert: ContainerDown\n        expr: vector(1)\n        labels:\n          container: \"{web}\"\n"
    );
    let webhook = format!("{base}/api/v1/alertmanager");
    let stack = start_stack(
        &dir,
        &webhook,
        &rules,
        Target::start(dir.join("never")),
        "1h",
    );
    let started = Instant::now();
    let outcome = loop {
        let records = audit(&base);
        if let Some(outcome) = records
            .iter()
            .find(|r| r["kind"] == "outcome" && r["action"] == "restart")
        {
            break outcome.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "no restart: audit {records:#?}\n--- prometheus:\n{}\n--- alertmanager:\n{}\n--- salve:\n{}",
            stack.prometheus.log(),
            stack.alertmanager.log(),
            String::from_utf8_lossy(&docker(&["logs", &main]).stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        outcome["outcome"],
        "ok",
        "{outcome:#}\n{}",
        stack.alertmanager.log()
    );
    assert_ne!(
        inspect(&web, "{{.State.StartedAt}}"),
        started_before,
        "the container was not restarted"
    );
    assert_eq!(inspect(&web, "{{.State.Running}}"), "true");
}
