//! The console's one script and one style sheet, compiled into the binary and served
//! under names that carry a hash of their content: a browser keeps them for a year,
//! and a salve with other files names them otherwise, so nobody runs a stale script.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const SCRIPT: &str = include_str!("static/console.js");
const STYLE: &str = include_str!("static/console.css");

struct Asset {
    path: String,
    body: &'static str,
    content_type: &'static str,
}

fn named(stem: &str, ext: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    Asset {
        path: format!("/ui/static/{stem}.{}.{ext}", &hash[..12]),
        body,
        content_type,
    }
}

fn assets() -> &'static [Asset; 2] {
    static ASSETS: OnceLock<[Asset; 2]> = OnceLock::new();
    ASSETS.get_or_init(|| {
        [
            named("console", "js", SCRIPT, "text/javascript; charset=utf-8"),
            named("console", "css", STYLE, "text/css; charset=utf-8"),
        ]
    })
}

pub fn script_path() -> &'static str {
    &assets()[0].path
}

pub fn style_path() -> &'static str {
    &assets()[1].path
}

/// `GET /ui/static/{name}`: a file by its hashed name, cached for good.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    let wanted = format!("/ui/static/{name}");
    match assets().iter().find(|a| a.path == wanted) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file in the console\n").into_response(),
    }
}
