//! Human approval, on the real binary: an action that asks a person runs only on their
//! yes, once, decided again under the whole policy at that moment; no answer means no;
//! the alert resolving cancels the question, a reload that changes the rule voids it,
//! and a kill -9 in between loses nothing.

use crate::support::{marker, of_kind, wait_until, Salve};
use serde_json::{json, Value};

const STARTS_AT: &str = "2026-12-07T03:00:00Z";

/// `[exec.mark]`; the single token (an admin, but in no group), the approvers alice
/// (of `sre`) and carol (of no group), the viewer bob; and the group `sre`.
fn config(extra: &str) -> String {
    let identity = |name: &str, role: &str| {
        format!(
            "[[api.identity]]\nname = \"{name}\"\ntoken_env = \"{}_TOKEN\"\nrole = \"{role}\"\n",
            name.to_uppercase()
        )
    };
    format!(
        "{}\n[api]\nbearer_token_env = \"ADMIN_TOKEN\"\n{}{}{}\n[approvals.sre]\nttl = \"10m\"\nidentities = [\"alice\"]\n{extra}",
        marker("mark", "marks"),
        identity("alice", "approver"),
        identity("carol", "approver"),
        identity("bob", "viewer"),
    )
}

pub fn builder(approval: &str, extra: &str) -> crate::support::Builder {
    Salve::builder()
        .config(&config(extra))
        .rule("failover", &rule(approval))
        .env("ADMIN_TOKEN", "admin-token")
        .env("ALICE_TOKEN", "alice-token")
        .env("CAROL_TOKEN", "carol-token")
        .env("BOB_TOKEN", "bob-token")
        .bearer("admin-token")
}

/// `DbDown` marks its host, asking `sre` first (`.approval(...)` as given).
pub fn rule(approval: &str) -> String {
    format!(
        r#"
const MATCH = `alertname="DbDown"`;

fn plan(event) {{
    [exec("mark", [event.labels.host]){approval}]
}}
"#
    )
}

fn salve_asking(approval: &str, extra: &str) -> Salve {
    builder(approval, extra).start()
}

fn alert(status: &str) -> Value {
    json!({
        "labels": { "alertname": "DbDown", "host": "db-1" },
        "status": status,
        "starts_at": STARTS_AT,
    })
}

pub fn send(salve: &Salve, status: &str) {
    let reply = salve.post_json("/api/v1/events", &alert(status));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// Sends the alert and waits for its approval to be asked; returns the approval's id.
pub fn asked(salve: &Salve) -> String {
    send(salve, "firing");
    let records = salve.wait_for_audit("the approval request", |r| {
        !of_kind(r, "approval_requested").is_empty()
    });
    let request = of_kind(&records, "approval_requested")[0];
    let decision = of_kind(&records, "decision")[0];
    assert_eq!(decision["decision"], "suppress", "{decision:#}");
    assert_eq!(decision["reason"], "awaiting_approval");
    assert_eq!(decision["approval"], request["id"]);
    assert_eq!(request["group"], "sre");
    assert_eq!(request["rule"], "failover");
    assert_eq!(request["action"], "exec");
    assert_eq!(request["target"], "exec:mark");
    request["id"].as_str().expect("an id").to_string()
}

/// Alice's answer.
pub fn answer(salve: &Salve, id: &str, choice: &str, comment: &str) -> crate::support::Reply {
    answer_as(salve, "alice-token", id, choice, comment)
}

fn answer_as(
    salve: &Salve,
    token: &str,
    id: &str,
    choice: &str,
    comment: &str,
) -> crate::support::Reply {
    let url = salve.url(&format!("/api/v1/approvals/{id}/{choice}"));
    salve.send(
        salve
            .client()
            .post(url)
            .bearer_auth(token)
            .json(&json!({ "comment": comment })),
    )
}

pub fn approval(salve: &Salve, id: &str) -> Value {
    let reply = salve.get(&format!("/api/v1/approvals/{id}"));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

pub fn wait_state(salve: &Salve, id: &str, state: &str) -> Value {
    wait_until(&format!("approval {id} to be {state}"), || {
        Some(approval(salve, id)).filter(|a| a["state"] == state)
    })
}

pub fn marks(salve: &Salve) -> Vec<String> {
    salve.lines("marks")
}

/// The decisions that ran the marking, with their outcomes in.
fn executed_marks(records: &[Value]) -> Vec<&Value> {
    of_kind(records, "decision")
        .into_iter()
        .filter(|d| d["target"] == "exec:mark" && d["decision"] == "execute")
        .collect()
}

#[test]
fn an_approved_action_runs_once_and_names_its_approval() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    let pending = salve.get("/api/v1/approvals?state=pending");
    assert_eq!(pending.status, 200);
    assert_eq!(
        pending.body.as_array().map(Vec::len),
        Some(1),
        "{:?}",
        pending.body
    );
    assert_eq!(pending.body[0]["id"], id.as_str());
    assert_eq!(pending.body[0]["alertname"], "DbDown");
    // The gauge is counted once a second.
    wait_until("salve_approvals_pending 1", || {
        (salve.metric("salve_approvals_pending") == Some(1.0)).then_some(())
    });
    assert!(marks(&salve).is_empty(), "nothing runs before the yes");

    let yes = answer(&salve, &id, "approve", "go ahead");
    assert_eq!(yes.status, 200, "{:?}", yes.body);
    assert_eq!(yes.body["state"], "approved");
    assert_eq!(yes.body["decided_by"]["id"], "alice");
    assert_eq!(yes.body["comment"], "go ahead");

    let records = salve.wait_for_audit("the approved action and its outcome", |r| {
        executed_marks(r).len() == 1 && !of_kind(r, "outcome").is_empty()
    });
    let run = executed_marks(&records)[0];
    assert_eq!(run["approval"], id.as_str(), "{run:#}");
    let done = wait_state(&salve, &id, "executed");
    assert_eq!(done["decision_id"], run["id"]);
    assert_eq!(marks(&salve), ["db-1"]);

    let again = answer(&salve, &id, "approve", "");
    assert_eq!(again.status, 409, "{:?}", again.body);
    assert_eq!(again.body["detail"]["decided_by"]["id"], "alice");
    assert!(
        again.body["detail"]["decided_at"].is_string(),
        "{:?}",
        again.body
    );

    // The alert sent again in the same episode acts no more and asks no more.
    send(&salve, "firing");
    let records = salve.wait_for_audit("the re-send decided", |r| {
        of_kind(r, "evaluated").len() >= 3
    });
    assert_eq!(executed_marks(&records).len(), 1);
    assert_eq!(of_kind(&records, "approval_requested").len(), 1);
    assert_eq!(marks(&salve), ["db-1"]);
    let decided = of_kind(&records, "approval_decided");
    assert_eq!(decided.len(), 1, "{decided:#?}");
    assert_eq!(decided[0]["state"], "approved");
    assert_eq!(decided[0]["actor"]["via"], "api");
    assert_eq!(decided[0]["actor"]["id"], "alice");
    wait_until("salve_approvals_pending 0", || {
        (salve.metric("salve_approvals_pending") == Some(0.0)).then_some(())
    });
    assert_eq!(
        salve.metric("salve_approval_decisions_total{state=\"approved\"}"),
        Some(1.0)
    );
}

#[test]
fn a_denied_action_does_not_run_and_is_not_asked_again_in_the_episode() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    let no = answer(&salve, &id, "deny", "not during the release");
    assert_eq!(no.status, 200, "{:?}", no.body);
    assert_eq!(no.body["state"], "denied");
    send(&salve, "firing");
    let records =
        salve.wait_for_audit("the re-send decided", |r| of_kind(r, "decision").len() >= 2);
    let second = of_kind(&records, "decision")[1];
    assert_eq!(second["reason"], "approval_denied", "{second:#}");
    assert_eq!(of_kind(&records, "approval_requested").len(), 1);
    assert!(marks(&salve).is_empty());
    assert_eq!(answer(&salve, &id, "approve", "").status, 409);
}

#[test]
fn nobody_answering_in_time_means_no() {
    let salve = salve_asking(".approval(\"sre\", \"2s\")", "");
    let id = asked(&salve);
    let records = salve.wait_for_audit("the approval to expire", |r| {
        of_kind(r, "approval_decided")
            .iter()
            .any(|d| d["state"] == "expired")
    });
    let expired = of_kind(&records, "approval_decided")[0];
    assert_eq!(expired["actor"]["via"], "salve");
    assert!(expired["waited_seconds"].as_f64().is_some_and(|s| s >= 2.0));
    let late = answer(&salve, &id, "approve", "");
    assert_eq!(late.status, 410, "{:?}", late.body);
    send(&salve, "firing");
    let records =
        salve.wait_for_audit("the re-send decided", |r| of_kind(r, "decision").len() >= 2);
    assert_eq!(
        of_kind(&records, "decision")[1]["reason"],
        "approval_expired"
    );
    assert!(marks(&salve).is_empty());
}

#[test]
fn the_alert_resolving_cancels_the_question() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    send(&salve, "resolved");
    wait_state(&salve, &id, "cancelled");
    let late = answer(&salve, &id, "approve", "");
    assert_eq!(late.status, 409, "{:?}", late.body);
    assert_eq!(late.body["detail"]["state"], "cancelled");
    assert!(marks(&salve).is_empty());
}

#[test]
fn a_reload_that_changes_the_rule_invalidates_the_question() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    salve.write_rule("failover", &rule(".approval(\"sre\", \"5m\")"));
    let reloaded = salve.post_json("/-/reload", &json!({}));
    assert_eq!(reloaded.status, 200, "{:?}", reloaded.body);
    let gone = wait_state(&salve, &id, "invalidated");
    assert_eq!(gone["decided_by"]["via"], "salve");
    assert_eq!(answer(&salve, &id, "approve", "").status, 409);
    assert!(marks(&salve).is_empty());
}

#[test]
fn a_yes_while_a_window_opened_meanwhile_is_held_back_by_policy() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    let window = salve.post_json(
        "/api/v1/maintenance",
        &json!({
            "matchers": "host=\"db-1\"",
            "ends_at": "2099-01-01T00:00:00Z",
            "created_by": "ops",
            "comment": "failover drill"
        }),
    );
    assert_eq!(window.status, 201, "{:?}", window.body);
    let yes = answer(&salve, &id, "approve", "");
    assert_eq!(yes.status, 200, "{:?}", yes.body);
    let held = wait_state(&salve, &id, "suppressed");
    assert!(
        held["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("maintenance")),
        "{held:#}"
    );
    let records = salve.audit_json();
    let last = of_kind(&records, "decision")
        .last()
        .cloned()
        .expect("decisions");
    assert_eq!(last["reason"], "maintenance");
    assert_eq!(last["approval"], id.as_str());
    assert!(
        marks(&salve).is_empty(),
        "an approval never bypasses policy"
    );
}

#[test]
fn a_kill_between_the_question_and_the_answer_loses_nothing() {
    let mut salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    salve.kill9();
    salve.start();
    assert_eq!(approval(&salve, &id)["state"], "pending");
    // And through a checkpoint: a stop writes one, the start reads it, not the trail.
    salve.stop();
    salve.start();
    assert_eq!(approval(&salve, &id)["state"], "pending");
    let yes = answer(&salve, &id, "approve", "");
    assert_eq!(yes.status, 200, "{:?}", yes.body);
    wait_state(&salve, &id, "executed");
    let records = salve.wait_for_audit("the outcome", |r| !of_kind(r, "outcome").is_empty());
    assert_eq!(executed_marks(&records).len(), 1);
    assert_eq!(marks(&salve), ["db-1"]);
}

#[test]
fn a_delay_counts_from_the_yes() {
    let salve = salve_asking(".after(\"3s\").approval(\"sre\")", "");
    let id = asked(&salve);
    let yes = answer(&salve, &id, "approve", "");
    assert_eq!(yes.status, 200, "{:?}", yes.body);
    let approved_at = crate::docker_support::time(&yes.body["decided_at"]);
    let records = salve.wait_for_audit("the delayed action", |r| executed_marks(r).len() == 1);
    let run = executed_marks(&records)[0];
    let ran_at = crate::docker_support::time(&run["at"]);
    assert!(
        ran_at >= approved_at + chrono::Duration::seconds(3),
        "decided at {ran_at}, approved at {approved_at}"
    );
}

#[test]
fn config_requires_approval_for_a_kind_of_action_whatever_the_rule_says() {
    let salve = salve_asking("", "[approvals]\nrequire = [\"exec\"]\n");
    let id = asked(&salve);
    assert_eq!(approval(&salve, &id)["group"], "sre");
    assert!(marks(&salve).is_empty());
}

#[test]
fn dry_run_says_it_would_ask() {
    let salve = builder(".approval(\"sre\")", "").dry_run().start();
    send(&salve, "firing");
    let records = salve.wait_settled(1);
    let decision = of_kind(&records, "decision")[0];
    assert_eq!(decision["reason"], "dry_run");
    assert!(
        decision["detail"]
            .as_str()
            .is_some_and(|d| d.ends_with("would ask sre for approval")),
        "{decision:#}"
    );
    assert!(of_kind(&records, "approval_requested").is_empty());
}

#[test]
fn plan_says_whom_it_would_ask_and_a_rule_test_can_expect_it() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let planned = salve.post_json("/api/v1/plan", &alert("firing"));
    assert_eq!(planned.status, 200, "{:?}", planned.body);
    let decision = &planned.body["decisions"][0];
    assert_eq!(decision["reason"], "awaiting_approval", "{decision:#}");
    assert!(
        decision["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("would ask sre for approval")),
        "{decision:#}"
    );
    assert!(
        salve.get("/api/v1/approvals").body == json!([]),
        "a plan asks nobody"
    );
    std::fs::write(
        salve.rules_dir().join("failover.test.toml"),
        r#"
[[case]]
name = "a failover waits for a person"
events = [{ labels = { alertname = "DbDown", host = "db-1" } }]
expect = [{ action = "exec", target = "exec:mark", decision = "suppress", reason = "awaiting_approval" }]
"#,
    )
    .expect("write the rule's test");
    let out = salve.cli(&["test", "--config", "salve.toml", "--rules", "rules"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn only_the_people_of_the_group_may_answer() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    let viewer = answer_as(&salve, "bob-token", &id, "approve", "");
    assert_eq!(viewer.status, 403, "a viewer: {:?}", viewer.body);
    let outsider = answer_as(&salve, "carol-token", &id, "approve", "");
    assert_eq!(
        outsider.status, 403,
        "an approver of no group: {:?}",
        outsider.body
    );
    let admin = answer_as(&salve, "admin-token", &id, "deny", "");
    assert_eq!(
        admin.status, 403,
        "an admin not in the group: {:?}",
        admin.body
    );
    assert_eq!(approval(&salve, &id)["state"], "pending");
    assert_eq!(answer(&salve, &id, "approve", "").status, 200);
}

#[test]
fn the_cli_lists_and_answers_as_the_identity_its_token_names() {
    let salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    let url = salve.url("");
    std::fs::write(salve.dir().join("bob"), "bob-token\n").expect("write bob's token");
    std::fs::write(salve.dir().join("alice"), "alice-token\n").expect("write alice's token");
    let as_who = |who: &str, args: &[&str]| {
        let mut all = vec!["approvals"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--url", &url, "--token-file", who]);
        salve.cli(&all)
    };
    let listed = as_who("bob", &["list", "--state", "pending"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{listed:?}");
    assert!(text.contains(&id) && text.contains("pending"), "{text}");
    let refused = as_who("bob", &["approve", &id]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("403"),
        "{refused:?}"
    );
    let approved = as_who("alice", &["approve", &id, "--comment", "from the CLI"]);
    assert!(approved.status.success(), "{approved:?}");
    assert!(String::from_utf8_lossy(&approved.stdout).contains("approved"));
    let again = as_who("alice", &["deny", &id]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("409"),
        "{again:?}"
    );
    wait_state(&salve, &id, "executed");
}

/// `salve replay --approvals ANSWERS --json` over the test's trail.
fn replayed(salve: &Salve, answers: &str) -> Value {
    let out = salve.cli(&[
        "replay",
        "--config",
        "salve.toml",
        "--rules",
        "rules",
        "--data-dir",
        "data",
        "--approvals",
        answers,
        "--json",
    ]);
    // Differences exit 3, as diff's do (1 there).
    let differs = out.status.code() == Some(3);
    assert!(out.status.success() || differs, "{out:?}");
    serde_json::from_slice(&out.stdout).expect("replay JSON")
}

#[test]
fn replay_takes_the_recorded_answers_or_assumes_them_all() {
    let mut salve = salve_asking(".approval(\"sre\")", "");
    let id = asked(&salve);
    assert_eq!(answer(&salve, &id, "approve", "").status, 200);
    wait_state(&salve, &id, "executed");
    salve.wait_for_audit("the outcome", |r| !of_kind(r, "outcome").is_empty());
    salve.stop();

    let recorded = replayed(&salve, "recorded");
    assert_eq!(recorded["differences"], json!([]), "{recorded:#}");
    assert_eq!(recorded["summary"]["suppressed"]["awaiting_approval"], 1);

    let denied = replayed(&salve, "denied");
    let kinds: Vec<&str> = denied["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"removed"),
        "the yes is taken away: {denied:#}"
    );
    assert_eq!(denied["summary"]["suppressed"]["approval_denied"], 2);

    let approved = replayed(&salve, "approved");
    let added: Vec<&Value> = approved["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .filter(|d| d["kind"] == "added")
        .collect();
    assert_eq!(
        added.len(),
        1,
        "acted at once, without waiting: {approved:#}"
    );
    let report = salve.cli(&["report", "--data-dir", "data", "--json"]);
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    assert_eq!(report["approvals"]["requested"], 1, "{report:#}");
    assert_eq!(report["approvals"]["decided"], json!({ "approved": 1 }));
    assert!(report["approvals"]["mean_seconds_to_decide"]
        .as_f64()
        .is_some());
    let bad = salve.cli(&["replay", "--data-dir", "data", "--approvals", "maybe"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("recorded, approved, denied"));
}
