//! JSON Schemas generated from the Rust types, committed under `schemas/`.

use crate::audit::AuditRecord;
use crate::config::ConfigFile;
use crate::event::NativeEvent;

/// (file name, schema text) for every published schema.
pub fn all() -> Vec<(&'static str, String)> {
    let render = |schema: schemars::Schema| {
        serde_json::to_string_pretty(&schema)
            .map(|s| s + "\n")
            .unwrap_or_default()
    };
    vec![
        (
            "config.schema.json",
            render(schemars::schema_for!(ConfigFile)),
        ),
        (
            "native-event.schema.json",
            render(schemars::schema_for!(NativeEvent)),
        ),
        (
            "audit-record.schema.json",
            render(schemars::schema_for!(AuditRecord)),
        ),
    ]
}
