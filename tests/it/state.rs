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
