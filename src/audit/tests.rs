//! The trail on a real file system: what is acknowledged is there after a reopen.

use super::{read_records, AuditLog, AuditRecord, Entry, Retention, CURRENT_FILE};
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
    let log = AuditLog::open(dir.path(), 64 << 20, None).expect("open");
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
    let log = AuditLog::open(dir.path(), 64 << 20, None).expect("open");
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
    let log = AuditLog::open(dir.path(), 64 << 20, None).expect("reopen");
    log.append(&[reload_record(2)]).await.expect("append");
    log.close().await;
    assert_eq!(read_all(dir.path()), vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_the_configured_number_of_files_and_replays_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 300, None).expect("open");
    for n in 0..12 {
        log.append(&[reload_record(n)]).await.expect("append");
    }
    log.close().await;
    // A checkpoint holding everything up to here lets retention keep two rotated files.
    let keep = Retention {
        keep_files: 2,
        keep_for: std::time::Duration::from_secs(3600),
    };
    super::apply_retention(dir.path(), keep, log.position());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_since_a_time_passes_over_rotated_files_written_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 300, None).expect("open");
    for n in 0..12 {
        log.append(&[reload_record(n)]).await.expect("append");
    }
    log.close().await;
    // One more, so that the current file holds a record too.
    let log = AuditLog::open(dir.path(), 300, None).expect("reopen");
    log.append(&[reload_record(12)]).await.expect("append");
    log.close().await;
    let mut current = Vec::new();
    read_records_of(&dir.path().join(CURRENT_FILE), &mut current);
    assert_eq!(current, [12]);
    let since_all = |since| {
        let mut seen = Vec::new();
        super::read_records_since(dir.path(), Some(since), |r| {
            if let Entry::Reload { rules, .. } = r.entry {
                seen.push(rules);
            }
        })
        .expect("readable");
        seen
    };
    let everything = read_all(dir.path());
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(since_all(an_hour_ago), everything);

    // The oldest rotated file was last written two hours ago: a query for the last
    // hour does not read it; the current file is read whatever its age.
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for name in ["audit.jsonl.2", CURRENT_FILE] {
        std::fs::File::options()
            .append(true)
            .open(dir.path().join(name))
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("age the file");
    }
    let mut oldest = Vec::new();
    read_records_of(&dir.path().join("audit.jsonl.2"), &mut oldest);
    assert!(!oldest.is_empty());
    let recent = since_all(an_hour_ago);
    assert_eq!(
        recent,
        everything
            .iter()
            .copied()
            .filter(|n| !oldest.contains(n))
            .collect::<Vec<_>>()
    );
}

/// The reload counts recorded in one file of the trail.
fn read_records_of(file: &std::path::Path, into: &mut Vec<usize>) {
    let text = std::fs::read_to_string(file).expect("read the file");
    for line in text.lines() {
        let record: AuditRecord = serde_json::from_str(line).expect("a record");
        if let Entry::Reload { rules, .. } = record.entry {
            into.push(rules);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_records_are_read_from_the_newest_files_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 300, None).expect("open");
    for n in 0..12 {
        log.append(&[reload_record(n)]).await.expect("append");
    }
    log.close().await;
    let everything = read_all(dir.path());
    let newest = |limit| -> Result<Vec<usize>, String> {
        super::newest_records(
            dir.path(),
            &super::AuditFilter::default(),
            limit,
            usize::MAX,
            None,
        )
        .map(|page| page.records)
        .map(|records| {
            records
                .into_iter()
                .filter_map(|json| serde_json::from_str::<AuditRecord>(&json).ok())
                .filter_map(|r| match r.entry {
                    Entry::Reload { rules, .. } => Some(rules),
                    _ => None,
                })
                .collect()
        })
        .map_err(|e| e.to_string())
    };
    assert_eq!(newest(3), Ok(vec![9, 10, 11]));
    assert_eq!(newest(1000), Ok(everything.clone()));
    // As many as the two newest files hold.
    let in_newer = {
        let mut n = Vec::new();
        read_records_of(&dir.path().join(CURRENT_FILE), &mut n);
        read_records_of(&dir.path().join("audit.jsonl.1"), &mut n);
        n.len()
    };
    assert!(in_newer > 0);

    // The oldest file becomes unreadable: a look at the last few records never opens
    // it; reading everything does, and says so.
    let oldest = dir.path().join("audit.jsonl.2");
    std::fs::remove_file(&oldest).expect("remove");
    std::fs::create_dir(&oldest).expect("a folder where the file was");
    assert_eq!(
        newest(in_newer),
        Ok(everything[everything.len() - in_newer..].to_vec())
    );
    assert!(newest(1000).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_every_file_a_checkpoint_does_not_yet_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(dir.path(), 300, None).expect("open");
    log.append(&[reload_record(0)]).await.expect("append");
    // A checkpoint taken here points into what becomes the oldest rotated file.
    let held = log.position();
    for n in 1..12 {
        log.append(&[reload_record(n)]).await.expect("append");
    }
    log.close().await;
    let none_kept = Retention {
        keep_files: 0,
        keep_for: std::time::Duration::ZERO,
    };
    let removed = super::apply_retention(dir.path(), none_kept, held);
    assert!(removed.is_empty(), "removed {removed:?}");
    assert_eq!(
        read_all(dir.path()),
        (0..12).collect::<Vec<_>>(),
        "every record is still there"
    );
    // Once a checkpoint holds everything, the rotated files may go.
    let removed = super::apply_retention(dir.path(), none_kept, log.position());
    assert!(!removed.is_empty());
    assert!(removed.iter().all(|(_, why)| *why == super::Removed::Age));
    let mut current = Vec::new();
    read_records_of(&dir.path().join(CURRENT_FILE), &mut current);
    assert_eq!(
        read_all(dir.path()),
        current,
        "only the current file is left"
    );
}
