//! An upgrade over an old checkpoint: a salve whose checkpoint format changed reads the
//! previous format, so the limits, breakers, windows and dedup it holds still hold when
//! retention has already removed the trail that said them.

use crate::support::{native, of_kind, settled, Salve};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CONFIG: &str = r#"
[audit]
max_file_bytes = 4096
keep_files = 1

[policy]
breaker_failures = 1
breaker_open_for = "1d"

[exec.works]
argv = ["/bin/true"]

[exec.breaks]
argv = ["/bin/false"]
"#;

/// `Limited` acts once a day per target.
const LIMITED: &str = r#"
const MATCH = `alertname=~"Limited|Padding"`;
const LIMIT = "1 per 1d per target";

fn plan(event) {
    if event.labels.alertname == "Limited" { [exec("works", [event.labels.n])] } else { [] }
}
"#;

/// `Broken` runs a command that fails; `Muted` is in a window.
const OTHERS: &str = r#"
const MATCH = `alertname=~"Broken|Muted"`;

fn plan(event) {
    if event.labels.alertname == "Broken" { [exec("breaks")] } else { [exec("works", ["muted"])] }
}
"#;

/// The checkpoint format 1 that salve wrote before format 2 kept held-back alerts (and
/// format 3 approvals, format 4 resets by hand): the same body without the last five
/// fields (no held alerts, none held in dry-run, none turned away, no approvals, no
/// resets: five zero bytes in postcard), under header version 1. It is read through
/// every older reader.
pub fn as_format_1(bytes: &[u8]) -> Vec<u8> {
    const HEADER: usize = 52;
    assert_eq!(&bytes[..8], b"SALVECKP", "a checkpoint");
    assert_eq!(
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        4
    );
    let body = &bytes[HEADER..];
    assert_eq!(
        &body[body.len() - 5..],
        &[0, 0, 0, 0, 0],
        "the checkpoint holds no held-back alerts, approvals or resets, so format 1 says the same"
    );
    let body = &body[..body.len() - 5];
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(b"SALVECKP");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

fn decision_of<'a>(records: &'a [Value], event_id: &Value) -> Vec<&'a Value> {
    of_kind(records, "decision")
        .into_iter()
        .filter(|d| d["event_id"] == *event_id)
        .collect()
}

#[test]
fn an_upgrade_over_a_previous_format_checkpoint_keeps_limits_breakers_windows_and_dedup() {
    let mut salve = Salve::builder()
        .config(CONFIG)
        .rule("limited", LIMITED)
        .rule("others", OTHERS)
        .start();
    let window = salve.post_json(
        "/api/v1/maintenance",
        &json!({"matchers": "alertname=\"Muted\"", "ends_at": "2099-01-01T00:00:00Z",
                "created_by": "test", "comment": "held over the upgrade"}),
    );
    assert_eq!(window.status, 201, "{:?}", window.body);
    let window_id = window.body["id"].clone();
    let mut limited = native(&[("alertname", "Limited"), ("n", "1")]);
    limited["starts_at"] = json!("2026-12-07T01:00:00Z");
    assert_eq!(salve.post_json("/api/v1/events", &limited).status, 200);
    salve.post_event(&[("alertname", "Broken")]);
    let records = salve.wait_settled(2);
    // The two commands run at once, on targets of their own: either may end first.
    let mut outcomes: Vec<&str> = of_kind(&records, "outcome")
        .iter()
        .map(|o| o["outcome"].as_str().unwrap_or_default())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["failed", "ok"], "{records:#?}");
    // Enough traffic to rotate the trail past keep_files: the records above are then
    // only in the checkpoint.
    for i in 0..150 {
        salve.post_event(&[("alertname", "Padding"), ("i", &i.to_string())]);
    }
    // Retention trims what the trail says of the first ones, so the sync point is the
    // last one decided with everything before it, not a count of what is still there.
    salve.wait_for_audit("the last padding alert decided", |r| {
        settled(r, 0)
            && of_kind(r, "received")
                .iter()
                .any(|x| x["event"]["labels"]["i"] == "149")
    });
    salve.stop();
    let data = salve.data_dir();
    assert!(
        data.join("audit.trimmed").exists(),
        "retention removed older trail files"
    );
    let trail: String = std::fs::read_dir(&data)
        .expect("the data dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("audit"))
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .collect();
    assert!(
        !trail.contains("\"Limited\"") && !trail.contains("\"Broken\""),
        "the trail that said what the limit, breaker and dedup hold is gone"
    );
    for name in ["state.checkpoint", "state.checkpoint.1"] {
        let path = data.join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            std::fs::write(&path, as_format_1(&bytes)).expect("write the old checkpoint");
        }
    }

    salve.start();
    assert!(
        !salve.logs().contains("not using it"),
        "the format 1 checkpoint is read:\n{}",
        salve.logs()
    );
    let windows = salve.get("/api/v1/maintenance").body;
    assert_eq!(windows[0]["id"], window_id, "{windows}");
    // The same episode again, the limited target again, the broken one, the muted one.
    let before = of_kind(&salve.audit_json(), "evaluated").len();
    assert_eq!(salve.post_json("/api/v1/events", &limited).status, 200);
    salve.post_event(&[("alertname", "Limited"), ("n", "2")]);
    salve.post_event(&[("alertname", "Broken"), ("again", "yes")]);
    salve.post_event(&[("alertname", "Muted")]);
    let records = salve.wait_for_audit("the four decided", |r| {
        of_kind(r, "evaluated").len() >= before + 4
    });
    let after_upgrade: Vec<&Value> = of_kind(&records, "received")
        .into_iter()
        .rev()
        .take(4)
        .collect();
    let reasons: Vec<String> = after_upgrade
        .iter()
        .rev()
        .map(|r| {
            decision_of(&records, &r["event"]["id"])
                .iter()
                .map(|d| d["reason"].as_str().unwrap_or("execute").to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(
        reasons,
        ["dedup", "rate_limit", "circuit_open", "maintenance"],
        "{:#?}",
        of_kind(&records, "decision")
    );
}
