//! The trail on a real file system: what is acknowledged is there after a reopen.

use super::{read_records, AuditLog, AuditRecord, Entry, Retention, CURRENT_FILE};
use chrono::Utc;
use std::io::Write;
use std::sync::Arc;

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
    // The mark says the trail alone no longer holds everything (see `trimmed`).
    assert_eq!(
        names,
        vec![
            "audit.jsonl",
            "audit.jsonl.1",
            "audit.jsonl.2",
            "audit.trimmed"
        ]
    );
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
    assert!(
        !super::trimmed(dir.path()),
        "nothing removed, nothing marked"
    );
    assert_eq!(
        read_all(dir.path()),
        (0..12).collect::<Vec<_>>(),
        "every record is still there"
    );
    // Once a checkpoint holds everything, the rotated files may go.
    let removed = super::apply_retention(dir.path(), none_kept, log.position());
    assert!(!removed.is_empty());
    assert!(super::trimmed(dir.path()));
    assert!(removed.iter().all(|(_, why)| *why == super::Removed::Age));
    let mut current = Vec::new();
    read_records_of(&dir.path().join(CURRENT_FILE), &mut current);
    assert_eq!(
        read_all(dir.path()),
        current,
        "only the current file is left"
    );
}

/// One line of each kind, as salve writes them.
const LINES: &[&str] = &[
    r#"{"at":"2026-12-01T14:37:03.820070223Z","kind":"received","event":{"id":"01a23209-a9cc-7475-9aa9-9c7aca6f02e4","source":"alertmanager","status":"firing","labels":{"alertname":"HighLatency2","instance":"host-1:9100","job":"node"},"annotations":{"summary":"HighLatency2 on host-1:9100"},"starts_at":"2026-11-22T22:39:20.690236145Z","fingerprint":"00009e373b9b8576","generator_url":"http://prometheus.local:9090/graph?g0.expr=HighLatency2"}}"#,
    r#"{"at":"2026-12-01T14:37:03.820024997Z","kind":"received","event":{"id":"01a23209-a9cc-7475-9aa9-9c794dcc6dab","source":"alertmanager","status":"resolved","labels":{"alertname":"CPUHigh3"},"starts_at":"2026-11-22T22:39:20.690236145Z","ends_at":"2026-11-22T23:39:20Z","fingerprint":"00009e370000c11d"},"unmatched":true}"#,
    r#"{"at":"2026-12-01T14:37:03.820850446Z","kind":"decision","id":"01a23209-a9cf-704d-8be7-a27ac85d9518","event_id":"01a23209-a9c4-711c-96ba-c14f5d559bf6","fingerprint":"00009e373b9b854a","starts_at":"2026-11-22T22:39:20.690236145Z","status":"firing","rule":"storm0","action":"exec","target":"exec:storm-0","params":{"args":["host-1000047946:9100"]},"decision":"suppress","reason":"rate_limit","detail":"global exec budget 10 per 1m reached (10 in window)"}"#,
    r#"{"at":"2026-12-01T14:37:03.820850446Z","kind":"evaluated","event_id":"01a23209-a9c4-711c-96ba-c14f5d559bf6","fingerprint":"00009e373b9b854a","rules":["storm0","storm1"]}"#,
    r#"{"at":"2026-12-01T14:37:04Z","kind":"outcome","decision_id":"d1","event_id":"e1","fingerprint":"00009e373b9b854a","rule":"storm0","action":"exec","target":"exec:storm-0","outcome":"failed","duration_ms":12,"error":"exit status 3","detail":{"exit_code":3}}"#,
    r#"{"at":"2026-12-01T14:37:05Z","kind":"rule_error","event_id":"e1","fingerprint":"00009e373b9b854a","rule":"slow","error":"cut off","reason":"cut_off"}"#,
    r#"{"at":"2026-12-01T14:37:06Z","kind":"maintenance","op":"deleted","id":"w1","deleted_by":"alice"}"#,
    r#"{"at":"2026-12-01T14:37:07Z","kind":"reload","ok":false,"rules":3,"error":"bad rule"}"#,
];

#[test]
fn every_kind_of_line_reads_as_the_derived_form_reads_it_in_any_key_order() {
    for line in LINES {
        let mut expected: AuditRecord = serde_json::from_str(line).expect("a valid line");
        if let Entry::Received { event, .. } = &mut expected.entry {
            Arc::make_mut(event).received_at = expected.at;
        }
        let read = AuditRecord::from_line(line.as_bytes()).expect("reads");
        assert_eq!(read, expected, "{line}");
        // A hand-edited line: the same keys in alphabetical order.
        let value: serde_json::Value = serde_json::from_str(line).expect("json");
        let reordered = serde_json::to_string(&value).expect("serializes");
        assert!(!reordered.starts_with(r#"{"at":"2026-12-01T14:37:03.820070223Z","kind""#));
        let read = AuditRecord::from_line(reordered.as_bytes()).expect("reads reordered");
        assert_eq!(read, expected, "{reordered}");
    }
    // What is not a record is still an error, and says so.
    assert!(AuditRecord::from_line(br#"{"at":"2026-12-01T14:37:07Z","kind":"nonsense"}"#).is_err());
    assert!(AuditRecord::from_line(br#"{"kind":"reload","ok":true,"rules":1}"#).is_err());
}

#[test]
fn a_record_kind_reads_back_from_its_name_and_a_typo_names_every_kind() {
    for kind in super::RecordKind::ALL {
        assert_eq!(kind.as_str().parse::<super::RecordKind>(), Ok(kind));
        assert_eq!(
            serde_json::to_value(kind).expect("a kind serializes"),
            kind.as_str()
        );
    }
    // The kind a written record carries is the name the filter compares.
    let record = reload_record(1);
    let line = serde_json::to_value(&record).expect("a record serializes");
    assert_eq!(line["kind"], record.kind().as_str());
    assert_eq!(
        "decisions"
            .parse::<super::RecordKind>()
            .map_err(|e| e.to_string()),
        Err(
            "\"decisions\" is not a record kind (one of received, decision, outcome, \
             rule_error, evaluated, maintenance, reload, reconsidered, approval_requested, \
             approval_decided, state_reset)"
                .to_string()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_each_record_once_across_rotations_and_never_a_line_half_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small files: the trail rotates every record or two.
    let log = AuditLog::open(dir.path(), 100, None).expect("open");
    let mut from = log.position();
    for n in 0..5 {
        log.append(&[reload_record(n)]).await.expect("append");
    }
    let mut seen = Vec::new();
    let mut positions = Vec::new();
    loop {
        let before = seen.len();
        let next = super::read_positioned(dir.path(), from, log.position(), 2, |at, r| {
            positions.push(at);
            if let Entry::Reload { rules, .. } = r.entry {
                seen.push(rules);
            }
        })
        .expect("readable")
        .expect("the file it was in");
        from = next;
        if seen.len() == before {
            break;
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    positions.dedup();
    assert_eq!(positions.len(), 5, "each record has a position of its own");
    // A line past the durable end, or not yet whole, waits.
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(CURRENT_FILE))
        .expect("open");
    torn.write_all(br#"{"at":"2026-12-07T00:00:00Z","kind":"rel"#)
        .expect("write");
    let everything = super::TrailPosition {
        inode: from.inode,
        offset: u64::MAX,
    };
    let next = super::read_positioned(dir.path(), from, everything, 10, |_, r| {
        panic!("read a line half written: {r:?}")
    })
    .expect("readable");
    assert_eq!(next, Some(from));
    log.close().await;
}
