//! The bodies of the fuzz targets (`fuzz/fuzz_targets/`), here so that the fuzzers and
//! `cargo test` (`tests/it/fuzz_smoke.rs`) run the same code on the same inputs.
//!
//! Each function takes any bytes and must never panic: that is the property the
//! fuzzers check. Errors are what salve answers to bad input and are dropped here.
//! Where salve writes something it must read back (a trail line, a checkpoint, a
//! matcher or a rate printed in canonical form), the function asserts that it does:
//! such an assertion failing is a bug the fuzzer found, like a panic.
//!
//! Not part of salve's interface: hidden from the docs, used by nothing else.

use crate::alertmanager::{Matchers, TimeInterval, TimeIntervalConfig};
use crate::audit::{AuditRecord, Entry, TrailPosition};
use crate::config::Config;
use crate::engine::{
    checkpoint_bytes, fold, frame_checkpoint_body, plan, restore_checkpoint, Runtime,
};
use crate::event::{
    parse_alertmanager, parse_native, parse_payload, Event, EventLimits, Fingerprint, Labels,
    Status,
};
use crate::model::{earlier, format_duration, later, parse_duration, RateLimit};
use crate::policy::{PolicySettings, PolicyState};
use crate::rules::{RuleBudget, RuleSet, ScriptEvent};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// The moment every target's events arrive: fixed, so that a crash reproduces.
fn received_at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_796_135_823, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// An Alertmanager webhook body, as `POST /api/v1/alerts/alertmanager` takes it, and
/// as the endpoint that takes any payload does.
pub fn alertmanager_payload(data: &[u8]) {
    if let Ok(events) = parse_alertmanager(data, received_at()) {
        after_intake(&events);
    }
    if let Ok(events) = parse_payload(data, received_at()) {
        after_intake(&events);
    }
}

/// A native event body (one event or an array), as `POST /api/v1/events` takes it.
pub fn native_payload(data: &[u8]) {
    if let Ok(events) = parse_native(data, received_at()) {
        after_intake(&events);
    }
}

/// What happens to parsed events before any rule sees them: the limits are checked,
/// each is written to the trail (and must read back as the same line), fingerprinted
/// and handed to rules in their form, and folded into a state.
fn after_intake(events: &[Event]) {
    let _ = EventLimits::default().check(events);
    let mut state = PolicyState::new(policy_settings());
    for event in events {
        let _ = Fingerprint::of_labels(&event.labels);
        let _ = ScriptEvent::of(event);
        let record = AuditRecord::new(
            event.received_at,
            Entry::Received {
                event: std::sync::Arc::new(event.clone()),
                unmatched: false,
                trace_id: None,
            },
        );
        assert_line_reads_back(&record);
        fold(&mut state, &record);
    }
}

/// Alertmanager label matchers (`MATCH`, `mute_matchers`, the API's filters). What
/// parses must print canonically and parse back to itself; then it is matched against
/// its own values (so regexes meet text they were written for) and the input itself.
pub fn matchers(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let Ok(parsed) = Matchers::parse(&input) else {
        return;
    };
    let printed = parsed.to_string();
    match Matchers::parse(&printed) {
        Ok(again) => assert_eq!(again, parsed, "{input:?} printed as {printed:?}"),
        Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
    }
    let own: Labels = parsed
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    let _ = parsed.matches(&own);
    let _ = parsed.matches(&Labels::new());
    for m in parsed.iter() {
        let _ = m.matches_value(&input);
    }
    let _ = parsed.index_key();
    let _ = parsed.match_everything();
}

/// A `[[time_intervals]]` table as `salve.toml` holds it, asked about an instant:
/// the first 8 bytes are the instant (seconds since 1970, any i64), the rest the TOML.
pub fn time_intervals(data: &[u8]) {
    let (instant, text) = split_i64(data);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(config) = toml::from_str::<TimeIntervalConfig>(text) else {
        return;
    };
    let Ok(interval) = TimeInterval::compile(&config) else {
        return;
    };
    // Any instant chrono can hold, and the extremes: a mute is asked about `now`,
    // and `now` is whatever the clock says.
    let at = Utc
        .timestamp_opt(instant, 0)
        .single()
        .unwrap_or(received_at());
    for at in [
        at,
        received_at(),
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
    ] {
        let _ = interval.contains(at);
    }
}

/// Durations ("15m") and rates ("3 per 15m per target") as rules and the config
/// write them. What parses must print as something that parses to the same value,
/// and moving any instant by it must not overflow.
pub fn durations_and_rates(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    if let Ok(duration) = parse_duration(&input) {
        let printed = format_duration(duration);
        assert_eq!(
            parse_duration(&printed).ok(),
            Some(duration),
            "{input:?} printed as {printed:?}"
        );
        for at in [
            received_at(),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            let _ = earlier(at, duration);
            let _ = later(at, duration);
        }
    }
    if let Ok(rate) = RateLimit::parse(&input) {
        let printed = rate.to_string();
        assert_eq!(
            RateLimit::parse(&printed).ok(),
            Some(rate),
            "{input:?} printed as {printed:?}"
        );
    }
}

/// A rule compiled and planned as `salve plan` does, on one event, twice: the second
/// time against the state the first one's records left, so limits, cooldowns and
/// `recent()` have something to count. The input is lines:
///
/// ```text
/// MATCH's value
/// LIMIT's value (empty: none)
/// COOLDOWN's value (empty: none)
/// the event's labels, name=value,name=value
/// the event's status (resolved, or anything else for firing)
/// the rest of the rule, `fn plan(event)` and whatever it calls
/// ```
pub fn rule_and_plan(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(6, '\n');
    let mut next = || lines.next().unwrap_or("");
    let (matchers, limit, cooldown, labels, status, body) =
        (next(), next(), next(), next(), next(), next());
    let mut rule = format!("const MATCH = {};\n", rhai_string(matchers));
    if !limit.is_empty() {
        rule.push_str(&format!("const LIMIT = {};\n", rhai_string(limit)));
    }
    if !cooldown.is_empty() {
        rule.push_str(&format!("const COOLDOWN = {};\n", rhai_string(cooldown)));
    }
    rule.push_str(body);
    // A small budget: a fuzzed loop is cut off quickly, and being cut off is a path too.
    let budget = RuleBudget {
        operations: 20_000,
        backstop: Duration::from_secs(1),
    };
    let Ok(rules) = RuleSet::from_sources(
        vec![(PathBuf::from("fuzz.rhai"), rule)],
        &HashSet::new(),
        budget,
    ) else {
        return;
    };
    let runtime = Runtime {
        config: Config::defaults(),
        rules,
    };
    let labels: Labels = labels
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let now = received_at();
    let event = Event {
        id: "fuzz-event".to_string(),
        source: "fuzz".to_string(),
        status: if status == "resolved" {
            Status::Resolved
        } else {
            Status::Firing
        },
        fingerprint: Fingerprint::of_labels(&labels),
        labels,
        annotations: Labels::new(),
        starts_at: earlier(now, Duration::from_secs(600)),
        ends_at: None,
        generator_url: String::new(),
        received_at: now,
    };
    let mut state = PolicyState::new(runtime.config.policy.clone());
    let first = plan(
        &runtime,
        state.clone(),
        std::slice::from_ref(&event),
        now,
        false,
    );
    for record in &first.records {
        fold(&mut state, record);
    }
    let then = later(now, Duration::from_secs(30));
    let _ = plan(&runtime, state, &[event], then, false);
}

/// The bytes of a checkpoint file, restored as start-up restores one. The first byte
/// chooses how the rest is read: 0, the whole file (header and all); anything else,
/// the body alone, framed with a valid header and checksum, which a fuzzer could never
/// produce itself, so that the decoder behind the checksum is fuzzed too.
pub fn checkpoint(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let settings = policy_settings();
    let _ = if mode == 0 {
        restore_checkpoint(rest, &settings)
    } else {
        restore_checkpoint(&frame_checkpoint_body(rest), &settings)
    };
}

/// Lines of the audit trail, read as start-up and `salve audit` read them. Each line
/// that reads must be written back as a line that reads as the same record; every
/// record is folded into one state, which must then checkpoint and restore.
pub fn trail_line(data: &[u8]) {
    let mut state = PolicyState::new(policy_settings());
    for line in data.split(|b| *b == b'\n') {
        let Ok(record) = AuditRecord::from_line(line) else {
            continue;
        };
        let _ = (record.kind(), record.rule(), record.target());
        assert_line_reads_back(&record);
        fold(&mut state, &record);
    }
    let position = TrailPosition {
        inode: 1,
        offset: data.len() as u64,
    };
    match checkpoint_bytes(&state, position) {
        Ok(bytes) => {
            if let Err(e) = restore_checkpoint(&bytes, &policy_settings()) {
                panic!("the state these trail lines leave does not checkpoint and restore: {e}");
            }
        }
        Err(e) => panic!("the state these trail lines leave cannot be checkpointed: {e}"),
    }
}

/// The record as the trail writes it, read back and written again: the same line.
fn assert_line_reads_back(record: &AuditRecord) {
    let mut line = Vec::new();
    if record.write_line(&mut line).is_err() {
        return;
    }
    let body = line.strip_suffix(b"\n").unwrap_or(&line);
    let read = match AuditRecord::from_line(body) {
        Ok(read) => read,
        Err(e) => panic!(
            "a line salve writes does not read back: {e}: {}",
            String::from_utf8_lossy(body)
        ),
    };
    let mut again = Vec::new();
    if read.write_line(&mut again).is_ok() {
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&line),
            "a trail line changes when read and written again"
        );
    }
}

fn policy_settings() -> PolicySettings {
    Config::defaults().policy
}

/// The first 8 bytes as a little-endian i64 (missing bytes are 0), and the rest.
fn split_i64(data: &[u8]) -> (i64, &[u8]) {
    let (head, rest) = data.split_at(data.len().min(8));
    let mut bytes = [0u8; 8];
    bytes[..head.len()].copy_from_slice(head);
    (i64::from_le_bytes(bytes), rest)
}

/// `text` as a Rhai string literal: quotes, backslashes and line breaks escaped, so
/// the fuzzed constant is a value, not more program.
fn rhai_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
