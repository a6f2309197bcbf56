//! Maintenance: named weekly windows in a zone with daylight saving time, and ad-hoc
//! windows made through the API.

use crate::support::{decisions, fixture_path, marker, native, of_kind, s, Salve, MARK_CONTAINER};
use serde_json::{json, Value};

const SUNDAY_NIGHT: &str = r#"
[[time_intervals]]
name = "sunday-night"

[[time_intervals.time_intervals]]
weekdays = ["sunday"]
times = [{ start_time = "02:00", end_time = "04:00" }]
location = "Europe/Berlin"
"#;

#[test]
fn a_weekly_window_in_berlin_mutes_only_inside_it_across_dst_changes() {
    let salve = Salve::builder()
        .config(SUNDAY_NIGHT)
        .rule(
            "container-down",
            r#"
const MATCH = `alertname="ContainerDown"`;
const MUTE = ["sunday-night"];

fn plan(event) {
    [restart(docker_container(event.labels.container))]
}
"#,
        )
        .write();
    let config = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let payload = fixture_path("firing-single.json").display().to_string();

    // (instant, Berlin wall clock, expected verdict)
    let cases = [
        // An ordinary Sunday in winter time (UTC+1).
        ("2026-03-22T00:59:00Z", "Sun 01:59 CET", "execute"),
        ("2026-03-22T01:00:00Z", "Sun 02:00 CET", "maintenance"),
        ("2026-03-22T02:59:00Z", "Sun 03:59 CET", "maintenance"),
        ("2026-03-22T03:00:00Z", "Sun 04:00 CET", "execute"),
        // Spring forward: 02:00 CET becomes 03:00 CEST, so the window is one hour long.
        ("2026-03-29T00:59:59Z", "Sun 01:59:59 CET", "execute"),
        ("2026-03-29T01:00:00Z", "Sun 03:00 CEST", "maintenance"),
        ("2026-03-29T01:59:00Z", "Sun 03:59 CEST", "maintenance"),
        ("2026-03-29T02:00:00Z", "Sun 04:00 CEST", "execute"),
        ("2026-03-30T01:30:00Z", "Mon 03:30 CEST", "execute"),
        // Summer time (UTC+2).
        ("2026-07-05T00:30:00Z", "Sun 02:30 CEST", "maintenance"),
        ("2026-07-05T02:30:00Z", "Sun 04:30 CEST", "execute"),
        // Fall back: 03:00 CEST becomes 02:00 CET, so the window is three hours long.
        ("2026-10-24T23:59:00Z", "Sun 01:59 CEST", "execute"),
        ("2026-10-25T00:00:00Z", "Sun 02:00 CEST", "maintenance"),
        ("2026-10-25T00:59:00Z", "Sun 02:59 CEST", "maintenance"),
        (
            "2026-10-25T01:00:00Z",
            "Sun 02:00 CET (again)",
            "maintenance",
        ),
        ("2026-10-25T02:59:00Z", "Sun 03:59 CET", "maintenance"),
        ("2026-10-25T03:00:00Z", "Sun 04:00 CET", "execute"),
        ("2026-10-26T01:30:00Z", "Mon 02:30 CET", "execute"),
    ];
    let expected: Vec<String> = cases
        .iter()
        .map(|(at, wall, verdict)| format!("{at} ({wall}): {verdict}"))
        .collect();
    let actual: Vec<String> = cases
        .iter()
        .map(|(at, wall, _)| {
            let out = salve.cli(&[
                "plan", "--json", "--config", &config, "--rules", &rules, "--at", at, &payload,
            ]);
            assert!(
                out.status.success(),
                "salve plan --at {at}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let plan: Vec<Value> = serde_json::from_slice(&out.stdout).expect("plan JSON");
            assert_eq!(plan.len(), 1, "{plan:#?}");
            let verdict = match plan[0]["reason"].as_str() {
                Some(reason) => {
                    if reason == "maintenance" {
                        assert_eq!(
                            plan[0]["detail"], "time interval \"sunday-night\" is active",
                            "{at}"
                        );
                    }
                    reason.to_string()
                }
                None => s(&plan[0]["decision"]),
            };
            format!("{at} ({wall}): {verdict}")
        })
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn an_ad_hoc_window_mutes_survives_a_restart_and_can_be_deleted() {
    let mut salve = Salve::builder()
        .config(&marker("mark", "marks.txt"))
        .rule("container-down", MARK_CONTAINER)
        .start();

    let ends_at = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let reply = salve.post_json(
        "/api/v1/maintenance",
        &json!({
            "matchers": "alertname=\"ContainerDown\"",
            "ends_at": ends_at,
            "created_by": "test",
            "comment": "upgrading the web tier",
        }),
    );
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let window = reply.body;
    let id = s(&window["id"]);
    assert_eq!(window["matchers"], "{alertname=\"ContainerDown\"}");
    assert_eq!(window["ends_at"], ends_at.as_str());
    assert_eq!(window["created_by"], "test");
    assert_eq!(window["comment"], "upgrading the web tier");
    assert_eq!(salve.get("/api/v1/maintenance").body, json!([window]));

    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_settled(1);
    assert_eq!(
        decisions(&records),
        ["container-down: exec exec:mark -> suppress (maintenance)"]
    );
    let detail = s(&of_kind(&records, "decision")[0]["detail"]);
    assert!(
        detail.starts_with(&format!("maintenance window {id} by test until "))
            && detail.ends_with(": upgrading the web tier"),
        "{detail}"
    );

    // The window is remembered across a restart, and still mutes.
    salve.stop();
    salve.start();
    assert_eq!(salve.get("/api/v1/maintenance").body, json!([window]));
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "ContainerDown"), ("container", "web-2")]),
    );
    assert_eq!(reply.status, 200);
    let records = salve.wait_settled(2);
    assert_eq!(
        decisions(&records),
        [
            "container-down: exec exec:mark -> suppress (maintenance)",
            "container-down: exec exec:mark -> suppress (maintenance)",
        ]
    );

    // Deleted, it no longer mutes: the muted alert, sent again, now acts.
    let reply = salve.delete(&format!("/api/v1/maintenance/{id}?deleted_by=test"));
    assert_eq!(reply.status, 204, "{:?}", reply.body);
    assert_eq!(salve.get("/api/v1/maintenance").body, json!([]));
    let reply = salve.delete(&format!("/api/v1/maintenance/{id}"));
    assert_eq!(reply.status, 404, "{:?}", reply.body);
    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_settled(3);
    assert_eq!(
        decisions(&records),
        [
            "container-down: exec exec:mark -> suppress (maintenance)",
            "container-down: exec exec:mark -> suppress (maintenance)",
            "container-down: exec exec:mark -> execute",
        ]
    );
    assert_eq!(salve.lines("marks.txt"), ["web-1"]);

    let changes: Vec<Value> = of_kind(&records, "maintenance")
        .into_iter()
        .map(|r| json!([r["op"], r["window"]["id"].as_str().or(r["id"].as_str())]))
        .collect();
    assert_eq!(changes, [json!(["created", id]), json!(["deleted", id])]);

    // And it stays deleted after another restart.
    salve.stop();
    salve.start();
    assert_eq!(salve.get("/api/v1/maintenance").body, json!([]));
}

#[test]
fn a_window_whose_matchers_match_everything_is_refused_unless_it_says_all() {
    let salve = Salve::builder()
        .config("[exec.mark]\nargv = [\"true\"]\n")
        .rule("container-down", MARK_CONTAINER)
        .start();
    let ends_at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for matchers in ["", "{}", "alertname=~\".*\"", "{team!=\"db\"}"] {
        let reply = salve.post_json(
            "/api/v1/maintenance",
            &json!({ "matchers": matchers, "ends_at": ends_at, "created_by": "test" }),
        );
        assert_eq!(reply.status, 400, "{matchers:?}: {:?}", reply.body);
        assert!(
            s(&reply.body["error"]).contains("match every alert")
                && s(&reply.body["error"]).contains("\"all\": true"),
            "{matchers:?}: {:?}",
            reply.body
        );
    }
    assert_eq!(salve.get("/api/v1/maintenance").body, json!([]));
    let reply = salve.post_json(
        "/api/v1/maintenance",
        &json!({ "all": true, "matchers": "alertname=\"ContainerDown\"", "ends_at": ends_at, "created_by": "test" }),
    );
    assert_eq!(reply.status, 400, "{:?}", reply.body);

    let reply = salve.post_json(
        "/api/v1/maintenance",
        &json!({ "all": true, "ends_at": ends_at, "created_by": "ops-lead", "comment": "datacenter move" }),
    );
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    assert!(
        salve.logs().contains("mutes every alert"),
        "a window muting everything is logged as such:\n{}",
        salve.logs()
    );
    assert_eq!(salve.post_fixture("firing-single.json").status, 200);
    let records = salve.wait_settled(1);
    assert_eq!(
        decisions(&records),
        ["container-down: exec exec:mark -> suppress (maintenance)"]
    );
    assert!(of_kind(&records, "maintenance").len() == 1);
}
