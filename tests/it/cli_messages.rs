//! What a new user runs into first says what to do: an address that is not one, a
//! start-up log naming what it loaded, an empty rules folder, a target by its short
//! name, and audit lines for windows and unmatched alerts that read as sentences.

use crate::support::{bin, free_port, native, s, wait_until, Salve};
use serde_json::json;
use std::process::{Command, Stdio};

#[test]
fn listen_wants_an_ip_address_and_reads_localhost_as_the_loopback() {
    let salve = Salve::builder().write();
    let out = salve.cli(&["serve", "--listen", "alerts.example.org:9095"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "--listen: invalid address \"alerts.example.org:9095\": expected an IP address and a port, e.g. 127.0.0.1:9095, [::1]:9095"
        ),
        "{stderr}"
    );

    // `localhost` runs, on 127.0.0.1, and the start-up log names what it loaded.
    let port = free_port();
    let log_path = salve.dir().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("create the log");
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(salve.config_path())
        .arg("--rules")
        .arg(salve.rules_dir())
        .arg("--data-dir")
        .arg(salve.data_dir())
        .args(["--listen", &format!("localhost:{port}")])
        .current_dir(salve.dir())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn salve serve");
    let serving = wait_until("salve to say it is serving", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("salve serve exited ({status}):\n{text}");
        }
        text.lines()
            .find(|l| l.contains("salve is serving"))
            .map(str::to_string)
    });
    let _ = child.kill();
    let _ = child.wait();
    for field in [
        format!("listen=127.0.0.1:{port}"),
        format!("config={}", salve.config_path().display()),
        format!("rules_dir={}", salve.rules_dir().display()),
        format!("data_dir={}", salve.data_dir().display()),
    ] {
        assert!(serving.contains(&field), "{field} in {serving}");
    }
}

#[test]
fn check_warns_that_an_empty_rules_folder_has_no_rule_and_still_passes() {
    let salve = Salve::builder().write();
    let config = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &config, "--rules", &rules]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "warning: no rule found in {rules} (rules are files named *.rhai)"
        )),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ok: config from {config}, 0 rule(s) in {rules}\n")
    );
}

const RESTART_NC_APP: &str = r#"
const MATCH = `alertname="AppDown"`;

fn plan(event) {
    if event.status != "firing" { return []; }
    [restart(docker_container("nc-app"))]
}
"#;

#[test]
fn audit_finds_a_target_by_its_name_and_says_windows_and_unmatched_alerts_in_words() {
    let salve = Salve::builder()
        .rule("app", RESTART_NC_APP)
        .dry_run()
        .start();
    for alertname in ["AppDown", "NobodyCares"] {
        let reply = salve.post_json("/api/v1/events", &native(&[("alertname", alertname)]));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let ends_at = "2999-01-01T00:00:00Z";
    let reply = salve.post_json(
        "/api/v1/maintenance",
        &json!({
            "matchers": "alertname=\"AppDown\"",
            "ends_at": ends_at,
            "created_by": "ana",
            "comment": "upgrading nextcloud",
        }),
    );
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let id = s(&reply.body["id"]);
    let starts_at = s(&reply.body["starts_at"]);
    let reply = salve.delete(&format!("/api/v1/maintenance/{id}?deleted_by=bob"));
    assert!(reply.status < 300, "{:?}", reply.body);
    salve.wait_for_audit("the window's deletion", |records| {
        records
            .iter()
            .filter(|r| r["kind"] == "maintenance")
            .count()
            == 2
    });
    let data_dir = salve.data_dir().display().to_string();

    let out = salve.cli(&["audit", "--data-dir", &data_dir, "--target", "nc-app"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.is_empty(), "nothing for nc-app");
    for line in text.lines() {
        assert!(line.contains(" docker:container/nc-app "), "{line}");
    }
    let whole = salve.cli(&[
        "audit",
        "--data-dir",
        &data_dir,
        "--target",
        "docker:container/nc-app",
    ]);
    assert_eq!(String::from_utf8_lossy(&whole.stdout), text);

    let out = salve.cli(&["audit", "--data-dir", &data_dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    let starts_at = chrono::DateTime::parse_from_rfc3339(&starts_at)
        .expect("starts_at")
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let created = format!(
        "maintenance window {id} created: {{alertname=\"AppDown\"}} from {starts_at} until {ends_at} by ana: upgrading nextcloud"
    );
    assert!(
        text.lines().any(|l| l.ends_with(&created)),
        "{created} in:\n{text}"
    );
    let deleted = format!("maintenance window {id} deleted by bob");
    assert!(
        text.lines().any(|l| l.ends_with(&deleted)),
        "{deleted} in:\n{text}"
    );
    let nobody = text
        .lines()
        .find(|l| l.contains(" received ") && l.contains("NobodyCares"))
        .unwrap_or_else(|| panic!("no received line:\n{text}"));
    assert!(
        nobody.ends_with("NobodyCares (firing): no rule matched"),
        "{nobody}"
    );
    let app = text
        .lines()
        .find(|l| l.contains(" received ") && l.contains("AppDown"))
        .unwrap_or_else(|| panic!("no received line:\n{text}"));
    assert!(app.ends_with("AppDown (firing)"), "{app}");
}
