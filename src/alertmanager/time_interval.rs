//! Alertmanager-compatible `time_intervals`, configured in TOML.
//!
//! The semantics follow Alertmanager's `timeinterval` package so that an
//! interval copied from an `alertmanager.yml` behaves the same here. Where
//! salve differs, the difference is noted next to the code that makes it.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A named set of time intervals; it matches when any of its intervals does.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalConfig {
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalSpec>,
}

/// One interval; it matches when every field it sets matches (unset = any).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeIntervalSpec {
    /// Times of day, `HH:MM` from `00:00` to `24:00`, end exclusive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<TimeRangeSpec>,
    /// Day names or inclusive ranges such as `monday:friday` (weeks start on Sunday).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    /// `1`..`31` or `-31`..`-1` (`-1` is the last day), or inclusive ranges such as `1:5`, `-3:-1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<String>,
    /// Month names or `1`..`12`, or inclusive ranges such as `january:march`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<String>,
    /// Years or inclusive ranges such as `2020:2022`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<String>,
    /// IANA time zone the other fields are evaluated in; UTC when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// A time-of-day range, `HH:MM`, start inclusive, end exclusive.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimeRangeSpec {
    pub start_time: String,
    pub end_time: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("time interval {interval:?}: {problem}")]
pub struct TimeIntervalError {
    pub interval: String,
    pub problem: IntervalProblem,
}

/// What is wrong in one interval: each names the field and quotes the input.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum IntervalProblem {
    #[error("name must not be empty")]
    EmptyName,
    #[error("invalid {field} range {input:?}: expected a single value or START:END")]
    RangeFormat { field: &'static str, input: String },
    #[error("invalid {field} {input:?}")]
    Value { field: &'static str, input: String },
    #[error("invalid {field} {member:?} in range {input:?}")]
    Member {
        field: &'static str,
        member: String,
        input: String,
    },
    #[error("invalid {field} range {input:?}: {reason}")]
    Order {
        field: &'static str,
        input: String,
        reason: &'static str,
    },
    #[error("invalid day of month {input:?}: days must be 1..31 or -31..-1")]
    DayOutOfRange { input: String },
    #[error("invalid month {input:?}: months must be names or 1..12")]
    MonthOutOfRange { input: String },
    #[error("invalid time range {start:?} to {end:?}: start_time must be before end_time")]
    TimeOrder { start: String, end: String },
    #[error("invalid time {input:?}: expected HH:MM from 00:00 to 24:00")]
    Time { input: String },
    #[error(
        "location {name:?} is not supported: name an IANA time zone such as \"Europe/Berlin\" or \"UTC\""
    )]
    LocalLocation { name: String },
    #[error("unknown location {name:?}: expected an IANA time zone such as \"Europe/Berlin\"")]
    UnknownLocation { name: String },
}

impl IntervalProblem {
    fn order(field: &'static str, input: &str, reason: &'static str) -> IntervalProblem {
        IntervalProblem::Order {
            field,
            input: input.to_owned(),
            reason,
        }
    }
}

/// Validated, ready to evaluate.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    name: String,
    intervals: Vec<CompiledSpec>,
}

impl TimeInterval {
    pub fn compile(config: &TimeIntervalConfig) -> Result<TimeInterval, TimeIntervalError> {
        let fail = |problem: IntervalProblem| TimeIntervalError {
            interval: config.name.clone(),
            problem,
        };
        if config.name.is_empty() {
            return Err(fail(IntervalProblem::EmptyName));
        }
        let intervals = config
            .time_intervals
            .iter()
            .map(CompiledSpec::compile)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(TimeInterval {
            name: config.name.clone(),
            intervals,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An interval with no entries in `time_intervals` never matches, as in
    /// Alertmanager, while an entry with no fields set always matches.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.intervals.iter().any(|spec| spec.contains(at))
    }

    /// The first minute after `at` that the interval does not contain, looked for
    /// `within` ahead (times in `time_intervals` are whole minutes, so a minute's start
    /// stands for it); `at + within` when it contains every minute until then.
    pub fn ends_after(&self, at: DateTime<Utc>, within: std::time::Duration) -> DateTime<Utc> {
        let limit = crate::model::later(at, within);
        let start = at.timestamp() - at.timestamp().rem_euclid(60);
        let mut t = DateTime::from_timestamp(start, 0).unwrap_or(at);
        while t < limit {
            t = crate::model::later(t, std::time::Duration::from_secs(60));
            if !self.contains(t) {
                return t.min(limit);
            }
        }
        limit
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct InclusiveRange {
    begin: i64,
    end: i64,
}

impl InclusiveRange {
    fn contains(self, n: i64) -> bool {
        self.begin <= n && n <= self.end
    }
}

/// Minutes of the day, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MinuteRange {
    start: u32,
    end: u32,
}

#[derive(Debug, Clone)]
struct CompiledSpec {
    times: Vec<MinuteRange>,
    weekdays: Vec<InclusiveRange>,
    days_of_month: Vec<InclusiveRange>,
    months: Vec<InclusiveRange>,
    years: Vec<InclusiveRange>,
    location: Tz,
}

impl CompiledSpec {
    fn compile(spec: &TimeIntervalSpec) -> Result<CompiledSpec, IntervalProblem> {
        Ok(CompiledSpec {
            times: spec
                .times
                .iter()
                .map(parse_time_range)
                .collect::<Result<_, _>>()?,
            weekdays: parse_all(&spec.weekdays, parse_weekdays)?,
            days_of_month: parse_all(&spec.days_of_month, parse_days_of_month)?,
            months: parse_all(&spec.months, parse_months)?,
            years: parse_all(&spec.years, parse_years)?,
            location: parse_location(spec.location.as_deref())?,
        })
    }

    fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.location);
        let minute = local.hour() * 60 + local.minute();
        let day = i64::from(local.day());
        let month_len = days_in_month(local.year(), local.month());

        // An empty list means unset: serialization drops empty lists, so
        // treating `[]` as "matches nothing" would not survive a round trip.
        let times_ok = self.times.is_empty()
            || self
                .times
                .iter()
                .any(|t| t.start <= minute && minute < t.end);
        let days_ok = self.days_of_month.is_empty()
            || self
                .days_of_month
                .iter()
                .any(|r| day_of_month_matches(*r, day, month_len));
        let months_ok = matches_any(&self.months, i64::from(local.month()));
        let weekdays_ok = matches_any(
            &self.weekdays,
            i64::from(local.weekday().num_days_from_sunday()),
        );
        let years_ok = matches_any(&self.years, i64::from(local.year()));

        times_ok && days_ok && months_ok && weekdays_ok && years_ok
    }
}

fn matches_any(ranges: &[InclusiveRange], n: i64) -> bool {
    ranges.is_empty() || ranges.iter().any(|r| r.contains(n))
}

/// Alertmanager's resolution of negative days: counted from the month's end,
/// a range beginning after the month's last day is skipped, and both ends are
/// clamped to the month.
fn day_of_month_matches(range: InclusiveRange, day: i64, month_len: i64) -> bool {
    let resolve = |n: i64| if n < 0 { month_len + n + 1 } else { n };
    let begin = resolve(range.begin);
    let end = resolve(range.end);
    if begin > month_len {
        return false;
    }
    let begin = begin.clamp(-month_len, month_len);
    let end = end.clamp(-month_len, month_len);
    begin <= day && day <= end
}

/// Calendar length of the month. Alertmanager used to derive this from the
/// elapsed hours, which gave 30 for 31-day months containing a spring-forward
/// transition; upstream fixed that (prometheus/alertmanager#5447) in favour of
/// calendar arithmetic, which this matches.
fn days_in_month(year: i32, month: u32) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

fn parse_all(
    inputs: &[String],
    parse: fn(&str) -> Result<InclusiveRange, IntervalProblem>,
) -> Result<Vec<InclusiveRange>, IntervalProblem> {
    inputs.iter().map(|s| parse(s)).collect()
}

/// Why a `begin[:end]` string could not be split into members.
enum RangeSyntaxError<'a> {
    /// More than one `:`.
    Format,
    /// The member that failed to parse.
    Member(&'a str),
}

/// Splits `begin[:end]` and maps each member, lower-cased as Alertmanager
/// does; a single member is a range of one.
fn split_range<'a>(
    input: &'a str,
    member: impl Fn(&str) -> Option<i64>,
) -> Result<InclusiveRange, RangeSyntaxError<'a>> {
    let parse = |part: &'a str| member(&part.to_lowercase()).ok_or(RangeSyntaxError::Member(part));
    let parts: Vec<&str> = input.split(':').collect();
    match parts.as_slice() {
        [single] => {
            let n = parse(single)?;
            Ok(InclusiveRange { begin: n, end: n })
        }
        [begin, end] => Ok(InclusiveRange {
            begin: parse(begin)?,
            end: parse(end)?,
        }),
        _ => Err(RangeSyntaxError::Format),
    }
}

/// Turns a split failure into the problem naming the field and the input.
fn syntax_problem(field: &'static str, input: &str, err: RangeSyntaxError<'_>) -> IntervalProblem {
    let input = input.to_owned();
    match err {
        RangeSyntaxError::Format => IntervalProblem::RangeFormat { field, input },
        RangeSyntaxError::Member(part) if part == input => IntervalProblem::Value { field, input },
        RangeSyntaxError::Member(part) => IntervalProblem::Member {
            field,
            member: part.to_owned(),
            input,
        },
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, nothing else.
fn parse_int(s: &str) -> Option<i64> {
    s.parse().ok()
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn index_of(names: &[&str], name: &str) -> Option<i64> {
    names
        .iter()
        .position(|n| *n == name)
        .and_then(|i| i64::try_from(i).ok())
}

/// Weekdays are names only (no numbers), as in Alertmanager; 0 is Sunday and
/// ranges do not wrap, so `saturday:sunday` is rejected.
fn parse_weekdays(input: &str) -> Result<InclusiveRange, IntervalProblem> {
    let range = split_range(input, |s| index_of(&WEEKDAYS, s))
        .map_err(|e| syntax_problem("weekday", input, e))?;
    if range.begin > range.end {
        return Err(IntervalProblem::order(
            "weekday",
            input,
            "start is after end (weeks run sunday to saturday)",
        ));
    }
    Ok(range)
}

fn parse_days_of_month(input: &str) -> Result<InclusiveRange, IntervalProblem> {
    let range =
        split_range(input, parse_int).map_err(|e| syntax_problem("day of month", input, e))?;
    let valid = |d: i64| d != 0 && (-31..=31).contains(&d);
    if !valid(range.begin) || !valid(range.end) {
        return Err(IntervalProblem::DayOutOfRange {
            input: input.to_owned(),
        });
    }
    // A negative start with a positive end would flip order between months
    // of different lengths.
    if range.begin < 0 && range.end > 0 {
        return Err(IntervalProblem::order(
            "day of month",
            input,
            "end must be negative when start is negative",
        ));
    }
    // Negative days are checked against the shortest month, so "29:-1" is
    // rejected even though 31-day months could satisfy it (Alertmanager does
    // the same).
    let in_28_day_month = |d: i64| if d < 0 { 28 + d } else { d };
    if in_28_day_month(range.begin) > in_28_day_month(range.end) {
        let reason = if range.begin < 0 || range.end < 0 {
            "start is after end in a 28-day month"
        } else {
            "start is after end"
        };
        return Err(IntervalProblem::order("day of month", input, reason));
    }
    Ok(range)
}

/// Alertmanager accepts any integer as a month and an out-of-range one then
/// never matches; salve rejects it instead.
fn parse_months(input: &str) -> Result<InclusiveRange, IntervalProblem> {
    let member = |s: &str| index_of(&MONTHS, s).map(|i| i + 1).or_else(|| parse_int(s));
    let range = split_range(input, member).map_err(|e| syntax_problem("month", input, e))?;
    if !(1..=12).contains(&range.begin) || !(1..=12).contains(&range.end) {
        return Err(IntervalProblem::MonthOutOfRange {
            input: input.to_owned(),
        });
    }
    if range.begin > range.end {
        return Err(IntervalProblem::order("month", input, "start is after end"));
    }
    Ok(range)
}

fn parse_years(input: &str) -> Result<InclusiveRange, IntervalProblem> {
    let range = split_range(input, parse_int).map_err(|e| syntax_problem("year", input, e))?;
    if range.begin > range.end {
        return Err(IntervalProblem::order("year", input, "start is after end"));
    }
    Ok(range)
}

fn parse_time_range(spec: &TimeRangeSpec) -> Result<MinuteRange, IntervalProblem> {
    let start = parse_time_of_day(&spec.start_time)?;
    let end = parse_time_of_day(&spec.end_time)?;
    if start >= end {
        return Err(IntervalProblem::TimeOrder {
            start: spec.start_time.clone(),
            end: spec.end_time.clone(),
        });
    }
    Ok(MinuteRange { start, end })
}

/// Alertmanager's `^(([01][0-9]|2[0-3]):[0-5][0-9])$|^24:00$`, as minutes.
fn parse_time_of_day(input: &str) -> Result<u32, IntervalProblem> {
    let invalid = || IntervalProblem::Time {
        input: input.to_owned(),
    };
    if input == "24:00" {
        return Ok(24 * 60);
    }
    let digits = match input.as_bytes() {
        [h1, h2, b':', m1, m2] => [*h1, *h2, *m1, *m2],
        _ => return Err(invalid()),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let [h1, h2, m1, m2] = digits.map(|d| u32::from(d - b'0'));
    let (hour, minute) = (h1 * 10 + h2, m1 * 10 + m2);
    if hour > 23 || minute > 59 {
        return Err(invalid());
    }
    Ok(hour * 60 + minute)
}

/// Zones come from chrono-tz's built-in IANA database, not the host's.
/// Go's `time.LoadLocation` reads "" as UTC, and so does this.
fn parse_location(location: Option<&str>) -> Result<Tz, IntervalProblem> {
    match location {
        None | Some("") => Ok(Tz::UTC),
        // Alertmanager accepts "Local", the host's zone; salve usually runs
        // in containers whose local zone is silently UTC.
        Some(name) if name.eq_ignore_ascii_case("local") => Err(IntervalProblem::LocalLocation {
            name: name.to_owned(),
        }),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| IntervalProblem::UnknownLocation {
                name: name.to_owned(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid UTC instant")
    }

    /// Parses one `[[time_intervals]]` table body and compiles it.
    fn interval(body: &str) -> TimeInterval {
        let config: TimeIntervalConfig =
            toml::from_str(&format!("name = \"test\"\n{body}")).expect("test TOML parses");
        TimeInterval::compile(&config).expect("test interval compiles")
    }

    /// The error as users read it.
    fn spec_error(spec: TimeIntervalSpec) -> String {
        TimeInterval::compile(&TimeIntervalConfig {
            name: "bad".to_owned(),
            time_intervals: vec![spec],
        })
        .expect_err("compile should fail")
        .to_string()
    }

    fn bad(message: &str) -> String {
        format!("time interval \"bad\": {message}")
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| (*s).to_owned()).collect()
    }

    fn times(start: &str, end: &str) -> Vec<TimeRangeSpec> {
        vec![TimeRangeSpec {
            start_time: start.to_owned(),
            end_time: end.to_owned(),
        }]
    }

    /// Which of `instants` the interval contains, for whole-value asserts.
    fn check(ti: &TimeInterval, instants: &[DateTime<Utc>]) -> Vec<bool> {
        instants.iter().map(|at| ti.contains(*at)).collect()
    }

    const SNIPPET: &str = r#"
[[time_intervals]]
name = "weekly-maintenance"
[[time_intervals.time_intervals]]
weekdays = ["saturday"]
times = [{ start_time = "02:00", end_time = "04:00" }]
location = "Europe/Berlin"
"#;

    #[derive(Debug, Deserialize)]
    struct Doc {
        time_intervals: Vec<TimeIntervalConfig>,
    }

    #[test]
    fn parses_the_documented_toml() {
        let doc: Doc = toml::from_str(SNIPPET).expect("snippet parses");
        assert_eq!(
            doc.time_intervals,
            vec![TimeIntervalConfig {
                name: "weekly-maintenance".to_owned(),
                time_intervals: vec![TimeIntervalSpec {
                    times: times("02:00", "04:00"),
                    weekdays: strings(&["saturday"]),
                    location: Some("Europe/Berlin".to_owned()),
                    ..TimeIntervalSpec::default()
                }],
            }]
        );
        let compiled = TimeInterval::compile(&doc.time_intervals[0]).expect("compiles");
        assert_eq!(compiled.name(), "weekly-maintenance");
    }

    #[test]
    fn unset_fields_are_omitted_when_serialized() {
        let spec = TimeIntervalSpec {
            weekdays: strings(&["monday:friday"]),
            ..TimeIntervalSpec::default()
        };
        let json = serde_json::to_value(&spec).expect("serializes");
        assert_eq!(json, serde_json::json!({ "weekdays": ["monday:friday"] }));
        let back: TimeIntervalSpec = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, spec);
    }

    #[test]
    fn unknown_keys_and_integer_days_are_rejected_by_serde() {
        let typo = toml::from_str::<TimeIntervalSpec>(r#"weekday = ["monday"]"#)
            .expect_err("unknown key")
            .to_string();
        assert!(typo.contains("unknown field `weekday`"), "{typo}");
        let integer = toml::from_str::<TimeIntervalSpec>("days_of_month = [1]")
            .expect_err("integer day")
            .to_string();
        assert!(
            integer.contains("invalid type: integer `1`, expected a string"),
            "{integer}"
        );
    }

    #[test]
    fn saturday_maintenance_in_berlin_winter() {
        let doc: Doc = toml::from_str(SNIPPET).expect("snippet parses");
        let ti = TimeInterval::compile(&doc.time_intervals[0]).expect("compiles");
        // 10 January 2026 is a Saturday; Berlin is UTC+1.
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 1, 10, 0, 59, 59), // 01:59:59 local
                    utc(2026, 1, 10, 1, 0, 0),   // 02:00 local
                    utc(2026, 1, 10, 2, 59, 59), // 03:59:59 local
                    utc(2026, 1, 10, 3, 0, 0),   // 04:00 local, end exclusive
                    utc(2026, 1, 17, 1, 30, 0),  // next Saturday 02:30 local
                    utc(2026, 1, 11, 1, 30, 0),  // Sunday 02:30 local
                ]
            ),
            [false, true, true, false, true, false]
        );
    }

    #[test]
    fn saturday_maintenance_in_berlin_summer() {
        let doc: Doc = toml::from_str(SNIPPET).expect("snippet parses");
        let ti = TimeInterval::compile(&doc.time_intervals[0]).expect("compiles");
        // 11 July 2026 is a Saturday; Berlin is UTC+2, so the window starts
        // on Saturday 00:00 UTC and 02:30 UTC is already past it.
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 7, 10, 23, 59, 0), // Saturday 01:59 local
                    utc(2026, 7, 11, 0, 0, 0),   // 02:00 local
                    utc(2026, 7, 11, 1, 59, 59), // 03:59:59 local
                    utc(2026, 7, 11, 2, 0, 0),   // 04:00 local
                    utc(2026, 7, 11, 2, 30, 0),  // 04:30 local
                ]
            ),
            [false, true, true, false, false]
        );
    }

    #[test]
    fn weekday_is_taken_in_the_location() {
        let ti = interval(
            r#"
[[time_intervals]]
weekdays = ["Saturday"]
times = [{ start_time = "00:00", end_time = "01:00" }]
location = "Europe/Berlin"
"#,
        );
        // Friday 23:30 UTC is Saturday 00:30 in Berlin; Saturday 23:30 UTC is Sunday.
        assert_eq!(
            check(
                &ti,
                &[utc(2026, 1, 9, 23, 30, 0), utc(2026, 1, 10, 23, 30, 0)]
            ),
            [true, false]
        );
    }

    // Both Alertmanager (Go's `time.In`) and chrono-tz map an instant to the
    // wall clock in force at that instant, so around DST changes the window
    // is matched by wall clock: on spring-forward day 02:00-02:59 never
    // happens and the window lasts one real hour; on fall-back day
    // 02:00-02:59 happens twice and the window lasts three real hours.
    const SUNDAY_NIGHT: &str = r#"
[[time_intervals]]
weekdays = ["sunday"]
times = [{ start_time = "02:00", end_time = "04:00" }]
location = "Europe/Berlin"
"#;

    #[test]
    fn spring_forward_day_in_berlin() {
        let ti = interval(SUNDAY_NIGHT);
        // 29 March 2026: 01:00 UTC is when 02:00 CET becomes 03:00 CEST.
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 3, 29, 0, 59, 59), // 01:59:59 CET
                    utc(2026, 3, 29, 1, 0, 0),   // 03:00 CEST
                    utc(2026, 3, 29, 1, 59, 59), // 03:59:59 CEST
                    utc(2026, 3, 29, 2, 0, 0),   // 04:00 CEST
                ]
            ),
            [false, true, true, false]
        );
    }

    #[test]
    fn fall_back_day_in_berlin() {
        let ti = interval(SUNDAY_NIGHT);
        // 25 October 2026: 01:00 UTC is when 03:00 CEST becomes 02:00 CET.
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 10, 24, 23, 59, 59), // 01:59:59 CEST
                    utc(2026, 10, 25, 0, 0, 0),    // 02:00 CEST
                    utc(2026, 10, 25, 0, 59, 59),  // 02:59:59 CEST
                    utc(2026, 10, 25, 1, 0, 0),    // 02:00 CET, again
                    utc(2026, 10, 25, 2, 59, 59),  // 03:59:59 CET
                    utc(2026, 10, 25, 3, 0, 0),    // 04:00 CET
                ]
            ),
            [false, true, true, true, true, false]
        );
    }

    #[test]
    fn end_of_day_is_24_00() {
        let ti = interval(
            r#"
[[time_intervals]]
times = [{ start_time = "22:30", end_time = "24:00" }]
"#,
        );
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 5, 4, 22, 29, 59),
                    utc(2026, 5, 4, 22, 30, 0),
                    utc(2026, 5, 4, 23, 59, 59),
                    utc(2026, 5, 5, 0, 0, 0),
                ]
            ),
            [false, true, true, false]
        );
    }

    #[test]
    fn last_day_of_month() {
        let ti = interval("[[time_intervals]]\ndays_of_month = [\"-1\"]");
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 2, 27, 12, 0, 0),
                    utc(2026, 2, 28, 12, 0, 0), // 28-day February
                    utc(2024, 2, 28, 12, 0, 0),
                    utc(2024, 2, 29, 12, 0, 0), // 29-day February
                    utc(2026, 1, 30, 12, 0, 0),
                    utc(2026, 1, 31, 12, 0, 0), // 31-day month
                    utc(2026, 4, 30, 12, 0, 0), // 30-day month
                    utc(2026, 5, 1, 0, 0, 0),
                ]
            ),
            [false, true, false, true, false, true, true, false]
        );
    }

    #[test]
    fn last_day_of_month_with_spring_forward_in_the_month() {
        let ti =
            interval("[[time_intervals]]\ndays_of_month = [\"-1\"]\nlocation = \"Europe/Berlin\"");
        // March 2026 in Berlin is 743 hours long; it still has 31 days.
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 3, 30, 12, 0, 0),
                    utc(2026, 3, 31, 12, 0, 0),
                    utc(2026, 3, 31, 22, 30, 0), // 1 April 00:30 local
                ]
            ),
            [false, true, false]
        );
    }

    #[test]
    fn last_three_days_of_month() {
        let ti = interval("[[time_intervals]]\ndays_of_month = [\"-3:-1\"]");
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 2, 25, 12, 0, 0),
                    utc(2026, 2, 26, 0, 0, 0),
                    utc(2026, 2, 28, 23, 59, 0),
                    utc(2026, 1, 28, 12, 0, 0),
                    utc(2026, 1, 29, 0, 0, 0),
                    utc(2026, 1, 31, 12, 0, 0),
                ]
            ),
            [false, true, true, false, true, true]
        );
    }

    #[test]
    fn first_five_days_of_month() {
        let ti = interval("[[time_intervals]]\ndays_of_month = [\"1:5\"]");
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 3, 1, 0, 0, 0),
                    utc(2026, 3, 5, 23, 59, 0),
                    utc(2026, 3, 6, 0, 0, 0),
                    utc(2026, 2, 28, 23, 59, 0),
                ]
            ),
            [true, true, false, false]
        );
    }

    #[test]
    fn days_past_the_end_of_a_short_month() {
        // "31" is skipped in 30-day months; "30:31" is clamped to the 30th
        // and skipped in February.
        let ti = interval("[[time_intervals]]\ndays_of_month = [\"31\"]");
        assert_eq!(
            check(
                &ti,
                &[utc(2026, 4, 30, 12, 0, 0), utc(2026, 5, 31, 12, 0, 0)]
            ),
            [false, true]
        );
        let ti = interval("[[time_intervals]]\ndays_of_month = [\"30:31\"]");
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 4, 30, 12, 0, 0),
                    utc(2026, 2, 28, 12, 0, 0),
                    utc(2026, 3, 1, 12, 0, 0),
                ]
            ),
            [true, false, false]
        );
    }

    #[test]
    fn whole_month_from_first_to_last() {
        let ti = interval("[[time_intervals]]\ndays_of_month = [\"1:-1\"]");
        assert_eq!(
            check(
                &ti,
                &[utc(2026, 2, 1, 0, 0, 0), utc(2026, 2, 28, 23, 59, 59)]
            ),
            [true, true]
        );
    }

    #[test]
    fn month_ranges_by_name_and_number() {
        let by_name = interval("[[time_intervals]]\nmonths = [\"January:march\", \"december\"]");
        let by_number = interval("[[time_intervals]]\nmonths = [\"1:3\", \"12\"]");
        let instants = [
            utc(2026, 1, 1, 0, 0, 0),
            utc(2026, 3, 31, 23, 59, 59),
            utc(2026, 4, 1, 0, 0, 0),
            utc(2026, 11, 30, 12, 0, 0),
            utc(2026, 12, 15, 12, 0, 0),
        ];
        let expected = [true, true, false, false, true];
        assert_eq!(check(&by_name, &instants), expected);
        assert_eq!(check(&by_number, &instants), expected);
    }

    #[test]
    fn year_ranges() {
        let ti = interval("[[time_intervals]]\nyears = [\"2020:2022\", \"2025\"]");
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2019, 12, 31, 23, 59, 59),
                    utc(2020, 1, 1, 0, 0, 0),
                    utc(2022, 12, 31, 23, 59, 59),
                    utc(2023, 6, 1, 0, 0, 0),
                    utc(2025, 6, 1, 0, 0, 0),
                ]
            ),
            [false, true, true, false, true]
        );
    }

    #[test]
    fn weekday_ranges() {
        let ti = interval("[[time_intervals]]\nweekdays = [\"monday:FRIDAY\"]");
        // 4 May 2026 is a Monday.
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 5, 3, 12, 0, 0), // Sunday
                    utc(2026, 5, 4, 12, 0, 0), // Monday
                    utc(2026, 5, 6, 12, 0, 0), // Wednesday
                    utc(2026, 5, 8, 12, 0, 0), // Friday
                    utc(2026, 5, 9, 12, 0, 0), // Saturday
                ]
            ),
            [false, true, true, true, false]
        );
    }

    #[test]
    fn fields_are_and_ed_and_sub_intervals_or_ed() {
        // Weekends all day, plus weekday evenings.
        let ti = interval(
            r#"
[[time_intervals]]
weekdays = ["saturday", "sunday"]
[[time_intervals]]
weekdays = ["monday:friday"]
times = [{ start_time = "00:00", end_time = "08:00" }, { start_time = "18:00", end_time = "24:00" }]
"#,
        );
        assert_eq!(
            check(
                &ti,
                &[
                    utc(2026, 5, 9, 12, 0, 0), // Saturday noon
                    utc(2026, 5, 3, 12, 0, 0), // Sunday noon
                    utc(2026, 5, 4, 7, 59, 0), // Monday early
                    utc(2026, 5, 4, 8, 0, 0),  // Monday working hours
                    utc(2026, 5, 4, 17, 59, 0),
                    utc(2026, 5, 4, 18, 0, 0), // Monday evening
                ]
            ),
            [true, true, true, false, false, true]
        );
    }

    #[test]
    fn empty_spec_always_matches_and_no_specs_never_match() {
        let always = interval("[[time_intervals]]");
        let never = interval("");
        let instants = [utc(1999, 12, 31, 23, 59, 59), utc(2026, 3, 29, 1, 30, 0)];
        assert_eq!(check(&always, &instants), [true, true]);
        assert_eq!(check(&never, &instants), [false, false]);
    }

    #[test]
    fn bad_times() {
        assert_eq!(
            spec_error(TimeIntervalSpec {
                times: times("25:00", "26:00"),
                ..TimeIntervalSpec::default()
            }),
            bad(r#"invalid time "25:00": expected HH:MM from 00:00 to 24:00"#)
        );
        assert_eq!(
            spec_error(TimeIntervalSpec {
                times: times("23:00", "24:01"),
                ..TimeIntervalSpec::default()
            }),
            bad(r#"invalid time "24:01": expected HH:MM from 00:00 to 24:00"#)
        );
        assert_eq!(
            spec_error(TimeIntervalSpec {
                times: times("2:00", "04:00"),
                ..TimeIntervalSpec::default()
            }),
            bad(r#"invalid time "2:00": expected HH:MM from 00:00 to 24:00"#)
        );
        assert_eq!(
            spec_error(TimeIntervalSpec {
                times: times("04:00", "04:00"),
                ..TimeIntervalSpec::default()
            }),
            bad(r#"invalid time range "04:00" to "04:00": start_time must be before end_time"#)
        );
        assert_eq!(
            spec_error(TimeIntervalSpec {
                times: times("04:00", "02:00"),
                ..TimeIntervalSpec::default()
            }),
            bad(r#"invalid time range "04:00" to "02:00": start_time must be before end_time"#)
        );
    }

    #[test]
    fn bad_weekdays() {
        let weekdays = |w: &str| TimeIntervalSpec {
            weekdays: strings(&[w]),
            ..TimeIntervalSpec::default()
        };
        assert_eq!(
            spec_error(weekdays("funday")),
            bad(r#"invalid weekday "funday""#)
        );
        assert_eq!(
            spec_error(weekdays("monday:funday")),
            bad(r#"invalid weekday "funday" in range "monday:funday""#)
        );
        assert_eq!(spec_error(weekdays("1")), bad(r#"invalid weekday "1""#));
        assert_eq!(
            spec_error(weekdays("friday:monday")),
            bad(
                r#"invalid weekday range "friday:monday": start is after end (weeks run sunday to saturday)"#
            )
        );
        assert_eq!(
            spec_error(weekdays("saturday:sunday")),
            bad(
                r#"invalid weekday range "saturday:sunday": start is after end (weeks run sunday to saturday)"#
            )
        );
        assert_eq!(
            spec_error(weekdays("monday:tuesday:friday")),
            bad(
                r#"invalid weekday range "monday:tuesday:friday": expected a single value or START:END"#
            )
        );
    }

    #[test]
    fn bad_days_of_month() {
        let days = |d: &str| TimeIntervalSpec {
            days_of_month: strings(&[d]),
            ..TimeIntervalSpec::default()
        };
        assert_eq!(
            spec_error(days("0")),
            bad(r#"invalid day of month "0": days must be 1..31 or -31..-1"#)
        );
        assert_eq!(
            spec_error(days("1:32")),
            bad(r#"invalid day of month "1:32": days must be 1..31 or -31..-1"#)
        );
        assert_eq!(
            spec_error(days("-32:-1")),
            bad(r#"invalid day of month "-32:-1": days must be 1..31 or -31..-1"#)
        );
        assert_eq!(
            spec_error(days("first")),
            bad(r#"invalid day of month "first""#)
        );
        assert_eq!(
            spec_error(days("5:1")),
            bad(r#"invalid day of month range "5:1": start is after end"#)
        );
        assert_eq!(
            spec_error(days("-1:-3")),
            bad(r#"invalid day of month range "-1:-3": start is after end in a 28-day month"#)
        );
        assert_eq!(
            spec_error(days("29:-1")),
            bad(r#"invalid day of month range "29:-1": start is after end in a 28-day month"#)
        );
        assert_eq!(
            spec_error(days("-3:5")),
            bad(
                r#"invalid day of month range "-3:5": end must be negative when start is negative"#
            )
        );
    }

    #[test]
    fn bad_months_and_years() {
        let months = |m: &str| TimeIntervalSpec {
            months: strings(&[m]),
            ..TimeIntervalSpec::default()
        };
        let years = |y: &str| TimeIntervalSpec {
            years: strings(&[y]),
            ..TimeIntervalSpec::default()
        };
        assert_eq!(
            spec_error(months("13")),
            bad(r#"invalid month "13": months must be names or 1..12"#)
        );
        assert_eq!(
            spec_error(months("0:3")),
            bad(r#"invalid month "0:3": months must be names or 1..12"#)
        );
        assert_eq!(
            spec_error(months("smarch")),
            bad(r#"invalid month "smarch""#)
        );
        assert_eq!(
            spec_error(months("march:january")),
            bad(r#"invalid month range "march:january": start is after end"#)
        );
        assert_eq!(
            spec_error(years("2022:2020")),
            bad(r#"invalid year range "2022:2020": start is after end"#)
        );
        assert_eq!(spec_error(years("20x6")), bad(r#"invalid year "20x6""#));
    }

    #[test]
    fn bad_locations() {
        let location = |l: &str| TimeIntervalSpec {
            location: Some(l.to_owned()),
            ..TimeIntervalSpec::default()
        };
        assert_eq!(
            spec_error(location("Mars/Olympus_Mons")),
            bad(
                r#"unknown location "Mars/Olympus_Mons": expected an IANA time zone such as "Europe/Berlin""#
            )
        );
        assert_eq!(
            spec_error(location("Local")),
            bad(
                r#"location "Local" is not supported: name an IANA time zone such as "Europe/Berlin" or "UTC""#
            )
        );
    }

    #[test]
    fn empty_location_is_utc_like_go() {
        let ti = interval(
            "[[time_intervals]]\ntimes = [{ start_time = \"02:00\", end_time = \"04:00\" }]\nlocation = \"\"",
        );
        assert_eq!(
            check(&ti, &[utc(2026, 7, 11, 2, 0, 0), utc(2026, 7, 11, 4, 0, 0)]),
            [true, false]
        );
    }

    #[test]
    fn error_display_and_missing_name() {
        let err = TimeInterval::compile(&TimeIntervalConfig {
            name: String::new(),
            time_intervals: vec![],
        })
        .expect_err("empty name");
        assert_eq!(
            err,
            TimeIntervalError {
                interval: String::new(),
                problem: IntervalProblem::EmptyName,
            }
        );
        assert_eq!(
            spec_error(TimeIntervalSpec {
                weekdays: strings(&["funday"]),
                ..TimeIntervalSpec::default()
            }),
            r#"time interval "bad": invalid weekday "funday""#
        );
    }
}
