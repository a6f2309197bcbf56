//! The ceiling: an axum endpoint on the same runtime settings as salve that does what
//! every real receiver must do and nothing more: it parses the POSTed body as JSON
//! (into a `serde_json::Value`), answers 400 if it is not JSON and 200 with a small JSON
//! body if it is. `bench/run.sh` loads it exactly as it loads salve.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

const ACCEPTED: &str = "{\"status\":\"accepted\"}";

async fn receive(body: Bytes) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let json = [("content-type", "application/json")];
    match serde_json::from_slice::<serde_json::Value>(&body) {
        // The parsed document is dropped here, as a receiver that queued it would later.
        Ok(value) => {
            std::hint::black_box(&value);
            (StatusCode::OK, json, ACCEPTED.to_string())
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json,
            serde_json::json!({"error": "malformed JSON", "detail": e.to_string()}).to_string(),
        ),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9099".to_string());
    let app = Router::new().route("/api/v1/alertmanager", post(receive));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
