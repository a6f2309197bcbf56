//! `GET /api/v1/state`: whether salve will act next, and what would stop it. The
//! policy's safety view (breakers, cooldowns, limits, budgets) with what only the engine
//! knows: the mode, the lead and the replicas, quarantined rules, approvals waiting.

use super::{Engine, ReplicaView};
use crate::policy::SafetyView;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct StateView {
    pub at: DateTime<Utc>,
    /// salve's own `--dry-run` (or `dry_run = true`), and the rules that set `DRY_RUN`.
    pub dry_run: bool,
    pub rules_in_dry_run: Vec<String>,
    /// Whether this replica decides and acts (always, without `[store]`), and its name
    /// in the lease.
    pub leader: bool,
    pub replica: String,
    /// Every replica seen lately: without `[store]`, this one alone.
    pub replicas: Vec<ReplicaView>,
    /// Rules cut off again and again, not run until when.
    pub quarantined: Vec<Quarantined>,
    pub approvals_pending: usize,
    /// Events accepted and not yet decided.
    pub backlog: usize,
    #[serde(flatten)]
    pub safety: SafetyView,
}

/// What a target's state can be reset of by hand (`POST /api/v1/state/reset`, the
/// console's safety page).
pub const RESETTABLE: [&str; 3] = ["breaker", "cooldown", "limit"];

#[derive(Debug, Serialize)]
pub struct Quarantined {
    pub rule: String,
    pub until: DateTime<Utc>,
}

impl Engine {
    /// Resets `what` of `target` by hand (`breaker`: closed, its failures forgotten;
    /// `cooldown`: cleared; `limit`: rule limits count it afresh), recorded
    /// (`state_reset`) before it applies, with who and why; the next alert about it may
    /// act at once.
    pub async fn reset_state(
        &self,
        target: crate::model::Target,
        what: String,
        reason: String,
        by: String,
    ) -> Result<(), crate::audit::AuditError> {
        tracing::warn!(%target, %what, %by, %reason, "reset by hand");
        self.record_then_apply(crate::audit::AuditRecord::new(
            self.now(),
            crate::audit::Entry::StateReset {
                target,
                what,
                reason,
                by,
            },
        ))
        .await
    }

    /// The gauges read at a scrape rather than kept up to date on every change:
    /// readiness, open breakers, and how long the oldest approval has waited.
    pub fn refresh_gauges(&self) {
        let metrics = &self.metrics;
        metrics
            .ready
            .set(i64::from(self.not_ready_reason().is_none()));
        let (open, oldest) = {
            let state = self.state.read();
            (state.breakers_open(), state.oldest_pending_approval())
        };
        metrics.breakers_open.set(open as i64);
        let waited = oldest.map_or(0.0, |at| {
            (self.now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics.approval_oldest_pending_seconds.set(waited);
    }

    /// The state that decides whether salve acts next, as of now.
    pub fn state_view(&self) -> StateView {
        let runtime = self.runtime();
        let now = self.now();
        let mut quarantined: Vec<Quarantined> = self
            .quarantined()
            .into_iter()
            .map(|(rule, until)| Quarantined { rule, until })
            .collect();
        quarantined.sort_by(|a, b| a.rule.cmp(&b.rule));
        let mut rules_in_dry_run: Vec<String> = runtime
            .rules
            .rules()
            .iter()
            .filter(|r| r.dry_run)
            .map(|r| r.name.clone())
            .collect();
        rules_in_dry_run.sort();
        let state = self.state.read();
        StateView {
            at: now,
            dry_run: state.settings().dry_run,
            rules_in_dry_run,
            leader: self.lead.is_leader(),
            replica: self.lead.holder().to_string(),
            replicas: self.replicas(now),
            quarantined,
            approvals_pending: state.approvals_pending(),
            backlog: self.backlog.load(std::sync::atomic::Ordering::Relaxed),
            safety: state.safety(
                now,
                |rule| runtime.rules.get(rule).and_then(|r| r.cooldown),
                |rule| runtime.rules.get(rule).and_then(|r| r.limit),
            ),
        }
    }
}
