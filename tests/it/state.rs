//! `GET /api/v1/state`: what would stop salve acting next, with when each clears.

use crate::support::{native, of_kind, wait_until, Salve};
use serde_json::Value;

const CONFIG: &str = r#"
[policy]
breaker_failures = 1
breaker_open_for = "10m"

[limits]
exec = "3 per 1h"

[exec.breaks]
argv = ["/bin/false"]
"#;

const RULE: &str = r#"
const MATCH = `alertname="Broken"`;
const LIMIT = "1 per 1h per target";
const COOLDOWN = "5m";
fn plan(event) { [exec("breaks")] }
"#;

#[test]
fn the_state_shows_the_breaker_cooldown_limit_and_budget_an_action_left_with_when_each_clears() {
    let salve = Salve::builder()
        .config(CONFIG)
        .rule("broken", RULE)
        .rule(
            "careful",
            "const MATCH = `alertname=\"Never\"`;\nconst DRY_RUN = true;\nfn plan(event) { [] }\n",
        )
        .start();
    let reply = salve.post_json("/api/v1/events", &native(&[("alertname", "Broken")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let acted = of_kind(&records, "outcome")[0]["at"].clone();
    // The outcome is on disk a moment before it is in the state it folds into.
    let state = wait_until("the failed outcome in the state", || {
        let state = salve.get("/api/v1/state");
        assert_eq!(state.status, 200, "{:?}", state.body);
        (state.body["breakers"][0]["open"] == true).then_some(state.body)
    });
    let s: &Value = &state;
    assert_eq!(s["leader"], true);
    assert_eq!(s["dry_run"], false);
    assert_eq!(s["rules_in_dry_run"], serde_json::json!(["careful"]));
    assert_eq!(s["approvals_pending"], 0);

    let breaker = &s["breakers"][0];
    assert_eq!(breaker["target"], "exec:breaks", "{s:#}");
    assert_eq!(breaker["open"], true);
    assert_eq!(breaker["consecutive_failures"], 1);
    let opened = crate::docker_support::time(&breaker["opened_at"]);
    let closes = crate::docker_support::time(&breaker["closes_at"]);
    assert_eq!(closes - opened, chrono::Duration::minutes(10));

    let cooldown = &s["cooldowns"][0];
    assert_eq!(cooldown["target"], "exec:breaks");
    assert_eq!(cooldown["rule"], "broken");
    let acted_at = crate::docker_support::time(&cooldown["acted_at"]);
    assert_eq!(
        crate::docker_support::time(&cooldown["clears_at"]) - acted_at,
        chrono::Duration::minutes(5)
    );
    assert!(acted_at <= crate::docker_support::time(&acted));

    let limit = &s["limits"][0];
    assert_eq!(
        (
            &limit["rule"],
            &limit["target"],
            &limit["used"],
            &limit["left"]
        ),
        (
            &"broken".into(),
            &"exec:breaks".into(),
            &1.into(),
            &0.into()
        ),
        "{s:#}"
    );
    assert!(
        limit["clears_at"].is_string(),
        "a spent limit says when it frees"
    );
    let exec_budget = s["budget"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["action"] == "exec"))
        .cloned()
        .expect("the exec budget");
    assert_eq!(
        (&exec_budget["used"], &exec_budget["left"]),
        (&1.into(), &2.into())
    );
    assert_eq!(exec_budget["limit"], "3 per 1h");
}

#[test]
fn a_breaker_closed_by_hand_is_recorded_and_the_next_alert_acts() {
    let salve = Salve::builder()
        .config(CONFIG)
        .rule(
            "broken",
            "const MATCH = `alertname=\"Broken\"`;\nfn plan(event) { [exec(\"breaks\")] }\n",
        )
        .start();
    let fire = |n: &str| {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Broken"), ("n", n)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    };
    fire("1");
    salve.wait_settled(1);
    wait_until("the breaker open in the state", || {
        (salve.get("/api/v1/state").body["breakers"][0]["open"] == true).then_some(())
    });
    fire("2");
    let records = salve.wait_settled(2);
    assert_eq!(of_kind(&records, "decision")[1]["reason"], "circuit_open");

    let refused = salve.post_json(
        "/api/v1/state/reset",
        &serde_json::json!({"target": "exec:breaks", "what": "everything", "reason": "x"}),
    );
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.body["detail"]["accepted"],
        serde_json::json!(["breaker", "cooldown", "limit"])
    );
    let unexplained = salve.post_json(
        "/api/v1/state/reset",
        &serde_json::json!({"target": "exec:breaks", "what": "breaker", "reason": " "}),
    );
    assert_eq!(unexplained.status, 422, "{:?}", unexplained.body);

    let closed = salve.post_json(
        "/api/v1/state/reset",
        &serde_json::json!({"target": "exec:breaks", "what": "breaker", "reason": "the disk is replaced"}),
    );
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["breakers"], serde_json::json!([]));
    fire("3");
    let records = salve.wait_settled(3);
    let reset = of_kind(&records, "state_reset");
    assert_eq!(reset.len(), 1, "{records:#?}");
    assert_eq!(reset[0]["target"], "exec:breaks");
    assert_eq!(reset[0]["reason"], "the disk is replaced");
    assert_eq!(reset[0]["by"], "anonymous");
    assert_eq!(of_kind(&records, "decision")[2]["decision"], "execute");
}

const WORKS: &str = r#"
[limits]
exec = "10 per 1h"

[exec.a]
argv = ["/bin/true"]

[exec.b]
argv = ["/bin/true"]
"#;

/// Sends one alert `Works` with label `n`, for target `t` (`a` or `b`).
fn fire(salve: &Salve, t: &str, n: &str) {
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Works"), ("t", t), ("n", n)]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

fn reset(salve: &Salve, target: &str, what: &str, reason: &str) -> Value {
    let reply = salve.post_json(
        "/api/v1/state/reset",
        &serde_json::json!({"target": target, "what": what, "reason": reason}),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// The global budget of `exec` in a state.
fn exec_budget(state: &Value) -> Value {
    state["budget"]
        .as_array()
        .and_then(|budgets| budgets.iter().find(|b| b["action"] == "exec"))
        .cloned()
        .unwrap_or_default()
}

/// The decisions' verdicts in order: `execute` or the reason.
fn verdicts(records: &[Value]) -> Vec<String> {
    of_kind(records, "decision")
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or("execute").to_string())
        .collect()
}

fn rule(terms: &str) -> String {
    format!(
        "const MATCH = `alertname=\"Works\"`;\n{terms}\n\
         fn plan(event) {{ if event.labels.t == \"a\" {{ [exec(\"a\")] }} else {{ [exec(\"b\")] }} }}\n"
    )
}

#[test]
fn a_cooldown_reset_by_hand_is_recorded_and_the_next_alert_acts() {
    let salve = Salve::builder()
        .config(WORKS)
        .rule("works", &rule("const COOLDOWN = \"1h\";"))
        .start();
    fire(&salve, "a", "1");
    salve.wait_settled(1);
    fire(&salve, "a", "2");
    let records = salve.wait_settled(2);
    assert_eq!(verdicts(&records), ["execute", "cooldown"]);
    assert_eq!(
        salve.get("/api/v1/state").body["cooldowns"][0]["target"],
        "exec:a"
    );

    let state = reset(&salve, "exec:a", "cooldown", "the fix is deployed");
    assert_eq!(state["cooldowns"], serde_json::json!([]), "{state:#}");
    // The budget is not a target's: what ran still counts against it.
    assert_eq!(exec_budget(&state)["used"], 1, "{state:#}");
    fire(&salve, "a", "3");
    let records = salve.wait_settled(3);
    assert_eq!(verdicts(&records), ["execute", "cooldown", "execute"]);
    let reset = of_kind(&records, "state_reset");
    assert_eq!(reset.len(), 1, "{records:#?}");
    assert_eq!(reset[0]["target"], "exec:a");
    assert_eq!(reset[0]["what"], "cooldown");
    assert_eq!(reset[0]["reason"], "the fix is deployed");
    assert_eq!(reset[0]["by"], "anonymous");
    // The one that acted after the reset starts a cooldown of its own.
    fire(&salve, "a", "4");
    let records = salve.wait_settled(4);
    assert_eq!(verdicts(&records)[3], "cooldown");
}

#[test]
fn a_limit_reset_by_hand_forgets_only_what_ran_on_that_target() {
    let salve = Salve::builder()
        .config(WORKS)
        .rule("works", &rule("const LIMIT = \"2 per 1h\";"))
        .start();
    fire(&salve, "a", "1");
    salve.wait_settled(1);
    fire(&salve, "b", "2");
    salve.wait_settled(2);
    fire(&salve, "a", "3");
    let records = salve.wait_settled(3);
    assert_eq!(verdicts(&records), ["execute", "execute", "rate_limit"]);
    let limits = &salve.get("/api/v1/state").body["limits"];
    assert_eq!(limits[0]["used"], 2, "{limits:#}");

    let state = reset(&salve, "exec:a", "limit", "a was replaced");
    // The rule's limit counts across its targets: b's execution still does.
    assert_eq!(state["limits"][0]["used"], 1, "{state:#}");
    assert_eq!(state["limits"][0]["left"], 1, "{state:#}");
    assert_eq!(exec_budget(&state)["used"], 2, "{state:#}");
    fire(&salve, "a", "4");
    let records = salve.wait_settled(4);
    assert_eq!(verdicts(&records)[3], "execute");
    let reset = of_kind(&records, "state_reset");
    assert_eq!(reset.len(), 1, "{records:#?}");
    assert_eq!(reset[0]["what"], "limit");
    assert_eq!(reset[0]["reason"], "a was replaced");
    assert_eq!(reset[0]["by"], "anonymous");
    // b's and the new one fill the limit again.
    fire(&salve, "a", "5");
    let records = salve.wait_settled(5);
    assert_eq!(verdicts(&records)[4], "rate_limit");
}

#[test]
fn a_reset_cooldown_and_limit_still_hold_after_a_restart_over_a_checkpoint() {
    let mut salve = Salve::builder()
        .config(WORKS)
        .rule(
            "works",
            &rule("const LIMIT = \"1 per 1h per target\";\nconst COOLDOWN = \"1h\";"),
        )
        .start();
    fire(&salve, "a", "1");
    salve.wait_settled(1);
    fire(&salve, "a", "2");
    let records = salve.wait_settled(2);
    assert_eq!(verdicts(&records), ["execute", "rate_limit"]);
    let state = reset(&salve, "exec:a", "limit", "counted afresh");
    assert_eq!(state["limits"], serde_json::json!([]), "{state:#}");
    assert_eq!(state["cooldowns"][0]["target"], "exec:a", "{state:#}");
    let state = reset(&salve, "exec:a", "cooldown", "cleared");
    assert_eq!(state["cooldowns"], serde_json::json!([]), "{state:#}");

    // A stop writes a checkpoint holding everything, so the next start reads no trail:
    // the resets hold only if the checkpoint carries them.
    salve.stop();
    let checkpoint = salve.data_dir().join("state.checkpoint");
    assert!(checkpoint.exists(), "a checkpoint at the stop");
    salve.start();
    let state = salve.get("/api/v1/state").body;
    assert_eq!(state["limits"], serde_json::json!([]), "{state:#}");
    assert_eq!(state["cooldowns"], serde_json::json!([]), "{state:#}");
    assert_eq!(exec_budget(&state)["used"], 1, "{state:#}");
    fire(&salve, "a", "3");
    let records = salve.wait_settled(3);
    assert_eq!(verdicts(&records), ["execute", "rate_limit", "execute"]);
}
