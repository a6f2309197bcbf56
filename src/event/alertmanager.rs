//! Alertmanager's webhook payload (version 4), as Alertmanager 0.25 sends it.

use super::{new_event_id, Event, Fingerprint, Labels, PayloadError, Status};
use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerPayload {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub receiver: String,
    pub status: Status,
    pub alerts: Vec<serde_json::Value>,
    #[serde(default)]
    pub group_labels: Labels,
    #[serde(default)]
    pub common_labels: Labels,
    #[serde(default)]
    pub common_annotations: Labels,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    #[serde(default)]
    pub truncated_alerts: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagerAlert {
    pub status: Status,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl AlertmanagerPayload {
    /// One event per alert, each with its own status: a group notification whose
    /// top-level status is `firing` still carries alerts that have resolved.
    pub fn into_events(self, received_at: DateTime<Utc>) -> Result<Vec<Event>, PayloadError> {
        let mut events = Vec::with_capacity(self.alerts.len());
        for (index, raw) in self.alerts.into_iter().enumerate() {
            let alert: AlertmanagerAlert =
                serde_path_to_error::deserialize(&raw).map_err(|err| {
                    let path = format!("alerts[{index}].{}", err.path());
                    let path = path.trim_end_matches('.').to_string();
                    PayloadError::Shape {
                        message: format!("field `{path}`: {}", err.into_inner()),
                        path,
                    }
                })?;
            events.push(alert.into_event(raw, received_at));
        }
        Ok(events)
    }
}

impl AlertmanagerAlert {
    fn into_event(self, raw: serde_json::Value, received_at: DateTime<Utc>) -> Event {
        let fingerprint = match self.fingerprint {
            Some(f) if !f.is_empty() => Fingerprint(f),
            _ => Fingerprint::of_labels(&self.labels),
        };
        Event {
            id: new_event_id(),
            source: "alertmanager".to_string(),
            status: self.status,
            labels: self.labels,
            annotations: self.annotations,
            starts_at: self.starts_at,
            // Go's zero time (0001-01-01) means "not set" in Alertmanager's JSON.
            ends_at: self.ends_at.filter(|t| t.year() > 1),
            fingerprint,
            generator_url: self.generator_url,
            received_at,
            raw,
        }
    }
}
