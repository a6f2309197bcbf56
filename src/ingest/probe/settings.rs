//! `[[probe]]`: the file model of a probe and its validation into [`ProbeSettings`],
//! every error naming the probe and the key at fault (`probe[2].timeout: ...`).

use crate::event::Labels;
use crate::model::{format_duration, HumanDuration, InvalidSetting};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// One health check salve runs itself; its failures become `ProbeFailed` events.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    #[serde(default = "defaults::interval")]
    pub interval: HumanDuration,
    /// One check gives up after this long (class `timeout`). Default `5s`; less than
    /// the interval.
    #[serde(default = "defaults::timeout")]
    pub timeout: HumanDuration,
    /// Wait before the first check. Default `0s`.
    #[serde(default)]
    pub initial_delay: HumanDuration,
    /// Consecutive failures that fire the event. Default 3.
    #[serde(default = "defaults::failure_threshold")]
    pub failure_threshold: u32,
    /// Consecutive successes that resolve it. Default 1.
    #[serde(default = "defaults::success_threshold")]
    pub success_threshold: u32,
    /// http: `GET` (default), `HEAD`, `POST` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
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
    pub max_response_time: Option<HumanDuration>,
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

/// The defaults of a probe's keys, each written once: here.
mod defaults {
    use crate::model::HumanDuration;

    pub fn interval() -> HumanDuration {
        HumanDuration::from_secs(30)
    }

    pub fn timeout() -> HumanDuration {
        HumanDuration::from_secs(5)
    }

    pub fn failure_threshold() -> u32 {
        3
    }

    pub fn success_threshold() -> u32 {
        1
    }

    /// An HTTP probe's `follow_redirects`: a redirect is its status.
    pub(super) const FOLLOW_REDIRECTS: bool = false;

    /// An HTTP probe's `tls_verify`.
    pub(super) const TLS_VERIFY: bool = true;
}

/// `method` of an HTTP probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
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
    ) -> Result<Vec<ProbeSettings>, InvalidSetting> {
        let mut names = HashSet::new();
        let mut out = Vec::with_capacity(probes.len());
        for (i, p) in probes.iter().enumerate() {
            let key = |k: &str| format!("probe[{i}].{k}");
            if p.name.trim().is_empty() {
                return Err(InvalidSetting::new(key("name"), "is empty"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(InvalidSetting::new(
                    key("name"),
                    format!("{:?} names two probes", p.name),
                ));
            }
            out.push(probe(i, p, commands, &key)?);
        }
        Ok(out)
    }
}

/// One `[[probe]]` whose name is good.
fn probe(
    i: usize,
    p: &ProbeConfig,
    commands: &HashMap<String, ProbeCommand>,
    key: &dyn Fn(&str) -> String,
) -> Result<ProbeSettings, InvalidSetting> {
    let (interval, timeout) = (p.interval.get(), p.timeout.get());
    if interval < std::time::Duration::from_secs(1) {
        return Err(InvalidSetting::new(key("interval"), "must be 1s or more"));
    }
    if timeout >= interval {
        return Err(InvalidSetting::new(
            key("timeout"),
            format!(
                "must be less than the interval ({})",
                format_duration(interval)
            ),
        ));
    }
    for (k, threshold) in [
        ("failure_threshold", p.failure_threshold),
        ("success_threshold", p.success_threshold),
    ] {
        if threshold == 0 {
            return Err(InvalidSetting::new(key(k), "must be 1 or more"));
        }
    }
    let check = match (&p.http, &p.tcp, &p.exec) {
        (Some(url), None, None) => Check::Http(http_check(p, url, key)?),
        (None, Some(address), None) => tcp_check(p, address, key)?,
        (None, None, Some(name)) => exec_check(name, commands, key)?,
        _ => {
            return Err(InvalidSetting::new(
                format!("probe[{i}] ({})", p.name),
                "give exactly one of http, tcp or exec",
            ))
        }
    };
    if let Some(k) = misplaced_key(p, &check) {
        return Err(InvalidSetting::new(
            key(k),
            "does not apply to this kind of probe",
        ));
    }
    Ok(ProbeSettings {
        name: p.name.clone(),
        check,
        interval,
        timeout,
        initial_delay: p.initial_delay.get(),
        failure_threshold: p.failure_threshold,
        success_threshold: p.success_threshold,
        labels: p.labels.clone().into_iter().collect(),
    })
}

fn tcp_check(
    p: &ProbeConfig,
    address: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<Check, InvalidSetting> {
    if !address.contains(':') {
        return Err(InvalidSetting::new(
            key("tcp"),
            format!("{address:?} is not HOST:PORT"),
        ));
    }
    Ok(Check::Tcp {
        address: address.to_string(),
        send: p.send.clone(),
        expect: p.expect.clone(),
    })
}

fn exec_check(
    name: &str,
    commands: &HashMap<String, ProbeCommand>,
    key: &dyn Fn(&str) -> String,
) -> Result<Check, InvalidSetting> {
    match commands.get(name) {
        Some(command) => Ok(Check::Exec(command.clone())),
        None => {
            let mut known: Vec<&String> = commands.keys().collect();
            known.sort();
            Err(InvalidSetting::new(
                key("exec"),
                format!("no command [exec.{name}] (defined: {known:?})"),
            ))
        }
    }
}

/// A key set that only another kind of probe reads: a mistake, refused rather than
/// ignored.
fn misplaced_key(p: &ProbeConfig, check: &Check) -> Option<&'static str> {
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
    misplaced.map(|(k, _)| *k)
}

fn http_check(
    p: &ProbeConfig,
    url: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<HttpCheck, InvalidSetting> {
    let parsed = reqwest::Url::parse(url).map_err(|e| InvalidSetting::new(key("http"), e))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InvalidSetting::new(
            key("http"),
            "needs an http:// or https:// URL",
        ));
    }
    let expect_body = p
        .expect_body
        .as_deref()
        .map(|pattern| regex::Regex::new(pattern).map(BodyPattern))
        .transpose()
        .map_err(|e| InvalidSetting::new(key("expect_body"), e))?;
    let ca_pem = p
        .ca_file
        .as_ref()
        .map(|path| {
            std::fs::read(path).map_err(|e| {
                InvalidSetting::new(key("ca_file"), format!("{}: {e}", path.display()))
            })
        })
        .transpose()?;
    if let Some(pem) = &ca_pem {
        reqwest::Certificate::from_pem(pem).map_err(|e| {
            InvalidSetting::new(key("ca_file"), format!("not a PEM certificate: {e}"))
        })?;
    }
    Ok(HttpCheck {
        url: url.to_string(),
        method: p.method.unwrap_or_default().as_str().to_string(),
        headers: p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: p.body.clone(),
        expect_status: p.expect_status.clone(),
        expect_body,
        max_response_time: p.max_response_time.map(HumanDuration::get),
        follow_redirects: p.follow_redirects.unwrap_or(defaults::FOLLOW_REDIRECTS),
        tls_verify: p.tls_verify.unwrap_or(defaults::TLS_VERIFY),
        ca_pem,
    })
}
