//! Containers that exit, on the machine's real Docker engine (seed 001 #3, seed 000): a
//! crashed container is started again but one a person stopped is left alone, and a
//! crashed Compose service is restarted after its delay unless its dependency is unhealthy.

use crate::docker_support::{
    break_health, container_target, decided_on, docker_ok, evaluated, executed, health, inspect,
    ms_between, outcome_of, received, shipped_rule, wait_health, Scope, CRASHES_ONCE,
    DOCKER_PATIENCE, FILE_HEALTHCHECK, HEALTHY,
};
use crate::support::{describe, of_kind};
use serde_json::Value;

#[test]
fn a_crashed_container_is_started_again_but_one_a_person_stopped_is_left_alone() {
    let scope = Scope::new();
    let salve = scope.start_salve(&[("container-exited", &shipped_rule("container-exited"))]);

    let worker = scope.run("worker", &[], &CRASHES_ONCE);
    let target = container_target(&worker);
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the crashed container started again, with its outcome",
        |r| {
            executed(r, "start", &target)
                .first()
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    let died = received(&records, "ContainerExited", &worker);
    assert_eq!(died.len(), 1, "{records:#?}");
    assert_eq!(died[0]["event"]["labels"]["exit_code"], "3");
    assert_eq!(died[0]["event"]["labels"]["stop_requested"], "false");
    let start = executed(&records, "start", &target)[0];
    assert_eq!(start["rule"], "container-exited");
    let outcome = outcome_of(&records, start).expect("outcome");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["verified"], "running", "{outcome:#}");
    eprintln!(
        "[docker] exited: docker event → start decided {} ms, → verified running {} ms",
        ms_between(&died[0]["event"]["starts_at"], &start["at"]),
        ms_between(&died[0]["event"]["starts_at"], &outcome["at"])
    );
    assert_eq!(inspect(&worker, "{{.State.Status}}"), "running");

    let idle = scope.run("idle", &[], &["sleep", "3600"]);
    docker_ok(&["stop", &idle]);
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the stopped container's exit evaluated",
        |r| {
            received(r, "ContainerExited", &idle)
                .first()
                .is_some_and(|e| evaluated(r, e))
        },
    );
    let stopped = received(&records, "ContainerExited", &idle);
    assert_eq!(stopped.len(), 1, "{records:#?}");
    assert_eq!(stopped[0]["event"]["labels"]["stop_requested"], "true");
    assert_eq!(stopped[0]["event"]["labels"]["exit_code"], "137");
    let about_idle: Vec<&Value> = of_kind(&records, "decision")
        .into_iter()
        .filter(|d| d["event_id"] == stopped[0]["event"]["id"])
        .collect();
    assert!(about_idle.is_empty(), "{about_idle:#?}");
    assert!(decided_on(&records, &container_target(&idle)).is_empty());
    assert_eq!(inspect(&idle, "{{.State.Status}}"), "exited");
}

// ---------------------------------------------------------------------------------
// Seed 000: Compose services
// ---------------------------------------------------------------------------------

fn compose_labels(project: &str, service: &str) -> Vec<String> {
    vec![
        "--label".to_string(),
        format!("com.docker.compose.project={project}"),
        "--label".to_string(),
        format!("com.docker.compose.service={service}"),
    ]
}

/// Compose project `short` of this test (named `RUN-short`): its `db` with the file
/// healthcheck, labelled as `docker compose up` would.
fn compose_db(scope: &Scope, short: &str) -> String {
    let mut options = compose_labels(&scope.name(short), "db");
    options.extend(FILE_HEALTHCHECK.iter().map(|s| s.to_string()));
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    scope.run(&format!("{short}-db-1"), &options, &HEALTHY)
}

/// Its `web`, which crashes once and declares `salve.depends_on=db`.
fn compose_web(scope: &Scope, short: &str) -> String {
    let mut options = compose_labels(&scope.name(short), "web");
    options.extend(["--label".to_string(), "salve.depends_on=db".to_string()]);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    scope.run(&format!("{short}-web-1"), &options, &CRASHES_ONCE)
}

#[test]
fn a_crashed_compose_service_is_restarted_after_its_delay_unless_its_dependency_is_unhealthy() {
    let scope = Scope::new();
    // The shipped rule, with its 10 s delay shortened to keep the suite quick.
    let rule = crate::docker_support::edited(
        &shipped_rule("compose-exited"),
        ".after(\"10s\")",
        ".after(\"2s\")",
    );
    let salve = scope.start_salve(&[("compose-exited", &rule)]);

    // Healthy dependency: web is restarted through its Compose service.
    let shop = scope.name("shop");
    let db = compose_db(&scope, "shop");
    wait_health(&db, "healthy");
    let web = compose_web(&scope, "shop");
    let service = format!("compose:{shop}/web");
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the Compose service restarted, with its outcome",
        |r| {
            executed(r, "restart", &service)
                .first()
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    let died = received(&records, "ContainerExited", &web);
    assert_eq!(died.len(), 1, "{records:#?}");
    let labels = &died[0]["event"]["labels"];
    assert_eq!(labels["compose_project"], shop.as_str());
    assert_eq!(labels["compose_service"], "web");
    assert_eq!(labels["label_salve_depends_on"], "db");
    assert_eq!(labels["exit_code"], "3");
    let restart = executed(&records, "restart", &service)[0];
    assert_eq!(restart["params"]["delay_ms"], 2000, "{restart:#}");
    let outcome = outcome_of(&records, restart).expect("outcome");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["verified"], "running", "{outcome:#}");
    assert_eq!(outcome["detail"]["containers"], serde_json::json!([web]));
    eprintln!(
        "[docker] compose: docker event → restart decided {} ms, decided → outcome {} ms (2 s delay included)",
        ms_between(&died[0]["event"]["starts_at"], &restart["at"]),
        ms_between(&restart["at"], &outcome["at"])
    );
    assert_eq!(inspect(&web, "{{.State.Status}}"), "running");
    assert_eq!(health(&db), "healthy");

    // Unhealthy dependency: web is not restarted into the same failure; ops hear of it.
    let cart = scope.name("cart");
    let db = compose_db(&scope, "cart");
    wait_health(&db, "healthy");
    break_health(&db);
    salve.wait_for_audit_within(DOCKER_PATIENCE, "db's unhealthy event", |r| {
        received(r, "ContainerUnhealthy", &db)
            .iter()
            .any(|e| e["event"]["status"] == "firing" && evaluated(r, e))
    });
    let web = compose_web(&scope, "cart");
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "web's exit decided, with every outcome",
        |r| {
            received(r, "ContainerExited", &web)
                .first()
                .is_some_and(|e| evaluated(r, e))
                && executed(r, "notify", "notify:ops")
                    .iter()
                    .all(|d| outcome_of(r, d).is_some())
        },
    );
    let died = received(&records, "ContainerExited", &web)[0];
    let about_web: Vec<String> = of_kind(&records, "decision")
        .into_iter()
        .filter(|d| d["event_id"] == died["event"]["id"])
        .map(describe)
        .collect();
    assert_eq!(
        about_web,
        ["compose-exited: notify notify:ops -> execute"],
        "{records:#?}"
    );
    assert!(decided_on(&records, &format!("compose:{cart}/web")).is_empty());
    let page = executed(&records, "notify", "notify:ops")[0];
    let outcome = outcome_of(&records, page).expect("outcome");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["detail"]["channel"], "ops", "{outcome:#}");
    assert_eq!(inspect(&web, "{{.State.Status}}"), "exited");
}
