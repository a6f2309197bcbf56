//! Held back, then decided again: each hold that ends says when, the alert comes due
//! then if it still fires in the same episode, and dry-run spends nothing of live mode.

use super::tests::{at, settings};
use super::{BatchScope, PolicyState};
use crate::audit::{AuditRecord, Entry};
use crate::engine::{fold, rule_terms};
use crate::event::{Event, Status};
use crate::model::{Action, Decision, Intent, MaintenanceWindow, Reason, Target, Verdict};
use crate::rules::RuleSet;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

fn rules(constants: &str) -> RuleSet {
    super::tests::rules(&format!(
        r#"const MATCH = `alertname="Down"`; {constants} fn plan(event) {{ [] }}"#
    ))
}

fn event(instance: &str, starts_at: DateTime<Utc>, status: Status) -> Event {
    Event {
        status,
        ..super::tests::event("Down", instance, starts_at)
    }
}

fn restart(name: &str) -> Intent {
    super::tests::restart(name)
}

/// Receives `event` at `now`, decides `intent` on it and records all of it, as the
/// engine does; returns the decision.
fn receive_and_decide(
    state: &mut PolicyState,
    rules: &RuleSet,
    event: &Event,
    intent: &Intent,
    now: DateTime<Utc>,
) -> Decision {
    fold(
        state,
        &AuditRecord::new(
            now,
            Entry::Received {
                event: Arc::new(event.clone()),
                unmatched: false,
                trace_id: None,
            },
        ),
    );
    decide_recorded(state, rules, event, intent, now)
}

/// A firing alert `instance` received at `at`, and a restart of `target` decided on it.
fn restart_for(
    state: &mut PolicyState,
    rules: &RuleSet,
    instance: &str,
    target: &str,
    at: DateTime<Utc>,
) -> Decision {
    let e = event(instance, at, Status::Firing);
    receive_and_decide(state, rules, &e, &restart(target), at)
}

fn decide_recorded(
    state: &mut PolicyState,
    rules: &RuleSet,
    event: &Event,
    intent: &Intent,
    now: DateTime<Utc>,
) -> Decision {
    let rule = &rules.rules()[0];
    let d = state.decide(
        &rule_terms(rule),
        event,
        intent,
        now,
        &mut BatchScope::default(),
    );
    fold(state, &AuditRecord::new(now, Entry::Decision(d.clone())));
    fold(
        state,
        &AuditRecord::new(
            now,
            Entry::Evaluated {
                event_id: event.id.clone(),
                fingerprint: event.fingerprint.clone(),
                rules: vec![rule.name.clone()],
            },
        ),
    );
    d
}

/// The alerts due at `now`, by instance label, with what held them.
fn due(state: &mut PolicyState, now: DateTime<Utc>) -> Vec<(String, Reason)> {
    state
        .due(now, 100, |_| None)
        .into_iter()
        .map(|(e, reason)| (e.labels["instance"].clone(), reason))
        .collect()
}

fn reconsider(state: &mut PolicyState, event: &Event, held: Reason, now: DateTime<Utc>) {
    fold(
        state,
        &AuditRecord::new(
            now,
            Entry::Reconsidered {
                event: event.clone(),
                held,
            },
        ),
    );
}

#[test]
fn an_alert_held_by_a_cooldown_comes_due_when_it_ends_and_then_acts() {
    let rules = rules(r#"const COOLDOWN = "1m";"#);
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T22:27:35Z");
    let first = event("a", t0, Status::Firing);
    let d = receive_and_decide(&mut state, &rules, &first, &restart("web"), t0);
    assert_eq!((d.decision, d.reconsider_at), (Verdict::Execute, None));

    let t1 = t0 + Duration::seconds(6);
    let again = event("b", t1, Status::Firing);
    let d = receive_and_decide(&mut state, &rules, &again, &restart("web"), t1);
    assert_eq!(d.reason, Some(Reason::Cooldown));
    assert_eq!(d.reconsider_at, Some(t0 + Duration::minutes(1)));
    assert_eq!(state.held(), (1, 0));

    assert_eq!(due(&mut state, t0 + Duration::seconds(59)), vec![]);
    let ends = t0 + Duration::minutes(1);
    assert_eq!(due(&mut state, ends), vec![("b".into(), Reason::Cooldown)]);
    reconsider(&mut state, &again, Reason::Cooldown, ends);
    assert_eq!(
        state.held(),
        (0, 0),
        "a reconsidered alert is no longer held"
    );
    let d = decide_recorded(&mut state, &rules, &again, &restart("web"), ends);
    assert_eq!(d.decision, Verdict::Execute, "{d:?}");
    assert_eq!(due(&mut state, ends + Duration::minutes(5)), vec![]);
}

#[test]
fn an_alert_that_resolved_or_began_a_new_episode_while_held_is_not_reconsidered() {
    let rules = rules(r#"const COOLDOWN = "1m";"#);
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T10:00:00Z");
    restart_for(&mut state, &rules, "a", "web", t0);
    let held = event("b", t0, Status::Firing);
    receive_and_decide(&mut state, &rules, &held, &restart("web"), t0);
    assert_eq!(state.held(), (1, 0));
    let resolved = Event {
        id: "resolved".into(),
        ..event("b", t0, Status::Resolved)
    };
    fold(
        &mut state,
        &AuditRecord::new(
            t0 + Duration::seconds(10),
            Entry::Received {
                event: Arc::new(resolved),
                unmatched: false,
                trace_id: None,
            },
        ),
    );
    assert_eq!(due(&mut state, t0 + Duration::minutes(2)), vec![]);

    // Held, then the alert is not heard of for firing_ttl: nothing to reconsider.
    let mut state = PolicyState::new(settings("[policy]\nfiring_ttl = \"5m\"\n"));
    restart_for(&mut state, &rules, "a", "web", t0);
    receive_and_decide(&mut state, &rules, &held, &restart("web"), t0);
    assert_eq!(due(&mut state, t0 + Duration::minutes(6)), vec![]);
    assert_eq!(state.held(), (0, 0), "a hold nobody fires for is dropped");
}

#[test]
fn each_hold_says_when_it_ends() {
    let t0 = at("2026-12-07T10:00:00Z");
    // A window: when it ends.
    let rules_plain = rules("");
    let mut state = PolicyState::new(settings(""));
    let until = t0 + Duration::minutes(30);
    state.record_window_created(MaintenanceWindow {
        id: "w".into(),
        matchers: "instance=\"a\"".parse().expect("matchers"),
        starts_at: t0,
        ends_at: until,
        created_by: "test".into(),
        comment: String::new(),
        created_at: t0,
    });
    let d = restart_for(&mut state, &rules_plain, "a", "web", t0);
    assert_eq!(
        (d.reason, d.reconsider_at),
        (Some(Reason::Maintenance), Some(until))
    );

    // A spent limit: when the execution that spent it leaves the window.
    let limited = rules(r#"const LIMIT = "2 per 10m";"#);
    let mut state = PolicyState::new(settings(""));
    for (i, secs) in [0, 60].iter().enumerate() {
        let now = t0 + Duration::seconds(*secs);
        let e = event(&format!("x{i}"), now, Status::Firing);
        let d = receive_and_decide(&mut state, &limited, &e, &restart(&format!("c{i}")), now);
        assert_eq!(d.decision, Verdict::Execute);
    }
    let now = t0 + Duration::minutes(2);
    let d = restart_for(&mut state, &limited, "a", "c9", now);
    assert_eq!(
        (d.reason, d.reconsider_at),
        (
            Some(Reason::RateLimit),
            Some(t0 + Duration::minutes(10) + Duration::milliseconds(1))
        )
    );

    // An open breaker: when it turns half-open.
    let mut state = PolicyState::new(settings(
        "[policy]\nbreaker_failures = 1\nbreaker_open_for = \"5m\"\n",
    ));
    let d = restart_for(&mut state, &rules_plain, "a", "web", t0);
    state.record_outcome(
        &d.id,
        Action::Restart,
        &d.target,
        crate::model::OutcomeStatus::Failed,
        t0 + Duration::seconds(10),
    );
    let later = t0 + Duration::seconds(20);
    let d = restart_for(&mut state, &rules_plain, "b", "web", later);
    assert_eq!(
        (d.reason, d.reconsider_at),
        (
            Some(Reason::CircuitOpen),
            Some(t0 + Duration::seconds(10) + Duration::minutes(5))
        )
    );

    // A delay: once the alert has fired that long.
    let mut state = PolicyState::new(settings(""));
    let delayed = restart("web").with_delay(std::time::Duration::from_secs(10));
    let e = event("a", t0, Status::Firing);
    let d = receive_and_decide(
        &mut state,
        &rules_plain,
        &e,
        &delayed,
        t0 + Duration::seconds(2),
    );
    assert_eq!(
        (d.reason, d.reconsider_at),
        (Some(Reason::Delayed), Some(t0 + Duration::seconds(10)))
    );
    let d = decide_recorded(
        &mut state,
        &rules_plain,
        &e,
        &delayed,
        t0 + Duration::seconds(10),
    );
    assert_eq!(d.decision, Verdict::Execute);

    // A mute interval: when it stops matching.
    let weekend = r#"
[[time_intervals]]
name = "weekend"
[[time_intervals.time_intervals]]
weekdays = ["saturday", "sunday"]
"#;
    let muted = rules(r#"const MUTE = ["weekend"];"#);
    let mut state = PolicyState::new(settings(weekend));
    let saturday = at("2026-12-05T13:14:15Z");
    let d = restart_for(&mut state, &muted, "a", "web", saturday);
    assert_eq!(
        (d.reason, d.reconsider_at),
        (Some(Reason::Maintenance), Some(at("2026-12-07T00:00:00Z")))
    );
}

#[test]
fn pages_are_not_held_or_throttled_by_a_rules_limit_or_cooldown() {
    let rules = rules(r#"const LIMIT = "1 per 1h"; const COOLDOWN = "1h";"#);
    let mut state = PolicyState::new(settings(""));
    let t0 = at("2026-12-07T22:19:01Z");
    let page = |text: &str| {
        Intent::new(
            Action::Notify,
            Target::Notify {
                channel: "ops".into(),
            },
        )
        .with("text", text)
    };
    let web = event("web-1", t0, Status::Firing);
    let d = receive_and_decide(&mut state, &rules, &web, &page("web-1 is down"), t0);
    assert_eq!(d.decision, Verdict::Execute);
    let d = receive_and_decide(&mut state, &rules, &web, &restart("web-1"), t0);
    assert_eq!(
        d.decision,
        Verdict::Execute,
        "a page spends no action budget"
    );
    let t1 = t0 + Duration::seconds(30);
    let db = event("db-1", t1, Status::Firing);
    let d = receive_and_decide(&mut state, &rules, &db, &page("db-1 is down"), t1);
    assert_eq!(d.decision, Verdict::Execute, "{d:?}");
    let d = receive_and_decide(&mut state, &rules, &db, &page("db-1 is down"), t1);
    assert_eq!(
        d.reason,
        Some(Reason::Dedup),
        "the same page twice in one episode"
    );
}

#[test]
fn dry_run_spends_nothing_and_its_alerts_are_decided_live_once_salve_acts() {
    let rules = rules("");
    let t0 = at("2026-12-07T22:00:00Z");
    let mut state = PolicyState::new(settings("dry_run = true\n"));
    let e = event("a", t0, Status::Firing);
    let d = receive_and_decide(&mut state, &rules, &e, &restart("web"), t0);
    assert_eq!((d.reason, d.dry_run), (Some(Reason::DryRun), true));
    assert_eq!(state.held(), (0, 1));
    assert_eq!(state.go_live(t0, |_| true), 0, "still in dry-run");

    state.set_settings(settings(""));
    let now = t0 + Duration::minutes(1);
    assert_eq!(state.go_live(now, |_| true), 1);
    assert_eq!(due(&mut state, now), vec![("a".into(), Reason::DryRun)]);
    reconsider(&mut state, &e, Reason::DryRun, now);
    let d = decide_recorded(&mut state, &rules, &e, &restart("web"), now);
    assert_eq!(
        (d.decision, d.dry_run),
        (Verdict::Execute, false),
        "a dry-run decision is no dedup for live mode: {d:?}"
    );
    let d = decide_recorded(&mut state, &rules, &e, &restart("web"), now);
    assert_eq!(d.reason, Some(Reason::Dedup), "and live acts once");
}

#[test]
fn holds_survive_a_checkpoint() {
    let rules = rules(r#"const COOLDOWN = "1m";"#);
    let settings = settings("");
    let mut state = PolicyState::new(settings.clone());
    let t0 = at("2026-12-07T10:00:00Z");
    restart_for(&mut state, &rules, "a", "web", t0);
    restart_for(&mut state, &rules, "b", "web", t0);
    let bytes = crate::engine::checkpoint_bytes(
        &state,
        crate::audit::TrailPosition {
            inode: 1,
            offset: 0,
        },
    )
    .expect("written");
    let mut restored = crate::engine::restore_checkpoint(&bytes, &settings).expect("read back");
    assert_eq!(restored.held(), (1, 0));
    assert_eq!(
        due(&mut restored, t0 + Duration::minutes(1)),
        vec![("b".into(), Reason::Cooldown)]
    );
}

#[test]
fn a_storm_of_ended_holds_comes_due_earliest_first_a_bounded_number_at_a_time() {
    let rules = rules(r#"const COOLDOWN = "1m";"#);
    let mut state = PolicyState::new(settings("[limits]\nrestart = \"100 per 1m\"\n"));
    let t0 = at("2026-12-07T10:00:00Z");
    for i in 0..10 {
        let now = t0 + Duration::seconds(i);
        let target = format!("c{i}");
        restart_for(&mut state, &rules, &format!("first{i}"), &target, now);
        let d = restart_for(&mut state, &rules, &format!("held{i}"), &target, now);
        assert_eq!(d.reason, Some(Reason::Cooldown));
    }
    let all_ended = t0 + Duration::minutes(5);
    let first: Vec<String> = due(&mut state, all_ended)
        .into_iter()
        .take(3)
        .map(|(instance, _)| instance)
        .collect();
    assert_eq!(first, ["held0", "held1", "held2"]);
    let three: Vec<String> = state
        .due(all_ended, 3, |_| None)
        .into_iter()
        .map(|(e, _)| e.labels["instance"].clone())
        .collect();
    assert_eq!(three, ["held0", "held1", "held2"]);
    assert_eq!(
        state.held(),
        (10, 0),
        "due only says; a reconsidered record ends a hold"
    );
}

#[test]
fn a_budget_that_frees_lets_as_many_held_alerts_come_due_as_it_has_room_for() {
    let rules = rules("");
    let mut state = PolicyState::new(settings("[limits]\nrestart = \"2 per 1m\"\n"));
    let t0 = at("2026-12-07T10:00:00Z");
    let mut held = Vec::new();
    for i in 0..12 {
        let e = event(&format!("a{i}"), t0, Status::Firing);
        let d = receive_and_decide(&mut state, &rules, &e, &restart(&format!("c{i}")), t0);
        if d.decision == Verdict::Suppress {
            assert_eq!(
                (d.reason, d.reconsider_at),
                (
                    Some(Reason::RateLimit),
                    Some(t0 + Duration::minutes(1) + Duration::milliseconds(1))
                )
            );
            held.push(e);
        }
    }
    assert_eq!(held.len(), 10);
    let freed = t0 + Duration::minutes(1) + Duration::milliseconds(1);
    let first = due(&mut state, freed);
    assert_eq!(first.len(), 2, "the budget frees two: {first:?}");
    assert_eq!(due(&mut state, freed), first, "until they are decided");
    // Decided again: both act, and the budget is spent for another minute.
    for e in held
        .iter()
        .filter(|e| first.iter().any(|(i, _)| *i == e.labels["instance"]))
    {
        reconsider(&mut state, e, Reason::RateLimit, freed);
        let target = format!("c{}", &e.labels["instance"][1..]);
        let d = decide_recorded(&mut state, &rules, e, &restart(&target), freed);
        assert_eq!(d.decision, Verdict::Execute);
    }
    assert_eq!(due(&mut state, freed + Duration::seconds(30)), vec![]);
    let again = freed + Duration::minutes(1) + Duration::milliseconds(1);
    assert_eq!(due(&mut state, again).len(), 2);
    assert_eq!(state.held(), (8, 0));
}

#[test]
fn past_max_held_alerts_a_held_back_alert_waits_for_its_resend_and_is_counted() {
    let rules = rules(r#"const COOLDOWN = "1m";"#);
    let mut state = PolicyState::new(settings(
        "[policy]\nmax_held_alerts = 2\n\n[limits]\nrestart = \"100 per 1m\"\n",
    ));
    let t0 = at("2026-12-07T10:00:00Z");
    restart_for(&mut state, &rules, "first", "web", t0);
    for i in 0..3 {
        let d = restart_for(&mut state, &rules, &format!("held{i}"), "web", t0);
        assert_eq!(d.reason, Some(Reason::Cooldown));
    }
    assert_eq!(state.held(), (2, 0));
    assert_eq!(state.evictions().held, 1);
}
