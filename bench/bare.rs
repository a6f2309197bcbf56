//! The ceiling: an axum endpoint that answers 200 to any POST, on the same runtime
//! settings as salve. `bench/run.sh` loads it exactly as it loads salve.

use axum::routing::post;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9099".to_string());
    let app = Router::new().route(
        "/api/v1/alertmanager",
        post(|| async { "{\"status\":\"accepted\"}" }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
