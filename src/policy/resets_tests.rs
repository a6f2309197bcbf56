//! Cooldowns and limits reset by hand (`state_reset`), folded as the trail says them.

use super::tests::{at, event, restart, rules, settings};
use super::{BatchScope, PolicyState};
use crate::audit::{AuditRecord, Entry};
use crate::engine::{fold, rule_terms};
use crate::model::{Action, Reason, Target};
use crate::rules::Rule;
use chrono::{DateTime, Duration, Utc};

/// Decides a restart of `target` for a new alert at `now`, recorded as the engine does.
fn act(state: &mut PolicyState, rule: &Rule, target: &str, now: DateTime<Utc>) -> Option<Reason> {
    let e = event("Down", &format!("{target}-{}", now.timestamp()), now);
    state.record_received(&std::sync::Arc::new(e.clone()));
    let d = state.decide(
        &rule_terms(rule),
        &e,
        &restart(target),
        now,
        &mut BatchScope::default(),
    );
    let reason = d.reason;
    fold(state, &AuditRecord::new(now, Entry::Decision(d)));
    reason
}

fn reset(state: &mut PolicyState, target: &str, what: &str, now: DateTime<Utc>) {
    let entry = Entry::StateReset {
        target: container(target),
        what: what.into(),
        reason: "by hand".into(),
        by: "ops".into(),
    };
    fold(state, &AuditRecord::new(now, entry));
}

fn container(name: &str) -> Target {
    Target::DockerContainer { name: name.into() }
}

#[test]
fn a_cooldown_reset_clears_what_ran_before_it_but_not_what_runs_after_nor_recent() {
    let set =
        rules(r#"const MATCH = `alertname="Down"`; const COOLDOWN = "1h"; fn plan(event) { [] }"#);
    let rule = &set.rules()[0];
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T10:00:00Z");
    let minutes = |m| t0 + Duration::minutes(m);
    assert_eq!(act(&mut state, rule, "web", t0), None);
    assert_eq!(act(&mut state, rule, "db", t0), None);
    assert_eq!(
        act(&mut state, rule, "web", minutes(1)),
        Some(Reason::Cooldown)
    );
    let cooling = |state: &PolicyState, now| {
        let view = state.safety(
            now,
            |_| Some(std::time::Duration::from_secs(3600)),
            |_| None,
        );
        view.cooldowns
            .into_iter()
            .map(|c| c.target.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(cooling(&state, minutes(2)).len(), 2);

    reset(&mut state, "web", "cooldown", minutes(2));
    assert_eq!(cooling(&state, minutes(2)), ["docker:container/db"]);
    // A moment before the reset is still as it was then.
    assert_eq!(cooling(&state, minutes(1)).len(), 2);
    assert_eq!(
        act(&mut state, rule, "db", minutes(3)),
        Some(Reason::Cooldown)
    );
    assert_eq!(act(&mut state, rule, "web", minutes(3)), None);
    assert_eq!(
        act(&mut state, rule, "web", minutes(4)),
        Some(Reason::Cooldown)
    );
    // History is history: an escalation ladder still sees both restarts of web.
    let web = container("web");
    let recent = state.recent(&web, Action::Restart, t0, minutes(5), u64::MAX);
    assert_eq!(recent, 2);
}

#[test]
fn a_limit_reset_forgets_only_what_ran_on_that_target_and_never_the_budget() {
    let set = rules(
        r#"const MATCH = `alertname="Down"`; const LIMIT = "2 per 1h"; fn plan(event) { [] }"#,
    );
    let rule = &set.rules()[0];
    let mut state = PolicyState::new(settings("[limits]\nrestart = \"10 per 1h\"\n"));
    let t0 = at("2026-12-07T10:00:00Z");
    let minutes = |m| t0 + Duration::minutes(m);
    assert_eq!(act(&mut state, rule, "web", t0), None);
    assert_eq!(act(&mut state, rule, "db", minutes(1)), None);
    assert_eq!(
        act(&mut state, rule, "web", minutes(2)),
        Some(Reason::RateLimit)
    );

    reset(&mut state, "web", "limit", minutes(3));
    let limit = rule.limit;
    let view = state.safety(minutes(3), |_| None, |_| limit);
    assert_eq!((view.limits[0].used, view.limits[0].left), (1, 1));
    assert_eq!(
        view.budget[0].used, 2,
        "the budget is not a target's to reset"
    );
    assert_eq!(act(&mut state, rule, "web", minutes(4)), None);
    assert_eq!(
        act(&mut state, rule, "web", minutes(5)),
        Some(Reason::RateLimit)
    );
    let view = state.safety(minutes(5), |_| None, |_| limit);
    assert_eq!((view.limits[0].used, view.budget[0].used), (2, 3));
}

#[test]
fn resets_survive_a_checkpoint_and_are_forgotten_past_the_history_horizon() {
    let set = rules(
        r#"const MATCH = `alertname="Down"`; const LIMIT = "1 per 1h per target"; const COOLDOWN = "1h"; fn plan(event) { [] }"#,
    );
    let rule = &set.rules()[0];
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T10:00:00Z");
    let minutes = |m| t0 + Duration::minutes(m);
    assert_eq!(act(&mut state, rule, "web", t0), None);
    reset(&mut state, "web", "limit", minutes(1));
    assert_eq!(
        act(&mut state, rule, "web", minutes(2)),
        Some(Reason::Cooldown)
    );
    reset(&mut state, "web", "cooldown", minutes(3));

    let image = postcard::to_stdvec(&state.snapshot().image().expect("image")).expect("encodes");
    let mut restored =
        PolicyState::from_image(postcard::from_bytes(&image).expect("decodes"), settings(""))
            .expect("restores");
    assert_eq!(restored.resets, state.resets);
    assert_eq!(act(&mut restored, rule, "web", minutes(4)), None);

    restored.prune(minutes(4) + Duration::days(8));
    assert!(restored.resets.is_empty(), "{:?}", restored.resets);
}
