//! The Docker events source loses nothing it heard: an event salve refuses for now (the
//! disk full) is held and offered again until recorded, and an event that happened
//! while salve was stopped is found again at the next start; either way the rule
//! decides it once. Against the machine's real engine, as `docker.rs`.

use crate::disk_support::Tmpfs;
use crate::docker_support::{
    docker_ok, evaluated, inspect, received, wait_following, Scope, DOCKER_PATIENCE,
};
use crate::support::{native, of_kind, wait_until_within, Salve};
use serde_json::Value;

/// Runs until `/tmp/exit` appears, then exits with code 3: a crash the test chooses
/// the moment of, with no kill or stop request before it.
const EXITS_ON_REQUEST: [&str; 3] = [
    "sh",
    "-c",
    "until [ -f /tmp/exit ]; do sleep 1; done; exit 3",
];

/// Marks every container whose exit it is shown, in a file outside the data dir.
const MARK_EXITS: &str = r#"
const MATCH = `alertname="ContainerExited", container=~".+"`;
fn plan(event) {
    if event.status != "firing" { return []; }
    [exec("mark", [event.labels.container])]
}
"#;

const MARK: &str = r#"
[exec.mark]
argv = ["/bin/sh", "-c", 'echo "$1" >> "{dir}/marks.txt"', "sh"]
"#;

fn crash(name: &str) {
    docker_ok(&["exec", name, "touch", "/tmp/exit"]);
}

/// salve for `scope`'s containers with the marking rule, written but not started.
fn marking_salve(scope: &Scope) -> Salve {
    Salve::builder()
        .config(&format!("{}\n{MARK}", scope.config()))
        .rule("mark-exits", MARK_EXITS)
        .write()
}

/// The records about `container`'s exit: its received events and the decisions on them.
fn exit_records<'a>(records: &'a [Value], container: &str) -> (Vec<&'a Value>, Vec<&'a Value>) {
    let events = received(records, "ContainerExited", container);
    let decisions = of_kind(records, "decision")
        .into_iter()
        .filter(|d| events.iter().any(|e| e["event"]["id"] == d["event_id"]))
        .collect();
    (events, decisions)
}

/// Waits until `container`'s exit is received and evaluated.
fn wait_exit_decided(salve: &Salve, container: &str) -> Vec<Value> {
    salve.wait_for_audit_within(
        DOCKER_PATIENCE,
        &format!("the exit of {container} to be recorded and decided"),
        |r| {
            received(r, "ContainerExited", container)
                .first()
                .is_some_and(|e| evaluated(r, e))
        },
    )
}

/// Once `later` crashed and was recorded, any second copy of an earlier exit would
/// have come before it: the events source hands events over in the engine's order.
fn assert_decided_once(salve: &Salve, scope: &Scope, containers: &[&str]) {
    let later = scope.run("later", &[], &EXITS_ON_REQUEST);
    crash(&later);
    let records = wait_exit_decided(salve, &later);
    for container in containers {
        let (events, decisions) = exit_records(&records, container);
        assert_eq!(events.len(), 1, "{container}: {records:#?}");
        assert_eq!(decisions.len(), 1, "{container}: {records:#?}");
        assert_eq!(decisions[0]["decision"], "execute", "{records:#?}");
    }
    let mut marked = salve.lines("marks.txt");
    marked.sort();
    let mut expected: Vec<String> = containers.iter().map(|c| c.to_string()).collect();
    expected.push(later);
    expected.sort();
    assert_eq!(marked, expected);
}

/// Posts small events until one is refused: the trail's last page is full too, so no
/// record fits anywhere. The refusal: 503.
fn assert_refused_once_full(salve: &Salve) {
    for n in 0..200 {
        let reply = salve.post_json(
            "/api/v1/events",
            &native(&[("alertname", "Filler"), ("n", &n.to_string())]),
        );
        if reply.status == 503 {
            let error = reply.body["error"].as_str().unwrap_or_default();
            assert!(
                error.starts_with("cannot record events durably"),
                "{:?}",
                reply.body
            );
            return;
        }
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }
    panic!("the trail still takes events on a full disk");
}

#[test]
fn a_docker_event_refused_while_the_disk_is_full_is_recorded_and_decided_once_space_is_freed() {
    let scope = Scope::new();
    let mut salve = marking_salve(&scope);
    let disk = Tmpfs::mount(&salve.data_dir(), "16m");
    salve.start();
    wait_following(&salve, 1);
    let worker = scope.run("worker", &[], &EXITS_ON_REQUEST);

    disk.fill();
    assert_refused_once_full(&salve);
    crash(&worker);
    wait_until_within(DOCKER_PATIENCE, "the events source to be refused", || {
        salve
            .logs()
            .contains("cannot record an event")
            .then_some(())
    });
    // Refused still, while the disk is full.
    assert_refused_once_full(&salve);

    disk.free();
    wait_exit_decided(&salve, &worker);
    assert_decided_once(&salve, &scope, &[&worker]);
}

#[test]
fn a_container_that_exited_while_salve_was_stopped_is_decided_once_at_the_next_start() {
    let scope = Scope::new();
    let mut salve = marking_salve(&scope);
    salve.start();
    wait_following(&salve, 1);
    let before = scope.run("before", &[], &EXITS_ON_REQUEST);
    let meanwhile = scope.run("meanwhile", &[], &EXITS_ON_REQUEST);
    crash(&before);
    wait_exit_decided(&salve, &before);

    salve.stop();
    crash(&meanwhile);
    wait_until_within(DOCKER_PATIENCE, "the container to exit", || {
        (inspect(&meanwhile, "{{.State.Status}}") == "exited").then_some(())
    });
    salve.start();
    wait_following(&salve, 2);
    wait_exit_decided(&salve, &meanwhile);
    assert_decided_once(&salve, &scope, &[&before, &meanwhile]);
}
