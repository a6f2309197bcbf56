//! Held back is not dropped, on the machine's real Docker engine: a container that is
//! still broken when its cooldown, window or open breaker ends is acted on then,
//! without any new event; a restart of salve in the middle changes nothing; what was
//! decided in dry-run is decided live once salve acts; a page for one incident does not
//! silence the page for the next.

use crate::docker_support::{
    break_health, container_target, executed, health, outcome_of, shipped_rule, time,
    wait_following, wait_health, Scope, DOCKER_PATIENCE, FILE_HEALTHCHECK, HEALTHY,
    HEALTHY_AFTER_RESTART, HEALTHY_ONCE,
};
use crate::support::{of_kind, wait_until, Salve};
use serde_json::{json, Value};
use std::time::Duration;

/// `reconsidered` records of the alert about `container`.
fn reconsidered<'a>(records: &'a [Value], container: &str) -> Vec<&'a Value> {
    of_kind(records, "reconsidered")
        .into_iter()
        .filter(|r| r["event"]["labels"]["container"] == container)
        .collect()
}

/// The decisions on `target` that held it back, with when they are reconsidered.
fn held<'a>(records: &'a [Value], target: &str, reason: &str) -> Vec<&'a Value> {
    of_kind(records, "decision")
        .into_iter()
        .filter(|d| d["target"] == target && d["reason"] == reason)
        .collect()
}

/// The shipped `container-down` rule with its cooldown shortened to keep the test quick.
fn container_down_cooling_for(cooldown: &str) -> String {
    crate::docker_support::edited(
        &shipped_rule("container-down"),
        "const COOLDOWN = \"1m\";",
        &format!("const COOLDOWN = \"{cooldown}\";"),
    )
}

/// Breaks a healthy container, waits for salve's restart to heal it, and breaks it
/// again at once: inside the cooldown. Returns the second unhealthy event's decision.
fn broken_again_inside_the_cooldown(salve: &Salve, web: &str) -> Value {
    let target = container_target(web);
    break_health(web);
    salve.wait_for_audit_within(DOCKER_PATIENCE, "the first restart's outcome", |r| {
        executed(r, "restart", &target)
            .first()
            .is_some_and(|d| outcome_of(r, d).is_some())
    });
    wait_health(web, "healthy");
    break_health(web);
    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the restart held back by the cooldown",
        |r| !held(r, &target, "cooldown").is_empty(),
    );
    held(&records, &target, "cooldown")[0].clone()
}

#[test]
fn a_container_unhealthy_again_inside_its_cooldown_is_restarted_when_the_cooldown_ends() {
    let scope = Scope::new();
    let salve = scope.start_salve(&[("container-down", &container_down_cooling_for("10s"))]);
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY);
    wait_health(&web, "healthy");
    let target = container_target(&web);
    let suppressed = broken_again_inside_the_cooldown(&salve, &web);
    let cooldown_ends = time(&suppressed["reconsider_at"]);

    let records = salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "a second restart when the cooldown ends, with its outcome",
        |r| {
            executed(r, "restart", &target)
                .get(1)
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    let again = reconsidered(&records, &web);
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["held"], "cooldown");
    assert_eq!(again[0]["event"]["id"], suppressed["event_id"]);
    assert!(time(&again[0]["at"]) >= cooldown_ends);
    let restart = executed(&records, "restart", &target)[1];
    assert_eq!(restart["event_id"], suppressed["event_id"]);
    assert!(time(&restart["at"]) >= cooldown_ends, "{restart:#}");
    assert_eq!(
        outcome_of(&records, restart).expect("outcome")["outcome"],
        "ok"
    );
    assert_eq!(health(&web), "healthy");
    let page = executed(&records, "notify", "notify:ops");
    assert_eq!(page.len(), 2, "ops hear of both restarts: {page:#?}");
    eprintln!(
        "[held back] cooldown ended {} → reconsidered {} ms later → restart decided {} ms later",
        cooldown_ends,
        (time(&again[0]["at"]) - cooldown_ends).num_milliseconds(),
        (time(&restart["at"]) - time(&again[0]["at"])).num_milliseconds()
    );
}

#[test]
fn a_restart_of_salve_inside_the_cooldown_still_reconsiders_the_alert_once() {
    let scope = Scope::new();
    let mut salve = scope.start_salve(&[("container-down", &container_down_cooling_for("12s"))]);
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY);
    wait_health(&web, "healthy");
    let target = container_target(&web);
    let suppressed = broken_again_inside_the_cooldown(&salve, &web);
    let cooldown_ends = time(&suppressed["reconsider_at"]);
    salve.stop();
    salve.start();
    wait_following(&salve, 2);

    salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        "the restart after salve's restart, when the cooldown ends",
        |r| {
            executed(r, "restart", &target)
                .get(1)
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    scope.sync_events(&salve, "sync");
    let records = salve.audit_json();
    assert_eq!(
        executed(&records, "restart", &target).len(),
        2,
        "once, not again at each start"
    );
    let again = reconsidered(&records, &web);
    assert!(
        again.len() <= 1 && time(&executed(&records, "restart", &target)[1]["at"]) >= cooldown_ends,
        "{again:#?}"
    );
    assert_eq!(health(&web), "healthy");
}

#[test]
fn a_container_that_turned_unhealthy_inside_a_window_is_restarted_when_the_window_ends() {
    let scope = Scope::new();
    let salve = scope.start_salve(&[("container-down", &shipped_rule("container-down"))]);
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY);
    wait_health(&web, "healthy");
    let target = container_target(&web);
    let ends_at = chrono::Utc::now() + chrono::Duration::seconds(8);
    let window = salve.post_json(
        "/api/v1/maintenance",
        &json!({"matchers": format!("container=\"{web}\""), "ends_at": ends_at,
                "created_by": "test", "comment": "deploying"}),
    );
    assert_eq!(window.status, 201, "{:?}", window.body);
    break_health(&web);
    let records =
        salve.wait_for_audit_within(DOCKER_PATIENCE, "the restart muted by the window", |r| {
            !held(r, &target, "maintenance").is_empty()
        });
    let muted = held(&records, &target, "maintenance")[0].clone();
    assert_eq!(time(&muted["reconsider_at"]), time(&json!(ends_at)));
    assert!(executed(&records, "restart", &target).is_empty());

    let records =
        salve.wait_for_audit_within(DOCKER_PATIENCE, "the restart once the window ended", |r| {
            executed(r, "restart", &target)
                .first()
                .is_some_and(|d| outcome_of(r, d).is_some())
        });
    let restart = executed(&records, "restart", &target)[0];
    assert!(time(&restart["at"]) >= ends_at, "{restart:#}");
    assert_eq!(restart["event_id"], muted["event_id"]);
    assert_eq!(reconsidered(&records, &web)[0]["held"], "maintenance");
    wait_health(&web, "healthy");
}

#[test]
fn an_open_breaker_tries_once_when_it_turns_half_open_without_a_new_event() {
    let scope = Scope::new();
    let rule = r#"
const MATCH = `alertname="ContainerUnhealthy", container=~".+"`;
// Longer than a failed try takes to be known (its verification), so the breaker is
// open when the cooldown ends; the breaker stays open well past it (9s from the
// failure), so that the once-a-second reconsideration finds it still open.
const COOLDOWN = "8s";
fn plan(event) {
    if event.status != "firing" { return []; }
    [restart(docker_container(event.labels.container))]
}
"#;
    let config = format!(
        "{}\n[policy]\nbreaker_failures = 1\nbreaker_open_for = \"9s\"\n",
        scope.config_verifying_within("3s")
    );
    let salve = Salve::builder()
        .config(&config)
        .rule("restart-unhealthy", rule)
        .start();
    wait_following(&salve, 1);
    // Healthy once: no restart heals it, so every try fails its verification.
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY_ONCE);
    wait_health(&web, "healthy");
    let target = container_target(&web);
    break_health(&web);
    let records = salve.wait_for_audit_within(
        Duration::from_secs(60),
        "two tries: the first, and the trial once the breaker turned half-open",
        |r| {
            executed(r, "restart", &target)
                .get(1)
                .is_some_and(|d| outcome_of(r, d).is_some())
        },
    );
    let tries = executed(&records, "restart", &target);
    let first_failed = outcome_of(&records, tries[0]).expect("outcome");
    assert_eq!(first_failed["outcome"], "failed", "{first_failed:#}");
    let open = held(&records, &target, "circuit_open");
    assert!(!open.is_empty(), "the breaker held the next try back");
    let half_open = time(&open[0]["reconsider_at"]);
    assert_eq!(
        half_open,
        time(&first_failed["at"]) + chrono::Duration::seconds(9)
    );
    let trial = tries[1];
    assert!(time(&trial["at"]) >= half_open, "{trial:#}");
    let trial_event = &trial["event_id"];
    assert!(
        reconsidered(&records, &web)
            .iter()
            .any(|r| r["event"]["id"] == *trial_event && r["held"] == "circuit_open"),
        "the trial came of the reconsideration, not of a new event"
    );
    // One try while half-open: nothing else ran on the target before its outcome.
    let trial_outcome = time(&outcome_of(&records, trial).expect("outcome")["at"]);
    assert!(tries.iter().skip(2).all(|d| time(&d["at"]) > trial_outcome));
}

#[test]
fn what_dry_run_saw_broken_is_restarted_once_salve_acts() {
    let scope = Scope::new();
    let mut salve = Salve::builder()
        .config(&scope.config())
        .rule("container-down", &shipped_rule("container-down"))
        .dry_run()
        .start();
    wait_following(&salve, 1);
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY_AFTER_RESTART);
    let target = container_target(&web);
    let records =
        salve.wait_for_audit_within(DOCKER_PATIENCE, "the restart decided in dry-run", |r| {
            !held(r, &target, "dry_run").is_empty()
        });
    let dry = held(&records, &target, "dry_run")[0].clone();
    assert_eq!(dry["dry_run"], true, "{dry:#}");
    salve.stop();
    salve.set_dry_run(false);
    salve.start();
    wait_following(&salve, 2);
    let records = salve.wait_for_audit_within(DOCKER_PATIENCE, "the restart decided live", |r| {
        executed(r, "restart", &target)
            .first()
            .is_some_and(|d| outcome_of(r, d).is_some())
    });
    let live = executed(&records, "restart", &target);
    assert_eq!(live.len(), 1, "{live:#?}");
    assert!(live[0]["dry_run"].is_null(), "{:#}", live[0]);
    let outcome = outcome_of(&records, live[0]).expect("outcome");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}\n{}", salve.logs());
    wait_health(&web, "healthy");
    // Its turning healthy, and every event before it, decided.
    scope.sync_events(&salve, "sync");
    assert_eq!(
        executed(&salve.audit_json(), "restart", &target).len(),
        1,
        "live acts once"
    );
}

#[test]
fn two_containers_failing_30s_apart_both_page() {
    let scope = Scope::new();
    let salve = scope.start_salve(&[("container-down", &shipped_rule("container-down"))]);
    let web = scope.run("web", &FILE_HEALTHCHECK, &HEALTHY);
    let db = scope.run("db", &FILE_HEALTHCHECK, &HEALTHY);
    wait_health(&web, "healthy");
    wait_health(&db, "healthy");
    break_health(&web);
    salve.wait_for_audit_within(DOCKER_PATIENCE, "web's page", |r| {
        executed(r, "notify", "notify:ops").len() == 1
    });
    std::thread::sleep(Duration::from_secs(30));
    break_health(&db);
    let records = salve.wait_for_audit_within(DOCKER_PATIENCE, "db's page too", |r| {
        executed(r, "notify", "notify:ops")
            .iter()
            .filter(|d| outcome_of(r, d).is_some_and(|o| o["outcome"] == "ok"))
            .count()
            == 2
    });
    let pages = executed(&records, "notify", "notify:ops");
    let texts: Vec<&str> = pages
        .iter()
        .map(|d| d["params"]["text"].as_str().unwrap_or_default())
        .collect();
    assert!(
        texts[0].contains(&web) && texts[1].contains(&db),
        "{texts:?}"
    );
    assert!(
        held(&records, "notify:ops", "cooldown").is_empty(),
        "{:#?}",
        held(&records, "notify:ops", "cooldown")
    );
    wait_health(&db, "healthy");
}

#[test]
fn a_rule_taken_out_of_dry_run_by_a_reload_acts_once_on_what_still_fires() {
    let rule = |dry_run: bool| {
        format!(
            "const MATCH = `alertname=\"Stuck\"`;\nconst DRY_RUN = {dry_run};\n\
             fn plan(event) {{ if event.status == \"firing\" {{ [exec(\"fix\", [event.labels.job])] }} else {{ [] }} }}\n"
        )
    };
    let salve = Salve::builder()
        .config("[exec.fix]\nargv = [\"/bin/true\"]\n")
        .rule("fix-stuck", &rule(true))
        .start();
    let firing = crate::support::native(&[("alertname", "Stuck"), ("job", "a")]);
    let resolved = {
        let mut e = crate::support::native(&[("alertname", "Stuck"), ("job", "b")]);
        e["status"] = json!("resolved");
        e
    };
    for event in [
        firing.clone(),
        crate::support::native(&[("alertname", "Stuck"), ("job", "b")]),
    ] {
        assert_eq!(salve.post_json("/api/v1/events", &event).status, 200);
    }
    let records = salve.wait_settled(2);
    let dry = held(&records, "exec:fix", "dry_run");
    assert_eq!(dry.len(), 2, "{dry:#?}");
    assert!(dry.iter().all(|d| d["dry_run"] == true));
    // b stops firing before the rule acts: only a is decided live.
    assert_eq!(salve.post_json("/api/v1/events", &resolved).status, 200);
    salve.wait_settled(3);
    salve.write_rule("fix-stuck", &rule(false));
    assert_eq!(salve.post_json("/-/reload", &Value::Null).status, 200);
    let records = salve.wait_for_audit("the live decision", |r| {
        executed(r, "exec", "exec:fix")
            .first()
            .is_some_and(|d| outcome_of(r, d).is_some())
    });
    assert!(!records.is_empty());
    // Nothing is held any more, so nothing is left to be decided again.
    wait_until("no alert left held", || {
        (salve.metric("salve_reconsiderations_pending") == Some(0.0)).then_some(())
    });
    let records = salve.audit_json();
    let live = executed(&records, "exec", "exec:fix");
    assert_eq!(live.len(), 1, "{live:#?}");
    assert_eq!(live[0]["params"]["args"], json!(["a"]), "{:#}", live[0]);
    assert_eq!(of_kind(&records, "reconsidered").len(), 1);
    assert_eq!(of_kind(&records, "reconsidered")[0]["held"], "dry_run");
}

/// With `[store]`, the hold is state every replica folds: the leader killed while an
/// alert is held, the replica that leads next reconsiders it, once.
#[test]
fn a_held_alert_is_reconsidered_once_by_whichever_replica_leads_when_the_hold_ends() {
    use crate::postgres_support::Postgres;
    use crate::support::native;
    let pg = Postgres::start();
    let shared = tempfile::tempdir().expect("shared folder");
    let config = format!(
        "[store]\npostgres_url_env = \"SALVE_TEST_PG_URL\"\nconnect_timeout = \"1s\"\n\
         takeover_after = \"2s\"\n\n[exec.mark]\n\
         argv = [\"/bin/sh\", \"-c\", 'echo \"$1\" >> \"{}/marks.txt\"', \"sh\"]\n",
        shared.path().display()
    );
    let rule = "const MATCH = `alertname=\"Cool\"`;\nconst COOLDOWN = \"6s\";\n\
                fn plan(event) { [exec(\"mark\", [event.labels.n])] }\n";
    let replica = || {
        Salve::builder()
            .config(&config)
            .rule("cool", rule)
            .env("SALVE_TEST_PG_URL", &pg.url())
            .start()
    };
    let leads = |salve: &Salve| salve.metric("salve_leader") == Some(1.0);
    let marks = || {
        std::fs::read_to_string(shared.path().join("marks.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let mut a = replica();
    wait_until("the first replica to lead", || leads(&a).then_some(()));
    let b = replica();
    for n in ["1", "2"] {
        let reply = a.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Cool"), ("n", n)]),
        );
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    let records = wait_until("the second held by the cooldown", || {
        let records = b.audit_json();
        (!held(&records, "exec:mark", "cooldown").is_empty()).then_some(records)
    });
    let until = time(&held(&records, "exec:mark", "cooldown")[0]["reconsider_at"]);
    assert_eq!(marks(), ["1"]);
    a.kill9();
    wait_until("the second replica to lead", || leads(&b).then_some(()));
    wait_until("the held alert acted on when its cooldown ended", || {
        (marks() == ["1", "2"]).then_some(())
    });
    let records = b.audit_json();
    let again = of_kind(&records, "reconsidered");
    assert_eq!(again.len(), 1, "{again:#?}");
    assert!(time(&again[0]["at"]) >= until);
    a.start();
    // Back as a follower, the killed leader has folded the reconsideration: neither
    // replica holds the alert any more, so neither can decide it again.
    for replica in [&a, &b] {
        wait_until("the reconsideration folded by both replicas", || {
            (replica.metric("salve_reconsiderations_pending") == Some(0.0)).then_some(())
        });
    }
    assert_eq!(marks(), ["1", "2"], "once, whichever replica leads");
    assert_eq!(of_kind(&b.audit_json(), "reconsidered").len(), 1);
}
