//! An engine started as `salve serve` starts it, and its API as a router driven with
//! `tower::ServiceExt::oneshot`: no socket, no child process, one request a call
//! (`api_router`, `api_identities`).

use crate::support::Salve;
use axum::body::Body;
use axum::Router;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use salve::engine::{self, Engine, Overrides, ServeOptions};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

/// A rule for the events these tests post, so that they are queued (and counted
/// against `max_backlog`) rather than recorded as unmatched.
const NOTE: &str = r#"
const MATCH = `alertname="Note"`;
fn plan(event) { [] }
"#;

/// An engine started on a test folder, and its API as a router.
pub struct Api {
    app: Router,
    pub engine: Arc<Engine>,
    // Holds the folder (config, rules, data) for as long as the engine runs.
    folder: tempfile::TempDir,
}

/// A reply: status, headers and body (JSON when it parses, else a JSON string).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Api {
    /// Starts the engine as `salve serve` does, on `config` (and `files` written into
    /// the folder first, `{dir}` in the config naming it), without listening anywhere.
    pub async fn start(config: &str, files: &[(&str, &str)]) -> Api {
        let folder = Salve::builder()
            .config(config)
            .rule("note", NOTE)
            .write_folder();
        let dir: &Path = folder.path();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write a file the config names");
        }
        let overrides = Overrides {
            rules_dir: Some(dir.join("rules")),
            data_dir: Some(dir.join("data")),
            ..Overrides::default()
        };
        let config_path = dir.join("salve.toml");
        let runtime = overrides
            .load(Some(&config_path))
            .unwrap_or_else(|e| panic!("load {}: {e}", config_path.display()));
        let options = ServeOptions {
            config_path: Some(config_path),
            overrides,
            clock: engine::system_clock(),
        };
        let engine = engine::start(runtime, options)
            .await
            .unwrap_or_else(|e| panic!("start the engine: {e}"));
        Api {
            app: salve::api::app(engine.clone()),
            engine,
            folder,
        }
    }

    /// The test's folder, which holds `salve.toml` and the files the config names.
    pub fn dir(&self) -> &Path {
        self.folder.path()
    }

    pub async fn call(&self, request: Request<Body>) -> Answer {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("read the answer's body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> Answer {
        self.call(
            Request::post(path)
                .header(CONTENT_TYPE, content_type)
                .body(body.into())
                .expect("a request"),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.post(path, "application/json", body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Request::get(path).body(Body::empty()).expect("a request"))
            .await
    }
}

impl Answer {
    pub fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
