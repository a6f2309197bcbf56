//! The benchmark harness runs in its short mode on every test run, so it cannot rot.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_benchmark_harness_runs_in_smoke_mode() {
    let salve = PathBuf::from(env!("CARGO_BIN_EXE_salve"));
    // A whole `cargo test` builds the examples beside the binaries; a filtered run may not.
    let example = |name: &str| -> PathBuf {
        let path = salve
            .parent()
            .expect("target folder")
            .join("examples")
            .join(name);
        if !path.exists() {
            let built = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--example", name])
                .current_dir(crate::support::repo_dir())
                .status()
                .expect("run cargo");
            assert!(built.success(), "cannot build the example `{name}`");
        }
        path
    };
    let bare = example("bare");
    let overload = example("overload");
    let root = crate::support::repo_dir();
    let out = Command::new("bash")
        .arg(root.join("bench/run.sh"))
        .arg("--smoke")
        .env("SALVE_BIN", &salve)
        .env("BARE_BIN", &bare)
        .env("OVERLOAD_BIN", &overload)
        .current_dir(&root)
        .output()
        .expect("run bench/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/run.sh --smoke failed:\n{stdout}\n{stderr}"
    );
    for heading in [
        "### Bare axum endpoint",
        "### salve, durable audit on",
        "### Memory and start-up by rule count",
        "### Docker: unhealthy container to restart",
        "### Storm: bare axum endpoint (parses the JSON)",
        "### Storm: salve, durable audit on",
        "### Storm: each 1 s slice",
        "### Storm: memory and audit",
        "### Storm: start-up after a stop with the full trail",
        "### Groups: Alertmanager's notifications of many alerts",
    ] {
        assert!(
            stdout.contains(heading),
            "missing {heading:?} in:\n{stdout}"
        );
    }
    let salve_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| 10 | "))
        .collect();
    assert_eq!(
        salve_rows.len(),
        3,
        "two load cells and one memory row for 10 rules:\n{stdout}"
    );
    let storm_rows = stdout
        .lines()
        .filter(|l| l.starts_with("| 16 | 10 | "))
        .count();
    assert_eq!(
        storm_rows, 5,
        "storm: one summary, two slice, one memory and one start-up row:\n{stdout}"
    );
    for cell in ["| 50 | matched | 1 | ", "| 50 | unmatched | 3 | "] {
        let row = stdout.lines().find(|l| l.starts_with(cell));
        let decisions = row.and_then(|row| row.trim_end_matches(" |").rsplit("| ").next());
        let decisions: u64 = decisions
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no groups row {cell:?} in:\n{stdout}"));
        // Matched: every firing alert is decided; unmatched: none is.
        assert_eq!(decisions > 0, cell.contains(" matched"), "{stdout}");
    }
    let docker_row = stdout
        .lines()
        .find(|l| l.starts_with("| 1 | ") && l.ends_with(" s |"));
    assert!(
        docker_row.is_some_and(|row| row.contains(" ms | ")),
        "one measured unhealthy-to-restart round:\n{stdout}"
    );
}

#[test]
fn the_store_start_bench_runs_on_a_small_history() {
    let salve = PathBuf::from(env!("CARGO_BIN_EXE_salve"));
    let root = crate::support::repo_dir();
    let out = Command::new("bash")
        .arg(root.join("bench/store_start.sh"))
        .arg("2000")
        .env("SALVE_BIN", &salve)
        .env("TAKEOVER_AFTER", "2s")
        .env("AUTOVACUUM_WAIT", "0")
        .current_dir(&root)
        .output()
        .expect("run bench/store_start.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench/store_start.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|line| line.starts_with("| 2000 |"))
        .map(|line| line.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "a start and takeover row, and a retention row:\n{stdout}"
    );
    let row = &rows[0];
    assert_eq!(row.get(1), Some(&"2000"), "{stdout}");
    let ms = |cell: &str| -> u64 {
        let number = cell
            .strip_suffix(" ms")
            .unwrap_or_else(|| panic!("{stdout}"));
        number
            .parse()
            .unwrap_or_else(|e| panic!("{number}: {e}\n{stdout}"))
    };
    for cell in &row[2..7] {
        ms(cell);
    }
    assert_eq!(row.get(7), Some(&"2s"), "{stdout}");
    // A follower leads, and acts, within takeover_after and a second of the kill.
    assert!(ms(row[8]) <= 3000, "{stdout}");
    assert!(ms(row[9]) <= 3000, "{stdout}");
    // Retention removed about the older half (the history is 500 s, keep_for 250 s).
    let removed: u64 = rows[1][3]
        .parse()
        .unwrap_or_else(|e| panic!("{e}\n{stdout}"));
    assert!((900..=1100).contains(&removed), "{stdout}");
}
