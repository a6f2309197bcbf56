//! Events into decisions: the pure part that `serve`, `plan` and `salve test` share.
//! Rules plan, policy decides, and each decision is applied to the state as it is made
//! so the next intent sees it (budgets, duplicates). Nothing here writes or acts.

use super::quarantine::{Quarantine, QuarantineSettings};
use super::Runtime;
use crate::audit::{AuditRecord, Entry};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::model::{Decision, Intent};
use crate::policy::{BatchScope, PolicyState, RuleTerms, SharedHistory};
use crate::rules::{EvalContext, Rule, RuleError, ScriptEvent};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Everything one evaluation produced, in the order it must be recorded.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub records: Vec<AuditRecord>,
    pub decisions: Vec<Decision>,
    pub rule_errors: Vec<(String, RuleError)>,
    /// Rules this evaluation put in quarantine, until when, and the event that cut
    /// them off the last time.
    pub quarantined: Vec<(String, DateTime<Utc>, Event)>,
    /// Signed links of the approvals this evaluation asked, to mail once on disk.
    pub links: Vec<crate::model::ApprovalLink>,
}

/// What policy needs of a rule file.
pub fn rule_terms(rule: &Rule) -> RuleTerms<'_> {
    RuleTerms {
        name: &rule.name,
        limit: rule.limit,
        cooldown: rule.cooldown,
        mute: &rule.mute,
        dry_run: rule.dry_run,
    }
}

/// Decides intents at one instant against one state, counting verdicts in `/metrics`.
pub(super) struct Decider<'a> {
    pub state: &'a RwLock<PolicyState>,
    pub now: DateTime<Utc>,
    pub metrics: Option<&'a Metrics>,
}

impl Decider<'_> {
    /// Decides one intent and applies the decision to the state at once, so the next
    /// intent sees it (budgets, duplicates); returns it with the audit record that must
    /// be written before anything runs.
    pub fn decide(
        &self,
        rule: &RuleTerms,
        event: &Event,
        intent: &Intent,
        batch: &mut BatchScope,
    ) -> (Decision, AuditRecord) {
        let mut st = self.state.write();
        let mut decision = st.decide_and_record(rule, event, intent, self.now, batch);
        drop(st);
        // After the state took it: the trace id is the record's, never the state's.
        decision.trace_id = crate::telemetry::trace_id(&event.id);
        crate::telemetry::verdict(&decision);
        let record = AuditRecord::new(self.now, Entry::Decision(decision.clone()));
        count_decision(self.metrics, &decision);
        (decision, record)
    }
}

/// One rule's plan for one event, made ahead of its turn.
struct Planned<'a> {
    event: usize,
    rule: &'a Rule,
    history: Arc<SharedHistory>,
    result: Result<Vec<Intent>, RuleError>,
    /// Why salve stopped or did not run it: cut off, skipped or quarantined.
    reason: Option<SalveReason>,
}

/// Why a rule error was salve's doing rather than the rule's: the `reason` of a
/// `rule_error` record, whose names are a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SalveReason {
    /// Stopped by a limit (time, operations).
    CutOff,
    /// Not run: cut off earlier in the same round.
    Skipped,
    Quarantined,
    /// Its intents past `engine.max_intents` were dropped.
    MaxIntents,
}

impl SalveReason {
    fn as_str(self) -> &'static str {
        match self {
            SalveReason::CutOff => "cut_off",
            SalveReason::Skipped => "skipped",
            SalveReason::Quarantined => "quarantined",
            SalveReason::MaxIntents => "max_intents",
        }
    }
}

/// The quarantine a live round keeps (a plan of `salve plan` keeps none).
pub struct Quarantining<'a> {
    pub quarantine: &'a parking_lot::Mutex<Quarantine>,
    pub settings: QuarantineSettings,
}

/// What every plan of a round shares.
struct Round<'a> {
    runtime: &'a Runtime,
    state: &'a Arc<RwLock<PolicyState>>,
    now: DateTime<Utc>,
    metrics: Option<&'a Metrics>,
    /// Rules in quarantine, and until when.
    quarantined: HashMap<String, DateTime<Utc>>,
    /// Rules cut off in this round: their other plans of the round are not run, so a
    /// round waits on one slow rule for about its budget, not once per alert.
    cut: parking_lot::Mutex<HashSet<String>>,
}

impl Round<'_> {
    /// Runs `rule`'s `plan()` on the `event`-th event, with history as of the
    /// `as_of`-th execution.
    fn plan<'r>(&self, events: &[&Event], event: usize, rule: &'r Rule, as_of: u64) -> Planned<'r> {
        let history = Arc::new(SharedHistory::as_of(self.state.clone(), as_of));
        let not_run = |message: String, reason| Planned {
            event,
            rule,
            history: history.clone(),
            result: Err(RuleError::at_offset(
                &rule.path,
                rule.source(),
                None,
                message,
            )),
            reason: Some(reason),
        };
        if let Some(until) = self.quarantined.get(&rule.name) {
            return not_run(
                format!(
                    "not run: quarantined until {} after being cut off again and again",
                    until.to_rfc3339()
                ),
                SalveReason::Quarantined,
            );
        }
        if self.cut.lock().contains(&rule.name) {
            return not_run(
                "not run: cut off earlier in this round".into(),
                SalveReason::Skipped,
            );
        }
        let ctx = EvalContext {
            now: self.now,
            history: history.clone(),
        };
        let started = Instant::now();
        let result =
            self.runtime
                .rules
                .evaluate_prepared(rule, ScriptEvent::of(events[event]), &ctx);
        if let Some(m) = self.metrics {
            m.rule_evaluated(started.elapsed());
        }
        let cut_off = result.as_ref().is_err_and(|e| e.cut_off);
        if cut_off {
            self.cut.lock().insert(rule.name.clone());
        }
        Planned {
            event,
            rule,
            history,
            result,
            reason: cut_off.then_some(SalveReason::CutOff),
        }
    }
}

/// Runs rules and policy over one notification's events.
pub fn evaluate_events(
    runtime: &Runtime,
    state: &Arc<RwLock<PolicyState>>,
    events: &[Event],
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Evaluation {
    round(
        runtime,
        state,
        &[events],
        Settings {
            now,
            metrics,
            quarantining: None,
            dry_run: None,
            unobserved: true,
        },
    )
}

/// Runs rules and policy over a round of notifications, each decided on its own and in
/// arrival order. Every rule of the round plans at once, on every core, against
/// history as the round began; when its notification's turn comes, a plan whose
/// `recent()` answers the decisions before it changed is made again (rules are pure,
/// so a plan with the same answers is the same plan). The state is locked once per
/// notification to decide its intents.
pub fn evaluate_round<E: Borrow<Event>>(
    runtime: &Runtime,
    state: &Arc<RwLock<PolicyState>>,
    notifications: &[impl AsRef<[E]>],
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
    quarantining: Option<Quarantining>,
) -> Evaluation {
    // Live, every event was folded into the state (firing set included) when it was
    // recorded, before its turn came.
    round(
        runtime,
        state,
        notifications,
        Settings {
            now,
            metrics,
            quarantining,
            dry_run: None,
            unobserved: false,
        },
    )
}

/// `evaluate_round` for replay: each notification decided in the mode given for it
/// (dry-run or live), the one salve was in when it was recorded, whatever the state's
/// settings say.
pub fn replay_round<E: Borrow<Event>>(
    runtime: &Runtime,
    state: &Arc<RwLock<PolicyState>>,
    notifications: &[impl AsRef<[E]>],
    now: DateTime<Utc>,
    dry_run: &[bool],
) -> Evaluation {
    round(
        runtime,
        state,
        notifications,
        Settings {
            now,
            metrics: None,
            quarantining: None,
            dry_run: Some(dry_run),
            unobserved: true,
        },
    )
}

/// How a round runs.
struct Settings<'a> {
    now: DateTime<Utc>,
    metrics: Option<&'a Metrics>,
    quarantining: Option<Quarantining<'a>>,
    /// The mode of each notification, for replay.
    dry_run: Option<&'a [bool]>,
    /// The events are not in the state's firing set yet (a plan, a replay): the round
    /// puts them there before its rules ask `firing()`.
    unobserved: bool,
}

fn round<E: Borrow<Event>>(
    runtime: &Runtime,
    state: &Arc<RwLock<PolicyState>>,
    notifications: &[impl AsRef<[E]>],
    settings: Settings,
) -> Evaluation {
    use rayon::prelude::*;
    let Settings {
        now,
        metrics,
        quarantining,
        dry_run,
        unobserved,
    } = settings;
    let mut out = Evaluation::default();
    let round_as_of = if unobserved {
        let mut st = state.write();
        for event in notifications.iter().flat_map(|n| n.as_ref()) {
            st.observe_event(event.borrow());
        }
        st.executions_recorded()
    } else {
        state.read().executions_recorded()
    };
    let events: Vec<&Event> = notifications
        .iter()
        .flat_map(|n| n.as_ref().iter().map(Borrow::borrow))
        .collect();
    let matched: Vec<Vec<&Rule>> = events
        .iter()
        .map(|e| runtime.rules.matching(&e.labels))
        .collect();
    let jobs: Vec<(usize, &Rule)> = matched
        .iter()
        .enumerate()
        .flat_map(|(i, rules)| rules.iter().map(move |r| (i, *r)))
        .collect();
    let round = Round {
        runtime,
        state,
        now,
        metrics,
        quarantined: in_quarantine(quarantining.as_ref(), &jobs, now),
        cut: parking_lot::Mutex::new(HashSet::new()),
    };
    let plans: Vec<Planned> = jobs
        .par_iter()
        .map(|(i, rule)| {
            let _run = crate::telemetry::rule_run(&events[*i].id, &rule.name).entered();
            round.plan(&events, *i, rule, round_as_of)
        })
        .collect();
    if let Some(q) = &quarantining {
        out.quarantined = quarantine_cut_off(q, &plans, &events, now, metrics);
    }
    let mut plans = plans.into_iter().peekable();
    let mut first = 0;
    for (n, notification) in notifications.iter().enumerate() {
        let range = first..first + notification.as_ref().len();
        first = range.end;
        let mut mine: Vec<Planned> = Vec::new();
        while let Some(p) = plans.next_if(|p| range.contains(&p.event)) {
            mine.push(p);
        }
        let as_of = state.read().executions_recorded();
        for planned in &mut mine {
            let holds =
                planned.reason.is_some() || planned.history.answers_hold(&state.read(), as_of);
            if !holds {
                *planned = round.plan(&events, planned.event, planned.rule, as_of);
            }
        }
        let mode = dry_run.and_then(|modes| modes.get(n).copied());
        decide_notification(&round, &events, range, mine, mode, &mut out);
    }
    let mut st = state.write();
    st.maybe_prune(now);
    out
}

/// The rules of `jobs` in quarantine now, and until when.
fn in_quarantine(
    quarantining: Option<&Quarantining>,
    jobs: &[(usize, &Rule)],
    now: DateTime<Utc>,
) -> HashMap<String, DateTime<Utc>> {
    let Some(q) = quarantining else {
        return HashMap::new();
    };
    let mut quarantine = q.quarantine.lock();
    let names: HashSet<&str> = jobs.iter().map(|(_, r)| r.name.as_str()).collect();
    names
        .into_iter()
        .filter_map(|name| Some((name.to_string(), quarantine.until(name, now)?)))
        .collect()
}

/// Counts this round's cut-off plans against their rules; returns the rules that are
/// quarantined for it, until when, and the event that tipped them over.
fn quarantine_cut_off(
    q: &Quarantining,
    plans: &[Planned],
    events: &[&Event],
    now: DateTime<Utc>,
    metrics: Option<&Metrics>,
) -> Vec<(String, DateTime<Utc>, Event)> {
    let mut quarantine = q.quarantine.lock();
    let mut quarantined = Vec::new();
    for planned in plans
        .iter()
        .filter(|p| p.reason == Some(SalveReason::CutOff))
    {
        let name = &planned.rule.name;
        if let Some(until) = quarantine.cut_off(name, now, q.settings) {
            tracing::warn!(rule = %name, until = %until.to_rfc3339(), after = q.settings.after,
                "rule quarantined: cut off again and again; its events are recorded as rule errors until then");
            if let Some(m) = metrics {
                m.rule_quarantined(name);
            }
            quarantined.push((name.clone(), until, events[planned.event].clone()));
        }
    }
    quarantined
}

/// Decides one notification's plans in order, under one lock of the state, and lays
/// out its records: per event, its rule errors and decisions, then `evaluated`.
fn decide_notification(
    round: &Round,
    events: &[&Event],
    range: std::ops::Range<usize>,
    plans: Vec<Planned>,
    dry_run: Option<bool>,
    out: &mut Evaluation,
) {
    let (now, metrics) = (round.now, round.metrics);
    let mut batch = BatchScope::default();
    let mut st = round.state.write();
    if let Some(dry_run) = dry_run {
        st.set_dry_run(dry_run);
    }
    let mut plans = plans.into_iter().peekable();
    for index in range {
        let event = events[index];
        let mut evaluated = Vec::new();
        while let Some(planned) = plans.next_if(|p| p.event == index) {
            let rule = planned.rule;
            evaluated.push(rule.name.clone());
            match planned.result {
                Ok(mut intents) => {
                    let max = round.runtime.config.max_intents;
                    if intents.len() > max {
                        let dropped = intents.len() - max;
                        intents.truncate(max);
                        let error = format!(
                            "plan() returned {} intents; the {dropped} past engine.max_intents ({max}) were dropped",
                            max + dropped
                        );
                        tracing::warn!(rule = %rule.name, fingerprint = %event.fingerprint, %error, "rule returned too many intents");
                        out.records.push(rule_error(
                            round,
                            event,
                            rule,
                            error,
                            Some(SalveReason::MaxIntents),
                        ));
                    }
                    for intent in intents {
                        let mut decision = st.decide_and_record(
                            &rule_terms(rule),
                            event,
                            &intent,
                            now,
                            &mut batch,
                        );
                        // After the state took it: the record's, never the state's.
                        decision.trace_id = crate::telemetry::trace_id(&event.id);
                        crate::telemetry::verdict(&decision);
                        count_decision(metrics, &decision);
                        out.records
                            .push(AuditRecord::new(now, Entry::Decision(decision.clone())));
                        if super::approvals::asks_anew(&st, &decision) {
                            if let Some((request, links)) = super::approvals::request_of(
                                round.runtime,
                                rule,
                                event,
                                &decision,
                                now,
                            ) {
                                st.record_approval_requested(&request);
                                out.records.push(AuditRecord::new(
                                    now,
                                    Entry::ApprovalRequested(Box::new(request)),
                                ));
                                out.links.extend(links);
                            }
                        }
                        out.decisions.push(decision);
                    }
                }
                Err(err) => {
                    // Not warned of per alert when salve did not run it: the cut-off or
                    // quarantine behind that was.
                    if !matches!(
                        planned.reason,
                        Some(SalveReason::Quarantined | SalveReason::Skipped)
                    ) {
                        tracing::warn!(rule = %rule.name, fingerprint = %event.fingerprint, error = %err.short(), "rule failed");
                    }
                    out.records
                        .push(rule_error(round, event, rule, err.short(), planned.reason));
                    out.rule_errors.push((rule.name.clone(), err));
                }
            }
        }
        out.records.push(AuditRecord::new(
            now,
            Entry::Evaluated {
                event_id: event.id.clone(),
                fingerprint: event.fingerprint.clone(),
                rules: evaluated,
            },
        ));
    }
}

/// A rule's failure on an event, counted in `/metrics`, as the trail records it.
fn rule_error(
    round: &Round,
    event: &Event,
    rule: &Rule,
    error: String,
    reason: Option<SalveReason>,
) -> AuditRecord {
    if let Some(m) = round.metrics {
        m.rule_failed(&rule.name);
    }
    AuditRecord::new(
        round.now,
        Entry::RuleError {
            event_id: event.id.clone(),
            fingerprint: event.fingerprint.clone(),
            rule: rule.name.clone(),
            error,
            reason: reason.map(|r| r.as_str().to_string()),
        },
    )
}

fn count_decision(metrics: Option<&Metrics>, decision: &Decision) {
    if let Some(m) = metrics {
        let verdict = if decision.executes() {
            "execute"
        } else {
            "suppress"
        };
        m.decided(verdict, decision.reason.map(|r| r.as_str()).unwrap_or(""));
    }
}

/// What the policy would decide for `events` at `now`, against a copy of `state`;
/// nothing is recorded or executed.
pub fn plan(
    runtime: &Runtime,
    mut state: PolicyState,
    events: &[Event],
    now: DateTime<Utc>,
    dry_run: bool,
) -> Evaluation {
    let mut settings = runtime.config.policy.clone();
    settings.dry_run = dry_run;
    state.set_settings(settings);
    let state = Arc::new(RwLock::new(state));
    let mut evaluation = evaluate_events(runtime, &state, events, now, None);
    // A plan asks nobody: it says whom it would ask.
    for decision in &mut evaluation.decisions {
        if decision.reason == Some(crate::model::Reason::AwaitingApproval) {
            if let Some(rest) = decision.detail.strip_prefix("asks ") {
                decision.detail = format!("would ask {rest}");
            }
        }
    }
    evaluation.links.clear();
    evaluation
}
