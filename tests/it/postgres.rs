//! `[store]`: the trail in a real PostgreSQL. What is acknowledged is committed there,
//! the policy is rebuilt from it at start (the data dir holds no trail), the CLI and
//! the API read it, and PostgreSQL going away is a 503 with `Retry-After` and an
//! unready `/-/ready`, never a 200 for something not committed.

use crate::postgres_support::Postgres;
use crate::support::{assert_check_refuses, decisions, native, of_kind, s, wait_until, Salve};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const CONFIG: &str = r#"
[store]
postgres_url_file = "{dir}/postgres-url"
connect_timeout = "1s"

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]
"#;

const LIMITED: &str = r#"
const MATCH = `alertname="Flapping"`;
const LIMIT = "1 per 1h per target";
fn plan(event) { [exec("mark", ["limited"])] }
"#;

/// salve on `pg`, the URL in a file with whitespace around it (as a Secret mounts it).
fn salve_on(pg: &Postgres) -> Salve {
    let mut salve = Salve::builder()
        .config(CONFIG)
        .rule("limited", LIMITED)
        .write();
    std::fs::write(
        salve.dir().join("postgres-url"),
        format!("  {}\n", pg.url()),
    )
    .expect("write the URL file");
    salve.start();
    salve
}

/// Posts one event; its status, `Retry-After` and the ids it acknowledged.
fn post(salve: &Salve, labels: &[(&str, &str)]) -> (u16, Option<String>, Vec<String>) {
    let reply = salve
        .client()
        .post(salve.url("/api/v1/events"))
        .json(&native(labels))
        .send()
        .expect("post");
    let status = reply.status().as_u16();
    let retry_after = reply
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body: Value = reply.json().expect("a JSON answer");
    let ids = body["ids"]
        .as_array()
        .map(|ids| ids.iter().map(s).collect())
        .unwrap_or_default();
    (status, retry_after, ids)
}

#[test]
fn the_trail_and_the_limits_live_in_postgresql_across_restarts() {
    let pg = Postgres::start();
    let mut salve = salve_on(&pg);
    let (status, _, _) = post(&salve, &[("alertname", "Flapping"), ("n", "1")]);
    assert_eq!(status, 200);
    let records = salve.wait_settled(1);
    assert_eq!(
        decisions(&records),
        ["limited: exec exec:mark -> execute"],
        "{records:#?}"
    );
    assert_eq!(salve.lines("marks.txt"), ["limited"]);
    // Nothing of the trail is in the data dir; all of it is in PostgreSQL.
    assert!(!salve.data_dir().join("audit.jsonl").exists());
    assert_eq!(
        pg.query("SELECT count(*) FROM salve_trail WHERE kind = 'decision'"),
        "1"
    );
    assert_eq!(
        pg.query("SELECT record->>'decision' FROM salve_trail WHERE kind = 'decision'"),
        "execute"
    );
    let page = salve.get("/api/v1/audit?kind=outcome");
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(
        page.body.as_array().map(Vec::len),
        Some(1),
        "{:?}",
        page.body
    );
    assert_eq!(page.body[0]["outcome"], "ok");

    // A restart rebuilds the spent limit from PostgreSQL.
    salve.stop();
    salve.start();
    let (status, _, ids) = post(&salve, &[("alertname", "Flapping"), ("n", "2")]);
    assert_eq!(status, 200);
    let records = wait_until("the second alert to be decided", || {
        let records = salve.audit_json();
        let decided = of_kind(&records, "decision")
            .into_iter()
            .any(|d| d["event_id"] == json!(ids[0]));
        decided.then_some(records)
    });
    assert_eq!(
        decisions(&records),
        [
            "limited: exec exec:mark -> execute",
            "limited: exec exec:mark -> suppress (rate_limit)"
        ]
    );
    assert_eq!(salve.lines("marks.txt"), ["limited"]);
}

#[test]
fn postgresql_down_is_a_503_with_retry_after_and_nothing_acknowledged_is_lost() {
    let pg = Postgres::start();
    let salve = salve_on(&pg);
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let (status, _, ids) = post(&salve, &[("alertname", "Before"), ("n", "1")]);
    assert_eq!(status, 200);
    acknowledged.extend(ids);

    pg.halt();
    let (status, retry_after, ids) = post(&salve, &[("alertname", "During"), ("n", "2")]);
    assert_eq!(
        status, 503,
        "an event PostgreSQL did not commit was acknowledged"
    );
    assert!(ids.is_empty());
    let seconds: u64 = retry_after
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    wait_until("/-/ready to say PostgreSQL is unreachable", || {
        let ready = salve.get("/-/ready");
        (ready.status == 503 && s(&ready.body).contains("PostgreSQL")).then_some(())
    });

    pg.resume();
    wait_until("/-/ready once PostgreSQL is back", || {
        (salve.get("/-/ready").status == 200).then_some(())
    });
    let (status, _, ids) = post(&salve, &[("alertname", "After"), ("n", "3")]);
    assert_eq!(status, 200);
    acknowledged.extend(ids);

    let received: BTreeSet<String> = of_kind(&salve.audit_json(), "received")
        .into_iter()
        .map(|r| s(&r["event"]["id"]))
        .collect();
    assert_eq!(received, acknowledged);
    assert!(salve.logs().contains("PostgreSQL is unreachable"));
}

#[test]
fn check_refuses_a_store_without_exactly_one_source_of_its_url() {
    assert_check_refuses(
        "[store]\npool_size = 4\n",
        "store: postgres_url_env or postgres_url_file is required",
    );
    assert_check_refuses(
        "[store]\npostgres_url_env = \"PG\"\npostgres_url_file = \"/run/pg\"\n",
        "store: give postgres_url_env or postgres_url_file, not both",
    );
    assert_check_refuses(
        "[store]\npostgres_url_env = \"SALVE_TEST_NO_SUCH_VARIABLE\"\n",
        "environment variable SALVE_TEST_NO_SUCH_VARIABLE is not set",
    );
    // A URL that is not one is refused without printing it (it holds a password).
    let salve = Salve::builder()
        .config("[store]\npostgres_url_env = \"SALVE_TEST_PG_URL\"\n")
        .env("SALVE_TEST_PG_URL", "not a url with secret-password")
        .write();
    let out = salve.cli(&["audit", "--config", "salve.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("store.postgres_url is not a PostgreSQL URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-password"), "{stderr}");
}
