//! Probes against real listeners this test starts: each failure class, thresholds both
//! ways, and a probe → rule → `exec` that heals the target → resolved.

use crate::support::{closed_port, of_kind, s, wait_until, Salve};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

/// How a test HTTP server answers.
#[derive(Clone)]
enum Answer {
    Healthy,
    Status500,
    Hang,
    Slow,
    WrongBody,
    Close,
    /// 500 until this file exists, then healthy.
    Until(PathBuf),
}

/// An HTTP server on a loopback port that answers every request as `answer` says.
fn serve(answer: Answer) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.read(&mut buf);
                let (status, body) = match answer {
                    Answer::Healthy => ("200 OK", "healthy"),
                    Answer::Status500 => ("500 Internal Server Error", "down"),
                    Answer::Hang => {
                        std::thread::sleep(Duration::from_secs(10));
                        return;
                    }
                    Answer::Slow => {
                        std::thread::sleep(Duration::from_millis(300));
                        ("200 OK", "healthy")
                    }
                    Answer::WrongBody => ("200 OK", "maintenance page"),
                    Answer::Close => return,
                    Answer::Until(file) if file.exists() => ("200 OK", "healthy"),
                    Answer::Until(_) => ("500 Internal Server Error", "down"),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn probe_events<'a>(records: &'a [Value], probe: &str, status: &str) -> Vec<&'a Value> {
    of_kind(records, "received")
        .into_iter()
        .filter(|r| r["event"]["labels"]["probe"] == probe && r["event"]["status"] == status)
        .collect()
}

#[test]
fn each_failure_class_is_named_in_the_event_and_counted_in_metrics() {
    let ok = serve(Answer::Healthy);
    let probes = [
        ("refused", format!("tcp = \"127.0.0.1:{}\"", closed_port())),
        (
            "http-refused",
            format!("http = \"http://127.0.0.1:{}/\"", closed_port()),
        ),
        (
            "timeout",
            format!("http = \"http://127.0.0.1:{}/\"", serve(Answer::Hang)),
        ),
        (
            "status",
            format!("http = \"http://127.0.0.1:{}/\"", serve(Answer::Status500)),
        ),
        (
            "body",
            format!(
                "http = \"http://127.0.0.1:{}/\"\nexpect_body = \"^healthy$\"",
                serve(Answer::WrongBody)
            ),
        ),
        (
            "slow",
            format!(
                "http = \"http://127.0.0.1:{}/\"\nmax_response_time = \"100ms\"",
                serve(Answer::Slow)
            ),
        ),
        (
            "reset",
            format!("http = \"http://127.0.0.1:{}/\"", serve(Answer::Close)),
        ),
        ("tls", format!("http = \"https://127.0.0.1:{ok}/\"")),
        ("exec_failed", "exec = \"down\"".to_string()),
        (
            "fine",
            format!("http = \"http://127.0.0.1:{ok}/\"\nexpect_body = \"healthy\""),
        ),
        ("tcp-fine", format!("tcp = \"127.0.0.1:{ok}\"")),
    ];
    let mut config = String::from("[exec.down]\nargv = [\"false\"]\n");
    for (name, check) in &probes {
        config.push_str(&format!(
            "\n[[probe]]\nname = \"{name}\"\n{check}\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\nlabels = {{ service = \"svc-{name}\" }}\n"
        ));
    }
    let salve = Salve::builder().config(&config).start();
    let failing: Vec<&str> = probes
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| !n.ends_with("fine"))
        .collect();
    let records = salve.wait_for_audit("every failing probe to fire", |records| {
        failing
            .iter()
            .all(|p| !probe_events(records, p, "firing").is_empty())
    });
    for probe in &failing {
        let fired = probe_events(&records, probe, "firing");
        assert_eq!(fired.len(), 1, "one event per episode: {fired:#?}");
        let event = &fired[0]["event"];
        let class = probe.strip_prefix("http-").unwrap_or(probe);
        assert_eq!(event["labels"]["failure"], class, "{probe}: {event:#}");
        assert_eq!(event["labels"]["alertname"], "ProbeFailed");
        assert_eq!(event["labels"]["service"], format!("svc-{probe}"));
        assert_eq!(event["source"], "probe");
        assert!(!s(&event["annotations"]["error"]).is_empty(), "{event:#}");
        assert!(
            salve
                .metric(&format!(
                    "salve_probe_failures_total{{probe=\"{probe}\",class=\"{class}\"}}"
                ))
                .is_some_and(|n| n >= 1.0),
            "{}",
            salve.metrics()
        );
        assert_eq!(
            salve.metric(&format!("salve_probe_up{{probe=\"{probe}\"}}")),
            Some(0.0)
        );
    }
    for fine in ["fine", "tcp-fine"] {
        assert!(
            probe_events(&records, fine, "firing").is_empty(),
            "{records:#?}"
        );
        assert_eq!(
            salve.metric(&format!("salve_probe_up{{probe=\"{fine}\"}}")),
            Some(1.0)
        );
    }
}

#[test]
fn a_failing_probe_is_healed_by_a_rule_once_and_resolves_after_its_success_threshold() {
    let salve = Salve::builder()
        .config(&format!(
            r#"[exec.heal]
argv = ["/bin/sh", "-c", 'echo healed >> "{{dir}}/healed.log"; touch "{{dir}}/healed"']

[[probe]]
name = "api"
http = "http://127.0.0.1:{port}/health"
interval = "1s"
timeout = "500ms"
failure_threshold = 2
success_threshold = 2
labels = {{ service = "api" }}
"#,
            port = 0
        ))
        .write();
    // The server reads the flag file the healing command writes.
    let port = serve(Answer::Until(salve.dir().join("healed")));
    let config = std::fs::read_to_string(salve.config_path())
        .expect("read the config")
        .replace("127.0.0.1:0/", &format!("127.0.0.1:{port}/"));
    std::fs::write(salve.config_path(), config).expect("write the config");
    salve.write_rule(
        "heal-api",
        "const MATCH = `alertname=\"ProbeFailed\", probe=\"api\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [exec(\"heal\")]\n}\n",
    );
    let mut salve = salve;
    salve.start();
    let records = salve.wait_for_audit("the probe to fire and resolve", |records| {
        !probe_events(records, "api", "resolved").is_empty()
    });
    let fired = probe_events(&records, "api", "firing");
    let resolved = probe_events(&records, "api", "resolved");
    assert_eq!((fired.len(), resolved.len()), (1, 1), "{records:#?}");
    let (fired, resolved) = (&fired[0]["event"], &resolved[0]["event"]);
    assert_eq!(fired["labels"]["failure"], "status");
    assert_eq!(
        resolved["labels"], fired["labels"],
        "the recovery carries the labels it ends"
    );
    assert_eq!(resolved["fingerprint"], fired["fingerprint"]);
    assert_eq!(resolved["starts_at"], fired["starts_at"]);
    // The first failure began the episode: a check before the one that fired.
    let began: chrono::DateTime<chrono::Utc> = s(&fired["starts_at"]).parse().expect("a time");
    let at: chrono::DateTime<chrono::Utc> = s(&of_kind(&records, "received")[0]["at"])
        .parse()
        .expect("a time");
    assert!(
        began < at - chrono::Duration::milliseconds(500),
        "{began} vs {at}"
    );
    let decisions: Vec<String> = of_kind(&records, "decision")
        .iter()
        .map(|d| format!("{} {}", s(&d["target"]), s(&d["decision"])))
        .collect();
    assert_eq!(decisions, ["exec:heal execute"]);
    wait_until("the heal to be recorded", || {
        (salve.lines("healed.log").len() == 1).then_some(())
    });
}

#[test]
fn check_names_the_probe_key_at_fault() {
    let cases = [
        ("[[probe]]\nname = \"a\"\n", "probe[0] (a): give exactly one of http, tcp or exec"),
        (
            "[[probe]]\nname = \"a\"\ntcp = \"127.0.0.1:1\"\ninterval = \"5s\"\ntimeout = \"5s\"\n",
            "probe[0].timeout: must be less than the interval (5s)",
        ),
        (
            "[[probe]]\nname = \"a\"\ntcp = \"127.0.0.1:1\"\ninterval = \"500ms\"\n",
            "probe[0].interval: must be 1s or more",
        ),
        (
            "[[probe]]\nname = \"a\"\nexec = \"nope\"\n",
            "probe[0].exec: no command [exec.nope] (defined: [])",
        ),
        (
            "[[probe]]\nname = \"a\"\ntcp = \"127.0.0.1:1\"\nexpect_status = [200]\n",
            "probe[0].expect_status: does not apply to this kind of probe",
        ),
        (
            "[[probe]]\nname = \"a\"\nhttp = \"http://127.0.0.1:1/\"\n[[probe]]\nname = \"a\"\ntcp = \"127.0.0.1:1\"\n",
            "probe[1].name: \"a\" names two probes",
        ),
        (
            "[[probe]]\nname = \"a\"\nhttp = \"http://127.0.0.1:1/\"\nexpect_body = \"(\"\n",
            "probe[0].expect_body:",
        ),
    ];
    for (config, expected) in cases {
        crate::support::assert_check_refuses(config, expected);
    }
}

#[test]
fn a_probe_still_failing_after_a_restart_goes_on_with_the_same_episode() {
    let mut salve = Salve::builder()
        .config(&format!(
            "[exec.mark]\nargv = [\"true\"]\n\n[[probe]]\nname = \"db\"\ntcp = \"127.0.0.1:{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n",
            closed_port()
        ))
        .rule(
            "mark-db",
            "const MATCH = `alertname=\"ProbeFailed\", probe=\"db\"`;\nfn plan(event) {\n    if event.status != \"firing\" { return []; }\n    [exec(\"mark\")]\n}\n",
        )
        .start();
    salve.wait_for_audit("the probe to fire", |r| {
        !probe_events(r, "db", "firing").is_empty()
    });
    salve.stop();
    salve.start();
    let records = salve.wait_for_audit("the probe to fire again after the restart", |r| {
        probe_events(r, "db", "firing").len() == 2 && of_kind(r, "decision").len() == 2
    });
    let fired = probe_events(&records, "db", "firing");
    assert_eq!(
        fired[0]["event"]["starts_at"],
        fired[1]["event"]["starts_at"]
    );
    let decisions: Vec<String> = of_kind(&records, "decision")
        .iter()
        .map(|d| format!("{} {}", s(&d["decision"]), s(&d["reason"])))
        .collect();
    assert_eq!(decisions, ["execute null", "suppress dedup"]);
}

/// Runs the command the alert names; when the alert is still there after that (a resend,
/// or its next episode), pages on-call as well.
const FIX_THEN_PAGE: &str = r#"
const MATCH = `alertname="Down", fix=~".+"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    let fix = event.labels.fix;
    if recent(`exec:${fix}`, "exec", "1d") > 0 {
        return [exec(fix), notify("oncall", `${fix} did not help`)];
    }
    [exec(fix)]
}
"#;

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn the_report_gives_recovery_mttr_mtbf_and_escalation_per_target_and_probe_uptime() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = listener.local_addr().expect("address").port();
    let mut salve = Salve::builder()
        .config(&format!(
            r#"[exec.fix]
argv = ["true"]

[exec.broken]
argv = ["false"]

[exec.stuck]
argv = ["false"]

[notify.ops]
type = "log"

[notify.oncall]
type = "log"

[[on_outcome]]
when = ["failed"]
notify = "ops"

[[probe]]
name = "up"
tcp = "127.0.0.1:{up_port}"
interval = "1s"
timeout = "500ms"

[[probe]]
name = "down"
tcp = "127.0.0.1:{down_port}"
interval = "1s"
timeout = "500ms"
failure_threshold = 100
"#,
            down_port = closed_port()
        ))
        .rule("fix", FIX_THEN_PAGE)
        .start();
    // Four episodes at times the test sets: two on exec:fix an hour apart, repaired in
    // 120 s and 60 s (the second pages on-call, with nothing failed: no escalation);
    // one on exec:broken, whose failure only `[[on_outcome]]` tells ops (no escalation);
    // one on exec:stuck, whose failure the rule answers itself with a page when the
    // alert comes again (an escalation).
    let t0 = chrono::Utc::now() - chrono::Duration::hours(3);
    let event = |svc: &str, fix: &str, starts: chrono::DateTime<chrono::Utc>, ends: Option<i64>| {
        let mut e = serde_json::json!({
            "labels": { "alertname": "Down", "svc": svc, "fix": fix },
            "status": if ends.is_some() { "resolved" } else { "firing" },
            "starts_at": rfc3339(starts),
        });
        if let Some(seconds) = ends {
            e["ends_at"] = rfc3339(starts + chrono::Duration::seconds(seconds)).into();
        }
        e
    };
    let t1 = t0 + chrono::Duration::hours(1);
    let t2 = t0 + chrono::Duration::hours(2);
    let t3 = t2 + chrono::Duration::minutes(30);
    for batch in [
        vec![event("a", "fix", t0, None)],
        vec![event("a", "fix", t0, Some(120))],
        vec![event("b", "fix", t1, None)],
        vec![event("b", "fix", t1, Some(60))],
        vec![event("c", "broken", t2, None)],
        vec![event("d", "stuck", t3, None)],
        // Alertmanager sending the group again: the same episode, after the failure.
        vec![event("d", "stuck", t3, None)],
    ] {
        let reply = salve.post_json("/api/v1/events", &Value::Array(batch));
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        salve.wait_for_audit("the batch to be decided and acted on", |r| {
            crate::support::settled(r, of_kind(r, "received").len())
        });
    }
    salve.wait_for_audit("ops to be told of both failures", |r| {
        of_kind(r, "decision")
            .iter()
            .filter(|d| d["rule"] == "on_outcome/ops" && d["decision"] == "execute")
            .count()
            == 2
            && crate::support::settled(r, 7)
    });
    // The report counts each probe's checks: wait until the probes' own metric has two
    // of each, rather than for a time that a slow machine may not fill.
    wait_until("each probe to have checked twice", || {
        ["up", "down"]
            .iter()
            .all(|probe| {
                salve
                    .metric(&format!(
                        "salve_probe_duration_seconds_count{{probe=\"{probe}\"}}"
                    ))
                    .is_some_and(|checks| checks >= 2.0)
            })
            .then_some(())
    });
    let over_http = salve.get("/api/v1/report?since=6h");
    assert_eq!(over_http.status, 200, "{:?}", over_http.body);
    salve.stop();
    drop(listener);

    let data = salve.data_dir().display().to_string();
    let out = salve.cli(&["report", "--data-dir", &data, "--since", "6h", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let target = |name: &str| -> Value {
        report["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["target"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
    };
    assert_eq!(
        target("exec:fix"),
        serde_json::json!({
            "target": "exec:fix", "episodes": 2, "actions": 2, "recovered": 2,
            "recovery_rate": 1.0, "mttr_seconds": 90.0, "mtbf_seconds": 3600.0,
            "escalations": 0, "escalation_rate": 0.0,
        })
    );
    assert_eq!(
        target("exec:broken"),
        serde_json::json!({
            "target": "exec:broken", "episodes": 1, "actions": 1, "recovered": 0,
            "recovery_rate": 0.0, "mttr_seconds": null, "mtbf_seconds": null,
            "escalations": 0, "escalation_rate": 0.0,
        }),
        "ops told by [[on_outcome]] is not an escalation"
    );
    assert_eq!(
        target("exec:stuck"),
        serde_json::json!({
            "target": "exec:stuck", "episodes": 1, "actions": 1, "recovered": 0,
            "recovery_rate": 0.0, "mttr_seconds": null, "mtbf_seconds": null,
            "escalations": 1, "escalation_rate": 1.0,
        }),
        "the rule's own page after the failure is"
    );
    assert_eq!(
        over_http.body["targets"], report["targets"],
        "the API says the same"
    );

    let probe = |name: &str| -> Value {
        report["probes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["probe"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no probe {name} in {report:#}"))
    };
    let (up, down) = (probe("up"), probe("down"));
    assert!(up["checks"].as_u64().is_some_and(|n| n >= 2), "{up:#}");
    assert_eq!(up["uptime_percent"], 100.0, "{up:#}");
    assert!(down["checks"].as_u64().is_some_and(|n| n >= 2), "{down:#}");
    assert_eq!(down["uptime_percent"], 0.0, "{down:#}");
    assert_eq!(
        down["failures_by_class"]["refused"], down["checks"],
        "{down:#}"
    );

    let text = salve.cli(&["report", "--data-dir", &data, "--since", "6h"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("exec:fix: 2 episodes, 2 actions, recovered 2 (100%), MTTR 90s, MTBF 3600s, escalated 0 (0%)"),
        "{text}"
    );
    assert!(
        text.contains("exec:broken: 1 episodes, 1 actions, recovered 0 (0%), MTTR -, MTBF -, escalated 0 (0%)"),
        "{text}"
    );
    assert!(text.contains("down: uptime 0.00% of "), "{text}");
}

#[test]
fn a_probe_is_in_the_report_from_its_first_result_while_salve_runs() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Probes are spread over their interval by a hash of their name: "api-12" checks a
    // quarter of a second into its minute, so it has exactly one result here, long
    // before the history's periodic write (every 30 s).
    let salve = Salve::builder()
        .config(&format!(
            "[[probe]]\nname = \"api-12\"\ntcp = \"127.0.0.1:{port}\"\ninterval = \"1m\"\ntimeout = \"1s\"\n"
        ))
        .start();
    wait_until("the probe's first result", || {
        salve.metric("salve_probe_up{probe=\"api-12\"}")
    });
    let seen = std::time::Instant::now();
    let data = salve.data_dir().display().to_string();
    let report = loop {
        let out = salve.cli(&["report", "--data-dir", &data, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        if report["probes"].as_array().is_some_and(|p| !p.is_empty()) {
            break report;
        }
        assert!(
            seen.elapsed() < Duration::from_secs(5),
            "the probe had a result {:?} ago and the report still has none: {report:#}",
            seen.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let probe = &report["probes"][0];
    assert_eq!(
        (&probe["probe"], &probe["checks"], &probe["uptime_percent"]),
        (&Value::from("api-12"), &Value::from(1), &Value::from(100.0)),
        "{report:#}"
    );
    let over_http = salve.get("/api/v1/report");
    assert_eq!(
        over_http.body["probes"], report["probes"],
        "the API says the same"
    );
    drop(listener);
}

/// A TCP server that writes back what it reads.
fn echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn tls_probes_trust_a_private_ca_when_told_and_tcp_probes_check_the_reply() {
    // The target: a salve serving HTTPS with a certificate of a private CA.
    let mut target = Salve::builder()
        .config(
            "[api]\ntls_cert_file = \"{dir}/server.pem\"\ntls_key_file = \"{dir}/server.key\"\n",
        )
        .write();
    crate::certs::make_certificates(target.dir());
    let ca = target.dir().join("ca.pem");
    target.speak_tls(&ca, &[]);
    target.start();
    let url = target.url("/-/healthy");
    let port = echo();
    let common = "interval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1";
    let salve = Salve::builder()
        .config(&format!(
            r#"[[probe]]
name = "trusted"
http = "{url}"
ca_file = "{ca}"
expect_body = "healthy"
{common}

[[probe]]
name = "untrusted"
http = "{url}"
{common}

[[probe]]
name = "echo"
tcp = "127.0.0.1:{port}"
send = "PING\n"
expect = "PING"
{common}

[[probe]]
name = "wrong-reply"
tcp = "127.0.0.1:{port}"
send = "PING\n"
expect = "PONG"
{common}
"#,
            ca = ca.display()
        ))
        .start();
    let records = salve.wait_for_audit("the untrusted and wrong-reply probes to fire", |r| {
        !probe_events(r, "untrusted", "firing").is_empty()
            && !probe_events(r, "wrong-reply", "firing").is_empty()
    });
    let class =
        |probe: &str| s(&probe_events(&records, probe, "firing")[0]["event"]["labels"]["failure"]);
    assert_eq!(class("untrusted"), "tls");
    assert_eq!(class("wrong-reply"), "body");
    wait_until("the trusted and echo probes to have checked", || {
        let up = |p: &str| salve.metric(&format!("salve_probe_up{{probe=\"{p}\"}}"));
        (up("trusted") == Some(1.0) && up("echo") == Some(1.0)).then_some(())
    });
    let records = salve.audit_json();
    assert!(
        probe_events(&records, "trusted", "firing").is_empty(),
        "{records:#?}"
    );
    assert!(
        probe_events(&records, "echo", "firing").is_empty(),
        "{records:#?}"
    );
}

/// A network namespace of the test's own, with only loopback up and a resolver that
/// points at a loopback port nobody serves: every name fails to resolve there, and
/// nothing leaves the machine. Removed when dropped.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        let name = format!("salve-dns-{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("ip is missing: install Debian's iproute2 ({e})"));
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .output();
        ip(&["netns", "add", &name]);
        let etc = PathBuf::from("/etc/netns").join(&name);
        std::fs::create_dir_all(&etc).expect("create /etc/netns/NAME");
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n")
            .expect("write resolv.conf");
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        Netns { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

#[test]
fn a_name_that_does_not_resolve_is_a_dns_failure() {
    let netns = Netns::new();
    let salve = Salve::builder()
        .config(
            "[[probe]]\nname = \"web\"\nhttp = \"http://no-such-host.invalid/\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nfailure_threshold = 1\n\n[[probe]]\nname = \"db\"\ntcp = \"no-such-host.invalid:5432\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nfailure_threshold = 1\n",
        )
        .write();
    let log = std::fs::File::create(salve.dir().join("netns.log")).expect("log");
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &netns.name, crate::support::bin(), "serve"])
        .arg("--config")
        .arg(salve.config_path())
        .arg("--rules")
        .arg(salve.rules_dir())
        .arg("--data-dir")
        .arg(salve.data_dir())
        .args(["--listen", "127.0.0.1:9095"])
        .stderr(log)
        .spawn()
        .expect("start salve in the namespace");
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        salve.wait_for_audit("both probes to fire", |r| {
            !probe_events(r, "web", "firing").is_empty()
                && !probe_events(r, "db", "firing").is_empty()
        })
    }));
    let _ = child.kill();
    let _ = child.wait();
    let records = found.unwrap_or_else(|_| {
        panic!(
            "salve in the namespace:\n{}",
            std::fs::read_to_string(salve.dir().join("netns.log")).unwrap_or_default()
        )
    });
    for probe in ["web", "db"] {
        let event = &probe_events(&records, probe, "firing")[0]["event"];
        assert_eq!(event["labels"]["failure"], "dns", "{probe}: {event:#}");
    }
}
