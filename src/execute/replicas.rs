//! Replica counts as rules write them, resolved against the live count: Docker Swarm
//! and Kubernetes scale alike.

use super::ReplicaError;
use crate::model::Intent;
use serde_json::Value;

/// `scale(t, n)`, `"+1"`, `"-1"`, `"x2"`, bounded by the intent's `min`/`max`.
pub fn resolve_replicas(intent: &Intent, current: i64) -> Result<i64, ReplicaError> {
    let wanted = match intent.params.get("replicas") {
        Some(Value::Number(n)) => n.as_i64().ok_or(ReplicaError::NotWhole)?,
        Some(Value::String(s)) => {
            let parse = |t: &str| {
                t.parse::<i64>()
                    .map_err(|_| ReplicaError::Invalid(s.clone()))
            };
            if let Some(n) = s.strip_prefix('+') {
                current + parse(n)?
            } else if let Some(n) = s.strip_prefix('-') {
                current - parse(n)?
            } else if let Some(n) = s.strip_prefix('x') {
                current * parse(n)?
            } else {
                parse(s)?
            }
        }
        _ => return Err(ReplicaError::Missing),
    };
    let min = intent
        .params
        .get("min")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let max = intent
        .params
        .get("max")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MAX);
    Ok(wanted.clamp(min.max(0), max.max(min.max(0))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Target};
    use serde_json::json;

    fn scale(replicas: Value) -> Intent {
        Intent::new(Action::Scale, Target::SwarmService { name: "api".into() })
            .with("replicas", replicas)
    }

    #[test]
    fn replicas_resolve_absolute_relative_and_within_bounds() {
        assert_eq!(resolve_replicas(&scale(json!(4)), 2), Ok(4));
        assert_eq!(resolve_replicas(&scale(json!("+1")), 2), Ok(3));
        assert_eq!(resolve_replicas(&scale(json!("-1")), 2), Ok(1));
        assert_eq!(resolve_replicas(&scale(json!("x3")), 2), Ok(6));
        assert_eq!(resolve_replicas(&scale(json!("-5")), 2), Ok(0));
        let bounded = scale(json!("x10")).with("min", 1).with("max", 5);
        assert_eq!(resolve_replicas(&bounded, 2), Ok(5));
        let floor = scale(json!("-9")).with("min", 1).with("max", 5);
        assert_eq!(resolve_replicas(&floor, 2), Ok(1));
        assert!(resolve_replicas(&scale(json!("lots")), 2).is_err());
    }
}
