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

/// Parses native events straight from the body: one object, or an array of them.
pub(super) fn parse_native_body(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, PayloadError> {
    let array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    let mut de = serde_json::Deserializer::from_slice(body);
    let natives: Vec<NativeEvent> = if array {
        super::typed(body, &mut de)?
    } else {
        vec![super::typed(body, &mut de)?]
    };
    de.end().map_err(super::syntax)?;
    into_events(natives, array, received_at)
}

pub(super) fn parse_native_value(
    value: serde_json::Value,
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, PayloadError> {
    let array = value.is_array();
    let natives: Vec<NativeEvent> = if array {
        serde_path_to_error::deserialize(value).map_err(PayloadError::shape)?
    } else {
        vec![serde_path_to_error::deserialize(value).map_err(PayloadError::shape)?]
    };
    into_events(natives, array, received_at)
}

fn into_events(
    natives: Vec<NativeEvent>,
    array: bool,
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, PayloadError> {
    let mut events = Vec::with_capacity(natives.len());
    for (index, native) in natives.into_iter().enumerate() {
        if native.labels.is_empty() {
            let path = if array {
                format!("[{index}].labels")
            } else {
                "labels".to_string()
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
