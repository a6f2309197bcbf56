//! salve under systemd for real: a Debian root made with `debootstrap` runs systemd as
//! PID 1 in a container; the Debian package `packaging/build-deb` makes with cargo-deb
//! is installed there with `dpkg -i`, which makes the user and starts the unit; a new
//! rule is taken at `systemctl reload`, a broken one is refused while the rules that
//! run stay, and `dpkg -r` stops salve and keeps the edited config.

use crate::support::repo_dir;
use crate::systemd_support::Host;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn rule(alertname: &str) -> String {
    format!("const MATCH = `alertname=\"{alertname}\"`;\nfn plan(event) {{ [] }}\n")
}

/// The Debian package of this run's binary, made as `packaging/build-deb` makes the
/// release's (cargo-deb, the completions and man page written by the binary), once:
/// the binary `cargo test` built stands in for the release binary in a target folder
/// of its own, so no release build is needed.
fn debian_package() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let binary = PathBuf::from(env!("CARGO_BIN_EXE_salve"));
            let staged = binary
                .parent()
                .expect("the binary is in target/PROFILE/")
                .join("salve-deb");
            let _ = std::fs::remove_dir_all(&staged);
            std::fs::create_dir_all(staged.join("release")).expect("a target folder");
            std::fs::copy(&binary, staged.join("release/salve")).expect("stage the binary");
            let output = staged.join("debian");
            let built = Command::new(repo_dir().join("packaging/build-deb"))
                .env("SALVE_DEB_BUILD", "0")
                .env("CARGO_TARGET_DIR", &staged)
                .args(["--fast", "--output"])
                .arg(&output)
                .output()
                .unwrap_or_else(|e| panic!("packaging/build-deb: {e}"));
            assert!(
                built.status.success(),
                "packaging/build-deb failed (cargo install cargo-deb):\n{}{}",
                String::from_utf8_lossy(&built.stdout),
                String::from_utf8_lossy(&built.stderr)
            );
            std::fs::read_dir(&output)
                .expect("read the package's folder")
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
                .expect("cargo deb wrote a .deb")
        })
        .clone()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_package_holds_the_binary_unit_config_rules_completions_and_man_page() {
    let listed = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(debian_package())
        .output()
        .expect("run dpkg-deb");
    let listed = text(&listed);
    for path in [
        "./usr/bin/salve",
        "/salve.service",
        "./usr/lib/sysusers.d/salve.conf",
        "./etc/salve/salve.toml",
        "./etc/salve/rules/README",
        "./usr/share/salve/rules/container-down.rhai",
        "./usr/share/salve/rules/container-down.test.toml",
        "./usr/share/bash-completion/completions/salve",
        "./usr/share/zsh/vendor-completions/_salve",
        "./usr/share/fish/vendor_completions.d/salve.fish",
        "./usr/share/man/man1/salve.1.gz",
        "./usr/share/doc/salve/docs/systemd.md",
    ] {
        assert!(listed.contains(path), "no {path} in the package:\n{listed}");
    }
    let control = Command::new("dpkg-deb")
        .arg("--info")
        .arg(debian_package())
        .output()
        .expect("run dpkg-deb");
    let control = text(&control);
    assert!(
        control.contains("Depends: ") && control.contains("procps"),
        "{control}"
    );
    assert!(control.contains("conffiles"), "{control}");
}

#[test]
fn under_systemd_the_package_installs_starts_reloads_a_new_rule_and_refuses_a_broken_one() {
    let deb = debian_package();
    let host = Host::start(&format!("salve-it-systemd-{}", std::process::id()));
    host.copy(&deb, "/var/tmp/salve.deb");
    host.write("/var/tmp/first.rhai", &rule("First"));
    for step in [
        vec!["dpkg", "-i", "/var/tmp/salve.deb"],
        vec!["cp", "/var/tmp/first.rhai", "/etc/salve/rules/first.rhai"],
        vec!["systemctl", "start", "salve"],
        vec!["systemctl", "reload", "salve"],
    ] {
        let out = host.exec(&step);
        let journal = host.exec(&["journalctl", "--no-pager", "-n", "30"]);
        assert!(
            out.status.success(),
            "{step:?}: {}\n{}",
            text(&out),
            String::from_utf8_lossy(&journal.stdout)
        );
    }
    host.wait("/-/ready", || {
        host.get("/-/ready")
            .filter(|r| r.starts_with("HTTP/1.0 200"))
    });
    host.wait("the first rule loaded", || {
        (host.rules() == ["first"]).then_some(())
    });
    let enabled = host.exec(&["systemctl", "is-enabled", "salve"]);
    assert_eq!(String::from_utf8_lossy(&enabled.stdout).trim(), "enabled");
    let user = host.exec(&["stat", "-c", "%U", "/var/lib/salve"]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "salve");
    let version = host.exec(&["salve", "--version"]);
    assert!(text(&version).starts_with("salve 0."), "{}", text(&version));

    host.write("/etc/salve/rules/second.rhai", &rule("Second"));
    let reload = host.exec(&["systemctl", "reload", "salve"]);
    assert!(reload.status.success(), "{}", text(&reload));
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

    // Removed, salve stops; the config the operator edited stays for a reinstall.
    host.write("/etc/salve/salve.toml", "listen = \"127.0.0.1:9096\"\n");
    let removed = host.exec(&["dpkg", "-r", "salve"]);
    assert!(removed.status.success(), "{}", text(&removed));
    let active = host.exec(&["systemctl", "is-active", "salve"]);
    assert_ne!(String::from_utf8_lossy(&active.stdout).trim(), "active");
    assert!(!host
        .exec(&["test", "-e", "/usr/bin/salve"])
        .status
        .success());
    let kept = host.exec(&["cat", "/etc/salve/salve.toml"]);
    assert!(text(&kept).contains("9096"), "{}", text(&kept));
}
