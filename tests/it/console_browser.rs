//! The console in a real browser (Debian's headless Chromium): a person signs in,
//! reads the overview of a salve that decided a few alerts, follows one alert's story,
//! filters the decisions, approves from the inbox and sees the row change without the
//! page reloading, makes and ends a maintenance window, and closes a breaker by hand
//! so that the next alert acts. The screenshots of the main pages land in
//! `target/console-screenshots/`.

use crate::browser_support::Browser;
use crate::support::{marker, of_kind, wait_until, Salve};
use serde_json::json;

/// alice may do everything and answers for `sre`; `flaky` fails until `{dir}/fixed`
/// exists; one failure opens its breaker.
fn config() -> String {
    format!(
        "{}\n[exec.flaky]\nargv = [\"/bin/sh\", \"-c\", 'test -e \"{{dir}}/fixed\" && echo \"$*\" >> \"{{dir}}/flaky\"', \"sh\"]\n\n\
         [policy]\nbreaker_failures = 1\nbreaker_open_for = \"30m\"\n\n\
         [[api.identity]]\nname = \"alice\"\ntoken_env = \"ALICE_TOKEN\"\nrole = \"admin\"\n\n\
         [approvals.sre]\nttl = \"10m\"\nidentities = [\"alice\"]\n",
        marker("mark", "marks"),
    )
}

const QUIET: &str = r#"
const MATCH = `alertname="Quiet"`;
fn plan(event) { [exec("mark", [event.labels.host])] }
"#;

const DB_DOWN: &str = r#"
const MATCH = `alertname="DbDown"`;
fn plan(event) { [exec("mark", ["failover-" + event.labels.host]).approval("sre")] }
"#;

const FLAKY: &str = r#"
const MATCH = `alertname="Flaky"`;
fn plan(event) { [exec("flaky", [event.labels.host])] }
"#;

fn send(salve: &Salve, alertname: &str, host: &str) {
    let reply = salve.post_json(
        "/api/v1/events",
        &json!({ "labels": { "alertname": alertname, "host": host } }),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

/// Waits until the trail holds `count` outcomes.
fn outcomes(salve: &Salve, count: usize) -> Vec<serde_json::Value> {
    let records = salve.wait_for_audit("the outcomes", |r| of_kind(r, "outcome").len() >= count);
    of_kind(&records, "outcome").into_iter().cloned().collect()
}

#[test]
fn a_person_on_call_reads_steers_and_approves_in_the_console() {
    let salve = Salve::builder()
        .config(&config())
        .rule("quiet", QUIET)
        .rule("db-down", DB_DOWN)
        .rule("flaky", FLAKY)
        .env("ALICE_TOKEN", "alice-token")
        .bearer("alice-token")
        .start();
    send(&salve, "Quiet", "web-1");
    send(&salve, "Quiet", "web-2");
    outcomes(&salve, 2);
    let browser = Browser::start();

    // Signing in brings the person back to the page they asked for.
    browser.goto(&salve.url("/ui/"));
    assert!(browser.url().contains("/ui/login"), "{}", browser.url());
    browser.fill("#token", "alice-token");
    browser.click("form button[type=submit]");
    browser.wait_until(
        "the overview after signing in",
        "document.querySelector('#mode')",
    );
    assert_eq!(browser.text("#mode"), "live");
    assert_eq!(browser.count("#rows tr.decision"), 2);
    browser.screenshot("overview");

    // New decisions arrive in place; paused, they wait until the pause ends.
    browser.wait_until(
        "the stream open",
        "document.querySelector('#live-status').textContent == 'live'",
    );
    browser.run("window.keptAcrossUpdates = 7;");
    browser.click("#pause");
    send(&salve, "Quiet", "web-3");
    browser.wait_until(
        "the paused list told of news",
        "document.querySelector('#live-status').textContent.startsWith('paused')",
    );
    assert_eq!(browser.count("#rows tr.decision"), 2);
    browser.click("#pause");
    browser.wait_until(
        "the new row",
        "document.querySelectorAll('#rows tr.decision').length == 3",
    );
    assert_eq!(
        browser.run("return window.keptAcrossUpdates;"),
        json!(7),
        "the page was reloaded"
    );

    // One alert's story: from the event to the outcome.
    browser.click("#rows tr.decision td:last-child a");
    browser.wait_until("the story", "document.querySelector('ol.story')");
    assert!(
        browser.text("h1").starts_with("Quiet"),
        "{}",
        browser.text("h1")
    );
    let story = browser.text("ol.story");
    for step in [
        "Event",
        "Rules matched",
        "Intent",
        "Policy",
        "execute",
        "Outcome",
        "ok",
    ] {
        assert!(story.contains(step), "{step} in {story}");
    }
    browser.screenshot("alert");

    // Filtering the decisions keeps the filter in the address.
    browser.goto(&salve.url("/ui/decisions"));
    browser.fill("input[name=target]", "exec:mark");
    browser.select("select[name=verdict]", "execute");
    browser.click("#filters button[type=submit]");
    browser.wait_until(
        "the filtered list",
        "location.search.includes('verdict=execute')",
    );
    assert!(
        browser.url().contains("target=exec%3Amark"),
        "{}",
        browser.url()
    );
    assert_eq!(browser.count("#rows tr.decision"), 3);
    browser.fill("input[name=target]", "exec:nothing");
    browser.click("#filters button[type=submit]");
    browser.wait_until(
        "an empty list",
        "location.search.includes('exec%3Anothing')",
    );
    assert_eq!(browser.count("#rows tr.decision"), 0);
    browser.screenshot("decisions");

    approves_in_place(&salve, &browser);
    makes_and_ends_a_window(&salve, &browser);
    closes_a_breaker(&salve, &browser);
}

/// The approval is answered from the inbox; its row moves to the answered list and
/// the page is never reloaded (a value left in it survives).
fn approves_in_place(salve: &Salve, browser: &Browser) {
    browser.goto(&salve.url("/ui/approvals"));
    browser.wait_until(
        "the stream open",
        "document.querySelector('#live-status').textContent == 'live'",
    );
    browser.run("window.keptAcrossTheAnswer = 42;");
    send(salve, "DbDown", "db-1");
    let records = salve.wait_for_audit("the approval request", |r| {
        !of_kind(r, "approval_requested").is_empty()
    });
    let id = of_kind(&records, "approval_requested")[0]["id"]
        .as_str()
        .expect("an approval id")
        .to_string();
    let row = format!("#approval-{id}.pending");
    browser.wait_until(
        "the request to arrive in the open inbox",
        &format!("document.querySelector('{row}')"),
    );
    browser.screenshot("approvals");
    let waited = salve.metric("salve_approval_oldest_pending_seconds");
    assert!(waited.is_some_and(|s| s > 0.0), "{waited:?}");
    browser.fill(&format!("{row} input[name=comment]"), "go ahead");
    browser.click(&format!("{row} button.approve"));
    // Answered, the approval is `approved`, and `executed` once its action ran: the
    // row may show either by the time the page reads its rows again.
    browser.wait_until(
        "the row to move to the answered list",
        &format!("document.querySelector('#approval-{id}.approved, #approval-{id}.executed')"),
    );
    assert_eq!(browser.count(&row), 0);
    assert_eq!(
        browser.run("return window.keptAcrossTheAnswer;"),
        json!(42),
        "the page was reloaded"
    );
    wait_until("the approved action to run", || {
        std::fs::read_to_string(salve.dir().join("marks"))
            .ok()
            .filter(|m| m.contains("failover-db-1"))
    });
    let decided =
        salve.wait_for_audit("the answer", |r| !of_kind(r, "approval_decided").is_empty());
    let answer = of_kind(&decided, "approval_decided")[0];
    assert_eq!(answer["actor"]["via"], "console");
    assert_eq!(answer["actor"]["id"], "alice");
    assert_eq!(answer["comment"], "go ahead");
}

/// The matchers are checked as they are typed; the window mutes until it is ended.
fn makes_and_ends_a_window(salve: &Salve, browser: &Browser) {
    browser.goto(&salve.url("/ui/maintenance"));
    browser.fill("#matchers", "{alertname=");
    browser.wait_until(
        "a refusal of bad matchers",
        "document.querySelector('#matchers-check').textContent.startsWith('✗')",
    );
    browser.fill("#matchers", "{alertname=\"Quiet\"}");
    browser.wait_until(
        "the matchers accepted",
        "document.querySelector('#matchers-check').textContent.startsWith('✓')",
    );
    browser.fill("input[name=ends_at]", "1h");
    browser.fill("input[name=comment]", "swapping the disks");
    browser.click("#new-window button[type=submit]");
    browser.wait_until(
        "the window listed",
        "document.querySelectorAll('#windows form').length == 1",
    );
    let windows = salve.get("/api/v1/maintenance");
    assert_eq!(
        windows.body[0]["comment"], "swapping the disks",
        "{:?}",
        windows.body
    );
    assert_eq!(windows.body[0]["created_by"], "alice");
    browser.screenshot("maintenance");
    browser.click("#windows form button");
    browser.wait_until(
        "the window gone",
        "document.querySelectorAll('#windows form').length == 0",
    );
    assert_eq!(salve.get("/api/v1/maintenance").body, json!([]));
}

/// A failure opens the breaker and the next alert is held back; closed by hand with a
/// reason, the alert after acts.
fn closes_a_breaker(salve: &Salve, browser: &Browser) {
    let before = salve.audit_json().len();
    send(salve, "Flaky", "a");
    let failed = salve.wait_for_audit("the failure", |r| {
        of_kind(r, "outcome")
            .iter()
            .any(|o| o["target"] == "exec:flaky" && o["outcome"] == "failed")
    });
    assert!(failed.len() > before);
    send(salve, "Flaky", "b");
    salve.wait_for_audit("the breaker holding the next alert", |r| {
        of_kind(r, "decision")
            .iter()
            .any(|d| d["reason"] == "circuit_open")
    });
    assert_eq!(salve.metric("salve_breakers_open"), Some(1.0));
    browser.goto(&salve.url("/ui/state"));
    assert_eq!(browser.count("#breakers tr.bad"), 1);
    browser.screenshot("state");
    browser.fill("#breakers input[name=reason]", "the disk is replaced");
    browser.click("#breakers form button");
    browser.wait_until(
        "the breaker closed",
        "document.querySelectorAll('#breakers tr.bad').length == 0",
    );
    let resets = salve.wait_for_audit("the reset", |r| !of_kind(r, "state_reset").is_empty());
    assert_eq!(salve.metric("salve_breakers_open"), Some(0.0));
    let reset = of_kind(&resets, "state_reset")[0];
    assert_eq!(
        (reset["by"].as_str(), reset["reason"].as_str()),
        (Some("alice"), Some("the disk is replaced"))
    );

    std::fs::write(salve.dir().join("fixed"), "").expect("mark the command fixed");
    send(salve, "Flaky", "c");
    wait_until("the next alert to act", || {
        std::fs::read_to_string(salve.dir().join("flaky"))
            .ok()
            .filter(|ran| ran.contains('c'))
    });
}
