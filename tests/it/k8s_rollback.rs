//! `rollback` against a mocked API server (kube's `tower_test`
//! pair, `k8s_support`): kubectl's requests for the same operation asserted exactly.
//! `kubectl rollout undo` to the previous revision of a Deployment's own ReplicaSets or a
//! StatefulSet's or DaemonSet's ControllerRevisions; none to go back to, or the template
//! already running, changes nothing.

use crate::k8s_support::{changed, get, rolled, rolling, run, send, settings, target, DEPLOYMENT};
use crate::support::k8s_fixture;
use salve::model::{Action, Intent, K8sKind};
use serde_json::{json, Value};

/// The JSON patch `kubectl rollout undo` sends: revision 2's pod template without the
/// pod-template-hash label, and the annotations it computes.
fn undo_patch() -> Value {
    let list = k8s_fixture("replicasets-checkout.json");
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
    let deployment = k8s_fixture("deployment-checkout.json");
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
            get(DEPLOYMENT, k8s_fixture("deployment-checkout.json")),
            get(
                "/apis/apps/v1/namespaces/prod/replicasets?labelSelector=app%3Dcheckout%2Ctier%3Dweb",
                k8s_fixture("replicasets-checkout.json"),
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
    let mut list = k8s_fixture("replicasets-checkout.json");
    if let Some(items) = list["items"].as_array_mut() {
        items.retain(|rs| rs["metadata"]["name"] == "checkout-7b4c9d8f6a");
    }
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::Deployment, "checkout")),
        settings(),
        vec![
            get(DEPLOYMENT, k8s_fixture("deployment-checkout.json")),
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
    let mut deployment = k8s_fixture("deployment-checkout.json");
    let list = k8s_fixture("replicasets-checkout.json");
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
    k8s_fixture("controllerrevisions-ledger.json")["items"]
        .as_array()
        .and_then(|items| items.iter().find(|cr| cr["revision"] == revision))
        .cloned()
        .unwrap_or_else(|| panic!("revision {revision} in the fixture"))
}

/// The StatefulSet with a change its controller has or has not rolled out yet.
fn ledger(generation: i64, rolled_out: bool) -> Value {
    let mut sts = k8s_fixture("statefulset-ledger.json");
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
            get(STATEFULSET, k8s_fixture("statefulset-ledger.json")),
            get(
                LEDGER_HISTORY,
                k8s_fixture("controllerrevisions-ledger.json"),
            ),
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
    let mut daemonset = k8s_fixture("statefulset-ledger.json");
    daemonset["kind"] = json!("DaemonSet");
    let mut template = controller_revision(2)["data"]["spec"]["template"].clone();
    if let Some(template) = template.as_object_mut() {
        template.remove("$patch");
    }
    daemonset["spec"]["template"] = template;
    let mut history = k8s_fixture("controllerrevisions-ledger.json");
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
    let mut history = k8s_fixture("controllerrevisions-ledger.json");
    if let Some(items) = history["items"].as_array_mut() {
        items.retain(|cr| cr["revision"] == 3 || cr["revision"] == 7);
    }
    let outcome = run(
        Intent::new(Action::Rollback, target(K8sKind::StatefulSet, "ledger")),
        settings(),
        vec![
            get(STATEFULSET, k8s_fixture("statefulset-ledger.json")),
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
