//! Unhealthy containers on the machine's real Docker engine (seed 001): a container whose
//! healthcheck starts failing is restarted and comes back healthy, one that stays
//! unhealthy is restarted three times and then a person is paged, and one already
//! unhealthy when salve starts is restarted once across salve's restarts.

use crate::docker_support::{
    break_health, container_target, decided_on, evaluated, executed, health, inspect, ms_between,
    outcome_of, received, shipped_rule, test_image, wait_following, wait_health, Scope,
    DOCKER_PATIENCE, FILE_HEALTHCHECK, HEALTHY, HEALTHY_ONCE,
};
use crate::support::{decisions, describe, of_kind, Salve};
use serde_json::Value;
use std::time::Instant;

#[test]
fn a_container_whose_healthcheck_starts_failing_is_restarted_and_comes_back_healthy() {
    let scope = Scope::new();
    let salve = scope.start_salve(&[("container-down", &shipped_rule("container-down"))]);
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY);
    wait_health(&web, "healthy");
    let started_before = inspect(&web, "{{.State.StartedAt}}");

    let broke = Instant::now();
    break_health(&web);
    let target = container_target(&web);
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the unhealthy container restarted, with its outcome",
        |r| {
            executed(r, "restart", &target)
                .first()
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    let seen_by_test = broke.elapsed();

    let unhealthy: Vec<&Value> = received(&records, "ContainerUnhealthy", &web)
        .into_iter()
        .filter(|r| r["event"]["status"] == "firing")
        .collect();
    assert_eq!(unhealthy.len(), 1, "{records:#?}");
    let event = unhealthy[0];
    assert_eq!(event["event"]["source"], "docker");
    assert_eq!(event["event"]["labels"]["source"], "docker");
    assert_eq!(event["event"]["labels"]["health"], "unhealthy");
    assert_eq!(event["event"]["labels"]["image"], test_image());
    assert_eq!(
        event["event"]["labels"]["label_salve_test"],
        scope.run_id.as_str()
    );

    let restarts = executed(&records, "restart", &target);
    assert_eq!(restarts.len(), 1, "{:#?}", decisions(&records));
    let restart = restarts[0];
    assert_eq!(restart["event_id"], event["event"]["id"]);
    assert_eq!(restart["rule"], "container-down");
    let outcome = outcome_of(&records, restart).expect("the restart has an outcome");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["verified"], "healthy", "{outcome:#}");
    assert_eq!(health(&web), "healthy");
    assert_ne!(
        inspect(&web, "{{.State.StartedAt}}"),
        started_before,
        "the container was really restarted"
    );

    let docker_event_at = &event["event"]["starts_at"];
    eprintln!(
        "[docker] unhealthy→healthy: docker event → received {} ms, received → restart decided {} ms, \
         received → outcome (verified healthy) {} ms, docker event → restart decided {} ms, \
         docker event → healthy again {} ms; restart API call {} ms, restart → verified healthy {} ms; \
         `rm /tmp/ok` → outcome seen by the test {} ms",
        ms_between(docker_event_at, &event["at"]),
        ms_between(&event["at"], &restart["at"]),
        ms_between(&event["at"], &outcome["at"]),
        ms_between(docker_event_at, &restart["at"]),
        ms_between(docker_event_at, &outcome["at"]),
        outcome["detail"]["api_call_ms"],
        outcome["detail"]["verified_after_ms"],
        seen_by_test.as_millis()
    );

    // Healthy again: the engine's event resolves the alert; nothing more is done.
    let records = salve.wait_for_audit_within(DOCKER_PATIENCE, "the alert resolved", |r| {
        received(r, "ContainerUnhealthy", &web)
            .iter()
            .any(|e| e["event"]["status"] == "resolved" && time_after(e, restart))
    });
    assert_eq!(executed(&records, "restart", &target).len(), 1);
}

/// Whether record `a` was written after record `b`.
fn time_after(a: &Value, b: &Value) -> bool {
    ms_between(&b["at"], &a["at"]) >= 0
}

#[test]
fn a_container_that_stays_unhealthy_is_restarted_three_times_then_a_human_is_paged() {
    let scope = Scope::new();
    // The shipped rule's ladder, without its cooldown: only `recent()` stops the restarts.
    let rule = crate::docker_support::edited(
        &shipped_rule("container-down"),
        "const COOLDOWN = \"1m\";\n",
        "",
    );
    assert!(
        rule.contains(r#"recent(c, "restart", "15m") < 3"#),
        "{rule}"
    );
    let salve = scope.start_salve(&[("container-down", &rule)]);
    let api = scope.run("api", &FILE_HEALTHCHECK, &HEALTHY_ONCE);
    wait_health(&api, "healthy");
    let t0 = Instant::now();
    break_health(&api);

    let target = container_target(&api);
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "three restarts, then the page, each with its outcome",
        |r| {
            let pages = executed(r, "notify", "notify:oncall");
            pages.len() == 1
                && pages.iter().all(|d| outcome_of(r, d).is_some())
                && executed(r, "restart", &target)
                    .iter()
                    .all(|d| outcome_of(r, d).is_some())
        },
    );
    eprintln!(
        "[docker] escalation: 3 restarts and the page after {} ms",
        t0.elapsed().as_millis()
    );

    let restarts = executed(&records, "restart", &target);
    assert_eq!(restarts.len(), 3, "{:#?}", decisions(&records));
    for restart in &restarts {
        let outcome = outcome_of(&records, restart).expect("outcome");
        assert_eq!(outcome["outcome"], "failed", "{outcome:#}");
        assert_eq!(outcome["verified"], "unhealthy", "{outcome:#}");
    }
    // Each restart answered its own episode: the container went unhealthy again after it.
    let episodes: Vec<&Value> = received(&records, "ContainerUnhealthy", &api)
        .into_iter()
        .filter(|r| r["event"]["status"] == "firing")
        .collect();
    assert_eq!(episodes.len(), 4, "{records:#?}");
    let page = executed(&records, "notify", "notify:oncall")[0];
    assert_eq!(page["event_id"], episodes[3]["event"]["id"]);
    let page_outcome = outcome_of(&records, page).expect("outcome");
    assert_eq!(page_outcome["outcome"], "ok", "{page_outcome:#}");
    assert_eq!(page_outcome["detail"]["type"], "log", "{page_outcome:#}");
    assert!(
        salve
            .logs()
            .contains("salve restarted it 3 times in 15 minutes and stopped"),
        "the page is in salve's log:\n{}",
        salve.logs()
    );

    // No fourth restart, not even a suppressed one: the rule stopped asking. Every event
    // the engine sent before the marker container turned healthy has been decided.
    scope.sync_events(&salve, "sync");
    let records = salve.audit_json();
    let all_restarts: Vec<String> = decided_on(&records, &target)
        .into_iter()
        .map(describe)
        .collect();
    assert_eq!(
        all_restarts,
        vec![format!("container-down: restart {target} -> execute"); 3]
    );
    assert_eq!(health(&api), "unhealthy");
}

#[test]
fn a_container_already_unhealthy_when_salve_starts_is_restarted_once_across_salve_restarts() {
    let scope = Scope::new();
    // Healthy on its first start only, and after a restart "starting" for 15 s before it
    // is unhealthy again: long enough for salve to restart it and stop meanwhile.
    let mut options = FILE_HEALTHCHECK.to_vec();
    options.extend(["--health-start-period", "15s"]);
    let db = scope.run("db", &options, &HEALTHY_ONCE);
    wait_health(&db, "healthy");
    break_health(&db);
    wait_health(&db, "unhealthy");

    // The shipped rule without its cooldown: only the episode keeps it from restarting
    // again. A short verification, so the restart's outcome is in before the container
    // is unhealthy again.
    let rule = crate::docker_support::edited(
        &shipped_rule("container-down"),
        "const COOLDOWN = \"1m\";\n",
        "",
    );
    let mut salve = Salve::builder()
        .config(&scope.config_verifying_within("3s"))
        .rule("container-down", &rule)
        .start();
    wait_following(&salve, 1);
    let target = container_target(&db);
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the start-up scan's restart, with its outcome",
        |r| {
            executed(r, "restart", &target)
                .first()
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    salve.stop();
    let records_first = salve.audit_json();
    assert_eq!(
        health(&db),
        "starting",
        "restarted, and not yet unhealthy again when salve stopped"
    );
    let scanned = received(&records, "ContainerUnhealthy", &db);
    assert_eq!(scanned.len(), 1, "{records:#?}");
    assert_eq!(
        received(&records_first, "ContainerUnhealthy", &db).len(),
        1,
        "{records_first:#?}"
    );
    let scanned = scanned[0];
    let restart = executed(&records, "restart", &target)[0];
    assert_eq!(restart["event_id"], scanned["event"]["id"]);
    let outcome = outcome_of(&records, restart).expect("outcome");
    assert_eq!(outcome["verified"], "timeout", "{outcome:#}");
    eprintln!(
        "[docker] start-up scan: found → restart decided {} ms",
        ms_between(&scanned["at"], &restart["at"])
    );

    // Unhealthy again while salve is away (a new transition the next salve never sees
    // as an event), then salve starts right away.
    wait_health(&db, "unhealthy");
    salve.start();
    wait_following(&salve, 2);
    let records =
        salve.wait_for_audit_within(DOCKER_PATIENCE, "the second start's scan decided", |r| {
            received(r, "ContainerUnhealthy", &db)
                .get(1)
                .is_some_and(|e| evaluated(r, e))
        });
    let all = received(&records, "ContainerUnhealthy", &db);
    assert_eq!(all.len(), 2, "{records:#?}");
    let rescanned = all[1];
    assert_eq!(
        rescanned["event"]["starts_at"], scanned["event"]["starts_at"],
        "the scan after a restart of salve reuses the episode salve knew"
    );
    let on_rescan: Vec<String> = of_kind(&records, "decision")
        .into_iter()
        .filter(|d| d["event_id"] == rescanned["event"]["id"])
        .map(describe)
        .collect();
    assert_eq!(
        on_rescan,
        [
            format!("container-down: restart {target} -> suppress (dedup)"),
            "container-down: notify notify:ops -> suppress (dedup)".to_string(),
        ]
    );
    assert_eq!(
        executed(&records, "restart", &target).len(),
        1,
        "{:#?}",
        decisions(&records)
    );
}
