//! A reload says what it did: probes added, changed and removed take effect at once,
//! the body limits of `[api]` apply to the next request, and a setting only a restart
//! changes is named in the answer, the log and `salve_config_restart_required`
//! (issue 26, point 5: a `[[probe]]` added and reloaded only started after a restart).

use crate::support::{closed_port, of_kind, wait_until, Reply, Salve};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A TCP port on which every connection is counted and closed.
fn counted_port() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    let port = listener.local_addr().expect("address").port();
    let count = Arc::new(AtomicUsize::new(0));
    let counting = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
            counting.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count)
}

fn tcp_probe(name: &str, port: u16) -> String {
    format!(
        "\n[[probe]]\nname = \"{name}\"\ntcp = \"127.0.0.1:{port}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n"
    )
}

fn reload(salve: &Salve) -> Reply {
    salve.send(salve.client().post(salve.url("/-/reload")))
}

fn edit_config(salve: &Salve, edit: impl FnOnce(String) -> String) {
    let config = std::fs::read_to_string(salve.config_path()).expect("read salve.toml");
    std::fs::write(salve.config_path(), edit(config)).expect("write salve.toml");
}

/// The answer of a reload that changed nothing a restart must apply.
fn reloaded(added: &[&str], changed: &[&str], removed: &[&str]) -> Value {
    json!({
        "status": "reloaded",
        "rules": 0,
        "restart_required": [],
        "probes": { "added": added, "changed": changed, "removed": removed },
    })
}

#[test]
fn a_probe_added_by_a_reload_runs_and_its_failure_reaches_the_trail() {
    let salve = Salve::builder().config("").start();
    let port = closed_port();
    edit_config(&salve, |config| {
        format!("{config}{}", tcp_probe("db", port))
    });

    let reply = reload(&salve);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body, reloaded(&["db"], &[], &[]));

    let records = salve.wait_for_audit("the added probe to fire", |records| {
        of_kind(records, "received")
            .iter()
            .any(|r| r["event"]["labels"]["probe"] == "db")
    });
    let fired: Vec<&Value> = of_kind(&records, "received")
        .into_iter()
        .map(|r| &r["event"])
        .collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(
        (
            &fired[0]["labels"]["alertname"],
            &fired[0]["labels"]["failure"],
            &fired[0]["status"]
        ),
        (&json!("ProbeFailed"), &json!("refused"), &json!("firing"))
    );
    assert_eq!(salve.metric("salve_probe_up{probe=\"db\"}"), Some(0.0));
    assert_eq!(salve.metric("salve_config_restart_required"), Some(0.0));
}

#[test]
fn a_probe_removed_by_a_reload_stops_and_leaves_metrics_while_the_others_go_on() {
    let (gone_port, gone_checks) = counted_port();
    let (kept_port, kept_checks) = counted_port();
    let salve = Salve::builder()
        .config(&format!(
            "{}{}",
            tcp_probe("gone", gone_port),
            tcp_probe("kept", kept_port)
        ))
        .start();
    wait_until("both probes to have checked", || {
        let up = |p: &str| salve.metric(&format!("salve_probe_up{{probe=\"{p}\"}}"));
        (up("gone") == Some(1.0) && up("kept") == Some(1.0)).then_some(())
    });

    edit_config(&salve, |config| {
        config.replace(&tcp_probe("gone", gone_port), "")
    });
    let reply = reload(&salve);
    assert_eq!(reply.body, reloaded(&[], &[], &["gone"]));

    // Its series leave when its task has ended, a check under way included.
    wait_until("the removed probe's series to leave /metrics", || {
        (!salve.metrics().contains("probe=\"gone\"")).then_some(())
    });
    let gone_then = gone_checks.load(Ordering::SeqCst);
    let kept_then = kept_checks.load(Ordering::SeqCst);
    wait_until("three more checks of the probe that stays", || {
        (kept_checks.load(Ordering::SeqCst) >= kept_then + 3).then_some(())
    });
    assert_eq!(
        gone_checks.load(Ordering::SeqCst),
        gone_then,
        "no check since"
    );
    assert_eq!(salve.metric("salve_probe_up{probe=\"kept\"}"), Some(1.0));
}

#[test]
fn a_probe_changed_by_a_reload_is_replaced_and_resolves_the_episode_it_fired() {
    let (up_port, _) = counted_port();
    let down_port = closed_port();
    let salve = Salve::builder()
        .config(&tcp_probe("api", down_port))
        .start();
    salve.wait_for_audit("the probe to fire", |records| {
        !of_kind(records, "received").is_empty()
    });

    // Pointed at a port that answers: the new settings' first success ends the episode
    // the old ones began.
    edit_config(&salve, |config| {
        config.replace(&tcp_probe("api", down_port), &tcp_probe("api", up_port))
    });
    let reply = reload(&salve);
    assert_eq!(reply.body, reloaded(&[], &["api"], &[]));

    let records = salve.wait_for_audit("the episode to resolve", |records| {
        of_kind(records, "received")
            .iter()
            .any(|r| r["event"]["status"] == "resolved")
    });
    let events: Vec<&Value> = of_kind(&records, "received")
        .into_iter()
        .map(|r| &r["event"])
        .collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[1]["fingerprint"], events[0]["fingerprint"]);
    assert_eq!(events[1]["starts_at"], events[0]["starts_at"]);
    assert_eq!(salve.metric("salve_probe_up{probe=\"api\"}"), Some(1.0));
}

#[test]
fn a_changed_listen_address_or_data_dir_is_named_until_the_file_says_what_runs_again() {
    let salve = Salve::builder().addresses_in_file().config("").start();
    let original = std::fs::read_to_string(salve.config_path()).expect("read salve.toml");
    assert_eq!(salve.metric("salve_config_restart_required"), Some(0.0));

    let elsewhere = salve.dir().join("elsewhere");
    let moved = original
        .replace(
            &format!("127.0.0.1:{}", salve.port),
            &format!("127.0.0.1:{}", crate::support::free_port()),
        )
        .replace(
            &format!("{:?}", salve.data_dir().display().to_string()),
            &format!("{:?}", elsewhere.display().to_string()),
        );
    assert_ne!(moved, original);
    std::fs::write(salve.config_path(), &moved).expect("write salve.toml");
    let reply = reload(&salve);
    assert_eq!(
        reply.body,
        json!({
            "status": "reloaded",
            "rules": 0,
            "restart_required": ["listen", "data_dir"],
            "probes": { "added": [], "changed": [], "removed": [] },
        })
    );
    assert_eq!(salve.metric("salve_config_restart_required"), Some(1.0));
    let logs = salve.logs();
    let warning = logs
        .lines()
        .find(|line| line.contains("need a restart"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(
        warning.contains("WARN") && warning.contains("settings=listen, data_dir"),
        "{warning}"
    );
    assert!(!elsewhere.exists(), "the data dir in use stays");

    // Back as it runs, reloaded with SIGHUP this time.
    std::fs::write(salve.config_path(), &original).expect("write salve.toml");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &salve.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(hup.success());
    wait_until("the reload after SIGHUP to clear the flag", || {
        (salve.metric("salve_config_restart_required") == Some(0.0)).then_some(())
    });
    assert_eq!(reload(&salve).body, reloaded(&[], &[], &[]));
}

#[test]
fn a_reload_applies_the_body_limit_to_the_requests_that_follow() {
    let salve = Salve::builder()
        .config("[api]\nmax_body_bytes = 1024\n")
        .start();
    let big = json!({ "labels": { "alertname": "Big", "note": "x".repeat(2000) } });
    let body = serde_json::to_vec(&big).expect("JSON");
    let post = |body: Vec<u8>, chunked: bool| {
        let request = salve
            .client()
            .post(salve.url("/api/v1/events"))
            .header("content-type", "application/json");
        let request = if chunked {
            // No Content-Length: the limit holds while the body is read.
            request.body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
        } else {
            request.body(body)
        };
        salve.send(request).status
    };
    assert_eq!(post(body.clone(), false), 413);
    assert_eq!(post(body.clone(), true), 413);

    edit_config(&salve, |config| {
        config.replace("max_body_bytes = 1024", "max_body_bytes = 4096")
    });
    assert_eq!(reload(&salve).body, reloaded(&[], &[], &[]));
    assert_eq!(post(body.clone(), false), 200);
    assert_eq!(post(body, true), 200);
}
