//! `restart` of a pod against a mocked API server (kube's `tower_test`
//! pair, `k8s_support`): kubectl's requests for the same operation asserted exactly.
//! It is an eviction, never a delete; one a disruption budget refuses is blocked, and a
//! pod that never finishes terminating is a failure naming its finalizers.

use crate::k8s_support::{
    eviction_body, eviction_uri, get, pod_gone, pod_terminating, run, send, settings, target, POD,
};
use crate::support::k8s_fixture;
use salve::execute::KubernetesSettings;
use salve::model::{Action, Intent, K8sKind};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn restart_of_a_pod_is_an_eviction() {
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Pod, POD)),
        settings(),
        vec![
            send(
                "POST",
                &eviction_uri(),
                "application/json",
                eviction_body(POD),
                201,
                k8s_fixture("eviction-created.json"),
            ),
            // As `kubectl drain`, salve waits for the pod to be deleted.
            pod_terminating(),
            pod_terminating(),
            pod_gone(),
        ],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "ok",
            "duration_ms": 0,
            "verified": "evicted",
            "detail": { "namespace": "prod", "kind": "pod", "name": POD },
        })
    );
}

#[tokio::test]
async fn an_evicted_pod_that_never_finishes_terminating_is_a_failure_naming_its_finalizers() {
    let mut stuck = k8s_fixture("pod-checkout-terminating.json");
    stuck["metadata"]["finalizers"] = json!(["example.org/drain-connections"]);
    // A deadline already past when the first read comes back: one read, then the verdict.
    let settings = KubernetesSettings {
        verify_timeout: Duration::from_nanos(1),
        ..settings()
    };
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Pod, POD)),
        settings,
        vec![
            send(
                "POST",
                &eviction_uri(),
                "application/json",
                eviction_body(POD),
                201,
                k8s_fixture("eviction-created.json"),
            ),
            get(&format!("/api/v1/namespaces/prod/pods/{POD}"), stuck),
        ],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "failed",
            "duration_ms": 0,
            "error": format!("pod prod/{POD} was evicted but is still terminating after 1ns"),
            "verified": "still_terminating",
            "detail": { "namespace": "prod", "kind": "pod", "name": POD,
                        "finalizers": ["example.org/drain-connections"] },
        })
    );
}

#[tokio::test]
async fn an_eviction_refused_by_a_disruption_budget_is_blocked_by_pdb_and_never_a_delete() {
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Pod, POD)),
        settings(),
        vec![send(
            "POST",
            &eviction_uri(),
            "application/json",
            eviction_body(POD),
            429,
            k8s_fixture("eviction-refused-by-pdb.json"),
        )],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "failed",
            "duration_ms": 0,
            "error": format!("eviction of pod prod/{POD} refused: Cannot evict pod as it would violate the pod's disruption budget."),
            "verified": "blocked_by_pdb",
            "detail": { "namespace": "prod", "kind": "pod", "name": POD, "status": 429, "reason": "TooManyRequests",
                        "disruption_budget": "The disruption budget checkout-pdb needs 2 healthy pods and has 2 currently" },
        })
    );
}
