//! salve's own event format, for probes, scripts and anything that is not Alertmanager.

use super::{new_event_id, Event, Fingerprint, Labels, PayloadError, Status};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An event posted to `POST /api/v1/events` (one object or an array of them).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NativeEvent {
    /// Where the event comes from, e.g. `probe`, `cron`, `docker`. Default `api`.
    #[serde(default = "default_source")]
    pub source: String,
    /// `firing` (default) or `resolved`.
    #[serde(default = "default_status")]
    pub status: Status,
    /// What rules match on. Required, and not empty.
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    /// When the problem began. Re-sending the same labels with the same `starts_at`
    /// is the same episode and does not act twice. Default: when salve received it.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Default: Alertmanager's fingerprint of `labels`.
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub generator_url: String,
}

fn default_source() -> String {
    "api".to_string()
}

fn default_status() -> Status {
    Status::Firing
}

impl NativeEvent {
    pub fn into_event(self, received_at: DateTime<Utc>) -> Event {
        let fingerprint = match self.fingerprint {
            Some(f) if !f.is_empty() => Fingerprint(f),
            _ => Fingerprint::of_labels(&self.labels),
        };
        Event {
            id: new_event_id(),
            source: self.source,
            status: self.status,
            starts_at: self.starts_at.unwrap_or(received_at),
            ends_at: self.ends_at,
            labels: self.labels,
            annotations: self.annotations,
            fingerprint,
            generator_url: self.generator_url,
            received_at,
        }
    }
}

pub(super) fn parse_native_value(
    value: serde_json::Value,
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, PayloadError> {
    let items = match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Some(i), v))
            .collect(),
        other => vec![(None, other)],
    };
    let mut events = Vec::with_capacity(items.len());
    for (index, raw) in items {
        let native: NativeEvent = serde_path_to_error::deserialize(&raw).map_err(|err| {
            let inner_path = err.path().to_string();
            let path = match (index, inner_path.as_str()) {
                (Some(i), ".") => format!("[{i}]"),
                (Some(i), p) => format!("[{i}].{p}"),
                (None, p) => p.to_string(),
            };
            PayloadError::Shape {
                message: format!("field `{path}`: {}", err.into_inner()),
                path,
            }
        })?;
        if native.labels.is_empty() {
            let path = match index {
                Some(i) => format!("[{i}].labels"),
                None => "labels".to_string(),
            };
            return Err(PayloadError::Shape {
                message: format!("field `{path}`: an event needs at least one label"),
                path,
            });
        }
        events.push(native.into_event(received_at));
    }
    Ok(events)
}
