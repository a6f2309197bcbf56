//! Ad-hoc maintenance windows made through the API: matchers, a time span, who and why.

use crate::alertmanager::Matchers;
use crate::event::Labels;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceWindow {
    pub id: String,
    /// Alertmanager matchers selecting the events the window mutes.
    #[schemars(with = "String")]
    pub matchers: Matchers,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

impl PartialEq for MaintenanceWindow {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.matchers.to_string() == other.matchers.to_string()
            && self.starts_at == other.starts_at
            && self.ends_at == other.ends_at
            && self.created_by == other.created_by
            && self.comment == other.comment
            && self.created_at == other.created_at
    }
}

impl MaintenanceWindow {
    /// Start inclusive, end exclusive, as Alertmanager's silences.
    pub fn mutes(&self, labels: &Labels, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at && self.matchers.matches(labels)
    }
}

/// What `POST /api/v1/maintenance` takes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenanceWindow {
    /// Required unless `all` is true.
    #[serde(default)]
    #[schemars(with = "String")]
    pub matchers: Option<Matchers>,
    /// Mute every alert: required, and the only way, to make a window whose matchers
    /// match everything.
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}
