//! Docker against the machine's real engine: salve follows its events, the shipped
//! rules decide, and the executor restarts, starts and scales real containers and
//! services. Every test names and labels its containers with its own run id, and its
//! salve only follows containers with that label.

use crate::docker_support::{
    break_health, container_target, decided_on, docker, docker_ok, evaluated, executed, health,
    inspect, ms_between, outcome_of, received, shipped_rule, test_image, wait_following, wait_for,
    wait_health, Scope, CRASHES_ONCE, DOCKER_PATIENCE, FILE_HEALTHCHECK, HEALTHY,
    HEALTHY_AFTER_RESTART, HEALTHY_ONCE,
};
use crate::support::{decisions, describe, native, of_kind, s, Salve};
use salve::execute::{connect_docker, DockerExecutor, Executor};
use salve::model::{Action, Intent, Target};
use salve::model::{Outcome, OutcomeStatus};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The trail's decisions a line each, for a failure message a person can read.
fn decision_lines(records: &[Value]) -> String {
    of_kind(records, "decision")
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {} {} (episode {})\n",
                d["at"],
                d["rule"],
                d["action"],
                d["target"],
                d["decision"],
                d["reason"],
                d["starts_at"]
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Seed 001: unhealthy containers
// ---------------------------------------------------------------------------------

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

    // No fourth restart, not even a suppressed one: the rule stopped asking.
    std::thread::sleep(Duration::from_secs(3));
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

// ---------------------------------------------------------------------------------
// Seed 001 / #3: exited containers
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// What went bad while salve was away
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Not fighting the engine or a person
// ---------------------------------------------------------------------------------

const POKE: &str = r#"
const MATCH = `alertname="Poke"`;

fn plan(event) {
    [restart(docker_container(event.labels.container))]
}
"#;

#[test]
fn a_paused_container_is_not_restarted_and_a_removed_one_fails_as_not_found() {
    let scope = Scope::new();
    let salve = scope.start_salve(&[("poke", POKE)]);
    let paused = scope.run("paused", &[], &["sleep", "3600"]);
    docker_ok(&["pause", &paused]);
    let started_before = inspect(&paused, "{{.State.StartedAt}}");
    let gone = scope.run("gone", &[], &["sleep", "3600"]);
    docker_ok(&["rm", "-f", &gone]);

    for name in [&paused, &gone] {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Poke"), ("container", name)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let records = salve.wait_settled(2);
    let outcome = |name: &str| -> Value {
        let decision = executed(&records, "restart", &container_target(name));
        assert_eq!(decision.len(), 1, "{:#?}", decisions(&records));
        outcome_of(&records, decision[0]).expect("outcome").clone()
    };

    let on_paused = outcome(&paused);
    assert_eq!(on_paused["outcome"], "skipped", "{on_paused:#}");
    assert_eq!(
        s(&on_paused["error"]),
        format!("container {paused} is paused on purpose; unpause it first")
    );
    assert_eq!(inspect(&paused, "{{.State.Status}}"), "paused");
    assert_eq!(inspect(&paused, "{{.State.StartedAt}}"), started_before);

    let on_gone = outcome(&gone);
    assert_eq!(on_gone["outcome"], "failed", "{on_gone:#}");
    assert_eq!(
        s(&on_gone["error"]),
        format!("container {gone} not found (removed?)")
    );
}

#[test]
fn by_default_salve_acts_only_on_containers_labelled_salve_enable_true() {
    let scope = Scope::new();
    // The defaults: no `label` in `[docker]`; events followed.
    let salve = Salve::builder()
        .config("[docker]\nevents = true\n")
        .rule("poke", POKE)
        .start();

    // Only an opted-in container's death is an event salve hears of.
    let job = scope.run("job", &[], &["sh", "-c", "exit 3"]);
    let worker = scope.run(
        "worker",
        &["--label", "salve.enable=true"],
        &["sh", "-c", "sleep 1; exit 3"],
    );
    let records = salve.wait_for_audit("the opted-in container's exit", |r| {
        !received(r, "ContainerExited", &worker).is_empty()
    });
    assert!(
        received(&records, "ContainerExited", &job).is_empty(),
        "a container without salve.enable=true was followed: {records:#?}"
    );

    let batch = scope.run("batch", &[], &["sleep", "3600"]);
    let web = scope.run("web", &["--label", "salve.enable=true"], &["sleep", "3600"]);
    let batch_started = inspect(&batch, "{{.State.StartedAt}}");
    let web_started = inspect(&web, "{{.State.StartedAt}}");

    for name in [&batch, &web] {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Poke"), ("container", name)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    // Not a count of events: at start salve reads the engine's last 10 minutes, which
    // may hold other opted-in containers' deaths (an earlier run of this test).
    let records = salve.wait_for_audit("both pokes acted on", |r| {
        [&batch, &web].iter().all(|name| {
            executed(r, "restart", &container_target(name))
                .first()
                .is_some_and(|d| outcome_of(r, d).is_some())
        })
    });
    let outcome = |name: &str| -> Value {
        let decision = executed(&records, "restart", &container_target(name));
        assert_eq!(decision.len(), 1, "{:#?}", decisions(&records));
        outcome_of(&records, decision[0]).expect("outcome").clone()
    };

    let on_batch = outcome(&batch);
    assert_eq!(on_batch["outcome"], "skipped", "{on_batch:#}");
    assert_eq!(on_batch["reason"], "not_opted_in", "{on_batch:#}");
    assert_eq!(
        s(&on_batch["error"]),
        format!(
            "container {batch} does not carry the label salve.enable=true (docker.label): salve does not act on it"
        )
    );
    assert_eq!(inspect(&batch, "{{.State.StartedAt}}"), batch_started);

    let on_web = outcome(&web);
    assert_eq!(on_web["outcome"], "ok", "{on_web:#}");
    assert_ne!(inspect(&web, "{{.State.StartedAt}}"), web_started);
}

// ---------------------------------------------------------------------------------
// Swarm services, through the executor's library API
// ---------------------------------------------------------------------------------

/// Serializes the Swarm test across test processes on this machine (another `cargo
/// test` may run at the same time): a lock file holding the owner's pid; a lock whose
/// owner is gone is taken over.
struct SwarmLock {
    path: std::path::PathBuf,
}

impl SwarmLock {
    fn take() -> SwarmLock {
        let path = std::env::temp_dir().join("salve-it-swarm.lock");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    let _ = write!(file, "{}", std::process::id());
                    return SwarmLock { path };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                    if !alive && !owner.is_empty() {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                }
                Err(e) => panic!("{}: {e}", path.display()),
            }
            assert!(
                Instant::now() < deadline,
                "another test process holds {} too long",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SwarmLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This node as a Swarm manager for the test; leaves the swarm at the end if the test
/// made it, after removing the test's services and waiting for their containers.
struct Swarm {
    initialized: bool,
    services: Vec<String>,
    _lock: SwarmLock,
}

impl Swarm {
    fn join() -> Swarm {
        let lock = SwarmLock::take();
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let mut swarm = Swarm {
            initialized: false,
            services: Vec::new(),
            _lock: lock,
        };
        if state == "inactive" {
            let out = docker(&[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--listen-addr",
                "127.0.0.1:2377",
            ]);
            assert!(
                out.status.success(),
                "this Docker engine refused `docker swarm init`: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            swarm.initialized = true;
        } else {
            assert_eq!(state, "active", "Swarm is {state}");
            let manager = docker_ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
            assert_eq!(manager, "true", "this node is in a swarm but not a manager");
        }
        swarm
    }

    /// `docker service create` on the host network (Swarm refuses `none`; nothing is
    /// sent anywhere), one replica, a 1 s stop grace period.
    fn create_service(&mut self, name: &str, run_id: &str) {
        self.services.push(name.to_string());
        let label = format!("salve.test={run_id}");
        docker_ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--label",
            &label,
            "--no-resolve-image",
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            "--replicas",
            "1",
            test_image(),
            "sleep",
            "3600",
        ]);
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for name in &self.services {
            let _ = docker(&["service", "rm", name]);
        }
        let deadline = Instant::now() + DOCKER_PATIENCE;
        for name in &self.services {
            let filter = format!("label=com.docker.swarm.service.name={name}");
            while Instant::now() < deadline {
                let out = docker(&["ps", "-aq", "--filter", &filter]);
                if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            // Whatever the engine has not cleaned up by now goes the hard way.
            let out = docker(&["ps", "-aq", "--filter", &filter]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        if self.initialized {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}

fn replicas(service: &str) -> String {
    docker_ok(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ])
}

fn running_tasks(service: &str) -> usize {
    let out = docker_ok(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ]);
    out.lines().filter(|l| l.starts_with("Running")).count()
}

fn env_of(service: &str) -> String {
    docker_ok(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    ])
}

#[test]
fn a_swarm_service_is_scaled_restarted_and_rolled_back_through_the_executor() {
    let scope = Scope::new();
    let mut swarm = Swarm::join();
    let name = scope.name("svc");
    swarm.create_service(&name, &scope.run_id);
    wait_for("the service's first task running", || {
        (running_tasks(&name) == 1).then_some(())
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let settings = salve::execute::DockerSettings {
        host: None,
        cert_path: None,
        events: None,
        label: salve::execute::OptIn::Label {
            key: "salve.test".into(),
            value: Some(scope.run_id.clone()),
        },
        verify_timeout: Duration::from_secs(30),
    };
    let executor = runtime.block_on(async {
        let docker = connect_docker(&settings)
            .await
            .unwrap_or_else(|e| panic!("connect to Docker: {e}"));
        DockerExecutor::new(docker, &settings)
    });
    let target = Target::SwarmService { name: name.clone() };
    let act = |intent: Intent| -> Outcome {
        let started = Instant::now();
        let outcome = runtime.block_on(executor.execute(&intent, &Default::default()));
        eprintln!(
            "[docker] swarm {} {:?}: {:?} in {} ms",
            intent.action,
            intent.params,
            outcome.outcome,
            started.elapsed().as_millis()
        );
        assert_eq!(outcome.outcome, OutcomeStatus::Ok, "{outcome:#?}");
        outcome
    };

    let outcome = act(Intent::new(Action::Scale, target.clone()).with("replicas", 2));
    assert_eq!(outcome.detail["replicas_before"], 1);
    assert_eq!(outcome.detail["replicas"], 2);
    assert_eq!(replicas(&name), "2");
    wait_for("two tasks running", || {
        (running_tasks(&name) == 2).then_some(())
    });

    let outcome = act(Intent::new(Action::Scale, target.clone()).with("replicas", "+1"));
    assert_eq!(outcome.detail["replicas"], 3);
    assert_eq!(replicas(&name), "3");
    wait_for("three tasks running", || {
        (running_tasks(&name) == 3).then_some(())
    });

    let force = "{{.Spec.TaskTemplate.ForceUpdate}}";
    let before = docker_ok(&["service", "inspect", &name, "--format", force]);
    act(Intent::new(Action::Restart, target.clone()));
    let after = docker_ok(&["service", "inspect", &name, "--format", force]);
    assert_ne!(before, after, "a restart is a forced update");

    docker_ok(&[
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--env-add",
        "SALVE_IT=1",
        &name,
    ]);
    assert_eq!(env_of(&name), r#"["SALVE_IT=1"]"#);
    act(Intent::new(Action::Rollback, target.clone()));
    assert_eq!(
        env_of(&name),
        "null",
        "the rollback restored the spec before the update"
    );
    assert_eq!(replicas(&name), "3");

    let missing = runtime.block_on(
        executor.execute(
            &Intent::new(
                Action::Scale,
                Target::SwarmService {
                    name: scope.name("no-such-svc"),
                },
            )
            .with("replicas", 1),
            &Default::default(),
        ),
    );
    assert_eq!(missing.outcome, OutcomeStatus::Failed);
    assert_eq!(
        missing.error.as_deref(),
        Some(format!("swarm service {} not found", scope.name("no-such-svc")).as_str())
    );
    drop(swarm);
    assert_eq!(
        docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.swarm.service.name={name}")
        ]),
        ""
    );
}

/// A socat proxy in front of the engine's socket: killing it is, for salve, the engine
/// going away (a `dockerd` restart) without touching the engine other tests use; with
/// TLS it is the engine on `tcp://HOST:2376` as `dockerd --tlsverify` serves it.
struct EngineProxy {
    /// The program and its arguments.
    command: Vec<String>,
    /// Where it listens: a socket file, or a loopback port.
    at: Listening,
    child: Option<std::process::Child>,
}

enum Listening {
    Socket(std::path::PathBuf),
    Port(u16),
}

impl EngineProxy {
    fn start(socket: &std::path::Path) -> EngineProxy {
        EngineProxy::listening(
            vec![
                "socat".into(),
                format!("UNIX-LISTEN:{},fork", socket.display()),
                "UNIX-CONNECT:/var/run/docker.sock".into(),
            ],
            Listening::Socket(socket.to_path_buf()),
        )
    }

    /// Mutual TLS with the certificates of [`crate::certs::make_certificates`]: only a
    /// client whose certificate the CA signed gets through. Python's `ssl` rather than
    /// socat, whose OpenSSL server refuses the session resumption that clients (salve's
    /// rustls, as Docker's own Go client) attempt under client authentication.
    fn tls(port: u16, certs: &std::path::Path) -> EngineProxy {
        let script = certs.join("tls_engine_proxy.py");
        std::fs::write(&script, TLS_ENGINE_PROXY).expect("write the proxy");
        EngineProxy::listening(
            vec![
                "/usr/bin/python3".into(),
                script.display().to_string(),
                port.to_string(),
                certs.display().to_string(),
                "/var/run/docker.sock".into(),
            ],
            Listening::Port(port),
        )
    }

    fn listening(command: Vec<String>, at: Listening) -> EngineProxy {
        let mut proxy = EngineProxy {
            command,
            at,
            child: None,
        };
        proxy.up();
        proxy
    }

    fn up(&mut self) {
        if let Listening::Socket(socket) = &self.at {
            let _ = std::fs::remove_file(socket);
        }
        use std::os::unix::process::CommandExt;
        // Its own process group: socat forks a child per connection, and the event
        // stream's connection must die with it.
        let child = std::process::Command::new(&self.command[0])
            .process_group(0)
            .args(&self.command[1..])
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; the Docker proxy tests need Debian's socat and python3",
                    self.command[0]
                )
            });
        self.child = Some(child);
        wait_for("the proxy to listen", || match &self.at {
            Listening::Socket(socket) => socket.exists().then_some(()),
            Listening::Port(port) => {
                let listening = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
                let local = format!("0100007F:{port:04X} 00000000:0000 0A");
                listening.contains(&local).then_some(())
            }
        });
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        if let Listening::Socket(socket) = &self.at {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// A TLS terminator in front of the engine's socket: `PORT CERTS_DIR SOCKET`.
const TLS_ENGINE_PROXY: &str = r#"
import asyncio, ssl, sys

port, certs, socket_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{certs}/server.pem", f"{certs}/server.key")
context.load_verify_locations(f"{certs}/ca.pem")
context.verify_mode = ssl.CERT_REQUIRED


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    try:
        engine_reader, engine_writer = await asyncio.open_unix_connection(socket_path)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, engine_writer), pipe(engine_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"#;

const RESTART_UNHEALTHY: &str = "const MATCH = `alertname=\"ContainerUnhealthy\"`;\nfn plan(event) { if event.status != \"firing\" { return []; } [restart(docker_container(event.labels.container))] }";

#[test]
fn an_engine_behind_mutual_tls_is_followed_and_acted_on_and_a_stranger_is_refused() {
    let scope = Scope::new();
    let certs = tempfile::tempdir().expect("tempdir");
    crate::certs::make_certificates(certs.path());
    let port = crate::support::free_port();
    let _proxy = EngineProxy::tls(port, certs.path());
    let over_tls = |cert_path: &std::path::Path| {
        format!(
            "{}host = \"tcp://127.0.0.1:{port}\"\ncert_path = \"{}\"\n",
            scope.config(),
            cert_path.display()
        )
    };
    let salve = Salve::builder()
        .config(&over_tls(certs.path()))
        .rule("restart", RESTART_UNHEALTHY)
        .start();
    wait_following(&salve, 1);
    let ready = salve.get("/-/ready");
    assert_eq!(ready.status, 200, "{:?}\n{}", ready.body, salve.logs());

    // Events and actions both go over TLS: the container's health events reach salve,
    // the restart and its verification reach the engine.
    let name = scope.run("remote", &FILE_HEALTHCHECK, &HEALTHY_AFTER_RESTART);
    let target = container_target(&name);
    let records = salve.wait_for_audit("the restart over TLS and its outcome", |records| {
        executed(records, "restart", &target)
            .first()
            .and_then(|d| outcome_of(records, d))
            .is_some()
    });
    let decision = executed(&records, "restart", &target)[0];
    let outcome = outcome_of(&records, decision).cloned().unwrap_or_default();
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["verified"], "healthy", "{outcome:#}");

    // Certificates of another CA: the engine's proxy refuses the client (and the
    // client the proxy); salve says it cannot reach the engine and is not ready.
    let strangers = tempfile::tempdir().expect("tempdir");
    crate::certs::make_certificates(strangers.path());
    let mut stranger = Salve::builder()
        .config(&over_tls(strangers.path()))
        .rule("restart", RESTART_UNHEALTHY)
        .write();
    stranger.start_unready();
    let reply = stranger.get("/-/ready");
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    // The log says why, down to the certificate.
    wait_for("the stranger to say why it cannot reach the engine", || {
        let logs = stranger.logs();
        (logs.contains("Docker engine unreachable") && logs.contains("invalid peer certificate"))
            .then_some(())
    });
    assert!(!stranger.logs().contains("following Docker events"));
}

#[test]
fn readiness_follows_the_engine_going_away_and_coming_back() {
    let scope = Scope::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let mut proxy = EngineProxy::start(&socket);
    let config = format!("{}host = \"unix://{}\"\n", scope.config(), socket.display());
    let salve = Salve::builder()
        .config(&config)
        .rule("restart", RESTART_UNHEALTHY)
        .rule("container-exited", &shipped_rule("container-exited"))
        .start();
    wait_following(&salve, 1);
    assert_eq!(salve.get("/-/ready").status, 200);

    proxy.down();
    let body = wait_for("readiness to drop", || {
        let reply = salve.get("/-/ready");
        (reply.status == 503).then_some(reply.body)
    });
    assert_eq!(
        body,
        Value::String("salve is not ready: the Docker event stream is down.\n".into())
    );

    // What goes bad while the engine is out of reach is found on reconnect: health by
    // the scan, a crash from the engine's own events of the gap.
    let name = scope.run("away", &FILE_HEALTHCHECK, &HEALTHY_AFTER_RESTART);
    let crashed = scope.run("crashed", &[], &CRASHES_ONCE);
    wait_health(&name, "unhealthy");
    wait_for("the crash while salve cannot see the engine", || {
        (inspect(&crashed, "{{.State.Status}}") == "exited").then_some(())
    });
    let went_down = Instant::now();
    proxy.up();
    wait_for("readiness to return", || {
        (salve.get("/-/ready").status == 200).then_some(())
    });
    eprintln!(
        "ready again {} ms after the engine came back",
        went_down.elapsed().as_millis()
    );
    let target = container_target(&name);
    let crashed_target = container_target(&crashed);
    salve.wait_for_audit(
        "the restart of the container that went bad meanwhile and the start of the crashed one",
        |records| {
            !executed(records, "restart", &target).is_empty()
                && !executed(records, "start", &crashed_target).is_empty()
        },
    );
    wait_for("the crashed container to run again", || {
        (inspect(&crashed, "{{.State.Status}}") == "running").then_some(())
    });
    wait_health(&name, "healthy");
    // The scan and the replayed events of the gap overlap: each problem is acted on once.
    std::thread::sleep(Duration::from_secs(2));
    let records = salve.audit_json();
    let decisions = decision_lines(&records);
    assert_eq!(
        executed(&records, "restart", &target).len(),
        1,
        "{decisions}"
    );
    assert_eq!(
        executed(&records, "start", &crashed_target).len(),
        1,
        "{decisions}"
    );
}
