//! Approvals as policy remembers them: asked by an `awaiting_approval` decision and its
//! `approval_requested` record, ended by an `approval_decided` record, and spent by the
//! decision that acts on the yes (or holds it back). Built only from records, so the
//! trail and a checkpoint both rebuild them, on every replica alike.
//!
//! The first decision on a pending approval wins; a later one (another person, another
//! replica) is ignored when folded, and its author learns from [`PolicyState::approval`]
//! that it lost.

use super::state::{since, PolicyState};
use crate::event::{Fingerprint, Status};
use crate::model::{
    Action, Actor, ApprovalDecided, ApprovalRequest, ApprovalState, ApprovalView, Decision, Intent,
    Reason, Verdict,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What the config says about approvals that policy applies: which actions ask whom
/// whatever the rule says, and how long each group's requests live.
#[derive(Debug, Clone, Default)]
pub struct ApprovalTerms {
    /// `[approvals.NAME] ttl`, by group.
    pub ttl: HashMap<String, Duration>,
    /// `[approvals] require`: these actions always ask.
    pub require: Vec<Action>,
    /// `[approvals] require_targets`: actions on targets these match always ask.
    pub require_targets: Vec<regex::Regex>,
    /// The group a requirement of the config asks (`[approvals] group`).
    pub group: Option<String>,
    /// Replay only (`--approvals approved|denied`): every approval is taken as given
    /// this answer at once, instead of the answers the trail recorded.
    pub assumed: Option<bool>,
}

/// The time to live of a group that does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// One approval, as the records so far make it.
#[derive(Debug, Clone)]
pub struct ApprovalEntry {
    pub request: Arc<ApprovalRequest>,
    pub state: ApprovalState,
    /// Who decided, when, their comment, and the decision record's own id.
    pub decided: Option<Decided>,
    /// The decision that acted on the yes or held it back, and what it said.
    pub spent_by: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Decided {
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub record: String,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Approvals {
    pub(super) by_id: HashMap<String, ApprovalEntry>,
    /// The latest approval of each rule's intent on each episode of an alert.
    by_ask: HashMap<u128, String>,
}

impl Approvals {
    /// Remembers an approval as the latest of its rule's intent on its episode.
    pub(super) fn insert(&mut self, entry: ApprovalEntry) {
        let id = entry.request.id.clone();
        self.by_ask.insert(entry.ask_key(), id.clone());
        self.by_id.insert(id, entry);
    }
}

/// One rule's intent on one episode of one alert: what an approval is for.
fn ask_key(
    rule: &str,
    fingerprint: &Fingerprint,
    starts_at: DateTime<Utc>,
    identity: u128,
) -> u128 {
    super::state::dedup_key(
        rule,
        fingerprint,
        starts_at,
        Status::Firing,
        identity,
        false,
    )
}

impl ApprovalEntry {
    fn ask_key(&self) -> u128 {
        let r = &self.request;
        ask_key(
            &r.rule,
            &r.fingerprint,
            r.event.starts_at,
            Intent::identity_key_of(r.action, &r.target, &r.params),
        )
    }

    pub fn view(&self) -> ApprovalView {
        let r = &self.request;
        ApprovalView {
            id: r.id.clone(),
            state: self.state,
            group: r.group.clone(),
            rule: r.rule.clone(),
            action: r.action,
            target: r.target.clone(),
            params: r.params.clone(),
            fingerprint: r.fingerprint.clone(),
            alertname: r.event.labels.get("alertname").cloned().unwrap_or_default(),
            requested_at: r.requested_at,
            expires_at: r.expires_at,
            approvers: r.approvers.clone(),
            verdict: r.verdict.clone(),
            decided_by: self.decided.as_ref().map(|d| d.actor.clone()),
            decided_at: self.decided.as_ref().map(|d| d.at),
            comment: self
                .decided
                .as_ref()
                .map(|d| d.comment.clone())
                .unwrap_or_default(),
            decision_id: self.spent_by.as_ref().map(|(id, _)| id.clone()),
            detail: self
                .spent_by
                .as_ref()
                .map(|(_, detail)| detail.clone())
                .unwrap_or_default(),
        }
    }
}

/// What policy knows of an intent's approval when it decides it.
pub(super) enum Asked<'a> {
    /// It needs none.
    Not,
    /// It needs one from `group` (living `ttl`), and none is open or granted.
    Ask { group: String, ttl: Duration },
    /// Its approval is this one, in the state it says.
    Known(&'a ApprovalEntry),
    /// Replay assumes every approval denied.
    AssumedDenied,
}

impl PolicyState {
    /// The group an intent asks, and how long it waits: the rule's `.approval()`, else
    /// the config's `[approvals] require`.
    fn asks(&self, intent: &Intent) -> Option<(String, Duration)> {
        let terms = &self.settings.approvals;
        let ttl_of = |group: &str| terms.ttl.get(group).copied().unwrap_or(DEFAULT_TTL);
        if let Some((group, ttl)) = intent.approval() {
            return Some((group.to_string(), ttl.unwrap_or_else(|| ttl_of(group))));
        }
        if intent.action == Action::Notify {
            return None;
        }
        // The target is printed only when a pattern needs it: this runs for every intent.
        let required = terms.require.contains(&intent.action)
            || (!terms.require_targets.is_empty() && {
                let target = intent.target.to_string();
                terms.require_targets.iter().any(|r| r.is_match(&target))
            });
        if !required {
            return None;
        }
        let group = terms.group.clone()?;
        let ttl = ttl_of(&group);
        Some((group, ttl))
    }

    /// Where an intent stands with approval, as policy decides it.
    pub(super) fn asked(
        &self,
        rule: &str,
        event: &crate::event::Event,
        intent: &Intent,
    ) -> Asked<'_> {
        let Some((group, ttl)) = self.asks(intent) else {
            return Asked::Not;
        };
        match self.settings.approvals.assumed {
            Some(true) => return Asked::Not,
            Some(false) => return Asked::AssumedDenied,
            None => {}
        }
        let key = ask_key(
            rule,
            &event.fingerprint,
            event.starts_at,
            intent.identity_key(),
        );
        match self
            .approvals
            .by_ask
            .get(&key)
            .and_then(|id| self.approvals.by_id.get(id))
        {
            // Spent (acted on, or held back by policy after the yes) or made void by a
            // reload: the intent asks anew, with the rule and the state of now.
            Some(entry)
                if matches!(
                    entry.state,
                    ApprovalState::Executed
                        | ApprovalState::Suppressed
                        | ApprovalState::Invalidated
                        | ApprovalState::Cancelled
                ) =>
            {
                Asked::Ask { group, ttl }
            }
            Some(entry) => Asked::Known(entry),
            None => Asked::Ask { group, ttl },
        }
    }

    /// An approval, by id.
    pub fn approval(&self, id: &str) -> Option<&ApprovalEntry> {
        self.approvals.by_id.get(id)
    }

    /// Every approval remembered, newest first.
    pub fn approvals(&self) -> Vec<&ApprovalEntry> {
        let mut all: Vec<&ApprovalEntry> = self.approvals.by_id.values().collect();
        all.sort_by_key(|e| std::cmp::Reverse(e.request.requested_at));
        all
    }

    /// The approval a signed link's token hash was sent for, and the address it went
    /// to.
    pub fn approval_for_link(&self, hash: &str) -> Option<(&ApprovalEntry, &str)> {
        self.approvals.by_id.values().find_map(|entry| {
            let (email, _) = entry
                .request
                .links
                .iter()
                .find(|(_, h)| crate::model::same_secret(h, hash))?;
            Some((entry, email.as_str()))
        })
    }

    /// An `approval_requested` record: the approval is pending.
    pub fn record_approval_requested(&mut self, request: &ApprovalRequest) {
        if self.approvals.by_id.contains_key(&request.id) {
            return;
        }
        self.approvals.insert(ApprovalEntry {
            request: Arc::new(request.clone()),
            state: ApprovalState::Pending,
            decided: None,
            spent_by: None,
        });
    }

    /// An `approval_decided` record. Only the first decision on a pending approval
    /// counts; the alert a yes was for is held until now, so the leader decides it
    /// again at its next look (with the whole policy of that moment).
    pub fn record_approval_decided(&mut self, decided: &ApprovalDecided, at: DateTime<Utc>) {
        let Some(entry) = self.approvals.by_id.get_mut(&decided.id) else {
            return;
        };
        let closes_approved =
            entry.state == ApprovalState::Approved && decided.state == ApprovalState::Suppressed;
        if !entry.state.is_open() && !closes_approved {
            return;
        }
        entry.state = decided.state;
        if closes_approved {
            entry.spent_by = Some((String::new(), decided.comment.clone()));
            return;
        }
        entry.decided = Some(Decided {
            actor: decided.actor.clone(),
            at,
            comment: decided.comment.clone(),
            record: decided.decision.clone(),
        });
        if decided.state != ApprovalState::Approved {
            return;
        }
        let event = Arc::new(entry.request.event.clone());
        self.holds.due_at(event, at, Reason::AwaitingApproval);
    }

    /// A decision on an intent whose approval was granted spends it: executed, or
    /// suppressed when policy held the action back at the moment of the yes.
    pub(super) fn spend_approval(&mut self, d: &Decision) {
        let Some(entry) = d
            .approval
            .as_ref()
            .and_then(|id| self.approvals.by_id.get_mut(id))
        else {
            return;
        };
        // A delay is part of the action approved: it counts from the yes.
        if entry.state != ApprovalState::Approved || d.reason == Some(Reason::Delayed) {
            return;
        }
        entry.state = match d.decision {
            Verdict::Execute => ApprovalState::Executed,
            Verdict::Suppress => ApprovalState::Suppressed,
        };
        let detail = match d.reason {
            Some(reason) => format!("{reason}: {}", d.detail),
            None => String::new(),
        };
        entry.spent_by = Some((d.id.clone(), detail));
    }

    /// The pending approvals that nobody may answer any more: expired by `now`, or
    /// whose alert stopped firing in the episode it was asked in (resolved, or not heard
    /// of for `firing_ttl`); and the granted ones whose alert stopped firing before
    /// it was decided again. Each with the state it ends in.
    pub fn approvals_to_close(&self, now: DateTime<Utc>) -> Vec<(String, ApprovalState)> {
        let mut closing = Vec::new();
        for (id, entry) in &self.approvals.by_id {
            let fires = self.fires_in_episode(&entry.request.event, now);
            let state = match entry.state {
                ApprovalState::Pending if !fires => ApprovalState::Cancelled,
                ApprovalState::Pending if entry.request.expires_at <= now => ApprovalState::Expired,
                ApprovalState::Approved if !fires => ApprovalState::Suppressed,
                _ => continue,
            };
            closing.push((id.clone(), state));
        }
        closing.sort_by(|a, b| a.0.cmp(&b.0));
        closing
    }

    /// Whether the alert an approval was asked for still fires in that episode.
    pub fn approval_alert_fires(&self, entry: &ApprovalEntry, now: DateTime<Utc>) -> bool {
        self.fires_in_episode(&entry.request.event, now)
    }

    /// How many approvals wait for an answer.
    pub fn approvals_pending(&self) -> usize {
        self.approvals
            .by_id
            .values()
            .filter(|e| e.state == ApprovalState::Pending)
            .count()
    }

    /// When the approval that has waited longest for a person was asked.
    pub fn oldest_pending_approval(&self) -> Option<DateTime<Utc>> {
        self.approvals
            .by_id
            .values()
            .filter(|e| e.state == ApprovalState::Pending)
            .map(|e| e.request.requested_at)
            .min()
    }

    /// Forgets approvals ended more than `dedup_ttl` ago: long enough for the episode
    /// they were for to be over, and for the API to show what became of them.
    pub(super) fn prune_approvals(&mut self, now: DateTime<Utc>) {
        let cutoff = since(now, self.settings.dedup_ttl);
        let gone: Vec<String> = self
            .approvals
            .by_id
            .iter()
            .filter(|(_, e)| {
                !matches!(e.state, ApprovalState::Pending | ApprovalState::Approved)
                    && e.decided.as_ref().map_or(e.request.expires_at, |d| d.at) < cutoff
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(entry) = self.approvals.by_id.remove(&id) {
                let key = entry.ask_key();
                if self.approvals.by_ask.get(&key) == Some(&id) {
                    self.approvals.by_ask.remove(&key);
                }
            }
        }
    }
}
