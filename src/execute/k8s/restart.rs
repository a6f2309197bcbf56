//! `kubectl rollout restart` and `kubectl scale`.

use super::*;
use crate::execute::resolve_replicas;
use crate::model::Intent;
use crate::model::Outcome;
use chrono::SecondsFormat;
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::api::{Api, Patch, PostParams};
use serde_json::{json, Value};

impl KubernetesExecutor {
    /// `kubectl rollout restart`: a strategic merge patch that stamps the pod template
    /// with the time, so the controller rolls every pod.
    pub(super) async fn restart<K: Workload>(&self, client: &kube::Client, at: &At<'_>) -> Acted {
        let api: Api<K> = Api::namespaced(client.clone(), at.namespace);
        let current = self.get(&api, at).await?;
        if current.paused() {
            return Err(Outcome::failed(
                format!("{at} is paused; salve does not restart a paused rollout (kubectl rollout resume first)"),
                at.detail(),
            ));
        }
        let stamp = (self.clock)().to_rfc3339_opts(SecondsFormat::Secs, true);
        let patch = json!({
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: stamp } } } }
        });
        let params = patch_params();
        let patch = Patch::Strategic(patch);
        self.call(|| api.patch(at.name, &params, &patch))
            .await
            .map_err(|e| Outcome::failed(format!("restart {at}: {}", describe(&e)), at.detail()))?;
        let mut detail = at.detail();
        detail["restarted_at"] = json!(stamp);
        Ok((detail, Verify::Rollout))
    }

    /// `kubectl scale --current-replicas=N --replicas=M`: read the scale subresource,
    /// then write it back with the new count and the resourceVersion read, so a change
    /// made in between is a conflict rather than overwritten.
    pub(super) async fn scale<K: Workload>(
        &self,
        client: &kube::Client,
        at: &At<'_>,
        intent: &Intent,
    ) -> Acted {
        let api: Api<K> = Api::namespaced(client.clone(), at.namespace);
        let mut scale: Scale = self.call(|| api.get_scale(at.name)).await.map_err(|e| {
            let error = if is_not_found(&e) {
                format!("{at} not found")
            } else {
                format!("cannot read the scale of {at}: {}", describe(&e))
            };
            Outcome::failed(error, at.detail())
        })?;
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let bounded = self.bounded(intent);
        let wanted = resolve_replicas(&bounded, i64::from(current))
            .map_err(|e| Outcome::failed(e.to_string(), at.detail()))?;
        let wanted = i32::try_from(wanted)
            .map_err(|_| Outcome::failed(format!("{wanted} replicas is too many"), at.detail()))?;
        let mut detail = at.detail();
        detail["replicas_before"] = json!(current);
        detail["replicas"] = json!(wanted);
        for key in ["min", "max"] {
            if let Some(v) = bounded.params.get(key) {
                detail[key] = v.clone();
            }
        }
        if wanted == current {
            return Ok((detail, Verify::Rollout));
        }
        scale.spec.get_or_insert_with(Default::default).replicas = Some(wanted);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..Default::default()
        };
        self.call(|| api.replace_scale(at.name, &params, &scale))
            .await
            .map_err(|e| {
                Outcome::failed(format!("scale {at}: {}", describe(&e)), detail.clone())
            })?;
        Ok((detail, Verify::Rollout))
    }

    /// The intent with the config's bounds folded in: a rule may narrow them, never widen.
    pub(super) fn bounded(&self, intent: &Intent) -> Intent {
        let mut bounded = intent.clone();
        let rule_min = intent.params.get("min").and_then(Value::as_i64);
        let rule_max = intent.params.get("max").and_then(Value::as_i64);
        let min = match (rule_min, self.settings.min_replicas) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let max = match (rule_max, self.settings.max_replicas) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(min) = min {
            bounded.params.insert("min".into(), json!(min));
        }
        if let Some(max) = max {
            bounded.params.insert("max".into(), json!(max));
        }
        bounded
    }
}
