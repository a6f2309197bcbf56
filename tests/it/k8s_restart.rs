//! `restart` of Deployments, StatefulSets and DaemonSets against a mocked API server (kube's `tower_test`
//! pair, `k8s_support`): kubectl's requests for the same operation asserted exactly.
//! A restart is `kubectl rollout restart` and waits for the rollout; a paused Deployment
//! is left alone.

use crate::k8s_support::{
    changed, get, rolled, rolling, rollout_restart, run, settings, target, DEPLOYMENT, NOW,
};
use crate::support::k8s_fixture;
use salve::model::{Action, Intent, K8sKind};
use serde_json::json;

#[tokio::test]
async fn restart_of_a_deployment_is_kubectl_rollout_restart_and_waits_for_the_rollout() {
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, k8s_fixture("deployment-checkout.json")),
            rollout_restart(DEPLOYMENT, changed(6)),
            get(DEPLOYMENT, changed(6)),
            get(DEPLOYMENT, rolling(6)),
            get(DEPLOYMENT, rolled(6)),
        ],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "ok",
            "duration_ms": 0,
            "verified": "complete",
            "detail": { "namespace": "prod", "kind": "deployment", "name": "checkout", "restarted_at": NOW },
        })
    );
}

#[tokio::test]
async fn restart_of_statefulsets_and_daemonsets_patches_their_pod_template() {
    for (kind, resource) in [
        (K8sKind::StatefulSet, "statefulsets"),
        (K8sKind::DaemonSet, "daemonsets"),
    ] {
        let path = format!("/apis/apps/v1/namespaces/prod/{resource}/ledger");
        let object = json!({
            "apiVersion": "apps/v1",
            "kind": if kind == K8sKind::StatefulSet { "StatefulSet" } else { "DaemonSet" },
            "metadata": { "name": "ledger", "namespace": "prod", "generation": 2 },
            "spec": { "selector": { "matchLabels": { "app": "ledger" } }, "template": {} },
        });
        // `.timeout(0)`: the rule does not want to wait for the rollout.
        let intent = Intent::new(Action::Restart, target(kind, "ledger")).with("timeout", 0);
        let outcome = run(
            intent,
            settings(),
            vec![get(&path, object.clone()), rollout_restart(&path, object)],
        )
        .await;
        assert_eq!(outcome["outcome"], "ok", "{resource}: {outcome}");
        assert_eq!(outcome.get("verified"), None, "{resource}");
    }
}

#[tokio::test]
async fn a_paused_deployment_is_not_restarted() {
    let mut paused = k8s_fixture("deployment-checkout.json");
    paused["spec"]["paused"] = json!(true);
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![get(DEPLOYMENT, paused)],
    )
    .await;
    assert_eq!(outcome["outcome"], "failed");
    assert_eq!(
        outcome["error"],
        "deployment prod/checkout is paused; salve does not restart a paused rollout (kubectl rollout resume first)"
    );
}
