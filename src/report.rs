//! `salve report` and `GET /api/v1/report`: how the probes did (from their history in
//! the data dir) and how remediation did per target (from the audit trail), over a
//! window: the figures seeds 003 and 004 name.

use crate::audit::{AuditRecord, Entry, TrailError, TrailReader};
use crate::event::{Fingerprint, Status};
use crate::ingest::probe::{HistoryError, ProbeFigures, ProbeHistory};
use crate::model::{Action, Decision, Reason, Verdict};
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
    pub approvals: ApprovalFigures,
    /// When retention has removed records of the window: the time of the oldest kept,
    /// where the figures really begin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_from: Option<DateTime<Utc>>,
}

/// What became of the approvals asked in the window, and how long people took.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApprovalFigures {
    pub requested: usize,
    /// How each ended (`approved`, `denied`, `expired`, `cancelled`, `invalidated`,
    /// and `suppressed` for a yes whose alert stopped firing first).
    pub decided: BTreeMap<String, usize>,
    /// Mean and longest time from the request to a person's answer.
    pub mean_seconds_to_decide: Option<f64>,
    pub max_seconds_to_decide: Option<f64>,
}

/// What salve's actions on one target came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetFigures {
    pub target: String,
    /// Episodes of alerts (fingerprint and start) in which salve acted on this target,
    /// or meant to and had run out (its limit or breaker refused the action).
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
    /// Episodes in which the rule that acted told a person itself after its action
    /// failed or ran out: the ladder's top. `[[on_outcome]]` notices are not counted.
    pub escalations: usize,
    pub escalation_rate: f64,
}

#[derive(Default)]
struct Episode {
    /// Targets an action was executed on.
    acted_on: BTreeSet<String>,
    /// Targets an action on was refused for having run out.
    ran_out_on: BTreeSet<String>,
    /// Rules whose action failed or ran out in this episode: a message of theirs that
    /// comes after is an escalation.
    exhausted: BTreeSet<String>,
    escalated: bool,
    resolved_at: Option<DateTime<Utc>>,
}

type EpisodeKey = (Fingerprint, DateTime<Utc>);

/// The remediation half of the report, counted from the trail's records in order.
#[derive(Default)]
struct Tally {
    episodes: HashMap<EpisodeKey, Episode>,
    actions: BTreeMap<String, usize>,
    /// Executed actions, by decision id, for their outcomes.
    acting: HashMap<String, (EpisodeKey, String)>,
    approvals: ApprovalFigures,
    /// Seconds people took to answer.
    answered_in: Vec<f64>,
}

/// Suppressed because salve had spent what it may do, not because of when or what:
/// the point where a ladder goes to a person.
fn ran_out(d: &Decision) -> bool {
    matches!(d.reason, Some(Reason::RateLimit | Reason::CircuitOpen))
}

impl Tally {
    fn read(&mut self, record: AuditRecord) {
        match record.entry {
            // Made in dry-run, a decision did not happen: it neither acts nor runs out.
            Entry::Decision(d) if d.dry_run => {}
            // Only the rule that acted can escalate: `[[on_outcome]]` notices (and
            // quarantine notices) are decided by built-in rules that never act.
            Entry::Decision(d) if d.action == Action::Notify && d.executes() => {
                if let Some(episode) = self.episodes.get_mut(&(d.fingerprint, d.starts_at)) {
                    episode.escalated |= episode.exhausted.contains(&d.rule);
                }
            }
            // A message that did not go out, or was refused, tells no one.
            Entry::Decision(d) if d.action == Action::Notify => {}
            Entry::Decision(d) if d.decision == Verdict::Execute => {
                let key = (d.fingerprint.clone(), d.starts_at);
                let target = d.target.to_string();
                self.episodes
                    .entry(key.clone())
                    .or_default()
                    .acted_on
                    .insert(target.clone());
                *self.actions.entry(target).or_default() += 1;
                self.acting.insert(d.id, (key, d.rule));
            }
            Entry::Decision(d) if ran_out(&d) => {
                let episode = self
                    .episodes
                    .entry((d.fingerprint.clone(), d.starts_at))
                    .or_default();
                episode.ran_out_on.insert(d.target.to_string());
                episode.exhausted.insert(d.rule);
            }
            Entry::Outcome(o) if o.outcome.is_failure() => {
                if let Some((key, rule)) = self.acting.get(&o.decision_id) {
                    if let Some(episode) = self.episodes.get_mut(key) {
                        episode.exhausted.insert(rule.clone());
                    }
                }
            }
            Entry::ApprovalRequested(_) => self.approvals.requested += 1,
            Entry::ApprovalDecided(d) => {
                *self
                    .approvals
                    .decided
                    .entry(d.state.as_str().to_string())
                    .or_default() += 1;
                if d.actor.via != "salve" {
                    self.answered_in.push(d.waited_seconds);
                }
            }
            Entry::Received { event, .. } if event.status == Status::Resolved => {
                let key = (event.fingerprint.clone(), event.starts_at);
                if let Some(episode) = self.episodes.get_mut(&key) {
                    episode
                        .resolved_at
                        .get_or_insert(event.ends_at.unwrap_or(record.at));
                }
            }
            _ => {}
        }
    }

    fn approvals(&self) -> ApprovalFigures {
        let answered = &self.answered_in;
        ApprovalFigures {
            mean_seconds_to_decide: (!answered.is_empty())
                .then(|| answered.iter().sum::<f64>() / answered.len() as f64),
            max_seconds_to_decide: answered.iter().copied().reduce(f64::max),
            ..self.approvals.clone()
        }
    }

    fn targets(self) -> Vec<TargetFigures> {
        let mut by_target: BTreeMap<&str, Vec<(&EpisodeKey, &Episode)>> = BTreeMap::new();
        for (key, episode) in &self.episodes {
            for target in episode.acted_on.union(&episode.ran_out_on) {
                by_target.entry(target).or_default().push((key, episode));
            }
        }
        by_target
            .into_iter()
            .map(|(target, mut mine)| {
                mine.sort_by_key(|(key, _)| key.1);
                let n = mine.len();
                // Recovered after salve acted: an episode it only ran out in recovered
                // without it, or with the person it told.
                let repairs: Vec<f64> = mine
                    .iter()
                    .filter(|(_, e)| e.acted_on.contains(target))
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
                    actions: self.actions.get(target).copied().unwrap_or(0),
                    target: target.to_string(),
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
            .collect()
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The probes' history in the data dir could not be read.
    #[error(transparent)]
    ProbeHistory(#[from] HistoryError),
    #[error(transparent)]
    Trail(#[from] TrailError),
}

/// The report over `since..until` of the data dir `dir`.
/// `probes`: the data dir, which keeps the probes' history.
pub fn report(
    trail: &TrailReader,
    probes: &Path,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, ReportError> {
    let probes = ProbeHistory::load(probes)?.figures(since);
    let mut tally = Tally::default();
    trail.read_since(Some(since), |record| {
        if record.at >= since && record.at <= until {
            tally.read(record);
        }
    })?;
    let kept_from = trail.reaches_past_retention(Some(since))?;
    Ok(Report {
        kept_from,
        since,
        until,
        probes,
        approvals: tally.approvals(),
        targets: tally.targets(),
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
        if let Some(kept) = self.kept_from {
            let _ = writeln!(
                out,
                "note: retention removed the records before {}; the targets' figures begin there",
                kept.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
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
        let a = &self.approvals;
        if a.requested > 0 || !a.decided.is_empty() {
            let ended: Vec<String> = a.decided.iter().map(|(s, n)| format!("{s}={n}")).collect();
            let _ = writeln!(
                out,
                "\napprovals: {} requested; {}; time to decide mean {}, max {}",
                a.requested,
                if ended.is_empty() {
                    "none ended".to_string()
                } else {
                    ended.join(", ")
                },
                seconds(a.mean_seconds_to_decide),
                seconds(a.max_seconds_to_decide)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decision(id: &str, episode: &str, rule: &str, target: &str, verdict: &str) -> AuditRecord {
        let (action, reason) = match verdict.split_once(' ') {
            Some((verdict, reason)) => (verdict, Some(reason)),
            None => (verdict, None),
        };
        let kind = if target.starts_with("notify:") {
            "notify"
        } else {
            "exec"
        };
        let mut line = json!({
            "at": "2026-12-01T10:00:00Z", "kind": "decision", "id": id, "event_id": id,
            "fingerprint": episode, "starts_at": "2026-12-01T09:00:00Z", "status": "firing",
            "rule": rule, "action": kind, "target": target, "decision": action,
        });
        if let Some(reason) = reason {
            line["reason"] = reason.into();
        }
        AuditRecord::from_line(line.to_string().as_bytes()).expect("a decision")
    }

    fn failed(id: &str) -> AuditRecord {
        let line = json!({
            "at": "2026-12-01T10:00:01Z", "kind": "outcome", "decision_id": id,
            "event_id": id, "rule": "r", "action": "exec", "target": "exec:x",
            "outcome": "failed", "error": "exit 1",
        });
        AuditRecord::from_line(line.to_string().as_bytes()).expect("an outcome")
    }

    /// Target, episodes, actions, recovered, escalations.
    fn figures(records: Vec<AuditRecord>) -> Vec<(String, usize, usize, usize, usize)> {
        let mut tally = Tally::default();
        for record in records {
            tally.read(record);
        }
        tally
            .targets()
            .into_iter()
            .map(|t| (t.target, t.episodes, t.actions, t.recovered, t.escalations))
            .collect()
    }

    #[test]
    fn an_outcome_notice_is_no_escalation_and_the_rules_own_message_after_a_failure_is() {
        let told_by_on_outcome = vec![
            decision("a", "e1", "r", "exec:x", "execute"),
            failed("a"),
            decision("n1", "e1", "on_outcome/ops", "notify:ops", "execute"),
        ];
        assert_eq!(figures(told_by_on_outcome), [("exec:x".into(), 1, 1, 0, 0)]);

        let paged_by_the_rule = vec![
            // Its message before the failure is the step's own note, not an escalation.
            decision("a", "e1", "r", "exec:x", "execute"),
            decision("n0", "e1", "r", "notify:ops", "execute"),
            failed("a"),
            decision("n1", "e1", "on_outcome/ops", "notify:ops", "execute"),
            decision("n2", "e1", "other", "notify:oncall", "execute"),
            decision("n3", "e1", "r", "notify:oncall", "suppress rate_limit"),
        ];
        assert_eq!(figures(paged_by_the_rule), [("exec:x".into(), 1, 1, 0, 0)]);

        let escalated = vec![
            decision("a", "e1", "r", "exec:x", "execute"),
            failed("a"),
            decision("n1", "e1", "r", "notify:oncall", "execute"),
        ];
        assert_eq!(figures(escalated), [("exec:x".into(), 1, 1, 0, 1)]);
    }

    #[test]
    fn an_action_refused_for_running_out_counts_the_episode_and_a_message_after_it_escalates() {
        let records = vec![
            decision("a", "e1", "r", "exec:x", "execute"),
            decision("b", "e2", "r", "exec:x", "suppress rate_limit"),
            decision("n", "e2", "r", "notify:oncall", "execute"),
            decision("c", "e3", "r", "exec:x", "suppress circuit_open"),
            // Not running out: another time, or nothing to act on.
            decision("d", "e4", "r", "exec:x", "suppress cooldown"),
            decision("m", "e4", "r", "notify:oncall", "execute"),
        ];
        assert_eq!(figures(records), [("exec:x".into(), 3, 1, 0, 1)]);
    }

    #[test]
    fn what_dry_run_decided_did_not_happen() {
        let mut refused = decision("b", "e2", "r", "exec:x", "suppress rate_limit");
        if let Entry::Decision(d) = &mut refused.entry {
            d.dry_run = true;
        }
        let records = vec![
            refused,
            decision("n", "e2", "r", "notify:oncall", "execute"),
            decision("c", "e3", "r", "exec:x", "suppress dry_run"),
        ];
        assert_eq!(figures(records), []);
    }
}
