//! JSON Schemas generated from the Rust types, committed under `schemas/`.

use crate::audit::AuditRecord;
use crate::config::ConfigFile;
use crate::event::NativeEvent;
use crate::execute::WebhookDocument;

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
        (
            "webhook.schema.json",
            render(schemars::schema_for!(WebhookDocument)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    /// The committed schemas are what tools validate against; a type change that is
    /// not reflected there fails here. Regenerate with `SALVE_UPDATE_SCHEMAS=1 cargo test`.
    #[test]
    fn committed_schemas_are_current() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("SALVE_UPDATE_SCHEMAS").is_some();
        for (name, text) in super::all() {
            let path = dir.join(name);
            if update {
                std::fs::write(&path, &text).expect("write schema");
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "schemas/{name} is stale: run `SALVE_UPDATE_SCHEMAS=1 cargo test committed_schemas_are_current`"
            );
        }
    }
}
