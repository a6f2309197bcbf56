//! `kubectl rollout undo`: of Deployments through their ReplicaSets, of
//! StatefulSets and DaemonSets through their ControllerRevisions.

use super::*;
use crate::model::Outcome;
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch};
use serde_json::{json, Value};
use std::fmt::Debug;

/// kubectl's choice for `rollout undo` without `--to-revision`: of the workload's
/// history (`revision` reads each one's number), the one of the second-highest
/// revision. Returns it with the outcome detail that lists the revisions.
pub(super) fn previous_revision<'a>(
    at: &At<'_>,
    history: &'a [DynamicObject],
    revision: impl Fn(&DynamicObject) -> Option<i64>,
) -> Result<(i64, &'a DynamicObject, Value), Outcome> {
    let mut revisions: Vec<(i64, &DynamicObject)> = history
        .iter()
        .filter_map(|item| Some((revision(item)?, item)))
        .collect();
    revisions.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    let mut detail = at.detail();
    detail["revisions"] = json!(revisions.iter().map(|(r, _)| *r).collect::<Vec<_>>());
    let Some(&(previous, item)) = revisions.get(1) else {
        return Err(Outcome::failed(
            format!("{at} has no previous revision to roll back to (no rollout history)"),
            detail,
        ));
    };
    detail["from_revision"] = json!(revisions[0].0);
    detail["to_revision"] = json!(previous);
    Ok((previous, item, detail))
}

/// A selector whose `matchExpressions` use an operator apimachinery does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown selector operator {0:?}")]
pub struct UnknownSelectorOperator(pub String);

/// The selector as the API's `labelSelector` query parameter, in the order
/// apimachinery prints it (by key), so the request is the one kubectl makes.
fn selector_query(selector: &LabelSelector) -> Result<String, UnknownSelectorOperator> {
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        parts.push((k.clone(), format!("{k}={v}")));
    }
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let text = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => return Err(UnknownSelectorOperator(other.to_string())),
        };
        parts.push((e.key.clone(), text));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(","))
}

impl KubernetesExecutor {
    /// `kubectl rollout undo`: find the ReplicaSets the Deployment controls, take the one
    /// of the revision before the newest, and put its pod template (without the
    /// pod-template-hash label) and annotations back with a JSON patch. Objects are
    /// handled as raw JSON so that fields newer than salve's API types survive.
    pub(super) async fn rollback(&self, client: &kube::Client, at: &At<'_>) -> Acted {
        let (deployments, deployment) = self.get_raw::<Deployment>(client, at).await?;
        let spec = deployment.data.get("spec").cloned().unwrap_or(Value::Null);
        if spec.get("paused").and_then(Value::as_bool) == Some(true) {
            return Err(Outcome::failed(
                format!("{at} is paused; kubectl refuses to roll back a paused deployment, and so does salve"),
                at.detail(),
            ));
        }
        let replica_sets = self
            .controlled::<Deployment, ReplicaSet>(client, at, &deployment, "ReplicaSets")
            .await?;
        let (previous, rs, mut detail) = previous_revision(at, &replica_sets, |rs| {
            rs.metadata
                .annotations
                .as_ref()?
                .get(REVISION)?
                .parse()
                .ok()
        })?;
        detail["replica_set"] = json!(rs.metadata.name);
        let mut template = rs
            .data
            .get("spec")
            .and_then(|s| s.get("template"))
            .cloned()
            .ok_or_else(|| {
                Outcome::failed(
                    format!("{at}: ReplicaSet of revision {previous} has no pod template"),
                    detail.clone(),
                )
            })?;
        if let Some(labels) = template
            .get_mut("metadata")
            .and_then(|m| m.get_mut("labels"))
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        let mut current = spec.get("template").cloned().unwrap_or(Value::Null);
        if let Some(labels) = current
            .get_mut("metadata")
            .and_then(|m| m.get_mut("labels"))
            .and_then(Value::as_object_mut)
        {
            labels.remove(POD_TEMPLATE_HASH);
        }
        if current == template {
            return Ok((
                detail,
                Verify::Skipped(format!(
                    "{at}: the current template already matches revision {previous}"
                )),
            ));
        }
        let mut annotations = serde_json::Map::new();
        for (k, v) in deployment.metadata.annotations.iter().flatten() {
            if ANNOTATIONS_KEPT_ON_UNDO.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
        for (k, v) in rs.metadata.annotations.iter().flatten() {
            if !ANNOTATIONS_KEPT_ON_UNDO.contains(&k.as_str()) {
                annotations.insert(k.clone(), json!(v));
            }
        }
        let patch: json_patch::Patch = serde_json::from_value(json!([
            { "op": "replace", "path": "/spec/template", "value": template },
            { "op": "replace", "path": "/metadata/annotations", "value": annotations },
        ]))
        .map_err(|e| Outcome::failed(format!("{at}: {e}"), detail.clone()))?;
        self.roll_back_to(&deployments, at, previous, Patch::<()>::Json(patch), detail)
            .await
    }

    /// Sends the patch that puts revision `previous` back; the rollout is verified after.
    pub(super) async fn roll_back_to<P: serde::Serialize + Debug>(
        &self,
        api: &Api<DynamicObject>,
        at: &At<'_>,
        previous: i64,
        patch: Patch<P>,
        detail: Value,
    ) -> Acted {
        let params = patch_params();
        match self.call(|| api.patch(at.name, &params, &patch)).await {
            Ok(_) => Ok((detail, Verify::Rollout)),
            Err(e) => Err(Outcome::failed(
                format!("rollback {at} to revision {previous}: {}", describe(&e)),
                detail,
            )),
        }
    }

    /// Reads a workload as raw JSON, so that fields newer than salve's API types survive
    /// a patch built from it.
    pub(super) async fn get_raw<K: Workload>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
    ) -> Result<(Api<DynamicObject>, DynamicObject), Outcome> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), at.namespace, &ApiResource::erase::<K>(&()));
        let object = self.call(|| api.get(at.name)).await.map_err(|e| {
            let error = if is_not_found(&e) {
                format!("{at} not found")
            } else {
                format!("cannot read {at}: {}", describe(&e))
            };
            Outcome::failed(error, at.detail())
        })?;
        Ok((api, object))
    }

    /// The `H` objects the workload's selector finds and the workload controls, as
    /// kubectl finds rollout history: a Deployment's ReplicaSets, a StatefulSet's or
    /// DaemonSet's ControllerRevisions. `plural` names them in errors.
    pub(super) async fn controlled<K: Workload, H>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        workload: &DynamicObject,
        plural: &str,
    ) -> Result<Vec<DynamicObject>, Outcome>
    where
        H: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        let selector: LabelSelector = workload
            .data
            .get("spec")
            .and_then(|s| s.get("selector"))
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Outcome::failed(format!("{at}: unreadable selector: {e}"), at.detail()))?
            .unwrap_or_default();
        let selector = selector_query(&selector)
            .map_err(|e| Outcome::failed(format!("{at}: {e}"), at.detail()))?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), at.namespace, &ApiResource::erase::<H>(&()));
        let params = ListParams::default().labels(&selector);
        let list = self.call(|| api.list(&params)).await.map_err(|e| {
            Outcome::failed(
                format!("cannot list the {plural} of {at}: {}", describe(&e)),
                at.detail(),
            )
        })?;
        let uid = workload.metadata.uid.clone().unwrap_or_default();
        Ok(list
            .items
            .into_iter()
            .filter(|item| {
                item.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid && o.kind == K::kind(&()))
            })
            .collect())
    }

    /// `kubectl rollout undo` of a StatefulSet or DaemonSet: its ControllerRevisions
    /// hold each revision's pod template as a strategic merge patch; the one before the
    /// newest is sent back as it is. A template already equal to it is a skipped
    /// rollback, as kubectl's.
    pub(super) async fn rollback_revision<K: Workload>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
    ) -> Acted {
        let (api, workload) = self.get_raw::<K>(client, at).await?;
        let history = self
            .controlled::<K, ControllerRevision>(client, at, &workload, "ControllerRevisions")
            .await?;
        let (previous, revision, mut detail) =
            previous_revision(at, &history, |cr| cr.data.get("revision")?.as_i64())?;
        detail["controller_revision"] = json!(revision.metadata.name);
        let patch = revision.data.get("data").cloned().ok_or_else(|| {
            Outcome::failed(
                format!("{at}: ControllerRevision of revision {previous} holds no data"),
                detail.clone(),
            )
        })?;
        let mut template = workload
            .data
            .get("spec")
            .and_then(|s| s.get("template"))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(template) = template.as_object_mut() {
            template.insert("$patch".into(), json!("replace"));
        }
        if json!({ "spec": { "template": template } }) == patch {
            return Ok((
                detail,
                Verify::Skipped(format!(
                    "{at}: the current template already matches revision {previous}"
                )),
            ));
        }
        self.roll_back_to(&api, at, previous, Patch::Strategic(patch), detail)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use std::collections::BTreeMap;

    #[test]
    fn selectors_print_sorted_by_key_as_apimachinery_prints_them() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([
                ("tier".to_string(), "web".to_string()),
                ("app".to_string(), "checkout".to_string()),
            ])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["prod".into(), "canary".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            selector_query(&selector),
            Ok("app=checkout,env in (canary,prod),!legacy,tier=web".to_string())
        );
    }
}
