//! Not fighting the engine or a person, on the machine's real Docker engine: a paused
//! container is not restarted, a removed one fails as not found, and by default salve acts
//! only on containers labelled `salve.enable=true`.

use crate::docker_support::{
    container_target, docker_ok, executed, inspect, outcome_of, received, Scope,
};
use crate::support::{decisions, native, s, Salve};
use serde_json::Value;

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
