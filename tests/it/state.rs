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
        &serde_json::json!({"target": "exec:breaks", "what": "cooldown", "reason": "x"}),
    );
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(
        refused.body["detail"]["accepted"],
        serde_json::json!(["breaker"])
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
