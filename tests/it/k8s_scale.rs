//! `scale` against a mocked API server (kube's `tower_test`
//! pair, `k8s_support`): kubectl's requests for the same operation asserted exactly.
//! The Scale read is written back with only its replicas changed, within the rule's and
//! the config's maximum; a DaemonSet is not scaled.

use crate::k8s_support::{get, read_scale, rolled, run, settings, target, write_scale, DEPLOYMENT};
use salve::execute::KubernetesSettings;
use salve::model::{Action, Intent, K8sKind};
use serde_json::json;

#[tokio::test]
async fn scale_by_a_factor_stops_at_the_rules_maximum_and_writes_the_scale_it_read() {
    let mut scaled = rolled(6);
    scaled["spec"]["replicas"] = json!(5);
    scaled["status"]["replicas"] = json!(5);
    scaled["status"]["updatedReplicas"] = json!(5);
    scaled["status"]["readyReplicas"] = json!(5);
    scaled["status"]["availableReplicas"] = json!(5);
    let intent = Intent::new(Action::Scale, target(K8sKind::Deployment, "checkout"))
        .with("replicas", "x2")
        .with("min", 1)
        .with("max", 5);
    let outcome = run(
        intent,
        settings(),
        vec![read_scale(), write_scale(5), get(DEPLOYMENT, scaled)],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "ok",
            "duration_ms": 0,
            "verified": "complete",
            "detail": { "namespace": "prod", "kind": "deployment", "name": "checkout",
                        "replicas_before": 3, "replicas": 5, "min": 1, "max": 5 },
        })
    );
}

#[tokio::test]
async fn the_configured_maximum_holds_even_when_the_rule_allows_more() {
    let settings = KubernetesSettings {
        max_replicas: Some(4),
        ..settings()
    };
    let intent = Intent::new(Action::Scale, target(K8sKind::Deployment, "checkout"))
        .with("replicas", "+5")
        .with("min", 1)
        .with("max", 10)
        .with("timeout", 0);
    let outcome = run(intent, settings, vec![read_scale(), write_scale(4)]).await;
    assert_eq!(outcome["detail"]["replicas"], 4, "{outcome}");
    assert_eq!(outcome["detail"]["max"], 4, "{outcome}");
}

#[tokio::test]
async fn a_daemonset_is_not_scaled() {
    let outcome = run(
        Intent::new(Action::Scale, target(K8sKind::DaemonSet, "node-agent")).with("replicas", 3),
        settings(),
        vec![],
    )
    .await;
    assert_eq!(
        outcome["error"],
        "daemonset prod/node-agent: a DaemonSet runs one pod per node and cannot be scaled"
    );
}
