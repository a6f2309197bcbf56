//! A Debian root with systemd as PID 1 in a container, for the tests of salve under
//! systemd (the package) and of salve healing systemd's units over D-Bus.

use crate::docker_support::{docker, docker_ok};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "salve-it-systemd:bookworm";
/// What the root holds; a change makes a new one.
const RECIPE: &str = "minbase systemd systemd-sysv dbus procps v1";

/// Debian's bookworm with systemd, as an image: made once (debootstrap takes about a
/// minute) and kept while its recipe stands.
pub fn systemd_image() -> &'static str {
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
pub struct Host {
    pub name: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.name]);
    }
}

impl Host {
    pub fn start(name: &str) -> Host {
        Host::start_with(name, &[])
    }

    /// With more `docker run` arguments (a bind mount of `/run/dbus`, say).
    pub fn start_with(name: &str, extra: &[&str]) -> Host {
        let mut args = vec![
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
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[systemd_image(), "/lib/systemd/systemd"]);
        docker_ok(&args);
        let host = Host {
            name: name.to_string(),
        };
        host.booted();
        host
    }

    fn booted(&self) {
        self.wait("systemd to finish booting", || {
            let state = self.exec(&["systemctl", "is-system-running"]);
            let said = String::from_utf8_lossy(&state.stdout).trim().to_string();
            (said == "running" || said == "degraded").then_some(())
        });
    }

    /// Killed and started again: systemd and its bus go away and come back, what is
    /// under `/run` and `/tmp` is gone and what is elsewhere on its disk is kept.
    pub fn restart(&self) {
        docker_ok(&["restart", "-t", "0", &self.name]);
        self.booted();
    }

    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    pub fn copy(&self, from: &std::path::Path, to: &str) {
        docker_ok(&[
            "cp",
            &from.display().to_string(),
            &format!("{}:{to}", self.name),
        ]);
    }

    pub fn write(&self, to: &str, text: &str) {
        let file = tempfile::NamedTempFile::new().expect("a file");
        std::fs::write(file.path(), text).expect("write a file");
        // As a package installs it: readable by salve, which is not root.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .expect("make the file readable");
        self.copy(file.path(), to);
    }

    /// `GET path` from inside the host, on its loopback: the body, once it answers.
    pub fn get(&self, path: &str) -> Option<String> {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/9095 && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let out = self.exec(&["bash", "-c", &script]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
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

    pub fn rules(&self) -> Vec<String> {
        let body = self.get("/api/v1/rules").unwrap_or_default();
        let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
        let rules: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
        rules
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect()
    }
}
