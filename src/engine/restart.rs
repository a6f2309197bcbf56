//! What a reload cannot apply: the settings salve reads once, at start. A reload
//! compares the file's values with the ones that run and names those that differ, by
//! the key an operator writes in `salve.toml`, so nothing changed in the file is
//! ignored without a word (`salve_config_restart_required`).

use crate::config::Config;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// The start-only settings of the config salve started with, each by its key.
pub struct StartOnly {
    settings: Vec<(&'static str, String)>,
    data_dir: PathBuf,
}

impl StartOnly {
    pub fn of(config: &Config) -> StartOnly {
        StartOnly {
            settings: start_only(config),
            data_dir: config.data_dir.clone(),
        }
    }

    /// The data dir in use, whatever the file says since.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The keys whose value in `config` differs from the one that runs, in the order
    /// of the file's sections. What is switched on or off (`store`, `docker.events`) is
    /// named alone, not with each key that depends on it.
    pub fn differing(&self, config: &Config) -> Vec<&'static str> {
        let differing: Vec<&'static str> = self
            .settings
            .iter()
            .zip(start_only(config))
            .filter(|((_, running), (_, wanted))| running != wanted)
            .map(|((key, _), _)| *key)
            .collect();
        let store_switched = differing.contains(&"store");
        let events_switched = differing.contains(&"docker.events");
        differing
            .into_iter()
            .filter(|key| !(store_switched && key.starts_with("store.")))
            .filter(|key| !(events_switched && *key == "docker.label"))
            .collect()
    }
}

/// Every setting a reload cannot change, by its key in `salve.toml`, as text that is
/// equal exactly when the setting is. The listener's certificates are re-read at a
/// reload; only switching TLS on or off needs a new listener. The Docker label filters
/// the event stream only while salve follows it (the executor takes a new one at once).
fn start_only(config: &Config) -> Vec<(&'static str, String)> {
    let limits = &config.connections;
    let store = config.store.as_ref();
    let docker = &config.docker;
    let follows_docker = docker.events != Some(false);
    vec![
        ("listen", config.listen.to_string()),
        ("data_dir", config.data_dir.display().to_string()),
        ("api.tls_cert_file", config.tls.is_some().to_string()),
        (
            "api.header_read_timeout",
            format!("{:?}", limits.header_read_timeout),
        ),
        ("api.idle_timeout", format!("{:?}", limits.idle_timeout)),
        ("api.max_connections", limits.max_connections.to_string()),
        (
            "audit.max_file_bytes",
            config.audit_max_file_bytes.to_string(),
        ),
        ("store", store.is_some().to_string()),
        // The URL holds a password: only a digest of it is kept here.
        (
            "store.postgres_url",
            format!("{:?}", store.map(|s| digest(s.url.expose()))),
        ),
        (
            "store.pool_size",
            format!("{:?}", store.map(|s| s.pool_size)),
        ),
        (
            "store.connect_timeout",
            format!("{:?}", store.map(|s| s.connect_timeout)),
        ),
        (
            "store.statement_timeout",
            format!("{:?}", store.map(|s| s.statement_timeout)),
        ),
        (
            "store.takeover_after",
            format!("{:?}", store.map(|s| s.takeover_after)),
        ),
        // The exporter is made once, with the log, before the runtime serves.
        (
            "tracing.otlp_endpoint",
            format!("{:?}", config.otlp_traces_endpoint),
        ),
        ("docker.host", format!("{:?}", docker.host)),
        ("docker.cert_path", format!("{:?}", docker.cert_path)),
        ("docker.events", format!("{:?}", docker.events)),
        (
            "docker.label",
            if follows_docker {
                docker.label.to_string()
            } else {
                String::new()
            },
        ),
    ]
}

fn digest(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("salve.toml")).expect("a valid config")
    }

    #[test]
    fn a_reload_names_the_start_only_keys_that_changed_and_nothing_else() {
        let running = StartOnly::of(&config("listen = \"127.0.0.1:9095\"\n"));
        assert!(running
            .differing(&config(
                "listen = \"127.0.0.1:9095\"\ndry_run = true\n[api]\nmax_body_bytes = 10\nbody_read_timeout = \"5s\"\n"
            ))
            .is_empty());
        assert_eq!(
            running.differing(&config(
                "listen = \"127.0.0.1:9096\"\ndata_dir = \"elsewhere\"\n[api]\nmax_connections = 7\n[audit]\nmax_file_bytes = 1000\n[docker]\nevents = false\n"
            )),
            [
                "listen",
                "data_dir",
                "api.max_connections",
                "audit.max_file_bytes",
                "docker.events",
            ]
        );
    }

    #[test]
    fn traces_switched_on_by_a_reload_need_a_restart() {
        let running = StartOnly::of(&config(""));
        assert_eq!(
            running.differing(&config(
                "[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\n"
            )),
            ["tracing.otlp_endpoint"]
        );
    }

    #[test]
    fn a_store_switched_on_is_named_once_and_a_new_url_by_its_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write the URL");
            format!(
                "[store]\npostgres_url_file = {:?}\n",
                path.display().to_string()
            )
        };
        let first = url("first", "postgres://u:p@db/salve");
        let running = StartOnly::of(&config(""));
        assert_eq!(running.differing(&config(&first)), ["store"]);
        let running = StartOnly::of(&config(&first));
        assert_eq!(
            running.differing(&config(&format!("{first}pool_size = 3\n"))),
            ["store.pool_size"]
        );
        assert_eq!(
            running.differing(&config(&url("second", "postgres://u:p@other/salve"))),
            ["store.postgres_url"]
        );
    }
}
