//! `packaging/salve.service` as systemd reads it: every directive known to the systemd
//! of Debian's release (`systemd-analyze verify`), and the start, the reload and the
//! directories as operators expect them.

use crate::support::repo_dir;
use std::process::Command;

fn unit() -> String {
    std::fs::read_to_string(repo_dir().join("packaging/salve.service")).expect("read the unit")
}

#[test]
fn the_unit_passes_systemd_analyze_verify_with_no_word_said() {
    let dir = tempfile::tempdir().expect("a folder");
    // The binary as installed is this test run's; everything else is the unit's own.
    let text = unit().replace("/usr/bin/salve", env!("CARGO_BIN_EXE_salve"));
    let path = dir.path().join("salve.service");
    std::fs::write(&path, text).expect("write the unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze: {e} (apt-get install systemd)"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify said:\n{said}"
    );
}

#[test]
fn the_unit_checks_before_it_starts_or_reloads_and_keeps_its_state_where_systemd_says() {
    let unit = unit();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    let check = "/usr/bin/salve check --config /etc/salve/salve.toml";
    for line in [
        "User=salve".to_string(),
        format!("ExecStartPre={check}"),
        "ExecStart=/usr/bin/salve serve --config /etc/salve/salve.toml".to_string(),
        "Restart=on-failure".to_string(),
        "StateDirectory=salve".to_string(),
        "ConfigurationDirectory=salve".to_string(),
    ] {
        assert!(lines.contains(&line.as_str()), "{line} is missing");
    }
    // The check first: a reload whose rules do not load never reaches salve.
    let reloads: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("ExecReload="))
        .collect();
    assert_eq!(
        reloads,
        [
            &&*format!("ExecReload={check}"),
            &"ExecReload=/bin/kill -HUP $MAINPID"
        ]
    );
    let sysusers = std::fs::read_to_string(repo_dir().join("packaging/salve.sysusers"))
        .expect("read the sysusers file");
    assert!(sysusers.lines().any(|l| l.starts_with("u salve ")));
}
