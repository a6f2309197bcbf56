//! The store's checkpoints: the leader writes the policy state to `salve_checkpoint`
//! as the trail grows; a replica that starts reads the newest one and the records after
//! it, and holds what the whole table would; a checkpoint that does not read is passed
//! over, with a warning, for the one before it and at last the whole table.

use crate::postgres_support::Postgres;
use crate::support::{decisions, native, of_kind, wait_until, Salve, LIMITED};
use serde_json::{json, Value};

const CONFIG: &str = r#"
[store]
postgres_url_file = "{dir}/postgres-url"
connect_timeout = "1s"
checkpoint_rows = 1

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]
"#;

/// A salve on `pg` with `config` and the `limited` rule, not started.
pub fn salve_with(pg: &Postgres, config: &str) -> Salve {
    let salve = Salve::builder()
        .config(config)
        .rule("limited", LIMITED)
        .write();
    std::fs::write(salve.dir().join("postgres-url"), pg.url()).expect("write the URL file");
    salve
}

/// A salve on `pg`, not started.
fn salve_for(pg: &Postgres) -> Salve {
    salve_with(pg, CONFIG)
}

fn salve_on(pg: &Postgres) -> Salve {
    let mut salve = salve_for(pg);
    salve.start();
    salve
}

/// Sends `Flapping` number `n` and waits for its decision; every decision so far.
pub fn flap(salve: &Salve, n: &str) -> Vec<String> {
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Flapping"), ("n", n)]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let id = reply.body["ids"][0].clone();
    let records = wait_until(&format!("Flapping {n} decided"), || {
        let records = salve.audit_json();
        of_kind(&records, "decision")
            .iter()
            .any(|d| d["event_id"] == id)
            .then_some(records)
    });
    decisions(&records)
}

/// The log of salve's latest start.
fn last_run(salve: &Salve) -> String {
    let logs = salve.logs();
    let at = logs.rfind("--- salve serve #").unwrap_or(0);
    logs[at..].to_string()
}

/// What `GET /api/v1/state` says of the limits spent.
fn limits(salve: &Salve) -> Value {
    let state = salve.get("/api/v1/state");
    assert_eq!(state.status, 200, "{:?}", state.body);
    state.body["limits"].clone()
}

#[test]
fn a_start_reads_the_stores_checkpoint_and_holds_what_the_whole_table_holds() {
    let pg = Postgres::start();
    let mut salve = salve_on(&pg);
    assert_eq!(flap(&salve, "1"), ["limited: exec exec:mark -> execute"]);
    salve.wait_settled(1);
    let seq = wait_until("the leader's checkpoint", || {
        let seq = pg.query("SELECT COALESCE(max(seq), 0) FROM salve_checkpoint");
        (seq != "0").then_some(seq)
    });
    wait_until("the replica to have followed the whole trail", || {
        (salve.metric("salve_follower_lag_records") == Some(0.0)).then_some(())
    });
    let spent = limits(&salve);
    assert_ne!(spent, json!([]), "nothing spent to carry over");
    salve.stop();

    // From the checkpoint: the spent limit holds the next alert back.
    salve.start();
    let logs = last_run(&salve);
    assert!(
        logs.contains(&format!("checkpoint_seq={seq}")),
        "did not start from the checkpoint at {seq}:\n{logs}"
    );
    assert_eq!(limits(&salve), spent);
    assert_eq!(
        flap(&salve, "2").last().map(String::as_str),
        Some("limited: exec exec:mark -> suppress (rate_limit)")
    );
    salve.stop();

    // Every checkpoint damaged: each is passed over with a warning, the whole table
    // read, and the state is the same.
    pg.query("UPDATE salve_checkpoint SET body = decode('00ff', 'hex')");
    salve.start();
    let logs = last_run(&salve);
    assert!(
        logs.contains("a checkpoint in the store cannot be read"),
        "{logs}"
    );
    assert!(logs.contains("checkpoint_seq=0"), "{logs}");
    assert_eq!(limits(&salve), spent);
    assert_eq!(
        flap(&salve, "3").last().map(String::as_str),
        Some("limited: exec exec:mark -> suppress (rate_limit)")
    );
    assert_eq!(salve.lines("marks.txt"), ["limited"]);
}

/// Hex of bytes, as PostgreSQL's `decode(..., 'hex')` reads it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn two_replicas_started_together_read_a_checkpoint_of_an_older_format() {
    let pg = Postgres::start();
    let mut first = salve_on(&pg);
    assert_eq!(flap(&first, "1"), ["limited: exec exec:mark -> execute"]);
    first.wait_settled(1);
    let seq = wait_until("the leader's checkpoint of the whole trail", || {
        let last = pg.query("SELECT max(seq) FROM salve_trail");
        let seq = pg.query("SELECT COALESCE(max(seq), 0) FROM salve_checkpoint");
        (seq == last).then_some(seq)
    });
    first.stop();

    // The checkpoint as an older salve wrote it, and only it says the limit is spent:
    // the records it holds are gone.
    let body = pg.query(&format!(
        "SELECT encode(body, 'hex') FROM salve_checkpoint WHERE seq = {seq}"
    ));
    let bytes: Vec<u8> = (0..body.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&body[i..i + 2], 16).expect("hex from PostgreSQL"))
        .collect();
    let old = crate::upgrade::as_format_1(&bytes);
    pg.query(&format!(
        "DELETE FROM salve_checkpoint WHERE seq <> {seq}; \
         UPDATE salve_checkpoint SET body = decode('{}', 'hex'); \
         DELETE FROM salve_trail WHERE seq <= {seq}",
        hex(&old)
    ));

    let mut second = salve_for(&pg);
    std::thread::scope(|both| {
        both.spawn(|| first.start());
        both.spawn(|| second.start());
    });
    for replica in [&first, &second] {
        let logs = last_run(replica);
        assert!(
            logs.contains(&format!("checkpoint_seq={seq}")),
            "did not start from the older checkpoint at {seq}:\n{logs}"
        );
        assert!(!logs.contains("cannot be read"), "{logs}");
    }
    assert_eq!(
        flap(&second, "2").last().map(String::as_str),
        Some("limited: exec exec:mark -> suppress (rate_limit)")
    );
}
