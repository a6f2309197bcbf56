//! Durations and rates written by people ("15m", "3 per 15m per target"), parsed once.

use chrono::{DateTime, Utc};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The longest duration salve takes anywhere (rules, config, API, CLI): 100 years.
/// Far past any window an operator means, and far enough inside chrono's range that
/// no time within it, moved by it, overflows.
/// (A year is 365.25 days, as "100y" is read.)
const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub message: String,
}

/// Parses "30s", "15m", "1h30m", "50ms".
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    let duration = humantime::parse_duration(input.trim()).map_err(|e| ParseError {
        message: format!(
            "invalid duration {input:?}: {e} (write it like \"30s\", \"15m\" or \"1h\")"
        ),
    })?;
    if duration > MAX_DURATION {
        return Err(ParseError {
            message: format!(
                "invalid duration {input:?}: longer than 100y, the longest salve takes"
            ),
        });
    }
    Ok(duration)
}

/// `at` moved back by `by`, or the earliest time there is: a window reaching back past
/// it covers everything, and no duration can make the arithmetic panic.
pub fn earlier(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_sub_signed(by))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A moment as people give one for the start of a window: an RFC 3339 time, or a
/// duration back from `now` (`2h`).
pub fn time_or_ago(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ParseError> {
    match text.parse::<DateTime<Utc>>() {
        Ok(at) => Ok(at),
        Err(_) => parse_duration(text).map(|d| earlier(now, d)),
    }
}

/// `at` moved on by `by`, or the latest time there is.
pub fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A duration as people write it in `salve.toml` ("30s", "15m", "1h30m", "250ms"),
/// parsed when the file is read, so a bad one fails there naming its key.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(millis))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<HumanDuration, ParseError> {
        parse_duration(text).map(HumanDuration)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (ms, s, m, h, d, w, y), e.g. \"30s\", \"15m\", \"1h30m\"; at most 100y.",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// What the schema accepts as a duration; the parser is the judge, this only guides
/// editors.
const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*[a-zA-Zµ]+\s*)+$";

/// Prints a duration the way people write them ("15m", "1h30m", "250ms").
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// "N per WINDOW" or "N per WINDOW per target".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde_with::DeserializeFromStr, serde_with::SerializeDisplay,
)]
pub struct RateLimit {
    pub count: u32,
    pub window: Duration,
    pub per_target: bool,
}

impl RateLimit {
    pub fn parse(input: &str) -> Result<RateLimit, ParseError> {
        let err = || ParseError {
            message: format!(
                "invalid rate {input:?}: write it like \"5 per 1m\" or \"3 per 15m per target\""
            ),
        };
        let words: Vec<&str> = input.split_whitespace().collect();
        let (count, window, per_target) = match words.as_slice() {
            [count, "per", window] => (count, window, false),
            [count, "per", window, "per", "target"] => (count, window, true),
            [count, "per", window, "per", "rule"] => (count, window, false),
            _ => return Err(err()),
        };
        let count: u32 = count.parse().map_err(|_| err())?;
        let window = parse_duration(window).map_err(|e| ParseError {
            message: format!("invalid rate {input:?}: {}", e.message),
        })?;
        if window.is_zero() {
            return Err(ParseError {
                message: format!("invalid rate {input:?}: the window must be longer than 0"),
            });
        }
        Ok(RateLimit {
            count,
            window,
            per_target,
        })
    }
}

/// How a rate was written: salve's one grammar, or the form `[engine] quarantine_after`
/// had before ("5 in 1m"), still read so that an old file keeps working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateForm {
    /// "N per WINDOW".
    Per,
    /// "N in WINDOW": read as "N per WINDOW", with a warning naming that form.
    OldIn,
}

impl RateLimit {
    /// As [`RateLimit::parse`], and also "N in WINDOW", the old form of
    /// `quarantine_after`; says which form it read, so its caller can warn.
    pub fn parse_either_form(input: &str) -> Result<(RateLimit, RateForm), ParseError> {
        let words: Vec<&str> = input.split_whitespace().collect();
        match words.as_slice() {
            [count, "in", window] => {
                let rate =
                    RateLimit::parse(&format!("{count} per {window}")).map_err(|e| ParseError {
                        message: e.message.replace(&format!("{count} per {window}"), input),
                    })?;
                Ok((rate, RateForm::OldIn))
            }
            _ => Ok((RateLimit::parse(input)?, RateForm::Per)),
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<RateLimit, ParseError> {
        RateLimit::parse(text)
    }
}

impl JsonSchema for RateLimit {
    fn schema_name() -> Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A count per window: \"5 per 1m\", or \"3 per 15m per target\" where a split by target applies.",
            "pattern": RATE_PATTERN,
        })
    }
}

/// What the schema accepts as a rate; the parser is the judge, this only guides editors.
const RATE_PATTERN: &str = r"^\s*[0-9]+\s+per\s+\S+(\s+per\s+(target|rule))?\s*$";

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {}", self.count, format_duration(self.window))?;
        if self.per_target {
            f.write_str(" per target")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_and_without_per_target() {
        assert_eq!(
            RateLimit::parse("3 per 15m per target"),
            Ok(RateLimit {
                count: 3,
                window: Duration::from_secs(900),
                per_target: true
            })
        );
        assert_eq!(
            RateLimit::parse("5 per 1m"),
            Ok(RateLimit {
                count: 5,
                window: Duration::from_secs(60),
                per_target: false
            })
        );
        assert_eq!(
            RateLimit::parse("3 per 15m per target").map(|r| r.to_string()),
            Ok("3 per 15m per target".into())
        );
    }

    #[test]
    fn bad_rates_quote_the_input() {
        assert_eq!(
            RateLimit::parse("three per minute").map_err(|e| e.message),
            Err("invalid rate \"three per minute\": write it like \"5 per 1m\" or \"3 per 15m per target\"".into())
        );
        assert!(RateLimit::parse("3 per 0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_past_a_century_are_refused_and_time_arithmetic_saturates() {
        assert_eq!(
            RateLimit::parse("1 per 300000y").map_err(|e| e.message),
            Err("invalid rate \"1 per 300000y\": invalid duration \"300000y\": longer than 100y, the longest salve takes".into())
        );
        assert_eq!(parse_duration("100y"), Ok(MAX_DURATION));
        assert!(parse_duration("101y").is_err());
        let now = Utc::now();
        assert_eq!(earlier(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(later(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            earlier(DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            later(now, Duration::from_secs(60)),
            now + chrono::Duration::seconds(60)
        );
    }

    #[test]
    fn the_old_form_of_a_rate_is_read_and_said_to_be_old() {
        assert_eq!(
            RateLimit::parse_either_form("5 in 1m"),
            Ok((
                RateLimit {
                    count: 5,
                    window: Duration::from_secs(60),
                    per_target: false
                },
                RateForm::OldIn
            ))
        );
        assert_eq!(
            RateLimit::parse_either_form("5 per 1m").map(|(_, form)| form),
            Ok(RateForm::Per)
        );
        assert_eq!(
            RateLimit::parse_either_form("5 in soon").map_err(|e| e.message),
            Err("invalid rate \"5 in soon\": invalid duration \"soon\": expected number at 0 (write it like \"30s\", \"15m\" or \"1h\")".into())
        );
    }

    #[test]
    fn durations_and_rates_deserialize_from_what_people_write_and_serialize_back() {
        #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
        struct Written {
            every: HumanDuration,
            limit: RateLimit,
        }
        let written: Written =
            toml::from_str("every = \"1h30m\"\nlimit = \"3 per 15m per target\"\n").expect("valid");
        assert_eq!(written.every, HumanDuration::from_secs(5400));
        assert!(written.limit.per_target);
        assert_eq!(
            toml::to_string(&written).expect("serializes"),
            "every = \"1h30m\"\nlimit = \"3 per 15m per target\"\n"
        );
        let refused = toml::from_str::<Written>("every = \"soon\"\nlimit = \"1 per 1m\"\n")
            .map_err(|e| e.message().to_string());
        assert_eq!(
            refused,
            Err("invalid duration \"soon\": expected number at 0 (write it like \"30s\", \"15m\" or \"1h\")".into())
        );
    }
}
