//! `[notify.NAME]`: the file model of a channel and its validation into a
//! [`NotifyChannel`], secrets read, every error naming the key at fault.

use crate::model::{duration_setting, read_secret, RateLimit, Secret};
use crate::template;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyType {
    Email,
    Slack,
    Webhook,
    /// Writes the message to salve's own log (standard error), at WARN: a channel that
    /// needs nothing set up, for trying salve out and as the embedded defaults' `ops`
    /// and `oncall`.
    Log,
}

/// One notification channel. Which keys apply depends on `type`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(rename = "type")]
    pub kind: NotifyType,
    /// Subject template (email, webhook) when a rule gives none, e.g.
    /// `"[{{ status }}] {{ labels.alertname }}"`. Default: from the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Message template when a rule gives no text. Default: the alert's name, status,
    /// severity, key labels, summary, description, links and what salve did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// One delivery attempt gives up after this long. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries after the first attempt for transient failures. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled at each retry, with jitter. Default `500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// At most this many messages to the channel in any window, e.g. `"30 per 1m"`:
    /// messages past it are held and sent as one summary when the rate allows (a
    /// summary counts as one message). Default: no limit of the channel's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// email: `smtp://HOST:PORT` (plain), `smtps://HOST:PORT` (TLS) or
    /// `smtp://HOST:PORT?tls=starttls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<String>,
    /// email: `none`, `starttls` or `tls`; overrides what `smtp` implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// email: PEM file of the CA that signed the server's certificate, trusted besides
    /// the built-in roots (with `starttls` or `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// email: the sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// email: copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// email: SMTP AUTH user name (the password from `password_file` or `password_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// slack, webhook: where to POST. A Slack URL is a secret: prefer `url_env` or `url_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// webhook: key of the `X-Salve-Signature: sha256=HEX` HMAC-SHA256 of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// webhook: sent as `Authorization: Bearer TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
}

/// A validated notification channel, secrets read.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    pub name: String,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    /// Templates used when a rule gives no subject or text.
    pub subject: Option<String>,
    pub text: Option<String>,
    /// Messages past it are folded into a summary (`execute::notify::pace`).
    pub rate: Option<RateLimit>,
    pub kind: NotifyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub enum NotifyKind {
    Email {
        host: String,
        port: u16,
        tls: SmtpTls,
        /// PEM of a CA to trust besides the built-in roots.
        ca_pem: Option<Vec<u8>>,
        from: String,
        to: Vec<String>,
        cc: Vec<String>,
        username: Option<String>,
        password: Option<Secret>,
    },
    Slack {
        url: Secret,
    },
    Webhook {
        url: Secret,
        secret: Option<Secret>,
        bearer_token: Option<Secret>,
    },
    Log,
}

impl NotifyKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            NotifyKind::Email { .. } => "email",
            NotifyKind::Slack { .. } => "slack",
            NotifyKind::Webhook { .. } => "webhook",
            NotifyKind::Log => "log",
        }
    }
}

impl NotifyChannel {
    /// Validates `[notify.NAME]`: its templates compile, its keys fit its type, its
    /// addresses, URLs and CA file are good and its secrets can be read.
    pub fn from_config(name: &str, c: &NotifyConfig) -> Result<NotifyChannel, String> {
        channel(name, c)
    }
}

fn channel(name: &str, c: &NotifyConfig) -> Result<NotifyChannel, String> {
    let key = |k: &str| format!("notify.{name}.{k}");
    let timeout = duration_setting(&key("timeout"), &c.timeout, Duration::from_secs(10))?;
    let backoff = duration_setting(&key("backoff"), &c.backoff, Duration::from_millis(500))?;
    for (k, text) in [("subject", &c.subject), ("text", &c.text)] {
        if let Some(t) = text {
            template::check(t).map_err(|e| format!("{}: {e}", key(k)))?;
        }
    }
    let rate = c
        .rate
        .as_deref()
        .map(|r| channel_rate(r).map_err(|e| format!("{}: {e}", key("rate"))))
        .transpose()?;
    let retries = c.retries.unwrap_or(3);
    if retries > 10 {
        return Err(format!("{}: at most 10", key("retries")));
    }
    // Keys of one type are mistakes on another.
    let present: Vec<(&str, bool)> = vec![
        ("smtp", c.smtp.is_some()),
        ("tls", c.tls.is_some()),
        ("ca_file", c.ca_file.is_some()),
        ("from", c.from.is_some()),
        ("to", !c.to.is_empty()),
        ("cc", !c.cc.is_empty()),
        ("username", c.username.is_some()),
        ("password_file", c.password_file.is_some()),
        ("password_env", c.password_env.is_some()),
        ("url", c.url.is_some()),
        ("url_env", c.url_env.is_some()),
        ("url_file", c.url_file.is_some()),
        ("secret_env", c.secret_env.is_some()),
        ("secret_file", c.secret_file.is_some()),
        ("bearer_token_env", c.bearer_token_env.is_some()),
        ("bearer_token_file", c.bearer_token_file.is_some()),
    ];
    let allowed: &[&str] = match c.kind {
        NotifyType::Email => &[
            "smtp",
            "tls",
            "ca_file",
            "from",
            "to",
            "cc",
            "username",
            "password_file",
            "password_env",
        ],
        NotifyType::Slack => &["url", "url_env", "url_file"],
        NotifyType::Log => &[],
        NotifyType::Webhook => &[
            "url",
            "url_env",
            "url_file",
            "secret_env",
            "secret_file",
            "bearer_token_env",
            "bearer_token_file",
        ],
    };
    let type_name = match c.kind {
        NotifyType::Email => "email",
        NotifyType::Slack => "slack",
        NotifyType::Webhook => "webhook",
        NotifyType::Log => "log",
    };
    if let Some((k, _)) = present.iter().find(|(k, set)| *set && !allowed.contains(k)) {
        return Err(format!(
            "{}: does not apply to a channel of type {type_name:?}",
            key(k)
        ));
    }
    let read_url = || -> Result<Secret, String> {
        let from_secret = read_secret(&key("url"), c.url_file.as_deref(), c.url_env.as_deref())?;
        let url = match (&c.url, from_secret) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{}: give one of url, url_env, url_file",
                    key("url")
                ))
            }
            (Some(u), None) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => return Err(format!("{}: needs url, url_env or url_file", key("url"))),
        };
        let parsed =
            reqwest::Url::parse(&url).map_err(|e| format!("{}: not a URL: {e}", key("url")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{}: needs an http:// or https:// URL", key("url")));
        }
        Ok(Secret(url))
    };
    let kind = match c.kind {
        NotifyType::Log => NotifyKind::Log,
        NotifyType::Slack => NotifyKind::Slack { url: read_url()? },
        NotifyType::Webhook => NotifyKind::Webhook {
            url: read_url()?,
            secret: read_secret(
                &key("secret"),
                c.secret_file.as_deref(),
                c.secret_env.as_deref(),
            )?
            .map(Secret),
            bearer_token: read_secret(
                &key("bearer_token"),
                c.bearer_token_file.as_deref(),
                c.bearer_token_env.as_deref(),
            )?
            .map(Secret),
        },
        NotifyType::Email => {
            let smtp = c.smtp.as_deref().ok_or_else(|| {
                format!(
                    "{}: needs the server, e.g. \"smtp://127.0.0.1:25\"",
                    key("smtp")
                )
            })?;
            let url = reqwest::Url::parse(smtp)
                .map_err(|e| format!("{}: not a URL: {e}", key("smtp")))?;
            let mut tls = match url.scheme() {
                "smtp" => SmtpTls::None,
                "smtps" => SmtpTls::Tls,
                other => {
                    return Err(format!(
                        "{}: scheme {other:?}: use smtp:// or smtps://",
                        key("smtp")
                    ))
                }
            };
            for (k, v) in url.query_pairs() {
                match (k.as_ref(), v.as_ref()) {
                    ("tls", "starttls") => tls = SmtpTls::StartTls,
                    ("tls", "tls") => tls = SmtpTls::Tls,
                    ("tls", "none") => tls = SmtpTls::None,
                    _ => return Err(format!("{}: unknown option {k}={v}", key("smtp"))),
                }
            }
            if let Some(t) = &c.tls {
                tls = match t.as_str() {
                    "none" => SmtpTls::None,
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    other => {
                        return Err(format!(
                            "{}: {other:?}: use \"none\", \"starttls\" or \"tls\"",
                            key("tls")
                        ))
                    }
                };
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(format!(
                    "{}: no credentials in the URL; use username and password_file or password_env",
                    key("smtp")
                ));
            }
            let host = url
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| format!("{}: needs a host", key("smtp")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = url.port().unwrap_or(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            });
            let ca_pem = match &c.ca_file {
                None => None,
                Some(_) if tls == SmtpTls::None => {
                    return Err(format!(
                        "{}: needs tls = \"starttls\" or \"tls\"",
                        key("ca_file")
                    ))
                }
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        format!("{}: cannot read {}: {e}", key("ca_file"), path.display())
                    })?;
                    lettre::transport::smtp::client::Certificate::from_pem(&pem)
                        .map_err(|e| format!("{}: {}: {e}", key("ca_file"), path.display()))?;
                    Some(pem)
                }
            };
            let check_address = |k: &str, a: &str| -> Result<String, String> {
                a.parse::<lettre::Address>()
                    .map_err(|e| format!("{}: {a:?}: {e}", key(k)))?;
                Ok(a.to_string())
            };
            let from = check_address(
                "from",
                c.from
                    .as_deref()
                    .ok_or_else(|| format!("{}: needs the sender address", key("from")))?,
            )?;
            if c.to.is_empty() {
                return Err(format!("{}: needs at least one recipient", key("to")));
            }
            let to =
                c.to.iter()
                    .map(|a| check_address("to", a))
                    .collect::<Result<Vec<_>, _>>()?;
            let cc =
                c.cc.iter()
                    .map(|a| check_address("cc", a))
                    .collect::<Result<Vec<_>, _>>()?;
            let password = read_secret(
                &key("password"),
                c.password_file.as_deref(),
                c.password_env.as_deref(),
            )?
            .map(Secret);
            if password.is_some() != c.username.is_some() {
                return Err(format!(
                    "{}: username and password_file/password_env go together",
                    key("username")
                ));
            }
            NotifyKind::Email {
                host,
                port,
                tls,
                ca_pem,
                from,
                to,
                cc,
                username: c.username.clone(),
                password,
            }
        }
    };
    Ok(NotifyChannel {
        name: name.to_string(),
        timeout,
        retries,
        backoff,
        subject: c.subject.clone(),
        text: c.text.clone(),
        rate,
        kind,
    })
}

/// `rate`: the grammar of every rate in salve, counting every message to the channel.
fn channel_rate(text: &str) -> Result<RateLimit, String> {
    let rate = RateLimit::parse(text).map_err(|e| e.message)?;
    // "per target" and "per rule" parse as rates elsewhere; here they would promise a
    // split the channel does not make.
    if text.split_whitespace().count() != 3 {
        return Err(format!(
            "{text:?}: a channel's rate counts every message to it; write it like \"30 per 1m\""
        ));
    }
    // Nothing could ever be sent, the summary included.
    if rate.count == 0 {
        return Err(format!("{text:?}: at least 1 message per window"));
    }
    Ok(rate)
}
