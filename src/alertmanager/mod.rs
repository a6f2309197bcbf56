//! The two languages of Alertmanager's that salve speaks: label matchers
//! (`alertname="X", severity=~"crit|page"`) and `time_intervals`. A leaf.

pub mod matcher;
pub mod time_interval;

pub use matcher::{MatchOp, Matcher, Matchers};
pub use time_interval::{TimeInterval, TimeIntervalConfig};
