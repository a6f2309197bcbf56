//! salve under systemd for real: a Debian root made with `debootstrap` runs systemd as
//! PID 1 in a container; salve is installed there as the package lays it out (the
//! binary, `packaging/salve.service`, the sysusers file, a config and a rule), started
//! with `systemctl start`, reloaded with a new rule, and reloaded again with a broken
//! one, which `systemctl reload` refuses while the rules that run stay.

use crate::docker_support::{docker, docker_ok};
use crate::support::repo_dir;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "salve-it-systemd:bookworm";
/// What the root holds; a change makes a new one.
const RECIPE: &str = "minbase systemd systemd-sysv dbus procps v1";

/// Debian's bookworm with systemd, as an image: made once (debootstrap takes about a
/// minute) and kept while its recipe stands.
fn systemd_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let current = docker(&["image", "inspect", IMAGE, "--format", "{{index .Config.Labels \"salve.recipe\"}}"]);
        if current.status.success() && String::from_utf8_lossy(&current.stdout).trim() == RECIPE {
            return;
        }
        let root = tempfile::tempdir().expect("a folder for the root");
        let made = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=systemd,systemd-sysv,dbus,procps",
                "bookworm",
            ])
            .arg(root.path())
            .arg("http://deb.debian.org/debian")
            .output()
            .unwrap_or_else(|e| panic!("debootstrap: {e} (apt-get install debootstrap)"));
        assert!(
            made.status.success(),
            "debootstrap failed:\n{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let imported = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C '{}' -c . | docker import --change 'LABEL salve.recipe=\"{RECIPE}\"' - {IMAGE}",
                root.path().display()
            ))
            .output()
            .expect("run tar and docker import");
        assert!(
            imported.status.success(),
            "docker import failed:\n{}",
            String::from_utf8_lossy(&imported.stderr)
        );
    });
    IMAGE
}

/// A container running systemd as PID 1, removed when the test ends.
struct Host {
    name: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.name]);
    }
}

impl Host {
    fn start(name: &str) -> Host {
        docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--cap-add",
            "SYS_ADMIN",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--tmpfs",
            "/tmp",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--cgroupns=private",
            "--network",
            "none",
            systemd_image(),
            "/lib/systemd/systemd",
        ]);
        let host = Host {
            name: name.to_string(),
        };
        host.wait("systemd to finish booting", || {
            let state = host.exec(&["systemctl", "is-system-running"]);
            let said = String::from_utf8_lossy(&state.stdout).trim().to_string();
            (said == "running" || said == "degraded").then_some(())
        });
        host
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    fn copy(&self, from: &std::path::Path, to: &str) {
        docker_ok(&[
            "cp",
            &from.display().to_string(),
            &format!("{}:{to}", self.name),
        ]);
    }

    fn write(&self, to: &str, text: &str) {
        let file = tempfile::NamedTempFile::new().expect("a file");
        std::fs::write(file.path(), text).expect("write a file");
        // As a package installs it: readable by salve, which is not root.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .expect("make the file readable");
        self.copy(file.path(), to);
    }

    /// `GET path` from inside the host, on its loopback: the body, once it answers.
    fn get(&self, path: &str) -> Option<String> {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/9095 && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let out = self.exec(&["bash", "-c", &script]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let journal = self.exec(&["journalctl", "--no-pager", "-n", "40"]);
                panic!(
                    "{what}: gave up after 60 s\n{}",
                    String::from_utf8_lossy(&journal.stdout)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn rules(&self) -> Vec<String> {
        let body = self.get("/api/v1/rules").unwrap_or_default();
        let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
        let rules: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
        rules
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    }
}

fn rule(alertname: &str) -> String {
    format!("const MATCH = `alertname=\"{alertname}\"`;\nfn plan(event) {{ [] }}\n")
}

#[test]
fn under_systemd_salve_starts_reloads_a_new_rule_and_a_broken_one_is_refused() {
    // The binary of the image tests: this run's, stripped, with the libraries it loads.
    crate::image::image();
    let binary = crate::image::staged_binary();
    let host = Host::start(&format!("salve-it-systemd-{}", std::process::id()));
    let packaging = repo_dir().join("packaging");
    host.copy(&binary, "/usr/bin/salve");
    host.copy(
        &packaging.join("salve.service"),
        "/lib/systemd/system/salve.service",
    );
    host.copy(
        &packaging.join("salve.sysusers"),
        "/usr/lib/sysusers.d/salve.conf",
    );
    assert!(host
        .exec(&["mkdir", "-p", "/etc/salve/rules"])
        .status
        .success());
    host.write(
        "/etc/salve/salve.toml",
        "listen = \"127.0.0.1:9095\"\ndata_dir = \"/var/lib/salve\"\nrules_dir = \"/etc/salve/rules\"\n",
    );
    host.write("/etc/salve/rules/first.rhai", &rule("First"));
    for step in [
        vec!["systemd-sysusers"],
        vec!["systemctl", "daemon-reload"],
        vec!["systemctl", "start", "salve"],
    ] {
        let out = host.exec(&step);
        let journal = host.exec(&["journalctl", "--no-pager", "-n", "30"]);
        assert!(
            out.status.success(),
            "{step:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&journal.stdout)
        );
    }
    host.wait("/-/ready", || {
        host.get("/-/ready")
            .filter(|r| r.starts_with("HTTP/1.0 200"))
    });
    let user = host.exec(&["stat", "-c", "%U", "/var/lib/salve"]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "salve");

    host.write("/etc/salve/rules/second.rhai", &rule("Second"));
    let reload = host.exec(&["systemctl", "reload", "salve"]);
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    host.wait("the second rule loaded", || {
        (host.rules() == ["first", "second"]).then_some(())
    });

    host.write(
        "/etc/salve/rules/broken.rhai",
        "const MATCH = `alertname=\"X\"`;\nfn plan(event) { [ }\n",
    );
    let refused = host.exec(&["systemctl", "reload", "salve"]);
    assert!(!refused.status.success(), "a broken rule was reloaded");
    let journal = host.exec(&["journalctl", "-u", "salve", "--no-pager", "-n", "20"]);
    let journal = String::from_utf8_lossy(&journal.stdout).to_string();
    assert!(journal.contains("broken.rhai:2:20"), "{journal}");
    let active = host.exec(&["systemctl", "is-active", "salve"]);
    assert_eq!(String::from_utf8_lossy(&active.stdout).trim(), "active");
    assert_eq!(host.rules(), ["first", "second"]);
}
