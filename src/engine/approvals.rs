//! Approvals, as the engine moves them: asked with the decision that needs one,
//! answered through the API (and Slack, and signed links), expired, cancelled when the
//! alert stops firing, invalidated by a reload that changes the rule or the group.
//! Every change is a record, written before it is applied; the first answer on an
//! approval wins, on one salve as across replicas, because the trail orders them.

use super::{Engine, Runtime, Trail};
use crate::audit::{AuditError, AuditRecord, Entry};
use crate::config::{text_hash, ApprovalGroup};
use crate::event::Event;
use crate::model::{
    link_hash, Actor, ApprovalDecided, ApprovalLink, ApprovalRequest, ApprovalState, ApprovalView,
    Decision, Reason,
};
use crate::policy::{ApprovalEntry, PolicyState};
use crate::rules::Rule;
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;

/// Why an answer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval {0}")]
    NotFound(String),
    #[error("approval {id} was already {state}{}", by_whom(.by, .at))]
    Decided {
        id: String,
        state: ApprovalState,
        by: Option<Actor>,
        at: Option<DateTime<Utc>>,
    },
    #[error("approval {id} expired at {}", .at.to_rfc3339())]
    Expired { id: String, at: DateTime<Utc> },
    #[error("{who} may not decide approval {id}: group {group} does not name them")]
    NotAllowed {
        id: String,
        who: String,
        group: String,
    },
    #[error("cannot record the answer: {0}")]
    Unrecorded(#[from] AuditError),
}

fn by_whom(by: &Option<Actor>, at: &Option<DateTime<Utc>>) -> String {
    match (by, at) {
        (Some(by), Some(at)) => format!(" by {by} at {}", at.to_rfc3339()),
        _ => String::new(),
    }
}

/// A person's answer, and what they are known by where they gave it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub approve: bool,
    pub actor: Actor,
    /// The Slack team they clicked from, for a group that admits a whole team.
    pub team: Option<String>,
    pub comment: String,
}

/// Whether `group` names the person who answered, where they answered.
fn may_answer(group: &ApprovalGroup, answer: &Answer) -> bool {
    let id = answer.actor.id.as_str();
    match answer.actor.via.as_str() {
        // The console's people are the API's identities, signed in.
        "api" | "console" => group.identities.iter().any(|i| i == id),
        "slack" => {
            group.slack_users.iter().any(|u| u == id)
                || (group.slack_team.is_some() && group.slack_team == answer.team)
        }
        "link" => group.emails.iter().any(|e| e == id),
        _ => false,
    }
}

/// A new link token: 256 random bits, URL-safe.
fn link_token() -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The request an `awaiting_approval` decision asks, from the rule and group of now,
/// and a signed link for each address of the group's `emails` (its token only here:
/// the request keeps its hash).
pub(super) fn request_of(
    runtime: &Runtime,
    rule: &Rule,
    event: &Event,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Option<(ApprovalRequest, Vec<ApprovalLink>)> {
    let id = decision.approval.clone()?;
    let intent_group = crate::model::Intent {
        action: decision.action,
        target: decision.target.clone(),
        params: decision.params.clone(),
    };
    let (group_name, ttl) = match intent_group.approval() {
        Some((group, ttl)) => (group.to_string(), ttl),
        None => (runtime.config.approvals.terms.group.clone()?, None),
    };
    let group = runtime.config.approvals.group(&group_name);
    let ttl = ttl
        .or_else(|| group.map(|g| g.ttl))
        .unwrap_or(crate::policy::DEFAULT_APPROVAL_TTL);
    let links: Vec<ApprovalLink> = group
        .map(|g| g.emails.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|email| ApprovalLink {
            approval: id.clone(),
            email: email.clone(),
            token: link_token(),
        })
        .collect();
    let request = ApprovalRequest {
        id,
        group: group_name,
        rule: rule.name.clone(),
        action: decision.action,
        target: decision.target.clone(),
        params: decision.params.clone(),
        fingerprint: decision.fingerprint.clone(),
        decision_id: decision.id.clone(),
        requested_at: now,
        expires_at: crate::model::later(now, ttl),
        approvers: group.map(ApprovalGroup::approvers).unwrap_or_default(),
        channels: group.map(|g| g.notify.clone()).unwrap_or_default(),
        verdict: "passed dedup, maintenance, limits, cooldown and breaker".into(),
        rule_hash: text_hash(rule.source()),
        group_hash: group.map(|g| g.hash.clone()).unwrap_or_default(),
        event: event.clone(),
        links: links
            .iter()
            .map(|l| (l.email.clone(), link_hash(&l.token)))
            .collect(),
    };
    Some((request, links))
}

/// Whether a decision asks for an approval not asked for before.
pub(super) fn asks_anew(state: &PolicyState, decision: &Decision) -> bool {
    decision.reason == Some(Reason::AwaitingApproval)
        && decision
            .approval
            .as_ref()
            .is_some_and(|id| state.approval(id).is_none())
}

fn decided_record(
    entry: &ApprovalEntry,
    state: ApprovalState,
    actor: Actor,
    comment: String,
    now: DateTime<Utc>,
) -> AuditRecord {
    let waited = (now - entry.request.requested_at).num_milliseconds().max(0) as f64 / 1000.0;
    AuditRecord::new(
        now,
        Entry::ApprovalDecided(ApprovalDecided {
            id: entry.request.id.clone(),
            state,
            actor,
            comment,
            waited_seconds: waited,
            decision: uuid::Uuid::now_v7().to_string(),
        }),
    )
}

impl Engine {
    /// The approval a signed link's token is for, and the address it was sent to; none
    /// for a token salve never sent.
    pub fn approval_by_link(&self, token: &str) -> Option<(ApprovalView, String)> {
        let state = self.state.read();
        let (entry, email) = state.approval_for_link(&link_hash(token))?;
        Some((entry.view(), email.to_string()))
    }

    /// A signed link's answer: to the approval the token was sent for.
    pub async fn answer_approval_by_link(
        &self,
        token: &str,
        answer: Answer,
    ) -> Result<ApprovalView, ApprovalError> {
        let (approval, _) = self
            .approval_by_link(token)
            .ok_or_else(|| ApprovalError::NotFound("for this link".into()))?;
        self.answer_approval(&approval.id, answer).await
    }

    /// An approval, as the API shows it.
    pub fn approval(&self, id: &str) -> Option<ApprovalView> {
        self.state.read().approval(id).map(ApprovalEntry::view)
    }

    /// Every approval remembered, newest first.
    pub fn approvals(&self) -> Vec<ApprovalView> {
        let state = self.state.read();
        state
            .approvals()
            .into_iter()
            .map(ApprovalEntry::view)
            .collect()
    }

    /// A person's answer to a pending approval. Refused when it is not pending any
    /// more (409; 410 once expired), or when its group does not name them (403). The
    /// first answer recorded wins: another one, on another replica at the same moment,
    /// is recorded after it and ignored, and its author told who decided.
    pub async fn answer_approval(
        &self,
        id: &str,
        answer: Answer,
    ) -> Result<ApprovalView, ApprovalError> {
        let _one = self.approving.lock().await;
        let now = self.now();
        let record = {
            let state = self.state.read();
            let entry = state
                .approval(id)
                .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
            let runtime = self.runtime();
            let group = runtime.config.approvals.group(&entry.request.group);
            if !group.is_some_and(|g| may_answer(g, &answer)) {
                return Err(ApprovalError::NotAllowed {
                    id: id.to_string(),
                    who: answer.actor.to_string(),
                    group: entry.request.group.clone(),
                });
            }
            settled(entry)?;
            let closing = if !state.approval_alert_fires(entry, now) {
                Some(ApprovalState::Cancelled)
            } else if entry.request.expires_at <= now {
                Some(ApprovalState::Expired)
            } else {
                None
            };
            match closing {
                Some(closed) => decided_record(entry, closed, Actor::salve(), String::new(), now),
                None => {
                    let state = if answer.approve {
                        ApprovalState::Approved
                    } else {
                        ApprovalState::Denied
                    };
                    decided_record(entry, state, answer.actor.clone(), answer.comment, now)
                }
            }
        };
        self.record_approval_decisions(std::slice::from_ref(&record))
            .await?;
        let Entry::ApprovalDecided(mine) = &record.entry else {
            return Err(ApprovalError::NotFound(id.to_string()));
        };
        let state = self.state.read();
        let entry = state
            .approval(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let won = entry
            .decided
            .as_ref()
            .is_some_and(|d| d.record == mine.decision);
        if !won || mine.actor.via == "salve" {
            return Err(lost(entry));
        }
        Ok(entry.view())
    }

    /// Writes `approval_decided` records and applies them (from the trail, with a
    /// store), counting them.
    async fn record_approval_decisions(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        match &self.audit {
            Trail::Postgres(pg) => {
                pg.append(records).await?;
                self.follow_once().await?;
            }
            Trail::Files(_) => self.write_then_fold(records).await?,
        }
        for record in records {
            if let Entry::ApprovalDecided(d) = &record.entry {
                let answered = d.actor.via != "salve";
                self.metrics
                    .approval_decided(d.state.as_str(), d.waited_seconds, answered);
                tracing::info!(approval = %d.id, state = %d.state, by = %d.actor, "approval decided");
                let asked_by = self
                    .state
                    .read()
                    .approval(&d.id)
                    .map(|entry| entry.request.decision_id.clone());
                if let Some(asked_by) = asked_by {
                    crate::telemetry::approval_answered(
                        &asked_by,
                        &d.id,
                        d.state.as_str(),
                        &d.actor.via,
                    );
                }
            }
        }
        self.count_approvals();
        self.announce_approvals(&self.approvals_decided(records));
        Ok(())
    }

    /// Once a second on the leader: approvals nobody may answer any more are closed
    /// (expired, cancelled; a yes whose alert stopped firing before it was decided
    /// again is suppressed).
    pub(super) async fn close_approvals(&self) {
        if !self.lead.is_leader() || self.stopping.load(Ordering::Acquire) {
            self.count_approvals();
            return;
        }
        let now = self.now();
        let records: Vec<AuditRecord> = {
            let state = self.state.read();
            state
                .approvals_to_close(now)
                .into_iter()
                .filter_map(|(id, closed)| {
                    let entry = state.approval(&id)?;
                    let why = match closed {
                        ApprovalState::Suppressed => {
                            "the alert stopped firing before it was decided again"
                        }
                        _ => "",
                    };
                    Some(decided_record(
                        entry,
                        closed,
                        Actor::salve(),
                        why.into(),
                        now,
                    ))
                })
                .collect()
        };
        if records.is_empty() {
            self.count_approvals();
            return;
        }
        let _one = self.approving.lock().await;
        if let Err(e) = self.record_approval_decisions(&records).await {
            tracing::warn!(error = %e, "cannot record the end of approvals; trying again in a second");
        }
    }

    /// After a reload: pending approvals whose rule or group changed (or is gone) are
    /// invalidated; the alert asks anew, with the rule of now, at its next decision.
    pub(super) async fn invalidate_approvals(&self) {
        let runtime = self.runtime();
        let now = self.now();
        let records: Vec<AuditRecord> = {
            let state = self.state.read();
            state
                .approvals()
                .into_iter()
                .filter(|entry| entry.state == ApprovalState::Pending)
                .filter(|entry| {
                    let r = &entry.request;
                    let rule_same = runtime
                        .rules
                        .get(&r.rule)
                        .is_some_and(|rule| text_hash(rule.source()) == r.rule_hash);
                    let group_same = runtime
                        .config
                        .approvals
                        .group(&r.group)
                        .is_some_and(|g| g.hash == r.group_hash);
                    !(rule_same && group_same)
                })
                .map(|entry| {
                    decided_record(
                        entry,
                        ApprovalState::Invalidated,
                        Actor::salve(),
                        "a reload changed the rule or the approval group".into(),
                        now,
                    )
                })
                .collect()
        };
        if records.is_empty() {
            return;
        }
        let _one = self.approving.lock().await;
        if let Err(e) = self.record_approval_decisions(&records).await {
            tracing::error!(error = %e, "cannot record approvals invalidated by the reload");
        }
    }

    pub(super) fn count_approvals(&self) {
        let pending = self.state.read().approvals_pending();
        self.metrics.approvals_pending.set(pending as i64);
    }
}

/// An approval nobody may answer any more, as the error that says so.
fn settled(entry: &ApprovalEntry) -> Result<(), ApprovalError> {
    if entry.state.is_open() {
        return Ok(());
    }
    Err(lost(entry))
}

fn lost(entry: &ApprovalEntry) -> ApprovalError {
    let id = entry.request.id.clone();
    if entry.state == ApprovalState::Expired {
        return ApprovalError::Expired {
            id,
            at: entry.request.expires_at,
        };
    }
    ApprovalError::Decided {
        id,
        state: entry.state,
        by: entry.decided.as_ref().map(|d| d.actor.clone()),
        at: entry.decided.as_ref().map(|d| d.at),
    }
}
