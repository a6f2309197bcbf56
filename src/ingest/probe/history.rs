//! What probes did, kept compactly for the report: per probe, one bucket per five
//! minutes (checks, failures by class, response times as a sum and a log histogram),
//! for seven days, in `probes.history` in the data dir (postcard, replaced atomically),
//! so a restart keeps it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the probes' history cannot be read or written; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a probe history: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: postcard::Error,
    },
    #[error("{}: version {version} (this salve reads {})", path.display(), VERSION)]
    Version { path: PathBuf, version: u32 },
    #[error(transparent)]
    Encode(postcard::Error),
    #[error(transparent)]
    Rename(std::io::Error),
}

const HISTORY_FILE: &str = "probes.history";
const BUCKET_SECONDS: i64 = 300;
const KEEP_BUCKETS: usize = 7 * 24 * 12;
const VERSION: u32 = 1;

/// Upper bounds (ms) of the response-time histogram's buckets; the last is open.
const BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Unix time of the bucket's start.
    pub start: i64,
    pub checks: u32,
    pub failures: BTreeMap<String, u32>,
    pub sum_ms: u64,
    pub histogram: [u32; BOUNDS_MS.len() + 1],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeHistory {
    pub probes: BTreeMap<String, VecDeque<Bucket>>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    history: ProbeHistory,
}

impl ProbeHistory {
    /// Counts one check.
    pub fn record(
        &mut self,
        probe: &str,
        at: DateTime<Utc>,
        took: Duration,
        failure: Option<&str>,
    ) {
        let start = at.timestamp() - at.timestamp().rem_euclid(BUCKET_SECONDS);
        let buckets = self.probes.entry(probe.to_string()).or_default();
        if buckets.back().is_none_or(|b| b.start != start) {
            buckets.push_back(Bucket {
                start,
                ..Bucket::default()
            });
            while buckets.len() > KEEP_BUCKETS {
                buckets.pop_front();
            }
        }
        let Some(bucket) = buckets.back_mut() else {
            return;
        };
        bucket.checks += 1;
        let ms = took.as_millis() as u64;
        bucket.sum_ms += ms;
        let slot = BOUNDS_MS
            .iter()
            .position(|bound| ms < *bound)
            .unwrap_or(BOUNDS_MS.len());
        bucket.histogram[slot] += 1;
        if let Some(class) = failure {
            *bucket.failures.entry(class.to_string()).or_default() += 1;
        }
    }

    /// Reads `dir`'s history; none yet is an empty one, a damaged one an error.
    pub fn load(dir: &Path) -> Result<ProbeHistory, HistoryError> {
        let path = dir.join(HISTORY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ProbeHistory::default())
            }
            Err(source) => return Err(HistoryError::Io { path, source }),
        };
        let file: File = match postcard::from_bytes(&bytes) {
            Ok(file) => file,
            Err(source) => return Err(HistoryError::Unreadable { path, source }),
        };
        if file.version != VERSION {
            return Err(HistoryError::Version {
                path,
                version: file.version,
            });
        }
        Ok(file.history)
    }

    /// Writes the history into `dir`, replacing the file atomically.
    pub fn save(&self, dir: &Path) -> Result<(), HistoryError> {
        use std::io::Write;
        let bytes = postcard::to_stdvec(&File {
            version: VERSION,
            history: self.clone(),
        })
        .map_err(HistoryError::Encode)?;
        let tmp: PathBuf = dir.join(format!("{HISTORY_FILE}.tmp"));
        let io = |source| HistoryError::Io {
            path: tmp.clone(),
            source,
        };
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, dir.join(HISTORY_FILE)).map_err(HistoryError::Rename)
    }
}

/// One probe's figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeFigures {
    pub probe: String,
    pub checks: u64,
    pub failures: u64,
    pub uptime_percent: f64,
    pub failures_by_class: BTreeMap<String, u64>,
    pub mean_ms: f64,
    /// The upper bound of the histogram bucket that holds the 95th percentile.
    pub p95_ms: u64,
}

impl ProbeHistory {
    /// Each probe's figures over the buckets that start at or after `since`.
    pub fn figures(&self, since: DateTime<Utc>) -> Vec<ProbeFigures> {
        let from = since.timestamp() - since.timestamp().rem_euclid(BUCKET_SECONDS);
        self.probes
            .iter()
            .map(|(probe, buckets)| {
                let mut checks = 0u64;
                let mut sum_ms = 0u64;
                let mut histogram = [0u64; BOUNDS_MS.len() + 1];
                let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
                for b in buckets.iter().filter(|b| b.start >= from) {
                    checks += u64::from(b.checks);
                    sum_ms += b.sum_ms;
                    for (slot, n) in b.histogram.iter().enumerate() {
                        histogram[slot] += u64::from(*n);
                    }
                    for (class, n) in &b.failures {
                        *by_class.entry(class.clone()).or_default() += u64::from(*n);
                    }
                }
                let failures: u64 = by_class.values().sum();
                let wanted = (checks as f64 * 0.95).ceil() as u64;
                let mut seen = 0;
                let mut p95_ms = 0;
                for (slot, n) in histogram.iter().enumerate() {
                    seen += n;
                    if seen >= wanted && checks > 0 {
                        p95_ms = BOUNDS_MS
                            .get(slot)
                            .copied()
                            .unwrap_or(BOUNDS_MS[BOUNDS_MS.len() - 1]);
                        break;
                    }
                }
                ProbeFigures {
                    probe: probe.clone(),
                    checks,
                    failures,
                    uptime_percent: if checks == 0 {
                        0.0
                    } else {
                        100.0 * (checks - failures) as f64 / checks as f64
                    },
                    failures_by_class: by_class,
                    mean_ms: if checks == 0 {
                        0.0
                    } else {
                        sum_ms as f64 / checks as f64
                    },
                    p95_ms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_count_the_window_and_survive_a_save_and_a_load() {
        let mut history = ProbeHistory::default();
        let t0: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("time");
        for i in 0..20 {
            let at = t0 + chrono::Duration::seconds(i * 30);
            let failure = (i % 4 == 0).then_some("timeout");
            history.record(
                "api",
                at,
                Duration::from_millis(if i < 19 { 8 } else { 700 }),
                failure,
            );
        }
        history.record(
            "old",
            t0 - chrono::Duration::hours(2),
            Duration::from_millis(1),
            None,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        history.save(dir.path()).expect("save");
        let loaded = ProbeHistory::load(dir.path()).expect("load");
        assert_eq!(loaded, history);
        let figures = loaded.figures(t0);
        let api = figures.iter().find(|f| f.probe == "api").expect("api");
        assert_eq!((api.checks, api.failures), (20, 5));
        assert_eq!(api.uptime_percent, 75.0);
        assert_eq!(api.failures_by_class.get("timeout"), Some(&5));
        assert_eq!(api.p95_ms, 10);
        assert!((api.mean_ms - (19.0 * 8.0 + 700.0) / 20.0).abs() < 1e-9);
        let old = figures.iter().find(|f| f.probe == "old").expect("old");
        assert_eq!(old.checks, 0, "outside the window");
    }
}
