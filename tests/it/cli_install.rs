//! What a package installs and an operator asks first: `salve --version` names the
//! build, `salve completions SHELL` and `salve man` describe every command, and
//! `/metrics` says which build runs.

use crate::support::{bin, Salve};
use std::process::{Command, Output};

fn salve(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run salve")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every visible top-level command.
const COMMANDS: [&str; 10] = [
    "serve",
    "check",
    "test",
    "plan",
    "audit",
    "replay",
    "report",
    "approvals",
    "completions",
    "man",
];

#[test]
fn version_names_the_revision_the_build_date_and_the_compiler() {
    for flag in ["--version", "-V"] {
        let line = stdout(&salve(&[flag]));
        let rest = line
            .trim_end()
            .strip_prefix(&format!("salve {} (revision ", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|| panic!("{line:?}"));
        let (revision, rest) = rest
            .split_once(", built ")
            .unwrap_or_else(|| panic!("{line:?}"));
        let commit = revision.trim_end_matches("+dirty");
        assert!(
            revision == "unknown"
                || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{line:?}"
        );
        let (date, rustc) = rest
            .split_once(", rustc ")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
            "{line:?}"
        );
        let rustc = rustc
            .strip_suffix(')')
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            rustc.split('.').count() >= 3 && rustc.starts_with("1."),
            "{line:?}"
        );
    }
}

#[test]
fn completions_for_each_shell_name_the_commands_and_bash_parses_them() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(&salve(&["completions", shell]));
        for command in ["serve", "replay"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("salve.bash");
    std::fs::write(&path, stdout(&salve(&["completions", "bash"]))).expect("write");
    let parsed = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash -n");
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let out = salve(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: bash"));
}

#[test]
fn the_man_page_is_roff_that_man_reads_and_names_every_command() {
    let page = stdout(&salve(&["man"]));
    assert!(page.starts_with(".TH salve 1 "), "{page}");
    for command in COMMANDS {
        assert!(
            page.contains(&format!(".SS \"salve {command}\"")),
            "no section for {command}:\n{page}"
        );
    }
    assert!(page.contains(".SS \"salve approvals list\""), "{page}");
    let has_man = Command::new("man").arg("--version").output().is_ok();
    if !has_man {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp folder");
    let path = dir.path().join("salve.1");
    std::fs::write(&path, &page).expect("write");
    let shown = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("run man -l");
    let text = String::from_utf8_lossy(&shown.stdout);
    let warnings = String::from_utf8_lossy(&shown.stderr);
    assert!(shown.status.success(), "{warnings}");
    assert!(warnings.trim().is_empty(), "{warnings}");
    for command in COMMANDS {
        assert!(text.contains(&format!("salve {command}")), "{text}");
    }
}

#[test]
fn metrics_name_the_build_that_runs() {
    let salve = Salve::builder().start();
    let metrics = salve.metrics();
    assert!(
        metrics.contains("# TYPE salve_build_info gauge"),
        "{metrics}"
    );
    let line = metrics
        .lines()
        .find(|l| l.starts_with("salve_build_info{"))
        .unwrap_or_else(|| panic!("no salve_build_info:\n{metrics}"));
    assert!(
        line.starts_with(&format!(
            "salve_build_info{{version=\"{}\",revision=\"",
            env!("CARGO_PKG_VERSION")
        )) && line.contains(",rustc=\"1.")
            && line.ends_with("} 1"),
        "{line}"
    );
    let version = stdout(&Command::new(bin()).arg("--version").output().expect("run"));
    let revision = line
        .split("revision=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default();
    assert!(
        version.contains(&format!("(revision {revision},")),
        "{version} {line}"
    );
}
