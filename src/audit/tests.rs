//! The trail on a real file system: what is acknowledged is there after a reopen.

use super::{read_records, AuditLog, AuditRecord, Entry, CURRENT_FILE};
use chrono::Utc;
use std::io::Write;

fn reload_record(n: usize) -> AuditRecord {
    AuditRecord::new(
        Utc::now(),
        Entry::Reload {
            ok: true,
            rules: n,
            error: None,
        },
    )
}

fn read_all(dir: &std::path::Path) -> Vec<usize> {
    let mut seen = Vec::new();
    read_records(dir, |r| {
        if let Entry::Reload { rules, .. } = r.entry {
            seen.push(rules);
        }
    })
    .expect("readable");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_durable_and_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 64 << 20, 3, None).expect("open");
    let mut tasks = Vec::new();
    for n in 0..200 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(&[reload_record(n)]).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("append");
    }
    log.close().await;
    let mut seen = read_all(dir.path());
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    let stats = log.stats();
    assert_eq!(
        stats.records.load(std::sync::atomic::Ordering::Relaxed),
        200
    );
    assert!(stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed) <= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_is_cut_and_appending_continues_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 64 << 20, 3, None).expect("open");
    log.append(&[reload_record(1)]).await.expect("append");
    log.close().await;
    drop(log);
    // A crash in the middle of a write leaves half a line behind.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(CURRENT_FILE))
        .expect("open file");
    f.write_all(br#"{"at":"2026-11-22T22:39:20Z","kind":"rel"#)
        .expect("write");
    drop(f);
    let log = AuditLog::open(dir.path(), 64 << 20, 3, None).expect("reopen");
    log.append(&[reload_record(2)]).await.expect("append");
    log.close().await;
    assert_eq!(read_all(dir.path()), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_the_configured_number_of_files_and_replays_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 300, 2, None).expect("open");
    for n in 0..12 {
        log.append(&[reload_record(n)]).await.expect("append");
    }
    log.close().await;
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]);
    let seen = read_all(dir.path());
    assert!(!seen.is_empty());
    assert!(
        seen.windows(2).all(|w| w[0] + 1 == w[1]),
        "replayed out of order: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&11));
}
