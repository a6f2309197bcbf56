//! The machine's real Docker engine for the Docker tests: a tiny image built from the
//! host's static busybox (nothing is pulled), containers named and labelled per test,
//! and guards that remove everything a test made, even when it panics.

use crate::support::{of_kind, settled, wait_until_within, Salve};
use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The image every test container runs: busybox and its applets, `CMD ["/bin/sh"]`.
pub const IMAGE: &str = "salve-test-busybox:latest";

/// The longest a Docker test waits for the engine or salve (restarts, healthchecks).
pub const DOCKER_PATIENCE: Duration = Duration::from_secs(30);

/// Debian's busybox-static: one statically linked binary, so it runs in an empty image.
const BUSYBOX: &str = "/usr/bin/busybox";

/// Bump when the way the image is made changes, so an old image is rebuilt.
const RECIPE: &str = "salve-test-busybox v1: /bin/busybox, applet symlinks, /tmp";

/// A healthcheck that passes while `/tmp/ok` exists, checked every second; one failed
/// check makes the container unhealthy.
pub const FILE_HEALTHCHECK: [&str; 6] = [
    "--health-cmd",
    "test -f /tmp/ok",
    "--health-interval",
    "1s",
    "--health-retries",
    "1",
];

/// Healthy from the start (until someone removes `/tmp/ok`).
pub const HEALTHY: [&str; 3] = ["sh", "-c", "touch /tmp/ok; exec sleep 3600"];

/// Healthy on the first start only: a restart keeps the container's filesystem, so the
/// marker `/tmp/started` stops every later start from creating `/tmp/ok`.
pub const HEALTHY_ONCE: [&str; 3] = [
    "sh",
    "-c",
    "if [ ! -f /tmp/started ]; then touch /tmp/started /tmp/ok; fi; exec sleep 3600",
];

/// Unhealthy on its first start, healthy on every later one: a container that a
/// restart heals, so a second restart would be a real second action.
pub const HEALTHY_AFTER_RESTART: [&str; 3] = [
    "sh",
    "-c",
    "if [ -f /tmp/started ]; then touch /tmp/ok; fi; touch /tmp/started; exec sleep 3600",
];

/// Exits with code 3 a second after its first start; started again, it stays up.
pub const CRASHES_ONCE: [&str; 3] = [
    "sh",
    "-c",
    "if [ -f /tmp/started ]; then exec sleep 3600; fi; touch /tmp/started; sleep 1; exit 3",
];

/// Runs the docker CLI; a missing CLI fails the test with what to install.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the Docker tests need the docker CLI and a running engine; \
                 running `docker {}` failed: {e}",
                args.join(" ")
            )
        })
}

/// Runs the docker CLI, fails the test unless it succeeds, returns stdout trimmed.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "`docker {}` failed ({}): {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds [`IMAGE`] once per test process (and not at all when the engine already has
/// it from the same busybox and recipe). Fails the test when busybox or docker is
/// missing.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = BUILT.get_or_init(build_image) {
        panic!("cannot build the Docker test image {IMAGE}: {e}");
    }
    IMAGE
}

fn build_image() -> Result<(), String> {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("the Docker tests need the docker CLI (`docker` on PATH) and an engine: {e}")
        })?;
    if !version.status.success() {
        return Err(format!(
            "the Docker tests need a running Docker engine: `docker version` said {}",
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    let binary = fs::read(BUSYBOX).map_err(|e| {
        format!("the Docker tests need Debian's busybox-static ({BUSYBOX}): {e}; apt-get install busybox-static")
    })?;
    let mut hasher = DefaultHasher::new();
    RECIPE.hash(&mut hasher);
    binary.hash(&mut hasher);
    let stamp = format!("{:016x}", hasher.finish());
    let current = docker(&[
        "image",
        "inspect",
        IMAGE,
        "--format",
        "{{index .Config.Labels \"salve.busybox\"}}",
    ]);
    if current.status.success() && String::from_utf8_lossy(&current.stdout).trim() == stamp {
        return Ok(());
    }

    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(|e| format!("{BUSYBOX} --list: {e}"))?;
    let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        // A symlink named busybox would point at itself.
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(str::to_string)
        .collect();
    if !applets.iter().any(|a| a == "sh") || !applets.iter().any(|a| a == "sleep") {
        return Err(format!("{BUSYBOX} --list has no sh or sleep: {applets:?}"));
    }
    let staging = tempfile::Builder::new()
        .prefix("salve-it-image-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let root = staging.path().join("root");
    let bin = root.join("bin");
    let tmp = root.join("tmp");
    fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).map_err(|e| e.to_string())?;
    fs::write(bin.join("busybox"), &binary).map_err(|e| e.to_string())?;
    fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    for applet in &applets {
        std::os::unix::fs::symlink("busybox", bin.join(applet))
            .map_err(|e| format!("symlink {applet}: {e}"))?;
    }
    let tarball = staging.path().join("image.tar");
    run(Command::new(BUSYBOX)
        .arg("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg("."))?;
    // Import under a name of this process, then move the shared tag in one step, so
    // test processes building at the same time never see a half-made image.
    let private = format!("salve-test-busybox:build-{}", std::process::id());
    run(Command::new("docker")
        .args(["import", "-c", "CMD [\"/bin/sh\"]", "-c"])
        .arg(format!("LABEL salve.busybox={stamp}"))
        .arg(&tarball)
        .arg(&private))?;
    run(Command::new("docker").args(["tag", &private, IMAGE]))?;
    run(Command::new("docker").args(["rmi", &private]))?;
    // The binary must run on its own: a dynamically linked busybox would not.
    run(Command::new("docker").args([
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "test -d /tmp && echo ok",
    ]))
    .map_err(|e| format!("{e} (is {BUSYBOX} the static busybox-static?)"))?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The channels the shipped rules tell, as the embedded defaults define them.
const LOG_CHANNELS: &str = "[notify.ops]\ntype = \"log\"\n\n[notify.oncall]\ntype = \"log\"\n";

/// One test's corner of the engine: a run id that names and labels its containers, and
/// a guard that removes them all when the test ends, however it ends.
pub struct Scope {
    pub run_id: String,
    containers: Mutex<Vec<String>>,
}

impl Scope {
    pub fn new() -> Scope {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        test_image();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Scope {
            run_id: format!("salve-it-{}-{n}", std::process::id()),
            containers: Mutex::new(Vec::new()),
        }
    }

    /// The full name of this test's container `short`.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.run_id)
    }

    /// `[docker]` for this test's salve: only its own containers, required events (so
    /// readiness waits for the stream), and room for slow restarts.
    pub fn config(&self) -> String {
        self.config_verifying_within("30s")
    }

    /// [`Scope::config`] with another `verify_timeout`.
    pub fn config_verifying_within(&self, verify_timeout: &str) -> String {
        format!(
            "{LOG_CHANNELS}\n[docker]\nevents = true\nlabel = \"salve.test={}\"\nverify_timeout = \"{verify_timeout}\"\n",
            self.run_id
        )
    }

    /// `docker run -d` of the test image as this test's container `short`: no network,
    /// the test's label, a 1 s stop timeout (busybox `sleep` as PID 1 ignores SIGTERM),
    /// then `options`, then the command. Returns the full name.
    pub fn run(&self, short: &str, options: &[&str], command: &[&str]) -> String {
        let name = self.name(short);
        self.containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        let label = format!("salve.test={}", self.run_id);
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--stop-timeout",
            "1",
            "--label",
            &label,
        ];
        args.extend_from_slice(options);
        args.push(IMAGE);
        args.extend_from_slice(command);
        docker_ok(&args);
        name
    }

    /// Returns once salve has received and evaluated every Docker event the engine sent
    /// before this call: a container of this test (`short`) turns healthy, and the
    /// engine's stream is in order, so once salve has decided that event it has decided
    /// every one before it. A negative check ("no fourth restart") made after this had
    /// its chance to fail.
    pub fn sync_events(&self, salve: &Salve, short: &str) {
        let marker = self.run(short, &FILE_HEALTHCHECK, &HEALTHY);
        salve.wait_for_audit_within(
            DOCKER_PATIENCE,
            &format!("salve to decide {marker} turning healthy"),
            |r| {
                let seen = received(r, "ContainerUnhealthy", &marker);
                !seen.is_empty() && seen.iter().all(|e| evaluated(r, e)) && settled(r, 0)
            },
        );
    }

    /// Starts salve with this test's `[docker]` config and `rules`, and returns once it
    /// follows the engine's events.
    pub fn start_salve(&self, rules: &[(&str, &str)]) -> Salve {
        let mut builder = Salve::builder().config(&self.config());
        for (name, source) in rules {
            builder = builder.rule(name, source);
        }
        let salve = builder.start();
        wait_following(&salve, 1);
        salve
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.containers.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(names.iter().map(String::as_str));
        let _ = docker(&args);
    }
}

/// Waits until the salve log says the event stream is followed `times` times (once per
/// start of the server).
pub fn wait_following(salve: &Salve, times: usize) {
    wait_until_within(DOCKER_PATIENCE, "salve to follow Docker events", || {
        (salve.logs().matches("following Docker events").count() >= times).then_some(())
    });
}

/// `docker inspect -f FORMAT NAME`.
pub fn inspect(name: &str, format: &str) -> String {
    docker_ok(&["inspect", "-f", format, name])
}

pub fn health(name: &str) -> String {
    inspect(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}")
}

pub fn wait_health(name: &str, status: &str) {
    wait_until_within(DOCKER_PATIENCE, &format!("{name} to be {status}"), || {
        (health(name) == status).then_some(())
    });
}

/// Makes a container's file healthcheck fail from its next check on.
pub fn break_health(name: &str) {
    docker_ok(&["exec", name, "rm", "-f", "/tmp/ok"]);
}

/// Parses an RFC 3339 time from the audit trail.
pub fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Milliseconds from `a` to `b`.
pub fn ms_between(a: &Value, b: &Value) -> i64 {
    (time(b) - time(a)).num_milliseconds()
}

/// A shipped rule from the repository's `rules/` folder, as it is on disk now.
pub fn shipped_rule(name: &str) -> String {
    let path = crate::support::repo_dir()
        .join("rules")
        .join(format!("{name}.rhai"));
    read(&path)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`; fails if `from` is not in it (the shipped rule
/// changed and the test must follow).
pub fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "expected {from:?} in the rule:\n{text}"
    );
    text.replace(from, to)
}

/// Received records of `alertname` about `container`, in order.
pub fn received<'a>(records: &'a [Value], alertname: &str, container: &str) -> Vec<&'a Value> {
    of_kind(records, "received")
        .into_iter()
        .filter(|r| {
            r["event"]["labels"]["alertname"] == alertname
                && r["event"]["labels"]["container"] == container
        })
        .collect()
}

/// Decision records on `target` (`docker:container/NAME`, `notify:oncall`, ...).
pub fn decided_on<'a>(records: &'a [Value], target: &str) -> Vec<&'a Value> {
    of_kind(records, "decision")
        .into_iter()
        .filter(|d| d["target"] == target)
        .collect()
}

pub fn executed<'a>(records: &'a [Value], action: &str, target: &str) -> Vec<&'a Value> {
    decided_on(records, target)
        .into_iter()
        .filter(|d| d["action"] == action && d["decision"] == "execute")
        .collect()
}

pub fn outcome_of<'a>(records: &'a [Value], decision: &Value) -> Option<&'a Value> {
    of_kind(records, "outcome")
        .into_iter()
        .find(|o| o["decision_id"] == decision["id"])
}

/// Decided: evaluated by the rules it matched, or recorded as matching none.
pub fn evaluated(records: &[Value], event: &Value) -> bool {
    event["unmatched"] == true
        || of_kind(records, "evaluated")
            .iter()
            .any(|e| e["event_id"] == event["event"]["id"])
}

pub fn container_target(name: &str) -> String {
    format!("docker:container/{name}")
}
