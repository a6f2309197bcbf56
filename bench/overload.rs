//! The overload client: more load than salve can take, and what each answer cost.
//! wrk reports one latency histogram for every answer; an operator needs two: how long
//! an acknowledged (200) request took, and how fast a refused (503) one was told to come
//! back. This client keeps `connections` requests in flight for `seconds`, each request
//! an Alertmanager webhook body of `alerts` distinct alerts (never repeated), and prints
//! one line of `key=value` pairs for `bench/run.sh`:
//!
//! `sent= accepted= refused= other= errors= accepted_p50_ms= accepted_p99_ms=
//!  refused_p99_ms= retry_after_s=`
//!
//! Usage: `overload URL CONNECTIONS SECONDS ALERTS`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Tally {
    accepted: Vec<Duration>,
    refused: Vec<Duration>,
    other: u64,
    errors: u64,
    retry_after: Option<String>,
}

fn body(first: u64, alerts: u64) -> String {
    let alert = |n: u64| {
        format!(
            r#"{{"status":"firing","labels":{{"alertname":"Overload{k}","instance":"host-{n}:9100","job":"node","severity":"warning"}},"annotations":{{"summary":"overload on host-{n}"}},"startsAt":"2026-11-22T22:39:20.690236145Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.local:9090/graph","fingerprint":"{n:016x}"}}"#,
            k = n % 20
        )
    };
    let alerts: Vec<String> = (first..first + alerts).map(alert).collect();
    format!(
        r#"{{"receiver":"remediation-webhook","status":"firing","alerts":[{}],"groupLabels":{{}},"commonLabels":{{"job":"node"}},"commonAnnotations":{{}},"externalURL":"http://alertmanager.local:9093","version":"4","groupKey":"{{}}:{{}}","truncatedAlerts":0}}"#,
        alerts.join(",")
    )
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, connections, seconds, alerts] = args.as_slice() else {
        return Err("usage: overload URL CONNECTIONS SECONDS ALERTS".into());
    };
    let number = |what: &str, text: &str| -> Result<u64, String> {
        text.parse().map_err(|e| format!("{what} {text:?}: {e}"))
    };
    let connections = number("CONNECTIONS", connections)?;
    let seconds = number("SECONDS", seconds)?;
    let alerts = number("ALERTS", alerts)?.max(1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(connections as usize)
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, next) = (client.clone(), url.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let first = next.fetch_add(alerts, Ordering::Relaxed);
                let started = Instant::now();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body(first, alerts))
                    .send()
                    .await;
                match sent {
                    Ok(reply) => {
                        let status = reply.status().as_u16();
                        let retry_after = reply
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let _ = reply.bytes().await;
                        let took = started.elapsed();
                        match status {
                            200 => tally.accepted.push(took),
                            503 => {
                                tally.refused.push(took);
                                tally.retry_after = retry_after.or(tally.retry_after);
                            }
                            _ => tally.other += 1,
                        }
                    }
                    Err(_) => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for worker in workers {
        let tally = worker.await.map_err(|e| e.to_string())?;
        all.accepted.extend(tally.accepted);
        all.refused.extend(tally.refused);
        all.other += tally.other;
        all.errors += tally.errors;
        all.retry_after = all.retry_after.or(tally.retry_after);
    }
    all.accepted.sort();
    all.refused.sort();
    let sent = all.accepted.len() as u64 + all.refused.len() as u64 + all.other + all.errors;
    println!(
        "sent={sent} accepted={} refused={} other={} errors={} accepted_p50_ms={:.2} accepted_p99_ms={:.2} refused_p99_ms={:.2} retry_after_s={}",
        all.accepted.len(),
        all.refused.len(),
        all.other,
        all.errors,
        percentile_ms(&all.accepted, 0.50),
        percentile_ms(&all.accepted, 0.99),
        percentile_ms(&all.refused, 0.99),
        all.retry_after.as_deref().unwrap_or("-"),
    );
    Ok(())
}
