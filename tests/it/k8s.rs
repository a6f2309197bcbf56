//! The Kubernetes executor against a mocked API server (kube's `tower_test` pair): each
//! test is the list of requests kubectl sends for the same operation, asserted exactly
//! (method, path with query, content type, body), and the answers the API server gives,
//! built from the objects in `tests/fixtures/k8s/`. No live cluster is involved.

use crate::support::{repo_dir, s};
use http::{Request, Response};
use kube::client::Body;
use salve::execute::KubernetesSettings;
use salve::execute::{ActionContext, Executor, KubernetesExecutor};
use salve::model::Outcome;
use salve::model::{Action, Intent, K8sKind, Target};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::Handle;

const NOW: &str = "2026-11-23T10:47:42Z";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/prod/deployments/checkout";

fn fixture(name: &str) -> Value {
    let path = repo_dir().join("tests/fixtures/k8s").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One request salve must send and the answer it gets.
struct Exchange {
    method: &'static str,
    uri: String,
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    answer: Value,
}

fn get(uri: &str, answer: Value) -> Exchange {
    Exchange {
        method: "GET",
        uri: uri.to_string(),
        content_type: None,
        body: None,
        status: 200,
        answer,
    }
}

fn send(
    method: &'static str,
    uri: &str,
    content_type: &'static str,
    body: Value,
    status: u16,
    answer: Value,
) -> Exchange {
    Exchange {
        method,
        uri: uri.to_string(),
        content_type: Some(content_type),
        body: Some(body),
        status,
        answer,
    }
}

/// The path and the decoded query parameters: kube writes `?&fieldManager=x` where
/// kubectl writes `?fieldManager=x`, which the API server reads alike.
fn normalized(uri: &str) -> (String, Vec<(String, String)>) {
    let url =
        reqwest::Url::parse(&format!("http://api{uri}")).unwrap_or_else(|e| panic!("{uri}: {e}"));
    let query = url
        .query_pairs()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (url.path().to_string(), query)
}

/// Answers requests in order, asserting each is the one expected, and that nothing else
/// is sent before the client goes away.
async fn scenario(mut handle: Handle<Request<Body>, Response<Body>>, exchanges: Vec<Exchange>) {
    for (i, expected) in exchanges.into_iter().enumerate() {
        let Some((request, respond)) = handle.next_request().await else {
            panic!(
                "request {i} never came: expected {} {}",
                expected.method, expected.uri
            );
        };
        let (parts, body) = request.into_parts();
        let what = format!("request {i} ({} {})", parts.method, parts.uri);
        assert_eq!(parts.method.as_str(), expected.method, "{what}: method");
        assert_eq!(
            normalized(&parts.uri.to_string()),
            normalized(&expected.uri),
            "{what}: path and query"
        );
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        assert_eq!(content_type, expected.content_type, "{what}: content type");
        let bytes = body
            .collect_bytes()
            .await
            .unwrap_or_else(|e| panic!("{what}: body: {e}"));
        match &expected.body {
            None => assert!(bytes.is_empty(), "{what}: a GET carries no body"),
            Some(want) => {
                let got: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
                assert_eq!(&got, want, "{what}: body");
            }
        }
        let answer = serde_json::to_vec(&expected.answer).unwrap_or_default();
        let response = Response::builder()
            .status(expected.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(answer))
            .unwrap_or_else(|e| panic!("{what}: response: {e}"));
        respond.send_response(response);
    }
    if let Some((request, _)) = handle.next_request().await {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

fn settings() -> KubernetesSettings {
    KubernetesSettings {
        verify_timeout: Duration::from_secs(5),
        ..KubernetesSettings::default()
    }
}

/// Runs one intent against the scenario and returns the outcome, with the timings that
/// vary from run to run taken out so whole outcomes can be compared.
async fn run(intent: Intent, settings: KubernetesSettings, exchanges: Vec<Exchange>) -> Value {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(scenario(handle, exchanges));
    let client = kube::Client::new(mock, "default");
    let executor = KubernetesExecutor::with_client(client, settings)
        .poll_every(Duration::from_millis(5))
        .clock(Arc::new(|| {
            NOW.parse().unwrap_or_else(|e| panic!("clock: {e}"))
        }));
    let outcome: Outcome = tokio::time::timeout(
        Duration::from_secs(20),
        executor.execute(&intent, &ActionContext::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("the executor did not finish"));
    drop(executor);
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap_or_else(|_| panic!("the scenario did not finish"))
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let mut value = serde_json::to_value(&outcome).unwrap_or_default();
    if let Some(detail) = value.get_mut("detail").and_then(Value::as_object_mut) {
        detail.remove("api_call_ms");
        detail.remove("verified_after_ms");
    }
    value
}

fn target(kind: K8sKind, name: &str) -> Target {
    Target::K8s {
        namespace: "prod".into(),
        kind,
        name: name.into(),
    }
}

/// The Deployment after a change: a new generation the controller has not seen yet.
/// The PATCH `kubectl rollout restart` sends for the workload at `path`.
fn rollout_restart(path: &str, answer: Value) -> Exchange {
    let patch = json!({ "spec": { "template": { "metadata": { "annotations": {
        "kubectl.kubernetes.io/restartedAt": NOW
    } } } } });
    send(
        "PATCH",
        &format!("{path}?fieldManager=salve"),
        "application/strategic-merge-patch+json",
        patch,
        200,
        answer,
    )
}

/// The Scale subresource read before a scale, as `kubectl scale` reads it.
fn read_scale() -> Exchange {
    get(
        &format!("{DEPLOYMENT}/scale"),
        fixture("scale-checkout.json"),
    )
}

/// The Scale written back: the one read, with only `spec.replicas` changed.
fn write_scale(replicas: i64) -> Exchange {
    let mut written = fixture("scale-checkout.json");
    written["spec"]["replicas"] = json!(replicas);
    send(
        "PUT",
        &format!("{DEPLOYMENT}/scale?fieldManager=salve"),
        "application/json",
        written.clone(),
        200,
        written,
    )
}

fn changed(generation: i64) -> Value {
    let mut d = fixture("deployment-checkout.json");
    d["metadata"]["generation"] = json!(generation);
    d
}

/// The Deployment part-way through its rollout: one new pod, old ones still there.
fn rolling(generation: i64) -> Value {
    let mut d = changed(generation);
    d["status"]["observedGeneration"] = json!(generation);
    d["status"]["replicas"] = json!(4);
    d["status"]["updatedReplicas"] = json!(1);
    d
}

fn rolled(generation: i64) -> Value {
    let mut d = changed(generation);
    d["status"]["observedGeneration"] = json!(generation);
    d
}

#[tokio::test]
async fn restart_of_a_deployment_is_kubectl_rollout_restart_and_waits_for_the_rollout() {
    let outcome = run(
        Intent::new(Action::Restart, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, fixture("deployment-checkout.json")),
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
    let mut paused = fixture("deployment-checkout.json");
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

/// The JSON patch `kubectl rollout undo` sends: revision 2's pod template without the
/// pod-template-hash label, and the annotations it computes.
fn undo_patch() -> Value {
    let list = fixture("replicasets-checkout.json");
    let previous = list["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|rs| rs["metadata"]["name"] == "checkout-6c9d8e7f5b")
        })
        .cloned()
        .unwrap_or_else(|| panic!("revision 2 in the fixture"));
    let mut template = previous["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    let deployment = fixture("deployment-checkout.json");
    json!([
        { "op": "replace", "path": "/spec/template", "value": template },
        { "op": "replace", "path": "/metadata/annotations", "value": {
            // Kept from the Deployment:
            "deployment.kubernetes.io/revision": "3",
            "kubectl.kubernetes.io/last-applied-configuration":
                deployment["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            // Copied from the ReplicaSet of revision 2:
            "example.org/change-cause": "release 1.4.1",
        } },
    ])
}

#[tokio::test]
async fn rollback_is_kubectl_rollout_undo_to_the_previous_revision_of_its_own_replicasets() {
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, fixture("deployment-checkout.json")),
            get(
                "/apis/apps/v1/namespaces/prod/replicasets?labelSelector=app%3Dcheckout%2Ctier%3Dweb",
                fixture("replicasets-checkout.json"),
            ),
            send(
                "PATCH",
                &format!("{DEPLOYMENT}?fieldManager=salve"),
                "application/json-patch+json",
                undo_patch(),
                200,
                changed(6),
            ),
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
            "detail": { "namespace": "prod", "kind": "deployment", "name": "checkout",
                        "revisions": [3, 2, 1], "from_revision": 3, "to_revision": 2,
                        "replica_set": "checkout-6c9d8e7f5b" },
        })
    );
}

#[tokio::test]
async fn rollback_without_a_previous_revision_fails_and_changes_nothing() {
    let mut list = fixture("replicasets-checkout.json");
    if let Some(items) = list["items"].as_array_mut() {
        items.retain(|rs| rs["metadata"]["name"] == "checkout-7b4c9d8f6a");
    }
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, fixture("deployment-checkout.json")),
            get(
                "/apis/apps/v1/namespaces/prod/replicasets?labelSelector=app%3Dcheckout%2Ctier%3Dweb",
                list,
            ),
        ],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "failed",
            "duration_ms": 0,
            "error": "deployment prod/checkout has no previous revision to roll back to (no rollout history)",
            "detail": { "namespace": "prod", "kind": "deployment", "name": "checkout", "revisions": [3] },
        })
    );
}

#[tokio::test]
async fn rollback_to_the_template_already_running_is_skipped() {
    let mut deployment = fixture("deployment-checkout.json");
    let list = fixture("replicasets-checkout.json");
    let previous = list["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|rs| rs["metadata"]["name"] == "checkout-6c9d8e7f5b")
        })
        .cloned()
        .unwrap_or_default();
    let mut template = previous["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    deployment["spec"]["template"] = template;
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, deployment),
            get(
                "/apis/apps/v1/namespaces/prod/replicasets?labelSelector=app%3Dcheckout%2Ctier%3Dweb",
                list,
            ),
        ],
    )
    .await;
    assert_eq!(outcome["outcome"], "skipped", "{outcome}");
    assert_eq!(
        outcome["error"],
        "deployment prod/checkout: the current template already matches revision 2"
    );
}

const STATEFULSET: &str = "/apis/apps/v1/namespaces/prod/statefulsets/ledger";
const LEDGER_HISTORY: &str =
    "/apis/apps/v1/namespaces/prod/controllerrevisions?labelSelector=app%3Dledger";

/// The ControllerRevision of `revision` in the fixture.
fn controller_revision(revision: i64) -> Value {
    fixture("controllerrevisions-ledger.json")["items"]
        .as_array()
        .and_then(|items| items.iter().find(|cr| cr["revision"] == revision))
        .cloned()
        .unwrap_or_else(|| panic!("revision {revision} in the fixture"))
}

/// The StatefulSet with a change its controller has or has not rolled out yet.
fn ledger(generation: i64, rolled_out: bool) -> Value {
    let mut sts = fixture("statefulset-ledger.json");
    sts["metadata"]["generation"] = json!(generation);
    sts["status"]["observedGeneration"] = json!(generation);
    if !rolled_out {
        sts["status"]["updateRevision"] = json!("ledger-9a1b2c3d4e");
        sts["status"]["updatedReplicas"] = json!(1);
    }
    sts
}

#[tokio::test]
async fn rollback_of_a_statefulset_sends_back_its_previous_controller_revision() {
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::StatefulSet, "ledger")),
        settings(),
        vec![
            get(STATEFULSET, fixture("statefulset-ledger.json")),
            get(LEDGER_HISTORY, fixture("controllerrevisions-ledger.json")),
            // kubectl sends the revision's data as it is: the pod template with
            // `$patch: replace`, so nothing of the newer template survives.
            send(
                "PATCH",
                &format!("{STATEFULSET}?fieldManager=salve"),
                "application/strategic-merge-patch+json",
                controller_revision(2)["data"].clone(),
                200,
                ledger(5, false),
            ),
            get(STATEFULSET, ledger(5, false)),
            get(STATEFULSET, ledger(5, true)),
        ],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "ok",
            "duration_ms": 0,
            "verified": "complete",
            // The canary's revision 7 carries the same labels but another owner.
            "detail": { "namespace": "prod", "kind": "statefulset", "name": "ledger",
                        "revisions": [3, 2, 1], "from_revision": 3, "to_revision": 2,
                        "controller_revision": "ledger-6f9d8c7b5a" },
        })
    );
}

#[tokio::test]
async fn rollback_of_a_daemonset_already_at_the_previous_revision_is_skipped() {
    // The same history owned by a DaemonSet whose template is revision 2's again.
    let mut daemonset = fixture("statefulset-ledger.json");
    daemonset["kind"] = json!("DaemonSet");
    let mut template = controller_revision(2)["data"]["spec"]["template"].clone();
    if let Some(template) = template.as_object_mut() {
        template.remove("$patch");
    }
    daemonset["spec"]["template"] = template;
    let mut history = fixture("controllerrevisions-ledger.json");
    for item in history["items"].as_array_mut().into_iter().flatten() {
        item["metadata"]["ownerReferences"][0]["kind"] = json!("DaemonSet");
    }
    let path = "/apis/apps/v1/namespaces/prod/daemonsets/ledger";
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::DaemonSet, "ledger")),
        settings(),
        vec![get(path, daemonset), get(LEDGER_HISTORY, history)],
    )
    .await;
    assert_eq!(outcome["outcome"], "skipped", "{outcome}");
    assert_eq!(
        outcome["error"],
        "daemonset prod/ledger: the current template already matches revision 2"
    );
}

#[tokio::test]
async fn rollback_of_a_statefulset_without_history_fails_and_changes_nothing() {
    let mut history = fixture("controllerrevisions-ledger.json");
    if let Some(items) = history["items"].as_array_mut() {
        items.retain(|cr| cr["revision"] == 3 || cr["revision"] == 7);
    }
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::StatefulSet, "ledger")),
        settings(),
        vec![
            get(STATEFULSET, fixture("statefulset-ledger.json")),
            get(LEDGER_HISTORY, history),
        ],
    )
    .await;
    assert_eq!(
        outcome,
        json!({
            "outcome": "failed",
            "duration_ms": 0,
            "error": "statefulset prod/ledger has no previous revision to roll back to (no rollout history)",
            "detail": { "namespace": "prod", "kind": "statefulset", "name": "ledger", "revisions": [3] },
        })
    );
}

fn eviction_body(pod: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod, "namespace": "prod" },
        "deleteOptions": {},
    })
}

const POD: &str = "checkout-7b4c9d8f6a-x2vqk";

fn eviction_uri() -> String {
    format!("/api/v1/namespaces/prod/pods/{POD}/eviction")
}

/// The evicted pod read back: still terminating, then gone.
fn pod_terminating() -> Exchange {
    get(
        &format!("/api/v1/namespaces/prod/pods/{POD}"),
        fixture("pod-checkout-terminating.json"),
    )
}

fn pod_gone() -> Exchange {
    Exchange {
        status: 404,
        ..get(
            &format!("/api/v1/namespaces/prod/pods/{POD}"),
            fixture("pod-not-found.json"),
        )
    }
}

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
                fixture("eviction-created.json"),
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
    let mut stuck = fixture("pod-checkout-terminating.json");
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
                fixture("eviction-created.json"),
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
            fixture("eviction-refused-by-pdb.json"),
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
                fixture("throttled.json"),
            ),
            send(
                "POST",
                &eviction_uri(),
                "application/json",
                eviction_body(POD),
                201,
                fixture("eviction-created.json"),
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
            get(DEPLOYMENT, fixture("deployment-checkout.json")),
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

/// Each YAML document of `examples/kubernetes` as JSON, with its file name.
fn manifests() -> Vec<(String, Value)> {
    manifests_in("examples/kubernetes")
}

fn manifests_in(folder: &str) -> Vec<(String, Value)> {
    let dir = repo_dir().join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        documents.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    documents
}

/// Reads `manifest` as the Kubernetes type `K` and back: a field the API does not
/// know (a typo) would be dropped on the way and show as a difference.
fn round_trip<K: serde::de::DeserializeOwned + serde::Serialize>(what: &str, manifest: &Value) {
    let typed: K = serde_json::from_value(manifest.clone())
        .unwrap_or_else(|e| panic!("{what} is not a valid object of its kind: {e}"));
    let back = serde_json::to_value(&typed).unwrap_or_default();
    assert_eq!(
        &back, manifest,
        "{what}: fields lost reading it as its type"
    );
}

#[test]
fn the_shipped_kubernetes_manifests_are_valid_api_objects() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{
        ConfigMap, Namespace, PersistentVolumeClaim, Service, ServiceAccount,
    };
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let documents = manifests();
    let mut kinds: Vec<String> = Vec::new();
    for (file, doc) in &documents {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let what = format!("{file}: {kind} {}", doc["metadata"]["name"]);
        match kind.as_str() {
            "Namespace" => round_trip::<Namespace>(&what, doc),
            "ServiceAccount" => round_trip::<ServiceAccount>(&what, doc),
            "ClusterRole" => round_trip::<ClusterRole>(&what, doc),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(&what, doc),
            "ConfigMap" => round_trip::<ConfigMap>(&what, doc),
            "PersistentVolumeClaim" => round_trip::<PersistentVolumeClaim>(&what, doc),
            "Deployment" => round_trip::<Deployment>(&what, doc),
            "Service" => round_trip::<Service>(&what, doc),
            "NetworkPolicy" => round_trip::<NetworkPolicy>(&what, doc),
            other => panic!("{what}: no check for kind {other:?}"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "Service",
            "ServiceAccount"
        ]
    );

    let find = |kind: &str, name: &str| -> &Value {
        documents
            .iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    // What salve's pod promises: probes on its health endpoints, limits, no root, no writes
    // outside its data volume.
    let pod = &find("Deployment", "salve")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The rules ConfigMap carries the rules of rules/, byte for byte.
    let rules = find("ConfigMap", "salve-rules")["data"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rules.len(), 3);
    for (name, text) in &rules {
        let file = repo_dir().join("rules").join(name);
        let on_disk =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            text.as_str(),
            Some(on_disk.as_str()),
            "{name} differs from rules/{name}"
        );
    }

    // The salve.toml of the ConfigMap is a valid configuration.
    std::env::set_var(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.invalid/services/T0/B0/x",
    );
    let toml = find("ConfigMap", "salve-config")["data"]["salve.toml"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // The API token: salve reads it from the Secret mounted where the config says, and
    // Alertmanager's receiver sends it.
    let token_file = "/etc/salve/token/token";
    assert!(
        toml.contains(&format!("bearer_token_file = \"{token_file}\"")),
        "{toml}"
    );
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"] == "/etc/salve/token")
        .unwrap_or_else(|| panic!("nothing is mounted at /etc/salve/token"));
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {}", mount["name"]));
    assert_eq!(volume["secret"]["secretName"], "salve-api-token");
    let receiver =
        std::fs::read_to_string(repo_dir().join("examples/kubernetes/alertmanager-receiver.yml"))
            .expect("read the receiver");
    assert!(
        receiver.contains("credentials_file: /etc/alertmanager/secrets/salve-api-token/token"),
        "{receiver}"
    );
    let token = tempfile::NamedTempFile::new().expect("a token file");
    std::fs::write(token.path(), "s3cret\n").expect("write the token");
    let toml = toml.replace(token_file, &token.path().display().to_string());
    let config = salve::config::Config::parse(&toml, std::path::Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.kubernetes.max_replicas, Some(20));
    assert!(config.auth.is_some(), "the API is locked");

    // Only Alertmanager and Prometheus reach salve's port.
    let policy = &find("NetworkPolicy", "salve")["spec"];
    assert_eq!(
        policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "salve"
    );
    assert_eq!(policy["policyTypes"], serde_json::json!(["Ingress"]));
    let ingress = policy["ingress"].as_array().cloned().unwrap_or_default();
    assert_eq!(ingress.len(), 1);
    let peers: Vec<String> = ingress[0]["from"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(&p["podSelector"]["matchLabels"]["app.kubernetes.io/name"]))
        .collect();
    assert_eq!(peers, ["alertmanager", "prometheus"]);
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{ "protocol": "TCP", "port": 9095 }])
    );
}

/// Every verb the ClusterRole grants is one an action uses, and each action's requests
/// are allowed: least privilege, checked against the requests the tests above assert.
#[test]
fn the_cluster_role_grants_exactly_the_requests_salve_sends() {
    let documents = manifests();
    let role = documents
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap_or_else(|| panic!("no ClusterRole"));
    let mut granted: Vec<String> = Vec::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                for verb in rule["verbs"].as_array().into_iter().flatten() {
                    granted.push(format!(
                        "{}/{} {}",
                        group.as_str().unwrap_or_default(),
                        resource.as_str().unwrap_or_default(),
                        verb.as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    granted.sort();
    let used = [
        "/pods get",                      // restart of a pod: waiting for it to go
        "/pods/eviction create",          // restart of a pod
        "apps/controllerrevisions list",  // rollback of statefulsets and daemonsets
        "apps/daemonsets get",            // restart, rollback, verification
        "apps/daemonsets patch",          // restart, rollback
        "apps/deployments get",           // restart, rollback, verification
        "apps/deployments patch",         // restart, rollback
        "apps/deployments/scale get",     // scale
        "apps/deployments/scale update",  // scale
        "apps/replicasets list",          // rollback
        "apps/statefulsets get",          // restart, rollback, verification
        "apps/statefulsets patch",        // restart, rollback
        "apps/statefulsets/scale get",    // scale
        "apps/statefulsets/scale update", // scale
    ];
    assert_eq!(granted, used);
}

#[test]
fn the_two_replica_variant_spreads_its_pods_keeps_one_through_a_drain_and_reads_the_url_from_a_secret(
) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let documents = manifests_in("examples/kubernetes/replicas");
    let find = |kind: &str| -> &Value {
        documents
            .iter()
            .map(|(_, d)| d)
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    round_trip::<Deployment>("replicas/deployment.yaml", find("Deployment"));
    round_trip::<PodDisruptionBudget>("replicas/pdb.yaml", find("PodDisruptionBudget"));
    round_trip::<ConfigMap>("replicas/config.yaml", find("ConfigMap"));
    assert_eq!(documents.len(), 3);

    let deployment = &find("Deployment")["spec"];
    assert_eq!(deployment["replicas"], 2);
    let pod = &deployment["template"]["spec"];
    let spread =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "salve"
    );
    assert_eq!(find("PodDisruptionBudget")["spec"]["minAvailable"], 1);
    // No volume is shared between the replicas.
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    assert!(volumes.iter().all(|v| v["persistentVolumeClaim"].is_null()));

    let container = &pod["containers"][0];
    let url = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "SALVE_POSTGRES_URL")
        .unwrap_or_else(|| panic!("no SALVE_POSTGRES_URL in the pod"));
    assert_eq!(url["valueFrom"]["secretKeyRef"]["name"], "salve-postgres");
    let toml = find("ConfigMap")["data"]["salve.toml"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!toml.contains("postgres://"), "{toml}");
    let token = tempfile::NamedTempFile::new().expect("a token file");
    std::fs::write(token.path(), "s3cret\n").expect("write the token");
    let toml = toml.replace(
        "/etc/salve/token/token",
        &token.path().display().to_string(),
    );
    std::env::set_var(
        "SALVE_POSTGRES_URL",
        " postgres://salve:pw@postgres.db.svc:5432/salve\n",
    );
    std::env::set_var(
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.invalid/services/T0/B0/x",
    );
    let config = salve::config::Config::parse(&toml, std::path::Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let store = config.store.expect("[store]");
    assert_eq!(
        store.url.expose(),
        "postgres://salve:pw@postgres.db.svc:5432/salve"
    );
    assert_eq!(store.takeover_after, std::time::Duration::from_secs(10));
}
