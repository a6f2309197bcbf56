//! Approvals as policy folds them: asked once per episode, the first answer wins, a yes
//! decides the alert again, and what nobody may answer any more is closed.

use super::tests::{at, settings};
use super::PolicyState;
use crate::audit::{AuditRecord, Entry};
use crate::engine::{fold, rule_terms};
use crate::event::{Event, Status};
use crate::model::{
    Actor, ApprovalDecided, ApprovalRequest, ApprovalState, Decision, Intent, Reason, Verdict,
};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

fn alert(starts_at: DateTime<Utc>) -> Event {
    Event {
        status: Status::Firing,
        ..super::tests::event("Down", "db-1", starts_at)
    }
}

fn asking() -> Intent {
    super::tests::restart("db-1").with_approval("sre", None)
}

/// Receives the alert at `now` and decides the intent that asks, as the engine does:
/// the decision, and the request it makes when it asks anew.
fn decide(state: &mut PolicyState, event: &Event, now: DateTime<Utc>) -> Decision {
    let rules = super::tests::rules(r#"const MATCH = `alertname="Down"`; fn plan(event) { [] }"#);
    let rule = rules.get("r").expect("the rule");
    let received = Entry::Received {
        event: Arc::new(event.clone()),
        unmatched: false,
        trace_id: None,
    };
    fold(state, &AuditRecord::new(now, received));
    let mut batch = super::BatchScope::default();
    let d = state.decide_and_record(&rule_terms(rule), event, &asking(), now, &mut batch);
    if let (Some(id), Some(Reason::AwaitingApproval)) = (&d.approval, d.reason) {
        if state.approval(id).is_none() {
            let request = ApprovalRequest {
                id: id.clone(),
                group: "sre".into(),
                rule: d.rule.clone(),
                action: d.action,
                target: d.target.clone(),
                params: d.params.clone(),
                fingerprint: d.fingerprint.clone(),
                decision_id: d.id.clone(),
                requested_at: now,
                expires_at: now + Duration::minutes(15),
                approvers: vec![],
                channels: vec![],
                verdict: String::new(),
                rule_hash: String::new(),
                group_hash: String::new(),
                event: event.clone(),
                links: Default::default(),
            };
            fold(
                state,
                &AuditRecord::new(now, Entry::ApprovalRequested(Box::new(request))),
            );
        }
    }
    d
}

fn answer(id: &str, state: ApprovalState, who: &str) -> ApprovalDecided {
    ApprovalDecided {
        id: id.into(),
        state,
        actor: Actor {
            via: "api".into(),
            id: who.into(),
            name: String::new(),
        },
        comment: String::new(),
        waited_seconds: 1.0,
        decision: format!("answer-by-{who}"),
    }
}

#[test]
fn an_intent_asks_once_per_episode_and_the_first_answer_wins() {
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T03:00:00Z");
    let event = alert(t0);
    let asked = decide(&mut state, &event, t0);
    assert_eq!(asked.reason, Some(Reason::AwaitingApproval));
    let id = asked.approval.clone().expect("an approval");
    let resent = decide(&mut state, &event, t0 + Duration::seconds(30));
    assert_eq!(
        resent.approval.as_deref(),
        Some(id.as_str()),
        "no second question"
    );
    assert_eq!(state.approvals().len(), 1);

    let first = answer(&id, ApprovalState::Approved, "alice");
    let second = answer(&id, ApprovalState::Denied, "dave");
    for decided in [&first, &second] {
        let record = Entry::ApprovalDecided(decided.clone());
        fold(
            &mut state,
            &AuditRecord::new(t0 + Duration::minutes(1), record),
        );
    }
    let entry = state.approval(&id).expect("the approval");
    assert_eq!(entry.state, ApprovalState::Approved);
    assert_eq!(
        entry.decided.as_ref().map(|d| d.record.as_str()),
        Some("answer-by-alice")
    );

    // The yes holds the alert until now: it comes due at once, to be decided again.
    let due = state.due(t0 + Duration::minutes(1), 10, |_| None);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1, Reason::AwaitingApproval);
    let acted = decide(&mut state, &event, t0 + Duration::minutes(1));
    assert_eq!(acted.decision, Verdict::Execute);
    assert_eq!(acted.approval.as_deref(), Some(id.as_str()));
    assert_eq!(
        state.approval(&id).map(|e| e.state),
        Some(ApprovalState::Executed)
    );
}

#[test]
fn what_nobody_may_answer_is_closed_expired_or_cancelled() {
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T03:00:00Z");
    let event = alert(t0);
    let id = decide(&mut state, &event, t0)
        .approval
        .expect("an approval");
    assert!(state
        .approvals_to_close(t0 + Duration::minutes(14))
        .is_empty());
    assert_eq!(
        state.approvals_to_close(t0 + Duration::minutes(15)),
        [(id.clone(), ApprovalState::Expired)]
    );
    let resolved = Event {
        status: Status::Resolved,
        ..event.clone()
    };
    let received = Entry::Received {
        event: Arc::new(resolved),
        unmatched: false,
        trace_id: None,
    };
    fold(
        &mut state,
        &AuditRecord::new(t0 + Duration::minutes(2), received),
    );
    assert_eq!(
        state.approvals_to_close(t0 + Duration::minutes(2)),
        [(id, ApprovalState::Cancelled)]
    );
}
