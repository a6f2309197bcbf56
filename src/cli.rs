//! The command line: `salve serve|check|test|plan|audit|...`.

mod approvals;
mod lines;
mod manual;

pub use approvals::ApprovalsArgs;

use crate::audit::{AuditFilter, AuditRecord, Entry, RecordKind, TrailReader};
use crate::config::Config;
use crate::engine::{
    self, default_config_path, plan, replay, Evaluation, Overrides, Runtime, ServeOptions,
};
use crate::event::{parse_payload, Event};
use crate::logging::{self, LogFormat};
use crate::model::Verdict;
use crate::policy::PolicyState;
use crate::rule_tests::run_rule_tests;
use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "salve",
    version = crate::version::LONG,
    about = "Remediation rules engine driven by alert webhooks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The log on stderr: text, or json (an object a line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, hide_possible_values = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive alerts, decide, act, and audit.
    Serve(ServeArgs),
    /// Validate the config and every rule; exit 0 if all are valid, 1 otherwise.
    Check(CheckArgs),
    /// Run every rule's test cases (rules/NAME.test.toml); exit 0 only if all pass.
    Test(CheckArgs),
    /// Show what salve would decide for a payload, without executing anything.
    Plan(PlanArgs),
    /// Print the audit trail.
    Audit(AuditArgs),
    /// What these rules and config would have decided for a window of the trail.
    Replay(ReplayArgs),
    /// How the probes and remediation did (the last 24h unless --since): uptime, MTTR, recovery.
    Report(ReportArgs),
    /// Approvals a running salve asked for: list, show, approve, deny.
    Approvals(ApprovalsArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of every command.
    Man,
    /// Write the JSON Schemas (config, native event, audit record) into a folder.
    #[command(hide = true)]
    Schemas { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (default: salve.toml if present, else built-in defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder of .rhai rules (default: rules/).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Address to listen on (default: 127.0.0.1:9095).
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the audit trail lives (default: data/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Decide and audit everything, execute nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The config and rules a one-shot command loads (`check`, `test`).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file (default: salve.toml if present, else built-in defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Folder of .rhai rules (default: the config's rules_dir, else rules/).
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub load: CheckArgs,
    /// Decide against the history in this audit folder.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Decide as if it were this time (RFC 3339), e.g. during a maintenance window.
    #[arg(long)]
    pub at: Option<DateTime<Utc>>,
    /// Print one JSON array of decisions.
    #[arg(long)]
    pub json: bool,
    /// Decide as `salve serve --dry-run` would.
    #[arg(long)]
    pub dry_run: bool,
    /// An Alertmanager webhook body, a native event, or an array of native events.
    pub payload: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The rules and config to replay with.
    #[command(flatten)]
    pub load: CheckArgs,
    /// The folder of the recorded trail (default: the config's data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The window's start: a duration back from now (default 24h) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// The window's end, an RFC 3339 time (default: now).
    #[arg(long)]
    pub until: Option<DateTime<Utc>>,
    /// The outcome of a replayed action the recording did not run: ok or failed.
    #[arg(long, default_value = "ok")]
    pub assume: String,
    /// How an action that asks a person is answered: recorded (as the trail says),
    /// approved or denied (every one, at once).
    #[arg(long, default_value = "recorded")]
    pub approvals: String,
    /// What would live have done: decide live where salve ran in dry-run when it
    /// recorded (by default each request is decided in the mode it was recorded in).
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Where a command that reads the trail finds it, and the window it reads.
#[derive(Debug, Args)]
pub struct TrailArgs {
    /// Config file whose data_dir holds the trail (default: salve.toml if present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The folder of the audit trail (default: the config's data_dir, else data/).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only what is newer than this: a duration (1h, 30m) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The window defaults to the last 24h.
    #[command(flatten)]
    pub trail: TrailArgs,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub trail: TrailArgs,
    /// Only records about this rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only records about the alert with this fingerprint.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// e.g. docker:container/web-1
    #[arg(long)]
    pub target: Option<String>,
    /// received, decision, outcome, rule_error, evaluated, maintenance, reload
    #[arg(long)]
    pub kind: Option<String>,
    /// One JSON array.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args, cli.log_format),
        Command::Check(args) => check(args),
        Command::Test(args) => test(args),
        Command::Plan(args) => plan_command(args),
        Command::Report(args) => report(args),
        Command::Replay(args) => replay_command(args),
        Command::Approvals(args) => approvals::approvals(args),
        Command::Completions { shell } => manual::completions(shell),
        Command::Man => manual::man(),
        Command::Audit(args) => {
            // Lines the trail cannot read are warned about, as `serve` does.
            logging::init(cli.log_format, None);
            audit(args)
        }
        Command::Schemas { dir } => {
            std::fs::create_dir_all(&dir)?;
            for (name, text) in crate::schema::all() {
                std::fs::write(dir.join(name), text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: ServeArgs, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    // The log starts only once the config says whether traces go with it, so its
    // warnings are said again here.
    let config_path = default_config_path(args.config);
    let listen = match args.listen {
        None => None,
        Some(listen) => {
            Some(crate::config::parse_listen(&listen).map_err(|e| anyhow!("--listen: {e}"))?)
        }
    };
    let overrides = Overrides {
        rules_dir: args.rules,
        dry_run: args.dry_run,
        listen,
        data_dir: args.data_dir,
    };
    let runtime = overrides
        .load(config_path.as_deref())
        .map_err(|e| anyhow!("{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    {
        // The batch exporter's task is spawned on this runtime.
        let _runtime = rt.enter();
        let tracer = crate::telemetry::tracer(runtime.config.otlp_traces_endpoint.as_deref())
            .map_err(|e| anyhow!("tracing.otlp_endpoint: {e}"))?;
        logging::init(log_format, tracer);
    }
    let config_file = config_path.as_ref().map_or_else(
        || "<embedded defaults>".to_string(),
        |p| p.display().to_string(),
    );
    for warning in &runtime.config.warnings {
        tracing::warn!(config = %config_file, "{warning}");
    }
    rt.block_on(crate::serve::serve(
        runtime,
        ServeOptions {
            config_path,
            overrides,
            clock: engine::system_clock(),
        },
    ))
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config_path = default_config_path(args.config);
    match Runtime::load(config_path.as_deref(), args.rules.as_deref(), false) {
        Ok(runtime) => {
            for warning in &runtime.config.warnings {
                eprintln!("warning: {warning}\n");
            }
            for warning in runtime.rules.warnings() {
                eprintln!("{warning}\n");
            }
            let mut trial = runtime.rules.trial_errors(Utc::now());
            trial.extend(crate::rule_tests::test_case_errors(&runtime));
            if !trial.is_empty() {
                for error in &trial {
                    eprintln!("{error}\n");
                }
                return Ok(ExitCode::from(1));
            }
            if runtime.rules.is_empty() {
                // Valid, and what a wrong --rules or rules_dir looks like: said, not
                // refused, as a fresh install starts there.
                eprintln!(
                    "warning: no rule found in {} (rules are files named *.rhai); salve would receive alerts and act on none\n",
                    runtime.config.rules_dir.display()
                );
            }
            let source = config_path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into());
            println!(
                "ok: config from {source}, {} rule(s) in {}",
                runtime.rules.len(),
                runtime.config.rules_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Loads config and rules for a one-shot command; errors go to stderr as they are.
fn load_or_report(args: CheckArgs) -> Option<Runtime> {
    let config_path = default_config_path(args.config);
    match Runtime::load(config_path.as_deref(), args.rules.as_deref(), false) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn test(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(runtime) = load_or_report(args) else {
        return Ok(ExitCode::from(1));
    };
    let report = run_rule_tests(&runtime);
    print!("{}", report.output);
    println!("{} passed, {} failed", report.passed, report.failed);
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn plan_command(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let PlanArgs {
        load,
        data_dir,
        at,
        json,
        dry_run,
        payload,
    } = args;
    let Some(runtime) = load_or_report(load) else {
        return Ok(ExitCode::from(1));
    };
    let body =
        std::fs::read(&payload).with_context(|| format!("cannot read {}", payload.display()))?;
    let now = at.unwrap_or_else(Utc::now);
    let events = parse_payload(&body, now).map_err(|e| anyhow!("{}: {e}", payload.display()))?;
    let state = match &data_dir {
        Some(dir) => {
            let mut state = replay(dir, &runtime.config.policy)?;
            // What a crash left undecided is not part of the history a plan runs against.
            let _ = state.take_undecided();
            state
        }
        None => PolicyState::new(runtime.config.policy.clone()),
    };
    let dry_run = dry_run || runtime.config.policy.dry_run;
    let evaluation = plan(&runtime, state, &events, now, dry_run);
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation.decisions)?);
    } else {
        for event in &events {
            print_plan_of(event, &evaluation);
        }
    }
    print_rule_errors(&evaluation);
    Ok(if evaluation.rule_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What the plan decided about `event`, for people.
fn print_plan_of(event: &Event, evaluation: &Evaluation) {
    let alertname = event
        .labels
        .get("alertname")
        .map(String::as_str)
        .unwrap_or("-");
    println!("event {} {alertname} ({})", event.fingerprint, event.status);
    let decisions = evaluation
        .decisions
        .iter()
        .filter(|d| d.event_id == event.id);
    let errors = evaluation.records.iter().filter_map(|r| match &r.entry {
        Entry::RuleError {
            event_id,
            rule,
            error,
            ..
        } if *event_id == event.id => Some((rule, error)),
        _ => None,
    });
    let matched = evaluation.records.iter().find_map(|r| match &r.entry {
        Entry::Evaluated {
            event_id, rules, ..
        } if *event_id == event.id => Some(rules.clone()),
        _ => None,
    });
    if matched.as_ref().is_none_or(|m| m.is_empty()) {
        println!("  no rule matched");
    }
    for d in decisions {
        let verdict = match (d.decision, d.reason) {
            (Verdict::Execute, _) => "execute".to_string(),
            (Verdict::Suppress, Some(r)) => format!("suppress ({r}: {})", d.detail),
            (Verdict::Suppress, None) => "suppress".to_string(),
        };
        println!("  rule {}: {} {} -> {verdict}", d.rule, d.action, d.target);
    }
    for (rule, error) in errors {
        println!("  rule {rule}: error: {error}");
    }
}

/// Each rule error once with its source line, however many events ran into it.
fn print_rule_errors(evaluation: &Evaluation) {
    let mut shown: Vec<(String, usize)> = Vec::new();
    for (_, e) in &evaluation.rule_errors {
        let text = e.to_string();
        match shown.iter_mut().find(|(t, _)| *t == text) {
            Some((_, n)) => *n += 1,
            None => shown.push((text, 1)),
        }
    }
    for (text, n) in shown {
        if n > 1 {
            eprintln!("{text}\n(in {n} events)\n");
        } else {
            eprintln!("{text}\n");
        }
    }
}

fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditArgs {
        trail: TrailArgs {
            config,
            data_dir,
            since,
        },
        rule,
        target,
        kind,
        fingerprint,
        json,
    } = args;
    let kind = kind
        .as_deref()
        .map(str::parse::<RecordKind>)
        .transpose()
        .map_err(|e| anyhow!("--kind: {e}"))?;
    let loaded = trail_config(&data_dir, config)?;
    let trail = open_trail(data_dir, loaded.as_ref())?;
    let filter = AuditFilter {
        since,
        rule,
        target,
        kind,
        fingerprint,
        also: None,
    };
    if let Some(kept) = trail
        .reader
        .reaches_past_retention(since)
        .map_err(|e| anyhow!(e))?
    {
        eprintln!(
            "note: retention removed the records before {}; this listing begins there",
            kept.to_rfc3339()
        );
    }
    let mut records: Vec<AuditRecord> = Vec::new();
    trail
        .reader
        .read_since(filter.since, |r| {
            if filter.matches(&r) {
                records.push(r);
            }
        })
        .map_err(|e| anyhow!(e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        for r in &records {
            println!("{}", lines::describe(r));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The trail a one-shot command reads, and the data dir beside it.
struct OpenTrail {
    reader: TrailReader,
    dir: PathBuf,
    /// Runs the PostgreSQL connections while the command reads.
    _runtime: Option<tokio::runtime::Runtime>,
}

/// The trail a one-shot command reads: the files in `--data-dir`, else the config's
/// `[store]`, else the files in the config's data_dir.
fn open_trail(data_dir: Option<PathBuf>, config: Option<&Config>) -> anyhow::Result<OpenTrail> {
    let loaded;
    let config = match (&data_dir, config) {
        (Some(_), _) => None,
        (None, Some(config)) => Some(config),
        (None, None) => {
            loaded =
                Config::load(default_config_path(None).as_deref()).map_err(|e| anyhow!("{e}"))?;
            Some(&loaded)
        }
    };
    if let Some(store) = config.and_then(|c| c.store.as_ref()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let trail = runtime
            .block_on(crate::audit::PgTrail::open(store, None))
            .map_err(|e| anyhow!("{e}"))?;
        return Ok(OpenTrail {
            reader: TrailReader::Postgres(trail, runtime.handle().clone()),
            dir: config.map(|c| c.data_dir.clone()).unwrap_or_default(),
            _runtime: Some(runtime),
        });
    }
    let dir = match (data_dir, config) {
        (Some(dir), _) => dir,
        (None, Some(config)) => config.data_dir.clone(),
        (None, None) => PathBuf::from("data"),
    };
    if !dir.is_dir() {
        return Err(anyhow!(
            "{}: no audit trail here (not a folder); name the data dir with --data-dir or --config",
            dir.display()
        ));
    }
    Ok(OpenTrail {
        reader: TrailReader::Files(dir.clone()),
        dir,
        _runtime: None,
    })
}

/// The config a trail command names (`--config`), loaded only when `--data-dir` does
/// not say where the trail is.
fn trail_config(
    data_dir: &Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<Option<Config>> {
    if data_dir.is_some() {
        return Ok(None);
    }
    Config::load(default_config_path(config).as_deref())
        .map(Some)
        .map_err(|e| anyhow!("{e}"))
}

/// `--since`: an RFC 3339 time, or a duration back from now. A usage error (exit 2,
/// said by clap with the flag's name) when it is neither.
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    crate::model::time_or_ago(text, Utc::now())
        .map_err(|e| format!("{e}, or an RFC 3339 time like 2026-11-22T10:00:00Z"))
}

/// The start of a window that defaults to the last day.
fn since_or_a_day(since: Option<DateTime<Utc>>) -> DateTime<Utc> {
    since.unwrap_or_else(|| crate::model::earlier(Utc::now(), Duration::from_secs(24 * 3600)))
}

fn replay_command(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let assume: crate::replay::Assume =
        args.assume.parse().map_err(|e| anyhow!("--assume: {e}"))?;
    let answers: crate::replay::Answers = args
        .approvals
        .parse()
        .map_err(|e| anyhow!("--approvals: {e}"))?;
    let Some(runtime) = load_or_report(args.load) else {
        return Ok(ExitCode::from(1));
    };
    let trail = open_trail(args.data_dir, Some(&runtime.config))?;
    let since = since_or_a_day(args.since);
    let until = args.until.unwrap_or_else(Utc::now);
    let mode = if args.dry_run {
        crate::replay::Mode::Live
    } else {
        crate::replay::Mode::AsRecorded
    };
    let replay =
        crate::replay::replay(&trail.reader, &runtime, since, until, assume, answers, mode)
            .map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&replay)?);
    } else {
        print!("{}", replay.text());
    }
    Ok(if replay.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let loaded = trail_config(&args.trail.data_dir, args.trail.config)?;
    let trail = open_trail(args.trail.data_dir, loaded.as_ref())?;
    let since = since_or_a_day(args.trail.since);
    let report = crate::report::report(&trail.reader, &trail.dir, since, Utc::now())
        .map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::SUCCESS)
}
