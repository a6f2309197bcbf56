//! The normalized event every source produces and every later stage consumes.

mod alertmanager;
mod native;

pub use alertmanager::{AlertmanagerAlert, AlertmanagerPayload};
pub use native::NativeEvent;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub type Labels = BTreeMap<String, String>;

/// Identifies one alert by its label set, exactly as Alertmanager does.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    /// Prometheus' label-set fingerprint: FNV-1a 64 over sorted names and values, each
    /// followed by 0xff. Matches what Alertmanager puts in `fingerprint`, so native
    /// events and Alertmanager alerts about the same labels share dedup state.
    pub fn of_labels(labels: &Labels) -> Fingerprint {
        const OFFSET: u64 = 0xcbf29ce484222325;
        const PRIME: u64 = 0x100000001b3;
        let mut hash = OFFSET;
        let mut write = |bytes: &[u8]| {
            for b in bytes {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(PRIME);
            }
        };
        for (name, value) in labels {
            write(name.as_bytes());
            write(&[0xff]);
            write(value.as_bytes());
            write(&[0xff]);
        }
        Fingerprint(format!("{hash:016x}"))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert or probe result, whatever its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    pub id: String,
    pub source: String,
    pub status: Status,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    pub fingerprint: Fingerprint,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
    /// In the audit trail, the `at` of the `received` record instead.
    #[serde(default = "unix_epoch")]
    pub received_at: DateTime<Utc>,
}

fn unix_epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

impl Event {
    /// One episode of one alert: the unit dedup works on.
    pub fn episode(&self) -> Episode {
        Episode {
            fingerprint: self.fingerprint.clone(),
            starts_at: self.starts_at,
            status: self.status,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Episode {
    pub fingerprint: Fingerprint,
    pub starts_at: DateTime<Utc>,
    pub status: Status,
}

pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Why a request body is not something salve can take events from.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{message}")]
    Shape { path: String, message: String },
    /// Within the JSON's rules but past salve's bounds for one alert.
    #[error("{message}")]
    TooLarge {
        index: usize,
        label: Option<String>,
        message: String,
    },
    /// Labels no Alertmanager sends: none at all, an empty name, or a name holding a
    /// control character (which would forge lines in logs and messages).
    #[error("{message}")]
    InvalidLabels {
        index: usize,
        label: Option<String>,
        message: String,
    },
}

impl PayloadError {
    /// The reason a refusal is counted under in `salve_intake_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::Syntax { .. } | PayloadError::Shape { .. } => "malformed",
            PayloadError::TooLarge { .. } => "too_large",
            PayloadError::InvalidLabels { .. } => "invalid_labels",
        }
    }
}

/// What is wrong with an alert's label names, if anything. UTF-8 names are fine:
/// Prometheus 3 and Alertmanager 0.27 allow them.
fn label_fault(event: &Event) -> Option<(Option<&str>, String)> {
    if event.labels.is_empty() && event.source == "alertmanager" {
        return Some((
            None,
            "has no labels; Alertmanager never sends such an alert".into(),
        ));
    }
    event.labels.keys().find_map(|name| {
        if name.is_empty() {
            Some((Some(name.as_str()), "has a label with an empty name".into()))
        } else if name.chars().any(char::is_control) {
            Some((
                Some(name.as_str()),
                format!("label name {name:?} holds a control character"),
            ))
        } else {
            None
        }
    })
}

/// What one alert may carry (`[api]`): enough for any real alert, little enough that a
/// flood of hostile ones cannot fill memory or the trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    pub max_labels: usize,
    pub max_label_value_bytes: usize,
    pub max_annotations_bytes: usize,
}

impl Default for EventLimits {
    fn default() -> EventLimits {
        EventLimits {
            max_labels: 128,
            max_label_value_bytes: 4096,
            max_annotations_bytes: 64 * 1024,
        }
    }
}

impl EventLimits {
    /// The first alert past a bound or with labels no sender should send, by its index
    /// in the payload and the label at fault.
    pub fn check(&self, events: &[Event]) -> Result<(), PayloadError> {
        for (index, event) in events.iter().enumerate() {
            if let Some((label, message)) = label_fault(event) {
                return Err(PayloadError::InvalidLabels {
                    index,
                    label: label.map(str::to_string),
                    message: format!("alert {index}: {message}"),
                });
            }
            let too_large = |label: Option<&str>, message: String| PayloadError::TooLarge {
                index,
                label: label.map(str::to_string),
                message: format!("alert {index}: {message}"),
            };
            if event.labels.len() > self.max_labels {
                return Err(too_large(
                    None,
                    format!(
                        "{} labels, more than api.max_labels ({})",
                        event.labels.len(),
                        self.max_labels
                    ),
                ));
            }
            if let Some((name, value)) = event
                .labels
                .iter()
                .find(|(_, value)| value.len() > self.max_label_value_bytes)
            {
                return Err(too_large(
                    Some(name),
                    format!(
                        "label {name:?} has {} bytes, more than api.max_label_value_bytes ({})",
                        value.len(),
                        self.max_label_value_bytes
                    ),
                ));
            }
            let annotations: usize = event
                .annotations
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum();
            if annotations > self.max_annotations_bytes {
                return Err(too_large(
                    None,
                    format!(
                        "annotations of {annotations} bytes, more than api.max_annotations_bytes ({})",
                        self.max_annotations_bytes
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl PayloadError {
    fn shape(err: serde_path_to_error::Error<serde_json::Error>) -> PayloadError {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // Read from the body directly, serde_json appends where it stopped; the path
        // says where, and says it the same way for every way of parsing.
        let text = inner.to_string();
        let position = format!(" at line {} column {}", inner.line(), inner.column());
        let inner = text.strip_suffix(&position).unwrap_or(&text);
        let message = if path == "." {
            inner.to_string()
        } else {
            format!("field `{path}`: {inner}")
        };
        PayloadError::Shape { path, message }
    }
}

/// JSON syntax errors keep their line and column: people fix payloads by them.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// Parses a body that is an Alertmanager webhook payload, a native event, or an array
/// of native events, into events received at `received_at`.
pub fn parse_payload(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Event>, PayloadError> {
    let value = parse_json(body)?;
    if value.get("alerts").is_some() {
        return parse_alertmanager_value(value, received_at);
    }
    native::parse_native_value(value, received_at)
}

/// Parses a body that must be an Alertmanager webhook payload.
pub fn parse_alertmanager(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, PayloadError> {
    // The hot path: straight into the typed payload, without a document-wide value first.
    let mut de = serde_json::Deserializer::from_slice(body);
    let payload: AlertmanagerPayload = typed(body, &mut de)?;
    de.end().map_err(syntax)?;
    Ok(payload.into_events(received_at))
}

fn syntax(e: serde_json::Error) -> PayloadError {
    PayloadError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

/// Deserializes `T` from the body, a syntax error with its line and column, a shape
/// error with its path. Tracking the path costs at every value, so it is only found
/// once there is an error, by reading the body again.
fn typed<'de, T: serde::Deserialize<'de>>(
    body: &'de [u8],
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
) -> Result<T, PayloadError> {
    let plain = match T::deserialize(&mut *de) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let mut again = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut again) {
        Err(err) => Err(match err.inner().classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                syntax(err.into_inner())
            }
            _ => PayloadError::shape(err),
        }),
        Ok(_) => Err(syntax(plain)),
    }
}

fn parse_alertmanager_value(
    value: serde_json::Value,
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, PayloadError> {
    let payload: AlertmanagerPayload =
        serde_path_to_error::deserialize(&value).map_err(PayloadError::shape)?;
    Ok(payload.into_events(received_at))
}

/// Parses a body that must be native events (one object or an array).
pub fn parse_native(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Event>, PayloadError> {
    native::parse_native_body(body, received_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_alertmanager() {
        let labels: Labels = [
            ("alertname", "ContainerDown"),
            ("container", "web-1"),
            ("instance", "host-a:9323"),
            ("job", "cadvisor"),
            ("service", "web"),
            ("severity", "critical"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(Fingerprint::of_labels(&labels).0, "75359c27e5221bdd");
    }
}
