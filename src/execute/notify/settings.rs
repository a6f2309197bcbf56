//! `[notify.NAME]`: the file model of a channel, a `type` and the keys that type takes,
//! and its validation into a [`NotifyChannel`], secrets read, every error naming the
//! key at fault.

use crate::model::rate::ParseError;
use crate::model::{secret_setting, HumanDuration, InvalidSetting, RateLimit, Secret};
use crate::template;
use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// One notification channel: the keys every type has, and its `type` with the keys
/// that type takes. A key of another type is refused, naming the type.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NotifyConfig {
    #[serde(flatten)]
    pub common: ChannelCommon,
    #[serde(flatten)]
    pub kind: NotifyType,
}

/// The keys every type of channel takes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelCommon {
    /// Subject template (email, webhook) when a rule gives none, e.g.
    /// `"[{{ status }}] {{ labels.alertname }}"`. Default: from the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Message template when a rule gives no text. Default: the alert's name, status,
    /// severity, key labels, summary, description, links and what salve did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// One delivery attempt gives up after this long. Default `10s`.
    pub timeout: HumanDuration,
    /// Retries after the first attempt for transient failures; at most 10. Default 3.
    pub retries: u32,
    /// Wait before the first retry, doubled at each retry, with jitter. Default `500ms`.
    pub backoff: HumanDuration,
    /// At most this many messages to the channel in any window, e.g. `"30 per 1m"`:
    /// messages past it are held and sent as one summary when the rate allows (a
    /// summary counts as one message). Default: no limit of the channel's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<ChannelRate>,
}

impl Default for ChannelCommon {
    fn default() -> ChannelCommon {
        ChannelCommon {
            subject: None,
            text: None,
            timeout: HumanDuration::from_secs(10),
            retries: 3,
            backoff: HumanDuration::from_millis(500),
            rate: None,
        }
    }
}

/// A channel's `type` and the keys it takes.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotifyType {
    Email(EmailConfig),
    Slack(SlackConfig),
    Webhook(WebhookConfig),
    /// Writes the message to salve's own log (standard error), at WARN: a channel that
    /// needs nothing set up, for trying salve out and as the embedded defaults' `ops`
    /// and `oncall`.
    Log,
}

/// `type = "email"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://HOST:PORT` (plain), `smtps://HOST:PORT` (TLS) or
    /// `smtp://HOST:PORT?tls=starttls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<String>,
    /// `none`, `starttls` or `tls`; overrides what `smtp` implies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SmtpTls>,
    /// PEM file of the CA that signed the server's certificate, trusted besides the
    /// built-in roots (with `starttls` or `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// SMTP AUTH user name (the password from `password_file` or `password_env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

/// `type = "slack"`: an incoming webhook's URL, which is a secret: prefer `url_env`
/// or `url_file`; and, for approval buttons, the Slack app's signing secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Where to POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// The Slack app's Signing Secret (Basic Information, App Credentials), from a
    /// file. With it, approval requests to this channel carry Approve and Deny buttons,
    /// and `POST /api/v1/slack/interactions` takes the clicks it signs. Default: none,
    /// no buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_file: Option<PathBuf>,
    /// The signing secret from an environment variable instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_env: Option<String>,
}

/// `type = "webhook"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST; from `url_env` or `url_file` if it holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// Key of the `X-Salve-Signature: sha256=HEX` HMAC-SHA256 of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Sent as `Authorization: Bearer TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
}

/// The `type` key alone, read first to know which keys the rest may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TypeName {
    Email,
    Slack,
    Webhook,
    Log,
}

impl TypeName {
    fn as_str(self) -> &'static str {
        match self {
            TypeName::Email => "email",
            TypeName::Slack => "slack",
            TypeName::Webhook => "webhook",
            TypeName::Log => "log",
        }
    }

    /// The keys this type takes besides [`ChannelCommon`]'s, read from its struct.
    fn keys(self) -> BTreeSet<String> {
        match self {
            TypeName::Email => keys_of::<EmailConfig>(),
            TypeName::Slack => keys_of::<SlackConfig>(),
            TypeName::Webhook => keys_of::<WebhookConfig>(),
            TypeName::Log => BTreeSet::new(),
        }
    }

    const ALL: [TypeName; 4] = [
        TypeName::Email,
        TypeName::Slack,
        TypeName::Webhook,
        TypeName::Log,
    ];
}

/// The keys a struct of the file model takes: the properties of its schema, so the
/// list is never written by hand beside the struct.
fn keys_of<T: JsonSchema>() -> BTreeSet<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// One key's value or a whole table, typed; an error names the key within the channel.
fn typed<T: serde::de::DeserializeOwned>(value: toml::Value) -> Result<T, InvalidSetting> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = match e.path().to_string() {
            path if path == "." => String::new(),
            path => path,
        };
        InvalidSetting::new(key, e.inner().message())
    })
}

impl NotifyConfig {
    /// `[notify.NAME]` from its table: `type` first, then the keys every type takes,
    /// then those of its type. Errors name the key within the channel (`url`).
    fn from_table(mut table: toml::Table) -> Result<NotifyConfig, InvalidSetting> {
        let type_name: TypeName = match table.remove("type") {
            Some(value) => typed(value).map_err(|e| e.under("type"))?,
            None => return Err(InvalidSetting::new("", "missing field `type`")),
        };
        let common_keys = keys_of::<ChannelCommon>();
        let (common, own): (toml::Table, toml::Table) = table
            .into_iter()
            .partition(|(key, _)| common_keys.contains(key));
        let common: ChannelCommon = typed(toml::Value::Table(common))?;
        let own_keys = type_name.keys();
        if let Some(key) = own.keys().find(|key| !own_keys.contains(*key)) {
            let elsewhere = TypeName::ALL.iter().any(|t| t.keys().contains(key));
            let message = if elsewhere {
                format!(
                    "does not apply to a channel of type {:?}",
                    type_name.as_str()
                )
            } else {
                let known: Vec<String> = common_keys
                    .iter()
                    .chain(&own_keys)
                    .map(|k| format!("`{k}`"))
                    .collect();
                format!(
                    "unknown field `{key}`, expected one of {}",
                    known.join(", ")
                )
            };
            return Err(InvalidSetting::new(key.clone(), message));
        }
        let own = toml::Value::Table(own);
        let kind = match type_name {
            TypeName::Email => NotifyType::Email(typed(own)?),
            TypeName::Slack => NotifyType::Slack(typed(own)?),
            TypeName::Webhook => NotifyType::Webhook(typed(own)?),
            TypeName::Log => NotifyType::Log,
        };
        Ok(NotifyConfig { common, kind })
    }

    /// `[notify]` as `salve.toml` is read: every channel, each error naming its key in
    /// full (`notify.ops.url: ...`).
    pub fn deserialize_channels<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, NotifyConfig>, D::Error> {
        let tables = BTreeMap::<String, toml::Table>::deserialize(deserializer)?;
        tables
            .into_iter()
            .map(|(name, table)| match NotifyConfig::from_table(table) {
                Ok(channel) => Ok((name, channel)),
                Err(e) => Err(D::Error::custom(e.under(&format!("notify.{name}")))),
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for NotifyConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NotifyConfig, D::Error> {
        let table = toml::Table::deserialize(deserializer)?;
        NotifyConfig::from_table(table).map_err(D::Error::custom)
    }
}

/// A channel's `rate`: salve's grammar of rates, counting every message to the channel,
/// so neither "per target" nor "per rule" (a split the channel does not make), and at
/// least 1 message (else nothing, the summary included, could ever be sent).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde_with::DeserializeFromStr, serde_with::SerializeDisplay,
)]
pub struct ChannelRate(pub RateLimit);

impl std::str::FromStr for ChannelRate {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<ChannelRate, ParseError> {
        let refused = |message: String| ParseError { message };
        let rate = RateLimit::parse(text)?;
        if text.split_whitespace().count() != 3 {
            return Err(refused(format!(
                "{text:?}: a channel's rate counts every message to it; write it like \"30 per 1m\""
            )));
        }
        if rate.count == 0 {
            return Err(refused(format!("{text:?}: at least 1 message per window")));
        }
        Ok(ChannelRate(rate))
    }
}

impl std::fmt::Display for ChannelRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl JsonSchema for ChannelRate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RateLimit::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RateLimit::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for SmtpTls {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SmtpTls, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            other => Err(D::Error::custom(format!(
                "{other:?}: use \"none\", \"starttls\" or \"tls\""
            ))),
        }
    }
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

/// How an email channel talks TLS to its server (`tls`, or what `smtp` implies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
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
        /// The app's signing secret: approval buttons on, and what their clicks are
        /// checked against.
        signing_secret: Option<Secret>,
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
    /// Validates `[notify.NAME]`: its templates compile, its addresses, URLs and CA
    /// file are good and its secrets can be read.
    pub fn from_config(name: &str, c: &NotifyConfig) -> Result<NotifyChannel, InvalidSetting> {
        let section = format!("notify.{name}");
        let common = &c.common;
        for (k, text) in [("subject", &common.subject), ("text", &common.text)] {
            if let Some(t) = text {
                template::check(t).map_err(|e| InvalidSetting::new(k, e).under(&section))?;
            }
        }
        if common.retries > 10 {
            return Err(InvalidSetting::new("retries", "at most 10").under(&section));
        }
        let kind = match &c.kind {
            NotifyType::Log => NotifyKind::Log,
            NotifyType::Slack(slack) => NotifyKind::Slack {
                url: post_url(
                    &slack.url,
                    slack.url_file.as_deref(),
                    slack.url_env.as_deref(),
                    &section,
                )?,
                signing_secret: signing_secret(slack, &section)?,
            },
            NotifyType::Webhook(hook) => webhook(hook, &section)?,
            NotifyType::Email(config) => email(config, &section)?,
        };
        Ok(NotifyChannel {
            name: name.to_string(),
            timeout: common.timeout.get(),
            retries: common.retries,
            backoff: common.backoff.get(),
            subject: common.subject.clone(),
            text: common.text.clone(),
            rate: common.rate.map(|r| r.0),
            kind,
        })
    }
}

/// A Slack channel's signing secret: from one of `signing_secret_file`,
/// `signing_secret_env`, and not empty (an empty key would verify what anyone signs).
fn signing_secret(slack: &SlackConfig, section: &str) -> Result<Option<Secret>, InvalidSetting> {
    let key = format!("{section}.signing_secret");
    if slack.signing_secret_file.is_some() && slack.signing_secret_env.is_some() {
        return Err(InvalidSetting::new(
            key,
            "give one of signing_secret_file, signing_secret_env",
        ));
    }
    let secret = secret_setting(
        &key,
        slack.signing_secret_file.as_deref(),
        slack.signing_secret_env.as_deref(),
    )?;
    match secret {
        Some(s) if s.trim().is_empty() => Err(InvalidSetting::new(key, "is empty")),
        Some(s) => Ok(Some(Secret(s.trim().to_string()))),
        None => Ok(None),
    }
}

fn webhook(hook: &WebhookConfig, section: &str) -> Result<NotifyKind, InvalidSetting> {
    let secret = |k: &str, file: &Option<PathBuf>, env: &Option<String>| {
        secret_setting(&format!("{section}.{k}"), file.as_deref(), env.as_deref())
            .map(|s| s.map(Secret))
    };
    Ok(NotifyKind::Webhook {
        url: post_url(
            &hook.url,
            hook.url_file.as_deref(),
            hook.url_env.as_deref(),
            section,
        )?,
        secret: secret("secret", &hook.secret_file, &hook.secret_env)?,
        bearer_token: secret(
            "bearer_token",
            &hook.bearer_token_file,
            &hook.bearer_token_env,
        )?,
    })
}

/// Where a Slack or webhook channel posts: one of `url`, `url_env`, `url_file`, an
/// http(s) URL.
fn post_url(
    url: &Option<String>,
    file: Option<&std::path::Path>,
    env: Option<&str>,
    section: &str,
) -> Result<Secret, InvalidSetting> {
    let key = format!("{section}.url");
    let url = match (url, secret_setting(&key, file, env)?) {
        (Some(_), Some(_)) => {
            return Err(InvalidSetting::new(
                key,
                "give one of url, url_env, url_file",
            ))
        }
        (Some(u), None) => u.clone(),
        (None, Some(u)) => u,
        (None, None) => return Err(InvalidSetting::new(key, "needs url, url_env or url_file")),
    };
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| InvalidSetting::new(&*key, format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InvalidSetting::new(key, "needs an http:// or https:// URL"));
    }
    Ok(Secret(url))
}

/// An email channel: its server and how it talks TLS, its CA, its addresses and its
/// credentials.
fn email(c: &EmailConfig, section: &str) -> Result<NotifyKind, InvalidSetting> {
    let key = |k: &str| format!("{section}.{k}");
    let (host, port, tls) = smtp_server(c, &key)?;
    let ca_pem = match &c.ca_file {
        None => None,
        Some(_) if tls == SmtpTls::None => {
            return Err(InvalidSetting::new(
                key("ca_file"),
                "needs tls = \"starttls\" or \"tls\"",
            ))
        }
        Some(path) => Some(ca_pem(path, &key("ca_file"))?),
    };
    let address = |k: &str, a: &str| -> Result<String, InvalidSetting> {
        a.parse::<lettre::Address>()
            .map_err(|e| InvalidSetting::new(key(k), format!("{a:?}: {e}")))?;
        Ok(a.to_string())
    };
    let from = c
        .from
        .as_deref()
        .ok_or_else(|| InvalidSetting::new(key("from"), "needs the sender address"))?;
    let from = address("from", from)?;
    if c.to.is_empty() {
        return Err(InvalidSetting::new(
            key("to"),
            "needs at least one recipient",
        ));
    }
    let to =
        c.to.iter()
            .map(|a| address("to", a))
            .collect::<Result<_, _>>()?;
    let cc =
        c.cc.iter()
            .map(|a| address("cc", a))
            .collect::<Result<_, _>>()?;
    let password = secret_setting(
        &key("password"),
        c.password_file.as_deref(),
        c.password_env.as_deref(),
    )?
    .map(Secret);
    if password.is_some() != c.username.is_some() {
        return Err(InvalidSetting::new(
            key("username"),
            "username and password_file/password_env go together",
        ));
    }
    Ok(NotifyKind::Email {
        host,
        port,
        tls,
        ca_pem,
        from,
        to,
        cc,
        username: c.username.clone(),
        password,
    })
}

/// `smtp` (and `tls`, which overrides what it implies): host, port and TLS.
fn smtp_server(
    c: &EmailConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(String, u16, SmtpTls), InvalidSetting> {
    let invalid = |message: String| InvalidSetting::new(key("smtp"), message);
    let smtp = c
        .smtp
        .as_deref()
        .ok_or_else(|| invalid("needs the server, e.g. \"smtp://127.0.0.1:25\"".into()))?;
    let url = reqwest::Url::parse(smtp).map_err(|e| invalid(format!("not a URL: {e}")))?;
    let mut tls = match url.scheme() {
        "smtp" => SmtpTls::None,
        "smtps" => SmtpTls::Tls,
        other => {
            return Err(invalid(format!(
                "scheme {other:?}: use smtp:// or smtps://"
            )))
        }
    };
    for (k, v) in url.query_pairs() {
        tls = match (k.as_ref(), v.as_ref()) {
            ("tls", "starttls") => SmtpTls::StartTls,
            ("tls", "tls") => SmtpTls::Tls,
            ("tls", "none") => SmtpTls::None,
            _ => return Err(invalid(format!("unknown option {k}={v}"))),
        };
    }
    if let Some(t) = c.tls {
        tls = t;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "no credentials in the URL; use username and password_file or password_env".into(),
        ));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("needs a host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port().unwrap_or(match tls {
        SmtpTls::Tls => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    });
    Ok((host, port, tls))
}

/// The PEM of an email channel's `ca_file`, read and checked.
fn ca_pem(path: &std::path::Path, key: &str) -> Result<Vec<u8>, InvalidSetting> {
    let pem = std::fs::read(path)
        .map_err(|e| InvalidSetting::new(key, format!("cannot read {}: {e}", path.display())))?;
    lettre::transport::smtp::client::Certificate::from_pem(&pem)
        .map_err(|e| InvalidSetting::new(key, format!("{}: {e}", path.display())))?;
    Ok(pem)
}
