//! Retention in the store (`[store] keep_for`): old rows go, but never one the oldest
//! kept checkpoint needs, so a start still holds what the whole history held; the
//! readers say when their window reaches back past what is kept; and with no checkpoint
//! left to read, a trimmed table is refused rather than read as the whole story.

use crate::postgres_checkpoints::{flap, salve_with};
use crate::postgres_support::Postgres;
use crate::support::{bin, wait_until, Salve};
use serde_json::Value;
use std::process::Command;

const CONFIG: &str = r#"
[store]
postgres_url_file = "{dir}/postgres-url"
connect_timeout = "1s"
checkpoint_rows = 1
keep_for = "1s"

[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]
"#;

fn number(pg: &Postgres, sql: &str) -> i64 {
    let text = pg.query(sql);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {text:?}: {e}"))
}

/// Posts a new alert to `salve` every 0.7 s, each checked by `check`, until retention
/// has removed the rows through `seq`: each second's checkpoint lets the older ones go.
fn flap_until_removed(pg: &Postgres, salve: &Salve, seq: i64, mut check: impl FnMut(&[String])) {
    let mut n = 2;
    wait_until(
        &format!("retention to remove the rows through seq {seq}"),
        || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            check(&flap(salve, &n.to_string()));
            n += 1;
            (number(pg, "SELECT removed_through FROM salve_retention") >= seq).then_some(())
        },
    );
}

#[test]
fn retention_removes_old_rows_but_never_what_a_checkpoint_needs() {
    let pg = Postgres::start();
    let mut salve = salve_with(&pg, CONFIG);
    salve.start();
    assert_eq!(flap(&salve, "1"), ["limited: exec exec:mark -> execute"]);
    salve.wait_settled(1);
    let first_rows = number(&pg, "SELECT max(seq) FROM salve_trail");

    // Alerts a second apart: each second's checkpoint lets the rows older than the
    // oldest kept checkpoint, and older than keep_for, go.
    flap_until_removed(&pg, &salve, first_rows, |last| {
        assert_eq!(
            last.last().map(String::as_str),
            Some("limited: exec exec:mark -> suppress (rate_limit)")
        );
    });
    let counted = salve
        .metric("salve_store_rows_removed_total")
        .unwrap_or(0.0);
    assert!(
        counted >= 1.0,
        "retention's rows are not counted: {counted}"
    );
    // Stopped, so that no pass runs between the queries.
    salve.stop();
    let through = number(&pg, "SELECT removed_through FROM salve_retention");
    let oldest_checkpoint = number(&pg, "SELECT min(seq) FROM salve_checkpoint");
    assert!(
        through <= oldest_checkpoint,
        "removed through {through}, past the oldest checkpoint at {oldest_checkpoint}"
    );
    assert_eq!(
        number(&pg, "SELECT min(seq) FROM salve_trail"),
        through + 1,
        "a row after the last removed is missing"
    );
    assert_eq!(
        number(
            &pg,
            &format!("SELECT count(*) FROM salve_trail WHERE seq <= {through}")
        ),
        0
    );

    // The first alert's rows are gone, but its spent limit is in the checkpoint.
    salve.start();
    assert_eq!(
        flap(&salve, "again").last().map(String::as_str),
        Some("limited: exec exec:mark -> suppress (rate_limit)")
    );
    assert_eq!(salve.lines("marks.txt"), ["limited"]);

    // The readers say where the kept trail begins.
    let config = salve.config_path();
    let config = config.to_str().expect("a UTF-8 path");
    let audit = salve.cli(&["audit", "--config", config]);
    assert!(audit.status.success(), "{audit:?}");
    let note = String::from_utf8_lossy(&audit.stderr);
    assert!(
        note.contains("note: retention removed the records before"),
        "{note}"
    );
    let report = salve.cli(&["report", "--config", config, "--json"]);
    assert!(report.status.success(), "{report:?}");
    let report: Value = serde_json::from_slice(&report.stdout).expect("the report's JSON");
    assert!(report["kept_from"].is_string(), "{report}");
    // A window that starts after the oldest record kept says nothing of retention.
    let recent = salve.cli(&["report", "--config", config, "--since", "0s", "--json"]);
    let recent: Value = serde_json::from_slice(&recent.stdout).expect("the report's JSON");
    assert!(recent.get("kept_from").is_none(), "{recent}");
    salve.stop();

    // No checkpoint reads and the table is trimmed: refused, saying why.
    pg.query("UPDATE salve_checkpoint SET body = decode('00ff', 'hex')");
    let refused = Command::new("timeout")
        .args(["60", bin(), "serve", "--config", config])
        .arg("--rules")
        .arg(salve.rules_dir())
        .arg("--data-dir")
        .arg(salve.data_dir())
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run salve serve");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("retention ([store] keep_for) has removed the records through seq"),
        "{said}"
    );
}

#[test]
fn a_replica_paused_past_retention_reads_its_state_anew_from_the_checkpoint() {
    let pg = Postgres::start();
    let config = CONFIG.replace("[store]\n", "[store]\ntakeover_after = \"2s\"\n");
    let (mut a, mut b) = (salve_with(&pg, &config), salve_with(&pg, &config));
    a.start();
    b.start();
    let pid = b.pid().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    // The follower is paused; the leader spends the limit, and retention removes the
    // rows that say so before the follower has read them.
    signal("-STOP");
    assert_eq!(flap(&a, "1"), ["limited: exec exec:mark -> execute"]);
    a.wait_settled(1);
    let spent_at = number(&pg, "SELECT max(seq) FROM salve_trail");
    flap_until_removed(&pg, &a, spent_at, |_| {});
    let spent = a.get("/api/v1/state").body["limits"].clone();
    assert_ne!(spent, Value::Array(Vec::new()), "nothing spent");

    signal("-CONT");
    wait_until("the follower to read its state anew", || {
        b.logs()
            .contains("fell behind what retention removed")
            .then_some(())
    });
    wait_until("the follower to hold the spent limit", || {
        (b.get("/api/v1/state").body["limits"] == spent).then_some(())
    });
    b.stop();
    a.stop();
}
