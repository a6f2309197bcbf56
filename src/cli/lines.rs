//! `salve audit`'s lines: one record a line, what an operator reads at 3 a.m.

use crate::audit::{AuditRecord, Entry, MaintenanceChange};
use crate::event::Event;
use crate::model::Verdict;

/// One line for a record. Values come from alerts and rules, so control characters
/// and line breaks in them are escaped: a label cannot forge a line or colour a
/// terminal.
pub(super) fn describe(r: &AuditRecord) -> String {
    let line = describe_raw(r);
    if !line.chars().any(char::is_control) {
        return line;
    }
    line.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn describe_raw(r: &AuditRecord) -> String {
    let at = r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    match &r.entry {
        Entry::Received {
            event, unmatched, ..
        } => format!(
            "{at} received    {} {} {} ({}){}",
            event.source,
            event.fingerprint,
            alertname(event),
            event.status,
            if *unmatched { ": no rule matched" } else { "" }
        ),
        Entry::RuleError {
            rule,
            error,
            fingerprint,
            ..
        } => format!("{at} rule_error  {fingerprint} rule={rule} {error}"),
        Entry::Decision(d) => format!(
            "{at} decision    {} rule={} {} {} -> {}",
            d.fingerprint,
            d.rule,
            d.action,
            d.target,
            decision_verdict(d)
        ),
        Entry::Outcome(o) => describe_outcome(&at, o),
        Entry::Evaluated {
            fingerprint, rules, ..
        } => format!("{at} evaluated   {fingerprint} rules={}", rules.join(",")),
        Entry::Maintenance(change) => format!("{at} maintenance {}", maintenance(change)),
        Entry::Reload { ok, rules, error } => {
            format!(
                "{at} reload      ok={ok} rules={rules}{}",
                error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
            )
        }
        Entry::Reconsidered { event, held } => format!(
            "{at} reconsidered {} {} (held: {held})",
            event.fingerprint,
            alertname(event),
        ),
        Entry::ApprovalRequested(r) => format!(
            "{at} approval    {} rule={} {} {} -> asks {} ({}) until {}",
            r.fingerprint,
            r.rule,
            r.action,
            r.target,
            r.group,
            r.id,
            r.expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Entry::StateReset {
            target,
            what,
            reason,
            by,
        } => format!("{at} state_reset {target} {what} by {by}: {reason}"),
        Entry::ApprovalDecided(d) => format!(
            "{at} approval    {} {} by {} after {:.0}s{}",
            d.id,
            d.state,
            d.actor,
            d.waited_seconds,
            if d.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", d.comment)
            }
        ),
    }
}

/// A window made or ended, as its maker would say it.
fn maintenance(change: &MaintenanceChange) -> String {
    let time =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match change {
        MaintenanceChange::Created { window } => format!(
            "window {} created: {} from {} until {} by {}{}",
            window.id,
            window.matchers,
            time(&window.starts_at),
            time(&window.ends_at),
            window.created_by,
            if window.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", window.comment)
            }
        ),
        MaintenanceChange::Deleted { id, deleted_by } => {
            format!("window {id} deleted by {deleted_by}")
        }
    }
}

fn alertname(event: &Event) -> &str {
    event
        .labels
        .get("alertname")
        .map(String::as_str)
        .unwrap_or("-")
}

/// A recorded decision's verdict: its reason, when it is reconsidered, and dry-run.
fn decision_verdict(d: &crate::model::Decision) -> String {
    let verdict = match (d.decision, d.reason) {
        (Verdict::Execute, _) => "execute".to_string(),
        (_, Some(reason)) => format!("suppress {reason}: {}", d.detail),
        _ => "suppress".to_string(),
    };
    let verdict = match d.reconsider_at {
        Some(t) => format!(
            "{verdict} (reconsidered at {})",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => verdict,
    };
    let verdict = match (&d.approval, d.reason) {
        (Some(id), Some(crate::model::Reason::AwaitingApproval) | None) => {
            format!("{verdict} [approval {id}]")
        }
        _ => verdict,
    };
    if d.dry_run {
        format!("{verdict} [dry-run]")
    } else {
        verdict
    }
}

fn describe_outcome(at: &str, o: &crate::audit::OutcomeRecord) -> String {
    format!(
        "{at} outcome     {} rule={} {} {} -> {:?} in {}ms{}{}",
        o.fingerprint.as_ref().map_or("-", |f| f.0.as_str()),
        o.rule,
        o.action,
        o.target,
        o.outcome.outcome,
        o.outcome.duration_ms,
        o.outcome
            .verified
            .as_ref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
        o.outcome
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
    )
}
