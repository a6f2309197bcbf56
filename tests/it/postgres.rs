//! `[store]`: the trail in a real PostgreSQL. What is acknowledged is committed there,
//! the policy is rebuilt from it at start (the data dir holds no trail), the CLI and
//! the API read it, and PostgreSQL going away is a 503 with `Retry-After` and an
//! unready `/-/ready`, never a 200 for something not committed.

use crate::postgres_support::Postgres;
use crate::support::{
    assert_check_refuses, decisions, native, of_kind, s, wait_until, Salve, LIMITED,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const CONFIG: &str = r#"
[store]
postgres_url_file = "{dir}/postgres-url"
connect_timeout = "1s"

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]
"#;

/// How many migrations salve has (`migrations/V*.sql`): the version a database ends at.
fn migrations() -> usize {
    std::fs::read_dir(crate::support::repo_dir().join("migrations"))
        .map(|dir| dir.filter(|entry| entry.is_ok()).count())
        .unwrap_or(0)
}

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
fn postgresql_down_under_load_is_a_503_with_retry_after_and_nothing_acknowledged_is_lost() {
    let pg = Postgres::start();
    let salve = salve_on(&pg);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acknowledged, refused) = std::thread::scope(|scope| {
        // Four senders post without pause while PostgreSQL goes away and comes back.
        let senders: Vec<_> = (0..4)
            .map(|sender| {
                let (salve, stop) = (&salve, &stop);
                scope.spawn(move || {
                    let mut acknowledged = Vec::new();
                    let mut refused = 0;
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        n += 1;
                        let name = format!("s{sender}-{n}");
                        let (status, retry_after, ids) =
                            post(salve, &[("alertname", "Load"), ("n", &name)]);
                        match status {
                            200 => acknowledged.extend(ids),
                            503 => {
                                assert!(ids.is_empty());
                                let seconds: u64 = retry_after
                                    .expect("a Retry-After header")
                                    .parse()
                                    .expect("whole seconds");
                                assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
                                refused += 1;
                                std::thread::sleep(std::time::Duration::from_millis(50));
                            }
                            other => panic!("answered {other}"),
                        }
                    }
                    (acknowledged, refused)
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(500));
        pg.halt();
        wait_until("/-/ready to say PostgreSQL is unreachable", || {
            let ready = salve.get("/-/ready");
            (ready.status == 503 && s(&ready.body).contains("PostgreSQL")).then_some(())
        });
        pg.resume();
        wait_until("/-/ready once PostgreSQL is back", || {
            (salve.get("/-/ready").status == 200).then_some(())
        });
        std::thread::sleep(std::time::Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Release);
        let mut acknowledged: BTreeSet<String> = BTreeSet::new();
        let mut refused = 0;
        for sender in senders {
            let (ids, r) = sender.join().expect("a sender");
            acknowledged.extend(ids);
            refused += r;
        }
        (acknowledged, refused)
    });
    assert!(refused > 0, "nothing was refused while PostgreSQL was down");
    assert!(
        acknowledged.len() > 20,
        "{} acknowledged",
        acknowledged.len()
    );

    let received: BTreeSet<String> = of_kind(&salve.audit_json(), "received")
        .into_iter()
        .map(|r| s(&r["event"]["id"]))
        .collect();
    // A commit cut off by the crash may have landed without its answer (the sender saw
    // an error and sends it again, and dedup takes the resend); what was answered 200
    // is there without exception.
    let lost: Vec<&String> = acknowledged.difference(&received).collect();
    assert!(lost.is_empty(), "acknowledged but not recorded: {lost:?}");
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

/// Replicas share PostgreSQL and a folder their command writes to, so what every
/// replica did is counted in one place.
const REPLICA: &str = r#"
[store]
postgres_url_env = "SALVE_TEST_PG_URL"
connect_timeout = "1s"
takeover_after = "{takeover}"

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{shared}/marks.txt"', "sh"]

[exec.slow]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{shared}/slow.txt"; sleep 5', "sh"]
timeout = "30s"
"#;

const SLOW: &str = r#"
const MATCH = `alertname="Slow"`;
fn plan(event) { [exec("slow", ["started"])] }
"#;

const DOWN: &str = r#"
const MATCH = `alertname="ContainerDown"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [exec("mark", [event.labels.container ?? "?"])]
}
"#;

fn replica(pg: &Postgres, shared: &std::path::Path, takeover: &str) -> Salve {
    Salve::builder()
        .config(
            &REPLICA
                .replace("{shared}", &shared.display().to_string())
                .replace("{takeover}", takeover),
        )
        .rule("down", DOWN)
        .rule("slow", SLOW)
        .env("SALVE_TEST_PG_URL", &pg.url())
        .start()
}

/// A PostgreSQL, the folder the replicas' command writes to, and a first replica that
/// has taken the lead.
fn first_leader(takeover: &str) -> (Postgres, tempfile::TempDir, Salve) {
    let pg = Postgres::start();
    let shared = tempfile::tempdir().expect("shared folder");
    let leader = replica(&pg, shared.path(), takeover);
    wait_until("the first replica to take the lead", || {
        leads(&leader).then_some(())
    });
    (pg, shared, leader)
}

fn leads(salve: &Salve) -> bool {
    salve.metric("salve_leader") == Some(1.0)
}

fn marks(shared: &std::path::Path) -> Vec<String> {
    lines(shared, "marks.txt")
}

fn lines(shared: &std::path::Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(shared.join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn of_three_replicas_one_leads_all_accept_and_an_alert_sent_to_all_acts_once() {
    let (pg, shared, a) = first_leader("3s");
    let b = replica(&pg, shared.path(), "3s");
    let c = replica(&pg, shared.path(), "3s");
    for follower in [&b, &c] {
        assert_eq!(
            follower.get("/-/ready").status,
            200,
            "a follower accepts webhooks"
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(b.metric("salve_leader"), Some(0.0));
    assert_eq!(c.metric("salve_leader"), Some(0.0));
    assert!(leads(&a));

    // The same alert to every replica, again and again, from all sides at once.
    std::thread::scope(|scope| {
        for salve in [&a, &b, &c] {
            scope.spawn(move || {
                for _ in 0..5 {
                    let reply = salve.post_fixture("firing-single.json");
                    assert_eq!(reply.status, 200, "{:?}", reply.body);
                }
            });
        }
    });
    let records = wait_until("all fifteen notifications to be decided", || {
        let records = c.audit_json();
        (of_kind(&records, "evaluated").len() == 15).then_some(records)
    });
    let decided = decisions(&records);
    assert_eq!(
        decided.iter().filter(|d| d.ends_with("-> execute")).count(),
        1,
        "{decided:#?}"
    );
    wait_until("the one action to run", || {
        (marks(shared.path()) == ["web-1"]).then_some(())
    });
    // Every event decided and every action decided ended: nothing more can run.
    c.wait_settled(15);
    assert_eq!(marks(shared.path()), ["web-1"]);
    // Every decision carries the leader's epoch; what was received carries none.
    assert_eq!(
        pg.query("SELECT count(DISTINCT epoch) FROM salve_trail WHERE kind = 'decision'"),
        "1"
    );
    assert_eq!(
        pg.query("SELECT count(*) FROM salve_trail WHERE kind = 'received' AND epoch IS NULL"),
        "15"
    );
}

#[test]
fn when_the_leader_is_killed_another_takes_over_decides_what_it_left_and_acts_once() {
    let (pg, shared, mut a) = first_leader("2s");
    let b = replica(&pg, shared.path(), "2s");
    let reply = a.post_fixture("firing-single.json");
    assert_eq!(reply.status, 200);
    wait_until("the action to run", || {
        (marks(shared.path()) == ["web-1"]).then_some(())
    });

    a.kill9();
    let killed = std::time::Instant::now();
    // Resends keep arriving at the replica that is left, while it has no leader.
    for _ in 0..3 {
        let reply = b.post_fixture("firing-single.json");
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    wait_until("the second replica to take the lead", || {
        leads(&b).then_some(())
    });
    // Within takeover_after, and a second for this test's own posts and polls.
    assert!(
        killed.elapsed() < std::time::Duration::from_secs(3),
        "took over after {:?} (takeover_after is 2s)",
        killed.elapsed()
    );
    let records = wait_until("the resends to be decided", || {
        let records = b.audit_json();
        (of_kind(&records, "evaluated").len() == 4).then_some(records)
    });
    let decided = decisions(&records);
    assert_eq!(
        decided.iter().filter(|d| d.ends_with("-> execute")).count(),
        1,
        "{decided:#?}"
    );
    assert!(b.logs().contains("took the lead"));
    // The killed leader comes back as a follower.
    a.start();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(a.metric("salve_leader"), Some(0.0));
    assert!(leads(&b));
    assert_eq!(marks(shared.path()), ["web-1"]);
}

#[test]
fn a_leader_paused_past_its_lease_is_fenced_and_acts_on_nothing_after_it_resumes() {
    let (pg, shared, a) = first_leader("2s");
    let b = replica(&pg, shared.path(), "2s");
    let pid = a.pid().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    wait_until("the second replica to take the lead", || {
        leads(&b).then_some(())
    });
    // While the old leader is paused, an alert reaches the new one.
    let reply = b.post_fixture("firing-single.json");
    assert_eq!(reply.status, 200);
    wait_until("the new leader to act", || {
        (marks(shared.path()) == ["web-1"]).then_some(())
    });
    // An epoch that no longer holds the lease cannot write.
    let old = pg.query("SELECT epoch - 1 FROM salve_lease");
    let refused = std::process::Command::new("psql")
        .args(["-tA", "-X", "-d", &pg.url(), "-c"])
        .arg(format!(
            "INSERT INTO salve_trail (at, kind, record, epoch) VALUES (now(), 'decision', '{{}}', {old})"
        ))
        .output()
        .expect("psql");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not hold the lease"));

    signal("-CONT");
    // Back, it hears of its lost lease and gives the lead up; what it had queued or
    // receives now is decided by the new leader only.
    wait_until("the old leader to know it lost the lead", || {
        (a.metric("salve_leader") == Some(0.0)).then_some(())
    });
    let reply = a.post_fixture("firing-single.json");
    assert_eq!(reply.status, 200);
    wait_until("the resend to be decided", || {
        (of_kind(&b.audit_json(), "evaluated").len() == 2).then_some(())
    });
    b.wait_settled(2);
    assert_eq!(marks(shared.path()), ["web-1"]);
    assert!(a.logs().contains("lost the lead"));
    assert!(leads(&b));
}

#[test]
fn an_action_the_killed_leader_never_reported_is_abandoned_once_and_not_run_again() {
    let (pg, shared, mut a) = first_leader("2s");
    let b = replica(&pg, shared.path(), "2s");
    let reply = a.post_json("/api/v1/events", &native(&[("alertname", "Slow")]));
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    wait_until("the slow action to start", || {
        (lines(shared.path(), "slow.txt") == ["started"]).then_some(())
    });
    a.kill9();
    wait_until("the second replica to take the lead", || {
        leads(&b).then_some(())
    });
    wait_until("the action to be reported abandoned", || {
        (!of_kind(&b.audit_json(), "outcome").is_empty()).then_some(())
    });
    // The new leader has settled what the old one left: every event decided, every
    // action decided with its outcome; a run again would need a decision of its own.
    let records = b.wait_settled(1);
    let outcomes: Vec<String> = of_kind(&records, "outcome")
        .into_iter()
        .map(|o| s(&o["outcome"]))
        .collect();
    assert_eq!(outcomes, ["abandoned"], "{records:#?}");
    assert_eq!(
        lines(shared.path(), "slow.txt"),
        ["started"],
        "it ran again"
    );
}

/// The replicas `salve` lists in `GET /api/v1/state`, each as (name, leader, this).
fn listed(salve: &Salve) -> Vec<(String, bool, bool)> {
    let state = salve.get("/api/v1/state").body;
    state["replicas"]
        .as_array()
        .map(|replicas| {
            replicas
                .iter()
                .map(|r| (s(&r["name"]), r["leader"] == true, r["this"] == true))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_replica_lists_the_others_and_one_stopped_cleanly_leaves_the_list() {
    let (pg, shared, mut a) = first_leader("2s");
    let b = replica(&pg, shared.path(), "2s");
    let name = |salve: &Salve| s(&salve.get("/api/v1/state").body["replica"]);
    let (name_a, name_b) = (name(&a), name(&b));
    let mut both = [name_a.clone(), name_b.clone()];
    both.sort();
    for (salve, this) in [(&a, &name_a), (&b, &name_b)] {
        let seen = wait_until("each replica to list both, the first as the leader", || {
            let seen = listed(salve);
            let names: Vec<&String> = seen.iter().map(|(n, _, _)| n).collect();
            let leaders: Vec<&String> = seen.iter().filter(|r| r.1).map(|r| &r.0).collect();
            (names == [&both[0], &both[1]] && leaders == [&name_a]).then_some(seen)
        });
        let marked: Vec<&String> = seen.iter().filter(|r| r.2).map(|r| &r.0).collect();
        assert_eq!(marked, [this], "{seen:?}");
    }
    // Each says how far it has read the trail.
    let state = b.get("/api/v1/state").body;
    for replica in state["replicas"].as_array().expect("replicas") {
        assert!(replica["followed"].is_i64(), "{state}");
    }

    a.stop();
    // Gone from the table at once, not aged out.
    assert_eq!(
        pg.query(&format!(
            "SELECT count(*) FROM salve_replica WHERE name = '{name_a}'"
        )),
        "0"
    );
    wait_until(
        "the replica left to list itself alone, as the leader",
        || (listed(&b) == [(name_b.clone(), true, true)]).then_some(()),
    );
}

mod v1 {
    refinery::embed_migrations!("migrations");
}

#[test]
fn migrations_upgrade_a_database_the_previous_version_made_and_its_records_are_decided() {
    let pg = Postgres::start();
    // The schema as the previous version left it, with an event it acknowledged and
    // never decided.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (mut client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        v1::migrations::runner()
            .set_target(refinery::Target::Version(1))
            .run_async(&mut client)
            .await
            .expect("migrate to version 1");
    });
    let line = r#"{"at":"2026-12-01T10:00:00Z","kind":"received","event":{"id":"from-v1","source":"alertmanager","status":"firing","labels":{"alertname":"ContainerDown","container":"web-1"},"starts_at":"2026-12-01T09:59:00Z","fingerprint":"00000000000000aa"}}"#;
    pg.query(&format!(
        "INSERT INTO salve_trail (at, kind, record) VALUES ('2026-12-01T10:00:00Z', 'received', '{line}')"
    ));
    assert_eq!(
        pg.query("SELECT max(version) FROM refinery_schema_history"),
        "1"
    );

    let shared = tempfile::tempdir().expect("shared folder");
    let salve = replica(&pg, shared.path(), "2s");
    assert_eq!(
        pg.query("SELECT max(version) FROM refinery_schema_history"),
        migrations().to_string()
    );
    wait_until(
        "the event from before the upgrade to be decided and acted on",
        || (marks(shared.path()) == ["web-1"]).then_some(()),
    );
    let records = salve.audit_json();
    assert_eq!(decisions(&records), ["down: exec exec:mark -> execute"]);
    // Run again on an up-to-date schema, nothing changes.
    drop(salve);
    let again = replica(&pg, shared.path(), "2s");
    assert_eq!(
        pg.query("SELECT count(*) FROM refinery_schema_history"),
        migrations().to_string()
    );
    assert!(again.logs().contains("salve is serving"));
}

#[test]
fn replicas_started_at_the_same_instant_on_an_empty_database_all_become_ready() {
    let pg = Postgres::start();
    let shared = tempfile::tempdir().expect("shared folder");
    // One start at once rarely races; three rounds on fresh databases make a race in
    // the migrations all but certain to show.
    for round in 0..3 {
        let database = format!("race{round}");
        let url = pg.fresh_database(&database);
        let mut replicas: Vec<Salve> = (0..3)
            .map(|_| {
                Salve::builder()
                    .config(
                        &REPLICA
                            .replace("{shared}", &shared.path().display().to_string())
                            .replace("{takeover}", "3s"),
                    )
                    .rule("down", DOWN)
                    .env("SALVE_TEST_PG_URL", &url)
                    .write()
            })
            .collect();
        let at_once = std::sync::Barrier::new(replicas.len());
        std::thread::scope(|scope| {
            for salve in &mut replicas {
                let at_once = &at_once;
                scope.spawn(move || {
                    at_once.wait();
                    // Panics with the replica's log if it exits before it is ready.
                    salve.start();
                });
            }
        });
        for salve in &replicas {
            assert_eq!(salve.get("/-/ready").status, 200, "{}", salve.logs());
        }
        // Each migration ran once.
        assert_eq!(
            pg.query_in(&database, "SELECT count(*) FROM refinery_schema_history"),
            migrations().to_string()
        );
    }
}

#[test]
fn a_migration_postgresql_refuses_is_reported_with_the_servers_message_and_sqlstate() {
    let pg = Postgres::start();
    // A table of salve's name that salve did not make (another tool's, an old test's).
    pg.query("CREATE TABLE salve_trail (id int)");
    let shared = tempfile::tempdir().expect("shared folder");
    let salve = Salve::builder()
        .config(
            &REPLICA
                .replace("{shared}", &shared.path().display().to_string())
                .replace("{takeover}", "3s"),
        )
        .env("SALVE_TEST_PG_URL", &pg.url())
        .write();
    let expected = "salve: audit trail in PostgreSQL: cannot migrate the PostgreSQL schema: \
        error applying migration V1__trail: relation \"salve_trail\" already exists \
        (SQLSTATE 42P07)";
    // The server exits with it; the CLI, which opens the store too, says the same.
    for args in [
        &["serve", "--config", "salve.toml", "--listen", "127.0.0.1:0"][..],
        &["audit", "--config", "salve.toml"][..],
    ] {
        let out = salve.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().last(), Some(expected), "{stderr}");
    }
}
