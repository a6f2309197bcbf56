//! Alertmanager's webhook payload (version 4), as Alertmanager 0.25 sends it.

use super::{new_event_id, Event, Fingerprint, Labels, Status};
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
    pub alerts: Vec<AlertmanagerAlert>,
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
    pub fn into_events(self, received_at: DateTime<Utc>) -> Vec<Event> {
        self.alerts
            .into_iter()
            .map(|alert| alert.into_event(received_at))
            .collect()
    }
}

impl AlertmanagerAlert {
    fn into_event(self, received_at: DateTime<Utc>) -> Event {
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
        }
    }
}
