//! The API server misbehaving against a mocked API server (kube's `tower_test`
//! pair, `k8s_support`): kubectl's requests for the same operation asserted exactly.
//! A throttled request is asked again, a rollout past its progress deadline or not done in
//! time fails with that reason, and without any cluster configuration an action fails
//! and says why.

use crate::k8s_support::{
    changed, eviction_body, eviction_uri, get, normalized, pod_gone, read_scale, rolled, rolling,
    rollout_restart, run, send, settings, target, write_scale, Exchange, DEPLOYMENT, POD,
};
use crate::support::k8s_fixture;
use http::{Request, Response};
use kube::client::Body;
use salve::execute::KubernetesSettings;
use salve::execute::{ActionContext, Executor, KubernetesExecutor};
use salve::model::{Action, Intent, K8sKind};
use serde_json::json;
use std::time::Duration;
use tower_test::mock::Handle;

#[tokio::test]
async fn a_throttled_api_server_is_asked_again() {
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Pod, POD)),
        settings(),
        vec![
            send(
                "POST",
                &eviction_uri(),
                "application/json",
                eviction_body(POD),
                429,
                k8s_fixture("throttled.json"),
            ),
            send(
                "POST",
                &eviction_uri(),
                "application/json",
                eviction_body(POD),
                201,
                k8s_fixture("eviction-created.json"),
            ),
            pod_gone(),
        ],
    )
    .await;
    assert_eq!(outcome["verified"], "evicted", "{outcome}");
}

#[tokio::test]
async fn a_rollout_past_its_progress_deadline_fails_with_that_reason() {
    let mut stuck = rolling(6);
    stuck["status"]["conditions"][1] = json!({
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet \"checkout-9f8e7d6c5b\" has timed out progressing.",
        "lastUpdateTime": "2026-11-23T10:57:42Z", "lastTransitionTime": "2026-11-23T10:57:42Z"
    });
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, k8s_fixture("deployment-checkout.json")),
            rollout_restart(DEPLOYMENT, changed(6)),
            get(DEPLOYMENT, rolling(6)),
            get(DEPLOYMENT, stuck),
        ],
    )
    .await;
    assert_eq!(outcome["outcome"], "failed", "{outcome}");
    assert_eq!(outcome["verified"], "progress_deadline_exceeded");
    assert_eq!(
        outcome["error"],
        "deployment prod/checkout: the rollout passed its progress deadline"
    );
}

#[tokio::test]
async fn a_rollout_that_does_not_finish_in_time_is_a_timeout() {
    let mut waiting = rolled(6);
    waiting["spec"]["replicas"] = json!(4);
    waiting["status"]["replicas"] = json!(4);
    waiting["status"]["updatedReplicas"] = json!(4);
    let exchanges = vec![read_scale(), write_scale(4)];
    // `.timeout(1)`: one second at 5 ms a look; the scenario answers every look.
    let intent = Intent::new(Action::Scale, target(K8sKind::Deployment, "checkout"))
        .with("replicas", "+1")
        .with("timeout", 1);
    let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(mock, "default");
    let executor =
        KubernetesExecutor::with_client(client, settings()).poll_every(Duration::from_millis(5));
    let server = tokio::spawn(async move {
        scenario_prefix(&mut handle, exchanges).await;
        let mut looks = 0;
        while let Some((request, respond)) = handle.next_request().await {
            assert_eq!(request.uri().to_string(), DEPLOYMENT);
            looks += 1;
            let body = serde_json::to_vec(&waiting).unwrap_or_default();
            respond.send_response(
                Response::builder()
                    .status(200)
                    .body(Body::from(body))
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        looks
    });
    let outcome = executor.execute(&intent, &ActionContext::default()).await;
    drop(executor);
    let looks = server
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    assert_eq!(outcome.verified.as_deref(), Some("timeout"), "{outcome:?}");
    assert!(outcome.is_failure());
    assert_eq!(
        outcome.error.as_deref(),
        Some("deployment prod/checkout: the rollout was not complete within 1s: 3 ready and 3 available of 4")
    );
    assert!(looks > 1, "the rollout was looked at {looks} times");
}

/// The first exchanges of a scenario, leaving the handle for the rest.
async fn scenario_prefix(
    handle: &mut Handle<Request<Body>, Response<Body>>,
    exchanges: Vec<Exchange>,
) {
    for expected in exchanges {
        let Some((request, respond)) = handle.next_request().await else {
            panic!("expected {} {}", expected.method, expected.uri);
        };
        assert_eq!(request.method().as_str(), expected.method);
        assert_eq!(
            normalized(&request.uri().to_string()),
            normalized(&expected.uri)
        );
        let answer = serde_json::to_vec(&expected.answer).unwrap_or_default();
        respond.send_response(
            Response::builder()
                .status(expected.status)
                .body(Body::from(answer))
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
}

#[tokio::test]
async fn without_any_cluster_configuration_kubernetes_actions_fail_and_say_why() {
    let settings = KubernetesSettings {
        kubeconfig: Some("/nonexistent/salve/kubeconfig".into()),
        ..KubernetesSettings::default()
    };
    let executor = KubernetesExecutor::new(settings);
    let intent = Intent::new(Action::Restart, target(K8sKind::Deployment, "checkout"));
    let outcome = executor.execute(&intent, &ActionContext::default()).await;
    assert!(outcome.is_failure());
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.starts_with("no Kubernetes client: cannot read /nonexistent/salve/kubeconfig"),
        "{error}"
    );
}
