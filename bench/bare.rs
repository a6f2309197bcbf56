//! The ceiling: an axum endpoint on the same runtime settings as salve that does what
//! every real receiver must do and nothing more: it parses the POSTed body as JSON
//! (into a `serde_json::Value`), answers 400 if it is not JSON and 200 with a small JSON
//! body if it is. `bench/run.sh` loads it exactly as it loads salve.
//!
//! `bare ADDR --durable FILE` is the ceiling of a receiver that acknowledges only what
//! is on disk, as salve does: each parsed body is also appended to FILE, and answered
//! once an fdatasync covers it, the bodies queued meanwhile sharing one (group commit,
//! one writer thread).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::io::Write;
use std::sync::mpsc;
use tokio::sync::oneshot;

const ACCEPTED: &str = "{\"status\":\"accepted\"}";

type Append = (Bytes, oneshot::Sender<std::io::Result<()>>);

#[derive(Clone)]
struct Disk(Option<mpsc::Sender<Append>>);

async fn receive(
    State(disk): State<Disk>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let json = [("content-type", "application/json")];
    match serde_json::from_slice::<serde_json::Value>(&body) {
        // The parsed document is dropped here, as a receiver that queued it would later.
        Ok(value) => {
            std::hint::black_box(&value);
            if let Some(queue) = &disk.0 {
                let (done, written) = oneshot::channel();
                let durable =
                    queue.send((body, done)).is_ok() && matches!(written.await, Ok(Ok(())));
                if !durable {
                    return (StatusCode::SERVICE_UNAVAILABLE, json, String::new());
                }
            }
            (StatusCode::OK, json, ACCEPTED.to_string())
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json,
            serde_json::json!({"error": "malformed JSON", "detail": e.to_string()}).to_string(),
        ),
    }
}

/// Appends what is queued, one fdatasync for all of it, then answers each.
fn write_durably(mut file: std::fs::File, queue: mpsc::Receiver<Append>) {
    let mut buf = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut waiting = Vec::new();
        for (body, done) in std::iter::once(first).chain(queue.try_iter()) {
            buf.extend_from_slice(&body);
            buf.push(b'\n');
            waiting.push(done);
        }
        let result = file.write_all(&buf).and_then(|()| file.sync_data());
        buf.clear();
        for done in waiting {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| e.kind().into()));
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9099".to_string());
    let disk = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("--durable"), Some(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            let (queue, writes) = mpsc::channel();
            std::thread::spawn(move || write_durably(file, writes));
            Disk(Some(queue))
        }
        (None, _) => Disk(None),
        _ => return Err(std::io::Error::other("usage: bare [ADDR] [--durable FILE]")),
    };
    let app = Router::new()
        .route("/api/v1/alertmanager", post(receive))
        .with_state(disk);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
