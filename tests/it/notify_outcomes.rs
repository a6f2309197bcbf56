//! Notifications about what salve did: a failing action reported to the outcome channel
//! (and a failing report not reported again), an action a stop interrupted reported at
//! the next start, and a channel that keeps failing opening its breaker.

use crate::notify_support::{hmac_hex, stable, Receiver, Reply, SECRET};
use crate::support::{native, of_kind, s, wait_until, Salve};
use serde_json::json;

#[test]
fn a_channel_that_keeps_failing_opens_its_breaker() {
    let rejecting = Receiver::start(&[Reply::Status(400); 10]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[policy]
breaker_failures = 2

[notify.rejecting]
type = "webhook"
url = "{url}"
"#,
            url = rejecting.url("/hook"),
        ))
        .rule(
            "tell",
            r#"
const MATCH = `alertname="Loud"`;

fn plan(event) {
    [webhook("rejecting", "about " + event.labels.host)]
}
"#,
        )
        .start();
    for (n, host) in ["a", "b", "c"].into_iter().enumerate() {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Loud"), ("host", host)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        salve.wait_settled(n + 1);
    }
    let records = salve.wait_settled(3);
    assert_eq!(
        crate::support::decisions(&records),
        [
            "tell: notify notify:rejecting -> execute",
            "tell: notify notify:rejecting -> execute",
            "tell: notify notify:rejecting -> suppress (circuit_open)",
        ]
    );
    assert_eq!(rejecting.requests().len(), 2);
}

#[test]
fn a_failing_action_is_reported_to_the_outcome_channel_and_a_failing_report_stops_there() {
    let ticketing = Receiver::start(&[]);
    let rejecting = Receiver::start(&[Reply::Status(400); 10]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[policy]
breaker_failures = 2

[exec.broken]
argv = ["false"]

[notify.ticketing]
type = "webhook"
url = "{ticketing}"
secret_env = "HOOK_SECRET"

[notify.rejecting]
type = "webhook"
url = "{rejecting}"

[[on_outcome]]
when = ["failed", "circuit_open"]
notify = "ticketing"

[[on_outcome]]
when = ["failed"]
notify = "rejecting"
actions = ["exec"]
"#,
            ticketing = ticketing.url("/hook"),
            rejecting = rejecting.url("/hook"),
        ))
        .env("HOOK_SECRET", SECRET)
        .rule(
            "heal",
            r#"
const MATCH = `alertname="Broken"`;

fn plan(event) {
    [exec("broken")]
}
"#,
        )
        .start();
    for (n, host) in ["a", "b"].into_iter().enumerate() {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Broken"), ("host", host)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        // The exec, then a message to each outcome channel.
        salve.wait_for_audit("the failure and both reports", |records| {
            of_kind(records, "outcome").len() >= 3 * (n + 1)
        });
    }
    let records = salve.wait_settled(2);
    assert_eq!(
        crate::support::decisions(&records),
        [
            "heal: exec exec:broken -> execute",
            "on_outcome/ticketing: notify notify:ticketing -> execute",
            "on_outcome/rejecting: notify notify:rejecting -> execute",
            "heal: exec exec:broken -> execute",
            "on_outcome/ticketing: notify notify:ticketing -> execute",
            "on_outcome/rejecting: notify notify:rejecting -> execute",
        ],
        "{}",
        salve.logs()
    );
    // The rejected reports failed, and nothing reported on them.
    assert_eq!(of_kind(&records, "outcome").len(), 6);
    assert_eq!(rejecting.requests().len(), 2);

    let hooks = ticketing.requests();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let mut texts = Vec::new();
    for (hook, when) in hooks.iter().zip(["failed", "circuit_open"]) {
        assert_eq!(
            hook.headers["x-salve-signature"],
            format!("sha256={}", hmac_hex(SECRET.as_bytes(), &hook.body))
        );
        let document = stable(hook.json());
        let report = &document["report"];
        assert_eq!(report["when"], when, "{document:#}");
        assert_eq!(report["decision"]["rule"], "heal");
        assert_eq!(report["decision"]["target"], "exec:broken");
        assert_eq!(report["outcome"]["outcome"], "failed");
        assert_eq!(document["decision"]["rule"], "on_outcome/ticketing");
        assert_eq!(
            document["intent"]["params"],
            json!({ "via": "on_outcome", "when": when, "reports": hook.json()["report"]["decision"]["id"] })
        );
        assert_eq!(document["event"]["labels"]["alertname"], "Broken");
        texts.push(s(&document["text"]));
    }
    let error = s(&stable(hooks[0].json())["report"]["outcome"]["error"]);
    assert_eq!(
        texts,
        [
            format!("salve could not exec exec:broken: {error} (rule heal)\nAlert: [FIRING] Broken\nhost=a"),
            format!("salve stopped trying to exec exec:broken: it failed too many times in a row and its circuit breaker is open; last error: {error} (rule heal)\nAlert: [FIRING] Broken\nhost=b"),
        ],
        "{texts:#?}"
    );
}

#[test]
fn an_action_interrupted_by_a_stop_is_reported_at_the_next_start_and_not_run_again() {
    let oncall = Receiver::start(&[]);
    let mut salve = Salve::builder()
        .config(&format!(
            r#"
[exec.drain]
argv = ["/bin/sh", "-c", 'echo started >> "{{dir}}/started.txt"; sleep 5']

[notify.oncall]
type = "webhook"
url = "{url}"

[[on_outcome]]
when = ["abandoned"]
notify = "oncall"
"#,
            url = oncall.url("/hook"),
        ))
        .rule(
            "drain",
            r#"
const MATCH = `alertname="NodeDraining"`;

fn plan(event) {
    [exec("drain")]
}
"#,
        )
        .start();
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "NodeDraining"), ("node", "worker-3")]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    wait_until("the command to start", || {
        (salve.lines("started.txt") == ["started"]).then_some(())
    });
    salve.kill9();
    assert!(oncall.requests().is_empty());

    salve.start();
    let records = salve.wait_for_audit("the interrupted action and its report", |records| {
        of_kind(records, "outcome").len() >= 2
    });
    assert_eq!(
        crate::support::decisions(&records),
        [
            "drain: exec exec:drain -> execute",
            "on_outcome/oncall: notify notify:oncall -> execute",
        ],
        "{}",
        salve.logs()
    );
    let hooks = oncall.requests();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let document = stable(hooks[0].json());
    assert_eq!(document["report"]["when"], "abandoned", "{document:#}");
    assert_eq!(document["report"]["outcome"]["outcome"], "abandoned");
    assert_eq!(document["report"]["decision"]["target"], "exec:drain");
    assert_eq!(document["event"]["labels"]["node"], "worker-3");
    assert_eq!(
        s(&document["text"]),
        "salve stopped in the middle of exec on exec:drain and will not repeat it: check whether it took effect (rule drain)\nAlert: [FIRING] NodeDraining\nnode=worker-3"
    );
    assert_eq!(
        salve.metric(r#"salve_actions_total{action="exec",outcome="abandoned"}"#),
        Some(1.0),
        "{}",
        salve.metrics()
    );
    // Not run again, and not reported again by a further restart.
    salve.stop();
    salve.start();
    // What a stop left open is settled (recorded, and any report decided) before salve
    // is ready, and settled means each execute decided then has its outcome: a run or
    // a report made again at this start has happened by the time this returns.
    salve.wait_settled(1);
    assert_eq!(salve.lines("started.txt"), ["started"]);
    assert_eq!(oncall.requests().len(), 1);
}
