//! What used to fail silently: a duration past any sense stopped every decision while
//! salve said it was ready; a dead worker went unnoticed; a reload let two actions on one
//! target overlap; labels no Alertmanager sends were taken; a 405 said nothing.

use crate::support::{decisions, native, of_kind, s, wait_until, Salve};
use serde_json::{json, Value};

const CENTURIES: &str = "300000y";

/// A duration longer than salve takes is refused wherever it can be written, with the
/// place it was written: rule constants and literals, config keys, API and CLI.
#[test]
fn a_duration_past_a_century_is_refused_where_it_is_written_and_nothing_panics() {
    let salve = Salve::builder()
        .rule(
            "limit",
            &format!(
                "const MATCH = `alertname=\"X\"`;\nconst LIMIT = \"1 per {CENTURIES}\";\nfn plan(event) {{ [] }}\n"
            ),
        )
        .write();
    let out = salve.cli(&["check", "--config", "salve.toml", "--rules", "rules"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("rules/limit.rhai:2:1: LIMIT: invalid rate \"1 per 300000y\"")
            && stderr.contains("longer than 100y, the longest salve takes"),
        "{stderr}"
    );

    crate::support::assert_check_refuses(
        &format!("[policy]\ndedup_ttl = \"{CENTURIES}\"\n"),
        &format!(
            "policy.dedup_ttl: invalid duration \"{CENTURIES}\": longer than 100y, the longest salve takes"
        ),
    );

    let data = salve.data_dir().display().to_string();
    for command in ["audit", "report", "replay"] {
        let out = salve.cli(&[command, "--data-dir", &data, "--since", CENTURIES]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "salve {command}: {stderr}");
        assert!(
            stderr.contains("--since") && stderr.contains("longer than 100y"),
            "salve {command}: {stderr}"
        );
    }
}

/// At run time, a window a rule computes is a rule error for that event, and the next
/// event is decided as ever; the API names the parameter at fault.
#[test]
fn a_window_computed_at_run_time_past_a_century_is_a_rule_error_and_salve_keeps_deciding() {
    let salve = Salve::builder()
        .config("[exec.mark]\nargv = [\"true\"]\n")
        .rule(
            "window",
            r#"
const MATCH = `alertname="Window"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    let t = docker_container("web-1");
    if recent(t, "restart", event.labels.window) < 1 { [exec("mark", [event.labels.window])] } else { [] }
}
"#,
        )
        .start();
    for window in [CENTURIES, "15m"] {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Window"), ("window", window)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let records = salve.wait_settled(2);
    let errors = of_kind(&records, "rule_error");
    assert_eq!(errors.len(), 1, "{records:#?}");
    assert!(
        s(&errors[0]["error"]).contains("recent: invalid duration \"300000y\": longer than 100y"),
        "{}",
        errors[0]
    );
    assert_eq!(decisions(&records), ["window: exec exec:mark -> execute"]);
    assert_eq!(salve.get("/-/ready").status, 200);

    for (path, post) in [
        (format!("/api/v1/audit?since={CENTURIES}"), None),
        (format!("/api/v1/report?since={CENTURIES}"), None),
        (
            "/api/v1/replay".to_string(),
            Some(json!({ "since": CENTURIES })),
        ),
    ] {
        let reply = match post {
            Some(body) => salve.post_json(&path, &body),
            None => salve.get(&path),
        };
        assert_eq!(reply.status, 400, "{path}: {:?}", reply.body);
        assert!(
            s(&reply.body["error"]).starts_with("since: invalid duration \"300000y\""),
            "{path}: {:?}",
            reply.body
        );
    }
}

/// The decide task panics (a fault injected in debug builds): salve refuses events,
/// `/-/ready` says which task ended and why, `salve_task_up` says so, and the process
/// exits non-zero for its supervisor to restart it. What was acknowledged before is
/// decided by the next start.
#[test]
fn a_dead_decision_worker_refuses_events_says_why_and_exits_and_nothing_acknowledged_is_lost() {
    let mut salve = Salve::builder()
        .config("[exec.mark]\nargv = [\"true\"]\n")
        .rule(
            "mark",
            r#"
const MATCH = `alertname="Mark"`;
fn plan(event) { if event.status == "firing" { [exec("mark", [event.labels.n])] } else { [] } }
"#,
        )
        .env("SALVE_INJECT_PANIC", "decide")
        .start();
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Mark"), ("n", "1")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let ready = wait_until("/-/ready to say the worker died", || {
        let reply = salve.get("/-/ready");
        (reply.status == 503).then_some(reply)
    });
    assert_eq!(
        s(&ready.body),
        "salve is not ready: the decide task has ended: panicked: injected by SALVE_INJECT_PANIC=decide.\n"
    );
    assert_eq!(salve.metric("salve_task_up{task=\"decide\"}"), Some(0.0));
    let refused = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Mark"), ("n", "2")]),
    );
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    assert!(
        s(&refused.body["error"]).contains("the decide task has ended"),
        "{:?}",
        refused.body
    );
    assert_eq!(
        salve.metric("salve_intake_rejected_total{reason=\"failed\"}"),
        Some(1.0)
    );
    let status = salve.wait_exit();
    assert_eq!(status.code(), Some(70), "{}", salve.logs());

    salve.remove_env("SALVE_INJECT_PANIC");
    salve.start();
    let records = salve.wait_settled(1);
    assert_eq!(decisions(&records), ["mark: exec exec:mark -> execute"]);
    assert_eq!(
        of_kind(&records, "received").len(),
        1,
        "the refused event is not recorded"
    );
    assert_eq!(salve.metric("salve_task_up{task=\"decide\"}"), Some(1.0));
}

/// Runs of the named command `slow` as the file it writes says: (alert, start|end).
fn runs(salve: &Salve) -> Vec<(String, String)> {
    salve
        .lines("runs")
        .into_iter()
        .filter_map(|line| {
            let (what, n) = line.split_once(' ')?;
            Some((n.to_string(), what.to_string()))
        })
        .collect()
}

/// One action at a time per target, whatever rebuilds the executors meanwhile: the
/// second action on a target starts after the first ends, through `/-/reload` and
/// through SIGHUP.
#[test]
fn an_action_running_through_a_reload_or_sighup_still_has_its_target_to_itself() {
    let salve = Salve::builder()
        .config(
            "[exec.slow]\nargv = [\"/bin/sh\", \"-c\", \"echo start $1 >> {dir}/runs; sleep 2; echo end $1 >> {dir}/runs\", \"sh\"]\ntimeout = \"10s\"\n",
        )
        .rule(
            "slow",
            r#"
const MATCH = `alertname="Slow"`;
fn plan(event) { if event.status == "firing" { [exec("slow", [event.labels.n])] } else { [] } }
"#,
        )
        .start();
    let alert = |n: &str| {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Slow"), ("n", n)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    };
    let started = |n: &str| {
        let n = n.to_string();
        wait_until(&format!("the action for alert {n} to start"), || {
            runs(&salve)
                .contains(&(n.clone(), "start".to_string()))
                .then_some(())
        })
    };
    alert("1");
    started("1");
    assert_eq!(salve.post_json("/-/reload", &Value::Null).status, 200);
    alert("2");
    started("2");

    alert("3");
    wait_until("the third action to start", || {
        runs(&salve)
            .contains(&("3".to_string(), "start".to_string()))
            .then_some(())
    });
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &salve.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(hup.success());
    wait_until("the reload after SIGHUP", || {
        (salve.logs().matches("reloaded").count() >= 2).then_some(())
    });
    alert("4");
    salve.wait_settled(4);
    let expected: Vec<(String, String)> = ["1", "2", "3", "4"]
        .iter()
        .flat_map(|n| {
            [
                (n.to_string(), "start".to_string()),
                (n.to_string(), "end".to_string()),
            ]
        })
        .collect();
    assert_eq!(runs(&salve), expected, "{}", salve.logs());
}

/// What Alertmanager never sends is refused at the door with the alert and label named:
/// no labels, an empty label name, a name with a control character. UTF-8 names stay.
#[test]
fn labels_no_alertmanager_sends_are_refused_with_the_label_named_and_utf8_names_are_taken() {
    let salve = Salve::builder().start();
    let payload = |labels: Value| {
        let mut payload = crate::support::fixture("firing-single.json");
        payload["alerts"][0]["labels"] = labels;
        payload
    };
    for (labels, label, says) in [
        (
            json!({}),
            None,
            "alert 0: has no labels; Alertmanager never sends such an alert",
        ),
        (
            json!({ "": "x", "alertname": "A" }),
            Some(""),
            "alert 0: has a label with an empty name",
        ),
        (
            json!({ "alertname": "A", "bad\nname": "x" }),
            Some("bad\nname"),
            "alert 0: label name \"bad\\nname\" holds a control character",
        ),
        (
            json!({ "alertname": "A", "esc\u{1b}[31m": "x" }),
            Some("esc\u{1b}[31m"),
            "alert 0: label name \"esc\\u{1b}[31m\" holds a control character",
        ),
        (
            json!({ "alertname": "A", "tab\tname": "x" }),
            Some("tab\tname"),
            "alert 0: label name \"tab\\tname\" holds a control character",
        ),
        (
            json!({ "alertname": "A", "nul\u{0}": "x" }),
            Some("nul\u{0}"),
            "alert 0: label name \"nul\\0\" holds a control character",
        ),
    ] {
        let reply = salve.post_json("/api/v1/alertmanager", &payload(labels.clone()));
        assert_eq!(reply.status, 422, "{labels}: {:?}", reply.body);
        let mut expected = json!({ "error": says, "detail": { "alert": 0 } });
        if let Some(label) = label {
            expected["detail"]["label"] = json!(label);
        }
        assert_eq!(reply.body, expected, "{labels}");
    }
    assert_eq!(
        salve.metric("salve_intake_rejected_total{reason=\"invalid_labels\"}"),
        Some(6.0)
    );
    let utf8 = salve.post_json(
        "/api/v1/alertmanager",
        &payload(json!({ "alertname": "A", "größe": "x", "服务": "web" })),
    );
    assert_eq!(utf8.status, 200, "{:?}", utf8.body);
    assert!(salve.audit_json().iter().all(|r| r["kind"] != "rule_error"));

    let wrong_method = salve.get("/api/v1/alertmanager");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.body,
        json!({
            "error": "/api/v1/alertmanager does not take GET; it takes POST",
            "detail": { "allow": ["POST"] },
        })
    );
}

/// With the trail's disk full, salve refuses events (503), says so on `/-/ready`, counts
/// every refusal, and logs about it once a second, not once a request; with room again
/// it is ready without any event to try it.
#[test]
fn a_full_disk_is_seen_on_ready_counted_and_logged_once_a_second_and_passes() {
    let mut salve = Salve::builder()
        .rule(
            "quiet",
            "const MATCH = `alertname=\"Full\"`;\nfn plan(event) { [] }\n",
        )
        .write();
    let disk = crate::disk_support::Tmpfs::mount(&salve.data_dir(), "4m");
    salve.start();
    disk.fill();
    let mut refused = 0;
    for n in 0..200 {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Full"), ("n", &n.to_string())]),
        );
        if reply.status == 503 {
            assert!(
                s(&reply.body["error"]).contains("No space left on device"),
                "{:?}",
                reply.body
            );
            refused += 1;
        }
    }
    assert!(
        refused >= 150,
        "{refused} of 200 refused:\n{}",
        salve.logs()
    );
    let ready = salve.get("/-/ready");
    assert_eq!(ready.status, 503);
    assert!(
        s(&ready.body).starts_with("salve is not ready: the audit trail cannot be written: ")
            && s(&ready.body).contains("No space left on device"),
        "{:?}",
        ready.body
    );
    assert_eq!(
        salve.metric("salve_intake_rejected_total{reason=\"unrecorded\"}"),
        Some(f64::from(refused))
    );
    let logged = salve.logs().matches("cannot write the audit trail").count();
    assert!(
        (1..=5).contains(&logged),
        "{logged} log lines for {refused} refusals"
    );

    disk.free();
    wait_until("ready again once there is room", || {
        (salve.get("/-/ready").status == 200).then_some(())
    });
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Full"), ("n", "after")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    salve.stop();
}

/// Both cores kept busy by other processes for as long as it lives (and at most two
/// minutes), as a neighbour on a shared host would.
struct BusyNeighbour(Vec<std::process::Child>);

impl BusyNeighbour {
    fn start() -> BusyNeighbour {
        // Each loop ends by itself after two minutes, even if this test is killed.
        let spin = || {
            std::process::Command::new("python3")
                .args([
                    "-c",
                    "import time\nend = time.time() + 120\nwhile time.time() < end: pass",
                ])
                .spawn()
                .expect("spawn a busy loop (python3)")
        };
        BusyNeighbour(vec![spin(), spin(), spin()])
    }
}

impl Drop for BusyNeighbour {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A rule that does real work per alert (about 8 ms of a release build's time; more in
/// the tests' debug build).
const WORKING: &str = r#"
const MATCH = `alertname="Work"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    let sum = 0;
    for i in 0..WORK { sum += i % 7; }
    [exec("mark", [`${sum}`])]
}
"#;

const LOOPING_FOREVER: &str = r#"
const MATCH = `alertname="Loop"`;
fn plan(event) { let i = 0; loop { i += 1; } }
"#;

/// Quarantine judges what the rule spent, not how busy the machine was: a rule that
/// works hard is never cut off while other processes take both cores, and a rule that
/// loops is still quarantined after `quarantine_after` cut-offs.
#[test]
fn a_hard_working_rule_on_a_busy_machine_is_never_quarantined_and_a_looping_one_still_is() {
    // The tests' debug build runs a rule some 30 times slower than a release build, so
    // the wall-clock backstop is scaled alike (1s -> 30s); the operations budget, which
    // is what this test is about, is the default.
    let salve = Salve::builder()
        .config("[engine]\nrule_timeout = \"30s\"\n\n[exec.mark]\nargv = [\"true\"]\n")
        .rule(
            "working",
            &WORKING.replace("WORK", &WORK_ITERATIONS.to_string()),
        )
        .rule("looping", LOOPING_FOREVER)
        .start();
    let busy = BusyNeighbour::start();
    const ALERTS: usize = 40;
    for n in 0..ALERTS {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Work"), ("n", &n.to_string())]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let records = salve.wait_settled(ALERTS);
    drop(busy);
    assert_eq!(
        of_kind(&records, "rule_error").len(),
        0,
        "{:#?}",
        of_kind(&records, "rule_error")
    );
    assert_eq!(of_kind(&records, "decision").len(), ALERTS);

    for n in 0..6 {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Loop"), ("n", &n.to_string())]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        salve.wait_settled(ALERTS + n + 1);
    }
    let reasons: Vec<String> = of_kind(&salve.audit_json(), "rule_error")
        .into_iter()
        .map(|r| s(&r["reason"]))
        .collect();
    assert_eq!(
        reasons,
        [
            "cut_off",
            "cut_off",
            "cut_off",
            "cut_off",
            "cut_off",
            "quarantined"
        ]
    );
}

/// Iterations of [`WORKING`]'s loop: about 8 ms of plan() in a release build here.
const WORK_ITERATIONS: u32 = 20_000;

/// `salve serve` on the test's folder, bounded: it must end by itself within 20 s.
fn serve_expecting_exit(salve: &Salve) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg("20")
        .arg(crate::support::bin())
        .args([
            "serve",
            "--config",
            "salve.toml",
            "--rules",
            "rules",
            "--data-dir",
            "data",
        ])
        .args([
            "--listen",
            &format!("127.0.0.1:{}", crate::support::free_port()),
        ])
        .current_dir(salve.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run salve serve")
}

/// A salve whose one rule does nothing, with one event recorded.
fn quiet_salve_with_one_event() -> Salve {
    let salve = Salve::builder()
        .rule(
            "quiet",
            "const MATCH = `alertname=\"Q\"`;\nfn plan(event) { [] }\n",
        )
        .start();
    assert_eq!(
        salve
            .post_json("/api/v1/events", &native(&[("alertname", "Q")]))
            .status,
        200
    );
    salve
}

/// A checkpoint this salve cannot read (a newer format: a downgrade) over a trail that
/// retention has trimmed: salve refuses to start, saying why and what to do, rather than
/// act on a state that forgot spent limits, windows and dedup.
#[test]
fn an_unreadable_checkpoint_over_a_trimmed_trail_refuses_the_start_and_says_why() {
    let mut salve = quiet_salve_with_one_event();
    salve.wait_settled(1);
    salve.stop();
    let checkpoint = salve.data_dir().join("state.checkpoint");
    let mut bytes = std::fs::read(&checkpoint).expect("a checkpoint written at the stop");
    bytes[8..12].copy_from_slice(&99u32.to_le_bytes());
    std::fs::write(&checkpoint, &bytes).expect("write the checkpoint");
    let _ = std::fs::remove_file(salve.data_dir().join("state.checkpoint.1"));
    std::fs::write(salve.data_dir().join("audit.trimmed"), b"").expect("mark the trail trimmed");

    let out = serve_expecting_exit(&salve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("state.checkpoint: written by a salve whose checkpoint format is version 99; this one reads versions 1 to 4")
            && stderr.contains("retention has removed older trail files")
            && stderr.contains("move state.checkpoint and state.checkpoint.1 out of the data dir"),
        "{stderr}"
    );

    // Where the trail was never trimmed, it alone still says everything: salve starts.
    std::fs::remove_file(salve.data_dir().join("audit.trimmed")).expect("unmark");
    salve.start();
    assert!(
        salve
            .logs()
            .contains("replaying the whole audit trail instead of a checkpoint"),
        "{}",
        salve.logs()
    );
}

/// A second `salve serve` on a data folder one already serves from is refused, naming
/// the holder; reading the trail meanwhile still works.
#[test]
fn a_second_serve_on_the_same_data_dir_is_refused_naming_the_first() {
    let mut salve = quiet_salve_with_one_event();
    let out = serve_expecting_exit(&salve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another salve (pid {}) is serving from data (it holds salve.lock)",
            salve.pid()
        )),
        "{stderr}"
    );
    assert_eq!(of_kind(&salve.audit_json(), "received").len(), 1);
    salve.stop();
    salve.start();
}
