//! What Alertmanager's habits (re-sent groups, resolved alerts inside firing groups,
//! several alerts about one workload) must and must not cause.

use crate::support::{decisions, marker, of_kind, Salve};
use serde_json::json;

#[test]
fn an_alert_resolved_inside_a_firing_group_reaches_rules_as_resolved_once() {
    let salve = Salve::builder()
        .config(&marker("mark", "resolved.txt"))
        .rule(
            "on-resolve",
            r#"
const MATCH = `alertname="PodCrashLooping"`;

fn plan(event) {
    if event.status == "resolved" {
        [exec("mark", [event.labels.pod, event.status])]
    }
}
"#,
        )
        .start();

    assert_eq!(salve.post_fixture("firing-group.json").status, 200);
    salve.wait_settled(3);
    assert_eq!(salve.post_fixture("resolved.json").status, 200);
    salve.wait_settled(6);
    // Alertmanager sends the same notification again at its next group_interval.
    assert_eq!(salve.post_fixture("resolved.json").status, 200);
    let records = salve.wait_settled(9);

    assert_eq!(
        decisions(&records),
        [
            "on-resolve: exec exec:mark -> execute",
            "on-resolve: exec exec:mark -> suppress (dedup)",
        ]
    );
    let statuses: Vec<(String, String)> = of_kind(&records, "received")
        .into_iter()
        .map(|r| {
            (
                r["event"]["labels"]["pod"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                r["event"]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected_statuses: Vec<(String, String)> = [
        ("abcde", "firing"),
        ("fghij", "firing"),
        ("klmno", "firing"),
        ("abcde", "firing"),
        ("fghij", "firing"),
        ("klmno", "resolved"),
        ("abcde", "firing"),
        ("fghij", "firing"),
        ("klmno", "resolved"),
    ]
    .into_iter()
    .map(|(pod, status)| (format!("checkout-7d9f8b6c5d-{pod}"), status.to_string()))
    .collect();
    assert_eq!(statuses, expected_statuses);
    assert_eq!(
        salve.lines("resolved.txt"),
        ["checkout-7d9f8b6c5d-klmno resolved"]
    );
}

/// salve with a rule that restarts (by a command that leaves a mark) every container
/// reported down.
fn restarting_salve() -> Salve {
    Salve::builder()
        .config(&marker("restart-web", "restarts.txt"))
        .rule(
            "container-down",
            r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    [exec("restart-web", [event.labels.container])]
}
"#,
        )
        .start()
}

#[test]
fn a_group_alertmanager_resends_acts_only_once() {
    let salve = restarting_salve();

    for n in 1..=3 {
        assert_eq!(salve.post_fixture("firing-single.json").status, 200);
        salve.wait_settled(n);
    }
    let records = salve.audit_json();
    assert_eq!(
        decisions(&records),
        [
            "container-down: exec exec:restart-web -> execute",
            "container-down: exec exec:restart-web -> suppress (dedup)",
            "container-down: exec exec:restart-web -> suppress (dedup)",
        ]
    );
    assert_eq!(salve.lines("restarts.txt"), ["web-1"]);
    let outcomes: Vec<_> = of_kind(&records, "outcome")
        .into_iter()
        .map(|o| (o["outcome"].clone(), o["detail"]["exit_code"].clone()))
        .collect();
    assert_eq!(outcomes, [(json!("ok"), json!(0))]);
}

#[test]
fn three_crashlooping_pods_of_one_deployment_cause_one_restart() {
    let salve = Salve::builder()
        .rule(
            "pod-crashlooping",
            r#"
const MATCH = `alertname="PodCrashLooping"`;

fn plan(event) {
    [restart(k8s_deployment(event.labels.namespace, event.labels.deployment))]
}
"#,
        )
        .start();

    assert_eq!(salve.post_fixture("firing-group.json").status, 200);
    let records = salve.wait_settled(3);
    assert_eq!(
        decisions(&records),
        [
            "pod-crashlooping: restart k8s:prod/deployment/checkout -> execute",
            "pod-crashlooping: restart k8s:prod/deployment/checkout -> suppress (duplicate)",
            "pod-crashlooping: restart k8s:prod/deployment/checkout -> suppress (duplicate)",
        ]
    );
    // No cluster configuration on this machine: the one action fails, loudly, and says why.
    let outcomes = of_kind(&records, "outcome");
    assert_eq!(outcomes.len(), 1);
    let mut outcome = outcomes[0].clone();
    let execute = &of_kind(&records, "decision")[0];
    assert_eq!(outcome["decision_id"], execute["id"]);
    assert_eq!(outcome["event_id"], execute["event_id"]);
    assert_eq!(outcome["fingerprint"], execute["fingerprint"]);
    let map = outcome.as_object_mut().expect("object");
    for volatile in [
        "at",
        "decision_id",
        "event_id",
        "fingerprint",
        "duration_ms",
    ] {
        map.remove(volatile);
    }
    // The rest of the error is kube's account of what it looked for (in-cluster
    // variables, the kubeconfig path), which depends on the machine.
    let error = map.remove("error").unwrap_or_default();
    assert!(
        error
            .as_str()
            .is_some_and(|e| e.starts_with("no Kubernetes client: ")),
        "{error}"
    );
    assert_eq!(
        outcome,
        json!({
            "kind": "outcome",
            "rule": "pod-crashlooping",
            "action": "restart",
            "target": "k8s:prod/deployment/checkout",
            "outcome": "failed",
            "detail": { "namespace": "prod", "kind": "deployment", "name": "checkout" },
        })
    );
}

#[test]
fn a_group_resent_concurrently_still_acts_only_once() {
    let salve = restarting_salve();

    const SENDERS: usize = 8;
    std::thread::scope(|scope| {
        let posts: Vec<_> = (0..SENDERS)
            .map(|_| scope.spawn(|| salve.post_fixture("firing-single.json").status))
            .collect();
        for post in posts {
            assert_eq!(post.join().expect("sender thread"), 200);
        }
    });
    let records = salve.wait_settled(SENDERS);
    let mut expected = vec!["container-down: exec exec:restart-web -> execute".to_string()];
    expected.extend(std::iter::repeat_n(
        "container-down: exec exec:restart-web -> suppress (dedup)".to_string(),
        SENDERS - 1,
    ));
    assert_eq!(decisions(&records), expected);
    assert_eq!(salve.lines("restarts.txt"), ["web-1"]);
}
