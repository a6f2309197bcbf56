//! `salve report` and `GET /api/v1/report`: how the probes did (from their history in
//! the data dir) and how remediation did per target (from the audit trail), over a
//! window: the figures seeds 003 and 004 name.

use crate::audit::{Entry, TrailReader};
use crate::event::{Fingerprint, Status};
use crate::ingest::probe::{ProbeFigures, ProbeHistory};
use crate::model::{Action, Verdict};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub probes: Vec<ProbeFigures>,
    pub targets: Vec<TargetFigures>,
}

/// What salve's actions on one target came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetFigures {
    pub target: String,
    /// Episodes of alerts (fingerprint and start) salve acted on with this target.
    pub episodes: usize,
    /// Actions executed on it (notifications are not actions on a target).
    pub actions: usize,
    /// Episodes that resolved after salve acted.
    pub recovered: usize,
    pub recovery_rate: f64,
    /// Mean time from firing to resolved, over the recovered episodes.
    pub mttr_seconds: Option<f64>,
    /// Mean time between the starts of its episodes (two or more).
    pub mtbf_seconds: Option<f64>,
    /// Episodes in which an action failed and a person was then told.
    pub escalations: usize,
    pub escalation_rate: f64,
}

#[derive(Default)]
struct Episode {
    acted_on: BTreeSet<String>,
    failed: bool,
    escalated: bool,
    resolved_at: Option<DateTime<Utc>>,
}

type EpisodeKey = (Fingerprint, DateTime<Utc>);

/// The report over `since..until` of the data dir `dir`.
/// `probes`: the data dir, which keeps the probes' history.
pub fn report(
    trail: &TrailReader,
    probes: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, String> {
    let probes = ProbeHistory::load(probes)?.figures(since);
    let mut episodes: HashMap<EpisodeKey, Episode> = HashMap::new();
    let mut actions: BTreeMap<String, usize> = BTreeMap::new();
    let mut acting: HashMap<String, EpisodeKey> = HashMap::new();
    trail
        .read_since(Some(since), |record| {
            if record.at < since || record.at > until {
                return;
            }
            match record.entry {
                Entry::Decision(d) if d.decision == Verdict::Execute => {
                    let key = (d.fingerprint.clone(), d.starts_at);
                    let episode = episodes.entry(key.clone()).or_default();
                    if d.action == Action::Notify {
                        episode.escalated |= episode.failed;
                    } else {
                        let target = d.target.to_string();
                        episode.acted_on.insert(target.clone());
                        *actions.entry(target).or_default() += 1;
                        acting.insert(d.id, key);
                    }
                }
                Entry::Outcome(o) if o.outcome.is_failure() => {
                    if let Some(episode) =
                        acting.get(&o.decision_id).and_then(|k| episodes.get_mut(k))
                    {
                        episode.failed = true;
                    }
                }
                Entry::Received { event, .. } if event.status == Status::Resolved => {
                    let key = (event.fingerprint.clone(), event.starts_at);
                    if let Some(episode) = episodes.get_mut(&key) {
                        episode
                            .resolved_at
                            .get_or_insert(event.ends_at.unwrap_or(record.at));
                    }
                }
                _ => {}
            }
        })
        .map_err(|e| e.to_string())?;

    let mut by_target: BTreeMap<String, Vec<(&EpisodeKey, &Episode)>> = BTreeMap::new();
    for (key, episode) in &episodes {
        for target in &episode.acted_on {
            by_target
                .entry(target.clone())
                .or_default()
                .push((key, episode));
        }
    }
    let targets = by_target
        .into_iter()
        .map(|(target, mut mine)| {
            mine.sort_by_key(|(key, _)| key.1);
            let n = mine.len();
            let repairs: Vec<f64> = mine
                .iter()
                .filter_map(|((_, starts), e)| {
                    e.resolved_at
                        .map(|end| (end - *starts).num_milliseconds() as f64 / 1000.0)
                })
                .collect();
            let escalations = mine.iter().filter(|(_, e)| e.escalated).count();
            let mtbf_seconds = (n >= 2).then(|| {
                let (first, last) = (mine[0].0 .1, mine[n - 1].0 .1);
                (last - first).num_milliseconds() as f64 / 1000.0 / (n - 1) as f64
            });
            TargetFigures {
                actions: actions.get(&target).copied().unwrap_or(0),
                target,
                episodes: n,
                recovered: repairs.len(),
                recovery_rate: repairs.len() as f64 / n as f64,
                mttr_seconds: (!repairs.is_empty())
                    .then(|| repairs.iter().sum::<f64>() / repairs.len() as f64),
                mtbf_seconds,
                escalations,
                escalation_rate: escalations as f64 / n as f64,
            }
        })
        .collect();
    Ok(Report {
        since,
        until,
        probes,
        targets,
    })
}

impl Report {
    /// The report as text for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "salve report {} .. {}",
            self.since
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.until
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let _ = writeln!(out, "\nprobes:");
        if self.probes.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for p in &self.probes {
            let classes: Vec<String> = p
                .failures_by_class
                .iter()
                .map(|(class, n)| format!("{class}={n}"))
                .collect();
            let _ = writeln!(
                out,
                "  {}: uptime {:.2}% of {} checks, {} failed{}, mean {:.1} ms, p95 {} ms",
                p.probe,
                p.uptime_percent,
                p.checks,
                p.failures,
                if classes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", classes.join(", "))
                },
                p.mean_ms,
                p.p95_ms
            );
        }
        let _ = writeln!(out, "\ntargets:");
        if self.targets.is_empty() {
            let _ = writeln!(out, "  (none acted on)");
        }
        let seconds = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.0}s"));
        for t in &self.targets {
            let _ = writeln!(
                out,
                "  {}: {} episodes, {} actions, recovered {} ({:.0}%), MTTR {}, MTBF {}, escalated {} ({:.0}%)",
                t.target,
                t.episodes,
                t.actions,
                t.recovered,
                100.0 * t.recovery_rate,
                seconds(t.mttr_seconds),
                seconds(t.mtbf_seconds),
                t.escalations,
                100.0 * t.escalation_rate
            );
        }
        out
    }
}
