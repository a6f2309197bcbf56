//! Policy decisions with an explicit clock: no sleeping, every verdict compared whole.

use super::{BatchScope, PolicySettings, PolicyState};
use crate::audit::{AuditRecord, Entry, OutcomeRecord};
use crate::config::Config;
use crate::engine::{fold, rule_terms};
use crate::event::{Event, Fingerprint, Labels, Status};
use crate::model::Outcome;
use crate::model::{Action, Intent, Target};
use crate::model::{Reason, Verdict};
use crate::rules::{Rule, RuleSet};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

pub(super) fn rules(source: &str) -> RuleSet {
    let intervals: HashSet<String> = ["weekend".to_string()].into_iter().collect();
    RuleSet::from_sources(
        vec![(PathBuf::from("rules/r.rhai"), source.to_string())],
        &intervals,
        std::time::Duration::from_millis(40),
    )
    .expect("valid rule")
}

pub(super) fn settings(config: &str) -> PolicySettings {
    let config = Config::parse(config, std::path::Path::new("test.toml")).expect("valid config");
    config.policy_settings()
}

pub(super) fn event(alertname: &str, instance: &str, starts_at: DateTime<Utc>) -> Event {
    let labels: Labels = [("alertname", alertname), ("instance", instance)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Event {
        id: crate::event::new_event_id(),
        source: "test".into(),
        status: Status::Firing,
        fingerprint: Fingerprint::of_labels(&labels),
        labels,
        annotations: Labels::new(),
        starts_at,
        ends_at: None,
        generator_url: String::new(),
        received_at: starts_at,
    }
}

pub(super) fn restart(name: &str) -> Intent {
    Intent::new(
        Action::Restart,
        Target::DockerContainer { name: name.into() },
    )
}

/// Decides one intent and records the decision, as the engine does.
fn decide(
    state: &mut PolicyState,
    rule: &Rule,
    event: &Event,
    intent: &Intent,
    now: DateTime<Utc>,
) -> (Verdict, Option<Reason>, String) {
    let d = state.decide(
        &rule_terms(rule),
        event,
        intent,
        now,
        &mut BatchScope::default(),
    );
    let out = (d.decision, d.reason, d.id.clone());
    fold(state, &AuditRecord::new(now, Entry::Decision(d)));
    out
}

fn outcome(state: &mut PolicyState, decision_id: &str, target: &str, ok: bool, now: DateTime<Utc>) {
    let outcome = if ok {
        Outcome::ok(serde_json::Value::Null)
    } else {
        Outcome::failed("boom", serde_json::Value::Null)
    };
    let record = OutcomeRecord {
        decision_id: decision_id.into(),
        event_id: "e".into(),
        fingerprint: None,
        rule: "r".into(),
        action: Action::Restart,
        target: target.parse().expect("target"),
        outcome,
        trace_id: None,
    };
    fold(state, &AuditRecord::new(now, Entry::Outcome(record)));
}

const PLAIN: &str = r#"const MATCH = `alertname="Down"`; fn plan(event) { [] }"#;

#[test]
fn resent_episode_is_deduped_but_a_new_episode_acts() {
    let set = rules(PLAIN);
    let rule = &set.rules()[0];
    let s = settings("");
    let mut state = PolicyState::new(s.clone());
    let t0 = at("2026-11-22T10:00:00Z");
    let first = event("Down", "a", t0);
    assert_eq!(
        decide(&mut state, rule, &first, &restart("web"), t0).0,
        Verdict::Execute
    );
    let resent = Event {
        id: "resent".into(),
        ..first.clone()
    };
    let (v, r, _) = decide(
        &mut state,
        rule,
        &resent,
        &restart("web"),
        t0 + Duration::minutes(10),
    );
    assert_eq!((v, r), (Verdict::Suppress, Some(Reason::Dedup)));
    let next_episode = event("Down", "a", t0 + Duration::hours(2));
    let (v, _, _) = decide(
        &mut state,
        rule,
        &next_episode,
        &restart("web"),
        t0 + Duration::hours(2),
    );
    assert_eq!(v, Verdict::Execute);
}

#[test]
fn global_budget_stops_the_sixth_restart_in_a_minute_then_frees_up() {
    let set = rules(PLAIN);
    let rule = &set.rules()[0];
    let s = settings("");
    let mut state = PolicyState::new(s.clone());
    let t0 = at("2026-11-22T10:00:00Z");
    let mut verdicts = Vec::new();
    for i in 0..6 {
        let e = event("Down", &format!("host-{i}"), t0);
        verdicts.push(
            decide(
                &mut state,
                rule,
                &e,
                &restart(&format!("c{i}")),
                t0 + Duration::seconds(i),
            )
            .1,
        );
    }
    assert_eq!(
        verdicts,
        vec![None, None, None, None, None, Some(Reason::RateLimit)]
    );
    let later = event("Down", "host-9", t0);
    assert_eq!(
        decide(
            &mut state,
            rule,
            &later,
            &restart("c9"),
            t0 + Duration::seconds(61)
        )
        .1,
        None
    );
}

#[test]
fn rule_limit_per_target_counts_each_target_separately() {
    let set = rules(
        r#"const MATCH = `alertname="Down"`; const LIMIT = "2 per 15m per target"; fn plan(event) { [] }"#,
    );
    let rule = &set.rules()[0];
    let s = settings("");
    let mut state = PolicyState::new(s.clone());
    let t0 = at("2026-11-22T10:00:00Z");
    let mut reasons = Vec::new();
    for (i, target) in ["a", "a", "a", "b"].iter().enumerate() {
        let e = event("Down", &format!("h{i}"), t0);
        reasons.push(
            decide(
                &mut state,
                rule,
                &e,
                &restart(target),
                t0 + Duration::minutes(i as i64),
            )
            .1,
        );
    }
    assert_eq!(reasons, vec![None, None, Some(Reason::RateLimit), None]);
}

#[test]
fn cooldown_spaces_actions_on_one_target() {
    let set =
        rules(r#"const MATCH = `alertname="Down"`; const COOLDOWN = "2m"; fn plan(event) { [] }"#);
    let rule = &set.rules()[0];
    let s = settings("");
    let mut state = PolicyState::new(s.clone());
    let t0 = at("2026-11-22T10:00:00Z");
    let reasons: Vec<_> = [0, 60, 121]
        .iter()
        .enumerate()
        .map(|(i, secs)| {
            let e = event("Down", &format!("h{i}"), t0);
            decide(
                &mut state,
                rule,
                &e,
                &restart("web"),
                t0 + Duration::seconds(*secs),
            )
            .1
        })
        .collect();
    assert_eq!(reasons, vec![None, Some(Reason::Cooldown), None]);
}

#[test]
fn breaker_opens_after_three_failures_then_lets_one_trial_through() {
    let set = rules(PLAIN);
    let rule = &set.rules()[0];
    let s = settings("[limits]\nrestart = \"100 per 1m\"");
    let mut state = PolicyState::new(s.clone());
    let t0 = at("2026-11-22T10:00:00Z");
    for i in 0..3 {
        let now = t0 + Duration::seconds(i);
        let (v, _, id) = decide(
            &mut state,
            rule,
            &event("Down", &format!("h{i}"), t0),
            &restart("web"),
            now,
        );
        assert_eq!(v, Verdict::Execute);
        outcome(&mut state, &id, "docker:container/web", false, now);
    }
    let open = decide(
        &mut state,
        rule,
        &event("Down", "h3", t0),
        &restart("web"),
        t0 + Duration::minutes(1),
    );
    assert_eq!(open.1, Some(Reason::CircuitOpen));
    // After open_for (5m): exactly one trial; a second one waits for the trial's outcome.
    let trial_at = t0 + Duration::minutes(6);
    let trial = decide(
        &mut state,
        rule,
        &event("Down", "h4", t0),
        &restart("web"),
        trial_at,
    );
    assert_eq!(trial.0, Verdict::Execute);
    let during = decide(
        &mut state,
        rule,
        &event("Down", "h5", t0),
        &restart("web"),
        trial_at,
    );
    assert_eq!(during.1, Some(Reason::CircuitOpen));
    outcome(&mut state, &trial.2, "docker:container/web", true, trial_at);
    let closed = decide(
        &mut state,
        rule,
        &event("Down", "h6", t0),
        &restart("web"),
        trial_at + Duration::seconds(1),
    );
    assert_eq!(closed.0, Verdict::Execute);
}

#[test]
fn named_time_interval_mutes_only_inside_the_window() {
    let set = rules(
        r#"const MATCH = `alertname="Down"`; const MUTE = ["weekend"]; fn plan(event) { [] }"#,
    );
    let rule = &set.rules()[0];
    let s = settings(
        r#"
[[time_intervals]]
name = "weekend"
[[time_intervals.time_intervals]]
weekdays = ["saturday"]
times = [{ start_time = "02:00", end_time = "04:00" }]
location = "Europe/Berlin"
"#,
    );
    let mut state = PolicyState::new(s.clone());
    // Saturday 2026-11-21, Berlin is UTC+1: 02:00 local is 01:00 UTC.
    let cases = [
        ("2026-11-21T00:59:00Z", None),
        ("2026-11-21T01:00:00Z", Some(Reason::Maintenance)),
        ("2026-11-21T03:00:00Z", None),
    ];
    for (i, (when, expected)) in cases.iter().enumerate() {
        let now = at(when);
        let e = event("Down", &format!("h{i}"), now);
        assert_eq!(
            decide(&mut state, rule, &e, &restart(&format!("c{i}")), now).1,
            *expected,
            "at {when}"
        );
    }
}

#[test]
fn replaying_the_records_rebuilds_the_same_verdicts() {
    let set = rules(
        r#"const MATCH = `alertname="Down"`; const LIMIT = "1 per 1h"; fn plan(event) { [] }"#,
    );
    let rule = &set.rules()[0];
    let s = settings("");
    let mut live = PolicyState::new(s.clone());
    let t0 = at("2026-11-22T10:00:00Z");
    let e = event("Down", "a", t0);
    let d = live.decide(
        &rule_terms(rule),
        &e,
        &restart("web"),
        t0,
        &mut BatchScope::default(),
    );
    let record = AuditRecord::new(t0, Entry::Decision(d));
    fold(&mut live, &record);
    let line = serde_json::to_string(&record).expect("serialize");
    let mut replayed = PolicyState::new(s.clone());
    fold(&mut replayed, &serde_json::from_str(&line).expect("parse"));
    let other = event("Down", "b", t0);
    let now = t0 + Duration::minutes(5);
    for state in [&live, &replayed] {
        let d = state.decide(
            &rule_terms(rule),
            &other,
            &restart("db"),
            now,
            &mut BatchScope::default(),
        );
        assert_eq!(
            (d.decision, d.reason),
            (Verdict::Suppress, Some(Reason::RateLimit))
        );
        let again = state.decide(
            &rule_terms(rule),
            &e,
            &restart("web"),
            now,
            &mut BatchScope::default(),
        );
        assert_eq!(again.reason, Some(Reason::Dedup));
    }
}

#[test]
fn the_firing_set_keeps_the_strings_of_what_is_firing_not_of_what_ever_fired() {
    let t0 = at("2026-12-01T00:00:00Z");
    let mut set = super::firing::FiringSet::default();
    // Waves of distinct alerts that fire and resolve, as a storm comes and goes.
    for wave in 0..8 {
        let events: Vec<Event> = (0..5_000)
            .map(|i| event("NodeDown", &format!("host-{wave}-{i}"), t0))
            .collect();
        for e in &events {
            set.observe(e, usize::MAX);
        }
        for e in &events {
            set.observe(
                &Event {
                    status: Status::Resolved,
                    ..e.clone()
                },
                usize::MAX,
            );
        }
        set.prune(t0 - Duration::days(1), usize::MAX);
        assert_eq!(set.len(), 0);
    }
    assert!(
        set.strings() < 6_000,
        "{} strings kept for nothing firing after 40,000 alerts came and went",
        set.strings()
    );
}

#[test]
fn a_firing_set_restored_from_its_image_answers_as_before_and_lets_go_of_every_string() {
    use crate::alertmanager::Matchers;
    let t0 = at("2026-12-01T00:00:00Z");
    let mut set = super::firing::FiringSet::default();
    let mut events: Vec<Event> = (0..2_000)
        .map(|i| event(["NodeDown", "DiskFull"][i % 2], &format!("host-{i}"), t0))
        .collect();
    // An alert without an alertname is kept too (a probe's or a hand-made one).
    let mut unnamed = event("x", "bare-host", t0);
    unnamed.labels.remove("alertname");
    unnamed.fingerprint = Fingerprint::of_labels(&unnamed.labels);
    events.push(unnamed);
    for e in &events {
        set.observe(e, usize::MAX);
    }
    let bytes = postcard::to_stdvec(&set.snapshot().image()).expect("encodes");
    let image = postcard::from_bytes(&bytes).expect("decodes");
    let mut restored = super::firing::FiringSet::from_image(image).expect("restores");
    assert_eq!(
        (restored.len(), restored.strings()),
        (set.len(), set.strings())
    );
    let any = |set: &super::firing::FiringSet, m: &str| {
        set.any(&Matchers::parse(m).expect("matchers"), t0)
    };
    for m in [
        r#"alertname="DiskFull", instance="host-1""#,
        r#"alertname="NodeDown", instance="host-1""#,
        r#"instance="bare-host""#,
    ] {
        assert_eq!(any(&restored, m), any(&set, m), "{m}");
    }
    assert!(any(&restored, r#"instance="bare-host""#));
    // Each string is held as often as the alerts and groups hold it: as they resolve,
    // the two let go of the same strings, and of all of them at the end.
    for (i, e) in events.iter().enumerate() {
        let resolved = Event {
            status: Status::Resolved,
            ..e.clone()
        };
        set.observe(&resolved, usize::MAX);
        restored.observe(&resolved, usize::MAX);
        if i % 97 == 0 {
            assert_eq!(restored.strings(), set.strings(), "after {i} resolved");
            let m = r#"alertname="NodeDown", instance="host-1998""#;
            assert_eq!(any(&restored, m), any(&set, m), "after {i} resolved");
        }
    }
    assert_eq!((restored.len(), restored.strings()), (0, 0));
}

#[test]
fn past_its_bound_the_firing_set_forgets_the_alert_seen_least_recently() {
    let t0 = at("2026-12-01T00:00:00Z");
    let mut set = super::firing::FiringSet::default();
    let seen = |instance: &str, minutes: i64| Event {
        received_at: t0 + Duration::minutes(minutes),
        ..event("NodeDown", instance, t0)
    };
    for (i, instance) in ["a", "b", "c"].into_iter().enumerate() {
        assert_eq!(set.observe(&seen(instance, i as i64), 3), 0);
    }
    // "a" is heard of again: "b" is now the one seen least recently.
    assert_eq!(set.observe(&seen("a", 3), 3), 0);
    assert_eq!(set.observe(&seen("d", 4), 3), 1);
    let firing = |instance: &str| set.since(&seen(instance, 0).fingerprint).is_some();
    assert_eq!(
        [firing("a"), firing("b"), firing("c"), firing("d")],
        [true, false, true, true]
    );
    // The ttl takes what was not heard of since the cutoff, and nothing else.
    set.prune(t0 + Duration::minutes(3), usize::MAX);
    assert_eq!(set.len(), 2);
    assert_eq!(set.strings(), 5, "alertname, NodeDown, instance, a and d");
}

#[test]
fn a_checkpoint_snapshot_is_the_state_as_it_was_while_the_state_goes_on() {
    let set = rules(PLAIN);
    let rule = &set.rules()[0];
    let t0 = at("2026-12-01T00:00:00Z");
    let mut state = PolicyState::new(settings(""));
    let events: Vec<Event> = (0..3_000)
        .map(|i| event("NodeDown", &format!("host-{i}"), t0))
        .collect();
    for (i, e) in events.iter().enumerate() {
        state.record_received(&Arc::new(e.clone()));
        if i % 10 == 0 {
            decide(&mut state, rule, e, &restart(&format!("web-{i}")), t0);
        }
    }
    let encoded = |snapshot: &super::StateSnapshot| {
        postcard::to_stdvec(&snapshot.image().expect("image")).expect("encodes")
    };
    let before = encoded(&state.snapshot());
    let snapshot = state.snapshot();
    let sizes = state.sizes();
    assert_eq!((sizes.firing, sizes.undecided), (3_000, 3_000));
    assert!(sizes.dedup > 0 && sizes.executions > 0);
    // The state goes on: alerts resolve and new ones fire, episodes are decided, and
    // a prune past every ttl forgets the rest.
    for e in events.iter().take(1_000) {
        state.observe_event(&Event {
            status: Status::Resolved,
            ..e.clone()
        });
    }
    for i in 0..1_000 {
        let e = event("DiskFull", &format!("db-{i}"), t0);
        state.record_received(&Arc::new(e.clone()));
        decide(&mut state, rule, &e, &restart(&format!("db-{i}")), t0);
    }
    state.prune(t0 + Duration::days(30));
    assert_eq!(state.sizes().firing, 0);
    let taken = encoded(&snapshot);
    assert!(before == taken, "the snapshot changed with the state");
    // And it restores to the state it was taken of.
    let restored =
        PolicyState::from_image(postcard::from_bytes(&taken).expect("decodes"), settings(""))
            .expect("restores");
    assert_eq!(restored.sizes(), sizes);
}
