//! The Kubernetes executor against a mocked API server (kube's `tower_test` pair): each
//! test is the list of requests kubectl sends for the same operation, asserted exactly
//! (method, path with query, content type, body), and the answers the API server gives,
//! built from the objects in `tests/fixtures/k8s/`. No live cluster is involved.

use crate::support::k8s_fixture;
use http::{Request, Response};
use kube::client::Body;
use salve::execute::KubernetesSettings;
use salve::execute::{ActionContext, Executor, KubernetesExecutor};
use salve::model::Outcome;
use salve::model::{Intent, K8sKind, Target};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower_test::mock::Handle;

pub const NOW: &str = "2026-11-23T10:47:42Z";
pub const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/prod/deployments/checkout";

/// One request salve must send and the answer it gets.
pub struct Exchange {
    pub method: &'static str,
    pub uri: String,
    pub content_type: Option<&'static str>,
    pub body: Option<Value>,
    pub status: u16,
    pub answer: Value,
}

pub fn get(uri: &str, answer: Value) -> Exchange {
    Exchange {
        method: "GET",
        uri: uri.to_string(),
        content_type: None,
        body: None,
        status: 200,
        answer,
    }
}

pub fn send(
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
pub fn normalized(uri: &str) -> (String, Vec<(String, String)>) {
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
pub async fn scenario(mut handle: Handle<Request<Body>, Response<Body>>, exchanges: Vec<Exchange>) {
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

pub fn settings() -> KubernetesSettings {
    KubernetesSettings {
        verify_timeout: Duration::from_secs(5),
        ..KubernetesSettings::default()
    }
}

/// Runs one intent against the scenario and returns the outcome, with the timings that
/// vary from run to run taken out so whole outcomes can be compared.
pub async fn run(intent: Intent, settings: KubernetesSettings, exchanges: Vec<Exchange>) -> Value {
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

pub fn target(kind: K8sKind, name: &str) -> Target {
    Target::K8s {
        namespace: "prod".into(),
        kind,
        name: name.into(),
    }
}

/// The PATCH `kubectl rollout restart` sends for the workload at `path`.
pub fn rollout_restart(path: &str, answer: Value) -> Exchange {
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
pub fn read_scale() -> Exchange {
    get(
        &format!("{DEPLOYMENT}/scale"),
        k8s_fixture("scale-checkout.json"),
    )
}

/// The Scale written back: the one read, with only `spec.replicas` changed.
pub fn write_scale(replicas: i64) -> Exchange {
    let mut written = k8s_fixture("scale-checkout.json");
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

/// The Deployment after a change: a new generation the controller has not seen yet.
pub fn changed(generation: i64) -> Value {
    let mut d = k8s_fixture("deployment-checkout.json");
    d["metadata"]["generation"] = json!(generation);
    d
}

/// The Deployment part-way through its rollout: one new pod, old ones still there.
pub fn rolling(generation: i64) -> Value {
    let mut d = changed(generation);
    d["status"]["observedGeneration"] = json!(generation);
    d["status"]["replicas"] = json!(4);
    d["status"]["updatedReplicas"] = json!(1);
    d
}

/// The Deployment with its rollout done.
pub fn rolled(generation: i64) -> Value {
    let mut d = changed(generation);
    d["status"]["observedGeneration"] = json!(generation);
    d
}

/// The Eviction `kubectl drain` posts for `pod`.
pub fn eviction_body(pod: &str) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod, "namespace": "prod" },
        "deleteOptions": {},
    })
}

/// The pod the eviction tests restart.
pub const POD: &str = "checkout-7b4c9d8f6a-x2vqk";

pub fn eviction_uri() -> String {
    format!("/api/v1/namespaces/prod/pods/{POD}/eviction")
}

/// The evicted pod read back: still terminating, then gone.
pub fn pod_terminating() -> Exchange {
    get(
        &format!("/api/v1/namespaces/prod/pods/{POD}"),
        k8s_fixture("pod-checkout-terminating.json"),
    )
}

pub fn pod_gone() -> Exchange {
    Exchange {
        status: 404,
        ..get(
            &format!("/api/v1/namespaces/prod/pods/{POD}"),
            k8s_fixture("pod-not-found.json"),
        )
    }
}
