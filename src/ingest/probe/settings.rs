//! `[[probe]]`: the file model of a probe and its validation into [`ProbeSettings`],
//! every error naming the probe and the key at fault (`probe[2].timeout: ...`).

use crate::event::Labels;
use crate::model::parse_duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// One health check salve runs itself; its failures become `ProbeFailed` events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Unique; the `probe` label of its events, and what its fingerprint comes from.
    pub name: String,
    /// Check an HTTP(S) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Check that `HOST:PORT` accepts a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Run the named command of `[exec.NAME]`; exit 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// Time between checks. Default `30s`; at least `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// One check gives up after this long (class `timeout`). Default `5s`; less than
    /// the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Wait before the first check. Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// Consecutive failures that fire the event. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// Consecutive successes that resolve it. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// http: `GET` (default), `HEAD`, `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// http: request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// http: request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// http: the statuses that are healthy. Default 200–399.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// http: a regex the body must match (class `body` if it does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    /// http: an answer slower than this is a failure of class `slow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_time: Option<String>,
    /// http: follow redirects (at most 5). Default false: a redirect is its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_redirects: Option<bool>,
    /// http: check the server's certificate. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// http: PEM file of a CA to trust besides the built-in roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// tcp: bytes to write once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// tcp: text the reply must contain (class `body` if it does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Labels added to the probe's events (`service = "api"`, `container = "web-1"`),
    /// so rules can act on the right target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A validated probe. Equal settings are the same probe: a reload leaves it running.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    pub name: String,
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub initial_delay: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Http(HttpCheck),
    Tcp {
        address: String,
        send: Option<String>,
        expect: Option<String>,
    },
    Exec(ProbeCommand),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Empty: 200–399.
    pub expect_status: Vec<u16>,
    pub expect_body: Option<BodyPattern>,
    pub max_response_time: Option<Duration>,
    pub follow_redirects: bool,
    pub tls_verify: bool,
    pub ca_pem: Option<Vec<u8>>,
}

/// `expect_body`, compiled. Two are equal when their patterns are the same text, so a
/// reload can tell an unchanged probe from a changed one.
#[derive(Debug, Clone)]
pub struct BodyPattern(pub regex::Regex);

impl PartialEq for BodyPattern {
    fn eq(&self, other: &BodyPattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl std::ops::Deref for BodyPattern {
    type Target = regex::Regex;

    fn deref(&self) -> &regex::Regex {
        &self.0
    }
}

/// A named command as a probe runs it: `argv`, in `working_dir`, with only the
/// environment variables named in `env`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeCommand {
    pub name: String,
    pub argv: Vec<String>,
    pub working_dir: Option<PathBuf>,
    pub env: Vec<String>,
}

impl ProbeSettings {
    /// Validates every `[[probe]]`; `commands` are the config's `[exec.NAME]`.
    pub fn from_config(
        probes: &[ProbeConfig],
        commands: &HashMap<String, ProbeCommand>,
    ) -> Result<Vec<ProbeSettings>, String> {
        let mut names = HashSet::new();
        let mut out = Vec::with_capacity(probes.len());
        for (i, p) in probes.iter().enumerate() {
            let key = |k: &str| format!("probe[{i}].{k}");
            if p.name.trim().is_empty() {
                return Err(format!("{}: is empty", key("name")));
            }
            if !names.insert(p.name.as_str()) {
                return Err(format!("{}: {:?} names two probes", key("name"), p.name));
            }
            let duration = |k: &str, v: &Option<String>, default: Duration| match v {
                None => Ok(default),
                Some(text) => parse_duration(text).map_err(|e| format!("{}: {e}", key(k))),
            };
            let interval = duration("interval", &p.interval, Duration::from_secs(30))?;
            if interval < Duration::from_secs(1) {
                return Err(format!("{}: must be 1s or more", key("interval")));
            }
            let timeout = duration("timeout", &p.timeout, Duration::from_secs(5))?;
            if timeout >= interval {
                return Err(format!(
                    "{}: must be less than the interval ({})",
                    key("timeout"),
                    p.interval.as_deref().unwrap_or("30s")
                ));
            }
            let initial_delay = duration("initial_delay", &p.initial_delay, Duration::ZERO)?;
            let failure_threshold = p.failure_threshold.unwrap_or(3);
            let success_threshold = p.success_threshold.unwrap_or(1);
            if failure_threshold == 0 {
                return Err(format!("{}: must be 1 or more", key("failure_threshold")));
            }
            if success_threshold == 0 {
                return Err(format!("{}: must be 1 or more", key("success_threshold")));
            }
            let check = match (&p.http, &p.tcp, &p.exec) {
                (Some(url), None, None) => Check::Http(http_check(p, url, &key)?),
                (None, Some(address), None) => {
                    if !address.contains(':') {
                        return Err(format!("{}: {address:?} is not HOST:PORT", key("tcp")));
                    }
                    Check::Tcp {
                        address: address.clone(),
                        send: p.send.clone(),
                        expect: p.expect.clone(),
                    }
                }
                (None, None, Some(name)) => match commands.get(name) {
                    Some(command) => Check::Exec(command.clone()),
                    None => {
                        let mut known: Vec<&String> = commands.keys().collect();
                        known.sort();
                        return Err(format!(
                            "{}: no command [exec.{name}] (defined: {known:?})",
                            key("exec")
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "probe[{i}] ({}): give exactly one of http, tcp or exec",
                        p.name
                    ))
                }
            };
            let http_only = [
                ("method", p.method.is_some()),
                ("headers", !p.headers.is_empty()),
                ("body", p.body.is_some()),
                ("expect_status", !p.expect_status.is_empty()),
                ("expect_body", p.expect_body.is_some()),
                ("max_response_time", p.max_response_time.is_some()),
                ("follow_redirects", p.follow_redirects.is_some()),
                ("tls_verify", p.tls_verify.is_some()),
                ("ca_file", p.ca_file.is_some()),
            ];
            let tcp_only = [("send", p.send.is_some()), ("expect", p.expect.is_some())];
            let misplaced = match check {
                Check::Http(_) => tcp_only.iter().find(|(_, set)| *set),
                Check::Tcp { .. } => http_only.iter().find(|(_, set)| *set),
                Check::Exec(_) => http_only.iter().chain(&tcp_only).find(|(_, set)| *set),
            };
            if let Some((k, _)) = misplaced {
                return Err(format!("{}: does not apply to this kind of probe", key(k)));
            }
            out.push(ProbeSettings {
                name: p.name.clone(),
                check,
                interval,
                timeout,
                initial_delay,
                failure_threshold,
                success_threshold,
                labels: p.labels.clone().into_iter().collect(),
            });
        }
        Ok(out)
    }
}

fn http_check(
    p: &ProbeConfig,
    url: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<HttpCheck, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{}: {e}", key("http")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{}: needs an http:// or https:// URL", key("http")));
    }
    let method = p.method.clone().unwrap_or_else(|| "GET".into());
    if !matches!(method.as_str(), "GET" | "HEAD" | "POST" | "PUT") {
        return Err(format!(
            "{}: {method:?}: use GET, HEAD, POST or PUT",
            key("method")
        ));
    }
    let expect_body = p
        .expect_body
        .as_deref()
        .map(|pattern| regex::Regex::new(pattern).map(BodyPattern))
        .transpose()
        .map_err(|e| format!("{}: {e}", key("expect_body")))?;
    let max_response_time = p
        .max_response_time
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| format!("{}: {e}", key("max_response_time")))?;
    let ca_pem = p
        .ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path).map_err(|e| format!("{}: {}: {e}", key("ca_file"), path.display()))
        })
        .transpose()?;
    if let Some(pem) = &ca_pem {
        reqwest::Certificate::from_pem(pem)
            .map_err(|e| format!("{}: not a PEM certificate: {e}", key("ca_file")))?;
    }
    Ok(HttpCheck {
        url: url.to_string(),
        method,
        headers: p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: p.body.clone(),
        expect_status: p.expect_status.clone(),
        expect_body,
        max_response_time,
        follow_redirects: p.follow_redirects.unwrap_or(false),
        tls_verify: p.tls_verify.unwrap_or(true),
        ca_pem,
    })
}
