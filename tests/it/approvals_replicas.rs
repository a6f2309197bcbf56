//! Approvals across replicas on a real PostgreSQL: two people answering at the same
//! moment on two replicas make exactly one decision and one action; the other is told
//! who decided.

use crate::postgres_support::Postgres;
use crate::support::{of_kind, wait_until, Salve};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Barrier;

const CONFIG: &str = r#"
[store]
postgres_url_env = "SALVE_TEST_PG_URL"
connect_timeout = "1s"
takeover_after = "3s"

[api]
bearer_token_env = "ADMIN_TOKEN"

[[api.identity]]
name = "alice"
token_env = "ALICE_TOKEN"
role = "approver"

[[api.identity]]
name = "dave"
token_env = "DAVE_TOKEN"
role = "approver"

[approvals.sre]
identities = ["alice", "dave"]

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{shared}/marks.txt"', "sh"]
"#;

const FAILOVER: &str = r#"
const MATCH = `alertname="DbDown"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [exec("mark", [event.labels.host]).approval("sre")]
}
"#;

fn replica(pg: &Postgres, shared: &Path) -> Salve {
    Salve::builder()
        .config(&CONFIG.replace("{shared}", &shared.display().to_string()))
        .rule("failover", FAILOVER)
        .env("SALVE_TEST_PG_URL", &pg.url())
        .env("ADMIN_TOKEN", "admin-token")
        .env("ALICE_TOKEN", "alice-token")
        .env("DAVE_TOKEN", "dave-token")
        .bearer("admin-token")
        .start()
}

fn marks(shared: &Path) -> Vec<String> {
    std::fs::read_to_string(shared.join("marks.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn approve_as(salve: &Salve, token: &str, id: &str) -> (u16, Value) {
    let url = salve.url(&format!("/api/v1/approvals/{id}/approve"));
    let reply = salve.send(salve.client().post(url).bearer_auth(token).json(&json!({})));
    (reply.status, reply.body)
}

#[test]
fn two_people_approving_at_once_on_two_replicas_make_one_decision_and_one_action() {
    let pg = Postgres::start();
    let shared = tempfile::tempdir().expect("shared folder");
    let a = replica(&pg, shared.path());
    wait_until("the first replica to take the lead", || {
        (a.metric("salve_leader") == Some(1.0)).then_some(())
    });
    let b = replica(&pg, shared.path());
    let alert = json!({ "labels": { "alertname": "DbDown", "host": "db-1" } });
    assert_eq!(b.post_json("/api/v1/events", &alert).status, 200);
    let id = wait_until("both replicas to know the pending approval", || {
        let on = |salve: &Salve| {
            let listed = salve.get("/api/v1/approvals?state=pending").body;
            listed[0]["id"].as_str().map(str::to_string)
        };
        match (on(&a), on(&b)) {
            (Some(x), Some(y)) if x == y => Some(x),
            _ => None,
        }
    });

    let barrier = Barrier::new(2);
    let (on_a, on_b) = std::thread::scope(|scope| {
        let on_a = scope.spawn(|| {
            barrier.wait();
            approve_as(&a, "alice-token", &id)
        });
        let on_b = scope.spawn(|| {
            barrier.wait();
            approve_as(&b, "dave-token", &id)
        });
        (
            on_a.join().expect("alice's answer"),
            on_b.join().expect("dave's answer"),
        )
    });
    let mut statuses = [on_a.0, on_b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "alice: {on_a:?}\ndave: {on_b:?}");
    let (winner, loser) = if on_a.0 == 200 {
        (&on_a, &on_b)
    } else {
        (&on_b, &on_a)
    };
    assert_eq!(
        loser.1["detail"]["decided_by"]["id"], winner.1["decided_by"]["id"],
        "the one refused is told who decided: {loser:?}"
    );

    wait_until("the one action to run", || {
        (marks(shared.path()) == ["db-1"]).then_some(())
    });
    for salve in [&a, &b] {
        let seen = wait_until("the approval executed on every replica", || {
            Some(salve.get(&format!("/api/v1/approvals/{id}")).body)
                .filter(|v| v["state"] == "executed")
        });
        assert_eq!(seen["decided_by"], winner.1["decided_by"]);
    }
    let records = a.audit_json();
    let executed = of_kind(&records, "decision")
        .into_iter()
        .filter(|d| d["decision"] == "execute")
        .count();
    assert_eq!(executed, 1, "{records:#?}");
    assert_eq!(marks(shared.path()), ["db-1"]);
}
