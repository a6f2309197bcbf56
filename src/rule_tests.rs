//! `salve test`: each rule's cases in `rules/NAME.test.toml`, run offline.

use crate::engine::{plan, Runtime};
use crate::event::{parse_payload, Event, Fingerprint, Labels, Status};
use crate::model::rate::parse_duration;
use crate::model::{Action, Target};
use crate::model::{Decision, Reason, Verdict};
use crate::policy::{PolicySettings, PolicyState};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    case: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    /// When the case happens. Default: one minute after the first event started.
    at: Option<DateTime<Utc>>,
    /// An Alertmanager payload or native event file, relative to the test file.
    fixture: Option<PathBuf>,
    #[serde(default)]
    events: Vec<TestEvent>,
    /// Actions executed before `at`.
    #[serde(default)]
    history: Vec<PastAction>,
    /// Other alerts firing at `at`, for `firing()`.
    #[serde(default)]
    firing: Vec<Labels>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    expect: Vec<Expected>,
    /// A substring the rule's error must contain, for cases that test a failure.
    expect_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestEvent {
    #[serde(default = "default_status")]
    status: Status,
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    starts_at: Option<DateTime<Utc>>,
    #[serde(default = "default_source")]
    source: String,
}

fn default_status() -> Status {
    Status::Firing
}

fn default_source() -> String {
    "test".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PastAction {
    action: Action,
    target: Target,
    ago: String,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    action: Action,
    target: Target,
    #[serde(default = "default_verdict")]
    decision: Verdict,
    reason: Option<Reason>,
}

fn default_verdict() -> Verdict {
    Verdict::Execute
}

fn describe(action: Action, target: &Target, decision: Verdict, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{action} {target} -> {} ({r})", verdict_str(decision)),
        None => format!("{action} {target} -> {}", verdict_str(decision)),
    }
}

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Execute => "execute",
        Verdict::Suppress => "suppress",
    }
}

#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    /// Human-readable lines: one per case, with a diff for each failure.
    pub output: String,
}

/// Runs every `*.test.toml` beside the rules in `runtime`'s rule folder.
pub fn run_rule_tests(runtime: &Runtime) -> TestReport {
    let mut report = TestReport::default();
    let dir = &runtime.config.rules_dir;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.toml"))
        })
        .collect();
    files.sort();
    for rule in runtime.rules.rules() {
        if !files.iter().any(|f| test_rule_name(f) == rule.name) {
            let _ = writeln!(
                report.output,
                "note: rule {} has no test cases ({}.test.toml)",
                rule.name, rule.name
            );
        }
    }
    for file in files {
        let rule_name = test_rule_name(&file);
        let Some(rules) = runtime.rules.only(&rule_name) else {
            report.failed += 1;
            let _ = writeln!(
                report.output,
                "FAIL {}: no rule {rule_name}.rhai beside it",
                file.display()
            );
            continue;
        };
        let cases = match read_test_file(&file) {
            Ok(t) => t.case,
            Err(e) => {
                report.failed += 1;
                let _ = writeln!(report.output, "FAIL {}: {e}", file.display());
                continue;
            }
        };
        let single = Runtime {
            config: runtime.config.clone(),
            rules,
        };
        for case in cases {
            match run_case(&single, &file, &case) {
                Ok(()) => {
                    report.passed += 1;
                    let _ = writeln!(report.output, "ok   {rule_name}: {}", case.name);
                }
                Err(why) => {
                    report.failed += 1;
                    let _ = writeln!(report.output, "FAIL {rule_name}: {}\n{why}", case.name);
                }
            }
        }
    }
    report
}

/// Why a `*.test.toml` could not be read.
#[derive(Debug, thiserror::Error)]
enum TestFileError {
    #[error("{0}")]
    Read(#[from] std::io::Error),
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
}

fn read_test_file(file: &Path) -> Result<TestFile, TestFileError> {
    let text = std::fs::read_to_string(file)?;
    Ok(toml::from_str(&text)?)
}

fn test_rule_name(file: &Path) -> String {
    file.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".test.toml"))
        .unwrap_or_default()
        .to_string()
}

/// Why a test case failed, as `salve test` prints it below the case's name.
#[derive(Debug, thiserror::Error)]
enum CaseFailure {
    #[error("  cannot read fixture {}: {source}", path.display())]
    FixtureUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("  fixture {}: {source}", path.display())]
    FixtureInvalid {
        path: PathBuf,
        #[source]
        source: crate::event::PayloadError,
    },
    #[error("  the case has no `fixture` and no `events`")]
    NoEvents,
    #[error("  history[{index}].ago: {source}")]
    HistoryAgo {
        index: usize,
        #[source]
        source: crate::model::rate::ParseError,
    },
    #[error("  history[{index}].ago: {source}")]
    HistoryTooFarBack {
        index: usize,
        #[source]
        source: chrono::OutOfRangeError,
    },
    #[error("  expected an error containing {expected:?}, got:\n{got}")]
    OtherError {
        expected: String,
        got: Box<crate::rules::RuleError>,
    },
    #[error("  expected an error containing {0:?}, but the rule succeeded")]
    NoError(String),
    #[error("  the rule failed:\n{0}")]
    RuleFailed(Box<crate::rules::RuleError>),
    /// The decisions differ from the expected ones: the diff, expected first.
    #[error("{0}")]
    Decisions(String),
}

fn run_case(runtime: &Runtime, file: &Path, case: &TestCase) -> Result<(), CaseFailure> {
    let evaluation = evaluate_case(runtime, file, case)?;
    judge(case, &evaluation)
}

/// The rule errors a rule's own test cases run into, where the case does not expect
/// one: what `salve check` reports besides its trial runs.
pub fn test_case_errors(runtime: &Runtime) -> Vec<crate::rules::RuleError> {
    let mut errors: Vec<crate::rules::RuleError> = Vec::new();
    for rule in runtime.rules.rules() {
        let file = runtime
            .config
            .rules_dir
            .join(format!("{}.test.toml", rule.name));
        let Some(cases) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| toml::from_str::<TestFile>(&text).ok())
            .map(|t| t.case)
        else {
            continue;
        };
        let Some(rules) = runtime.rules.only(&rule.name) else {
            continue;
        };
        let single = Runtime {
            config: runtime.config.clone(),
            rules,
        };
        for case in cases.iter().filter(|c| c.expect_error.is_none()) {
            let Ok(evaluation) = evaluate_case(&single, &file, case) else {
                continue;
            };
            for (_, mut error) in evaluation.rule_errors {
                error.message = format!("in test case {:?}: {}", case.name, error.message);
                if !errors.contains(&error) {
                    errors.push(error);
                }
            }
        }
    }
    errors
}

fn evaluate_case(
    runtime: &Runtime,
    file: &Path,
    case: &TestCase,
) -> Result<crate::engine::Evaluation, CaseFailure> {
    let placeholder = DateTime::<Utc>::UNIX_EPOCH;
    let mut events: Vec<Event> = Vec::new();
    if let Some(fixture) = &case.fixture {
        let path = file.parent().unwrap_or(Path::new(".")).join(fixture);
        let body = std::fs::read(&path).map_err(|source| CaseFailure::FixtureUnreadable {
            path: path.clone(),
            source,
        })?;
        events.extend(parse_payload(&body, placeholder).map_err(|source| {
            CaseFailure::FixtureInvalid {
                path: path.clone(),
                source,
            }
        })?);
    }
    for e in &case.events {
        let starts_at = e.starts_at.unwrap_or(placeholder);
        events.push(Event {
            id: crate::event::new_event_id(),
            source: e.source.clone(),
            status: e.status,
            fingerprint: Fingerprint::of_labels(&e.labels),
            labels: e.labels.clone(),
            annotations: e.annotations.clone(),
            starts_at,
            ends_at: None,
            generator_url: String::new(),
            received_at: placeholder,
        });
    }
    if events.is_empty() {
        return Err(CaseFailure::NoEvents);
    }
    let at = case.at.unwrap_or_else(|| {
        let first = events
            .iter()
            .map(|e| e.starts_at)
            .min()
            .unwrap_or(placeholder);
        first + chrono::Duration::minutes(1)
    });
    // An alert the case gives no start began a minute before the case, as `at`'s
    // default says: `.after()` and the like see an alert that has fired a while.
    for e in &mut events {
        e.received_at = at;
        if e.starts_at == placeholder {
            e.starts_at = crate::model::earlier(at, std::time::Duration::from_secs(60));
        }
    }

    let rule_name = runtime
        .rules
        .rules()
        .first()
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let state = history_state(case, at, &rule_name, &runtime.config.policy)?;
    Ok(plan(runtime, state, &events, at, case.dry_run))
}

fn judge(case: &TestCase, evaluation: &crate::engine::Evaluation) -> Result<(), CaseFailure> {
    if let Some(expected) = &case.expect_error {
        return match evaluation.rule_errors.first() {
            Some((_, e)) if e.to_string().contains(expected.as_str()) => Ok(()),
            Some((_, e)) => Err(CaseFailure::OtherError {
                expected: expected.clone(),
                got: Box::new(e.clone()),
            }),
            None => Err(CaseFailure::NoError(expected.clone())),
        };
    }
    if let Some((_, e)) = evaluation.rule_errors.first() {
        return Err(CaseFailure::RuleFailed(Box::new(e.clone())));
    }
    let actual: Vec<String> = evaluation
        .decisions
        .iter()
        .map(|d: &Decision| describe(d.action, &d.target, d.decision, d.reason))
        .collect();
    let expected: Vec<String> = case
        .expect
        .iter()
        .map(|e| describe(e.action, &e.target, e.decision, e.reason))
        .collect();
    if actual == expected {
        return Ok(());
    }
    let expected_text = expected.join("\n") + "\n";
    let actual_text = actual.join("\n") + "\n";
    let diff = similar::TextDiff::from_lines(&expected_text, &actual_text);
    let mut out = String::from("  --- expected\n  +++ actual\n");
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        let _ = write!(out, "  {sign} {change}");
    }
    Err(CaseFailure::Decisions(out))
}

/// A policy state holding the case's past actions and firing alerts.
fn history_state(
    case: &TestCase,
    at: DateTime<Utc>,
    rule: &str,
    settings: &PolicySettings,
) -> Result<PolicyState, CaseFailure> {
    let mut state = PolicyState::new(settings.clone());
    for (i, past) in case.history.iter().enumerate() {
        let ago = parse_duration(&past.ago)
            .map_err(|source| CaseFailure::HistoryAgo { index: i, source })?;
        let when = at
            - chrono::Duration::from_std(ago)
                .map_err(|source| CaseFailure::HistoryTooFarBack { index: i, source })?;
        for n in 0..past.count {
            let decision = Decision {
                id: format!("history-{i}-{n}"),
                event_id: format!("history-{i}"),
                fingerprint: Fingerprint(format!("history-{i}")),
                starts_at: when,
                status: Status::Firing,
                rule: rule.to_string(),
                action: past.action,
                target: past.target.clone(),
                params: Default::default(),
                decision: Verdict::Execute,
                reason: None,
                detail: String::new(),
                dry_run: false,
                reconsider_at: None,
                approval: None,
                trace_id: None,
            };
            state.record_decision(&decision, when);
        }
    }
    for (i, labels) in case.firing.iter().enumerate() {
        let event = Event {
            id: format!("firing-{i}"),
            source: "test".into(),
            status: Status::Firing,
            fingerprint: Fingerprint::of_labels(labels),
            labels: labels.clone(),
            annotations: Labels::new(),
            starts_at: at,
            ends_at: None,
            generator_url: String::new(),
            received_at: at,
        };
        state.observe_event(&event);
    }
    Ok(state)
}
