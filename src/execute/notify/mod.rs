//! Notifications: email over SMTP (lettre), Slack incoming webhooks and generic
//! webhooks signed with HMAC-SHA256. Timeouts, bounded retries with back-off and
//! jitter for transient failures; secrets never reach the outcome. A channel with a
//! `rate` folds what passes it into a summary (`pace`).

mod approval;
mod approval_message;
mod email;
mod message;
mod pace;
mod settings;

pub use approval::ApprovalMessenger;
pub use approval_message::{
    slack_ephemeral, ApprovalLinks, ApprovalNotice, APPROVE_ACTION, DENY_ACTION, LINK_ACTIONS,
};
pub use settings::{NotifyChannel, NotifyConfig, NotifyKind, NotifyType, SmtpTls};

use super::{ActionContext, Executor};
use crate::event::Event;
use crate::model::rate::format_duration;
use crate::model::Decision;
use crate::model::{error_chain, Outcome, Report};
use crate::model::{Backend, Intent, Target};
use crate::template;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
pub use pace::Paces;
use pace::{Admit, Pace};
use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The header a webhook receiver checks: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Salve-Signature";
/// The longest `Retry-After` salve waits for before giving up on a channel.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// What a `webhook` channel POSTs (`schemas/webhook.schema.json`). Signed, when the
/// channel has a secret, in `X-Salve-Signature: sha256=HEX` over these exact bytes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WebhookDocument {
    /// The channel's name in `salve.toml`.
    pub channel: String,
    /// Always `notify`.
    pub action: String,
    /// The function the rule used: `webhook`, `slack`, `email`; absent for `notify`;
    /// `on_outcome` for an outcome notification; `summary` for the summary of messages
    /// the channel's `rate` held (which has no `event`, `intent` or `decision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The rendered subject: the rule's, else the channel's `subject`; absent when
    /// neither gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The rendered message: the rule's, else the channel's `text`, else a default
    /// built from the alert and what salve did.
    pub text: String,
    /// When this attempt was sent (each retry has its own).
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// The alert behind the message (without the source's raw payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// This notification as the rule (or `[[on_outcome]]`) asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
    /// The policy's decision that let this notification through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// What else the same rule decided about the same event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Decision>,
    /// Outcome notifications only: the action reported on, its decision and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// A message rendered once, sent by every attempt.
struct Prepared {
    subject: Option<String>,
    text: String,
    /// Slack's JSON body.
    slack: Vec<u8>,
    /// The webhook document's `via`: the function the rule used, or `summary`.
    via: Option<String>,
    /// A webhook channel's whole body, when it is not a [`WebhookDocument`] (a
    /// message about an approval).
    webhook: Option<Vec<u8>>,
}

pub struct NotifyExecutor {
    channels: HashMap<String, NotifyChannel>,
    /// The channels with a `rate`, kept across rebuilds (see [`Paces`]).
    paces: HashMap<String, Arc<Pace>>,
    sender: Sender,
}

impl NotifyExecutor {
    pub fn new(channels: HashMap<String, NotifyChannel>, paces: &Paces) -> NotifyExecutor {
        let paces = paces.of(&channels);
        NotifyExecutor {
            channels,
            paces,
            sender: Sender {
                http: http_client(),
            },
        }
    }
}

/// The client every channel posts with.
fn http_client() -> reqwest::Client {
    // No redirects: a signed body and a bearer token go where the config says only.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("salve/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// What delivers a prepared message, with its retries: a rule's message, or the
/// summary a channel's rate held messages back for (sent from its own task).
#[derive(Clone)]
struct Sender {
    http: reqwest::Client,
}

/// One attempt's result.
enum Attempt {
    Delivered {
        status: Option<u16>,
    },
    Transient {
        error: String,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    Permanent {
        error: String,
        status: Option<u16>,
    },
}

fn param<'a>(intent: &'a Intent, key: &str) -> Option<&'a str> {
    intent.params.get(key).and_then(Value::as_str)
}

/// HMAC-SHA256 of `body` under `key`, as lowercase hex.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The wait before retry number `retry` (1-based): `base * 2^(retry-1)`, between half
/// and all of it at random so that many salves do not retry in step.
fn backoff(base: Duration, retry: u32) -> Duration {
    let full = base.saturating_mul(1u32 << (retry - 1).min(16));
    let full = full.min(Duration::from_secs(60));
    let factor = rand::thread_rng().gen_range(0.5..=1.0);
    full.mul_f64(factor)
}

impl Sender {
    async fn post(
        &self,
        channel: &NotifyChannel,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Attempt {
        let mut request = self
            .http
            .post(url)
            .timeout(channel.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Err(e) if e.is_timeout() => Attempt::Permanent {
                // Not retried: a receiver that timed out may have acted on it already.
                error: format!("timed out after {}", format_duration(channel.timeout)),
                status: None,
            },
            Err(e) if e.is_connect() => Attempt::Transient {
                error: format!("cannot connect: {}", error_chain(&e.without_url())),
                status: None,
                retry_after: None,
            },
            Err(e) => Attempt::Transient {
                error: error_chain(&e.without_url()),
                status: None,
                retry_after: None,
            },
            Ok(response) => {
                let status = response.status();
                let code = Some(status.as_u16());
                if status.is_success() {
                    return Attempt::Delivered { status: code };
                }
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let error = format!("HTTP {status}");
                if status.is_server_error() || status.as_u16() == 429 {
                    Attempt::Transient {
                        error,
                        status: code,
                        retry_after,
                    }
                } else {
                    Attempt::Permanent {
                        error,
                        status: code,
                    }
                }
            }
        }
    }

    /// One try. `intent` is absent for a summary, which no rule asked for.
    async fn attempt(
        &self,
        channel: &NotifyChannel,
        intent: Option<&Intent>,
        context: &ActionContext,
        prepared: &Prepared,
    ) -> Attempt {
        match &channel.kind {
            NotifyKind::Log => {
                log_message(channel, context, prepared);
                Attempt::Delivered { status: None }
            }
            NotifyKind::Slack { url, .. } => {
                self.post(channel, url.expose(), prepared.slack.clone(), &[])
                    .await
            }
            NotifyKind::Webhook {
                url,
                secret,
                bearer_token,
            } => {
                let body = match &prepared.webhook {
                    Some(body) => body.clone(),
                    None => webhook_body(channel, intent, context, prepared),
                };
                let mut headers = Vec::new();
                if let Some(secret) = secret {
                    headers.push((
                        SIGNATURE_HEADER,
                        format!("sha256={}", sign(secret.expose().as_bytes(), &body)),
                    ));
                }
                if let Some(token) = bearer_token {
                    headers.push(("Authorization", format!("Bearer {}", token.expose())));
                }
                self.post(channel, url.expose(), body, &headers).await
            }
            NotifyKind::Email {
                host,
                port,
                tls,
                ca_pem,
                from,
                to,
                cc,
                username,
                password,
            } => {
                let server = email::Server {
                    host,
                    port: *port,
                    tls: *tls,
                    ca_pem: ca_pem.as_deref(),
                    credentials: username.as_ref().zip(password.as_ref()),
                };
                let addresses = email::Addresses { from, to, cc };
                let subject = prepared.subject.as_deref();
                email::send(channel, server, addresses, subject, &prepared.text).await
            }
        }
    }
}

/// A `log` channel's message: a warning in salve's own log.
fn log_message(channel: &NotifyChannel, context: &ActionContext, prepared: &Prepared) {
    let event = context.event.as_deref();
    tracing::warn!(
        target: "salve::notify",
        channel = %channel.name,
        alertname = event
            .and_then(|e| e.labels.get("alertname"))
            .map_or("-", String::as_str),
        fingerprint = event.map_or("-", |e| e.fingerprint.0.as_str()),
        subject = prepared.subject.as_deref().unwrap_or("-"),
        "{}",
        prepared.text
    );
}

/// The `WebhookDocument` an attempt posts, as the bytes it signs.
fn webhook_body(
    channel: &NotifyChannel,
    intent: Option<&Intent>,
    context: &ActionContext,
    prepared: &Prepared,
) -> Vec<u8> {
    let document = WebhookDocument {
        channel: channel.name.clone(),
        action: "notify".into(),
        via: prepared.via.clone(),
        subject: prepared.subject.clone(),
        text: prepared.text.clone(),
        sent_at: chrono::Utc::now(),
        event: context.event.as_deref().cloned(),
        intent: intent.cloned(),
        decision: context.decision.clone(),
        actions: context.related.clone(),
        report: context.report.clone(),
    };
    serde_json::to_vec(&document).unwrap_or_default()
}

/// A message template that would not render, named by the key it came from.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {error}")]
struct TemplateError {
    key: &'static str,
    error: template::TemplateError,
}

/// Renders the subject and text (the rule's, else the channel's, else defaults).
fn prepare(
    channel: &NotifyChannel,
    intent: &Intent,
    context: &ActionContext,
) -> Result<Prepared, TemplateError> {
    let facts = message::Facts {
        channel: &channel.name,
        context,
    };
    let variables = facts.template_context();
    // Text a rule put together at run time is data, not a template (see rules::templates).
    let render = |key: &'static str, text: &str| -> Result<String, TemplateError> {
        let verbatim = intent
            .params
            .get("verbatim")
            .and_then(Value::as_array)
            .is_some_and(|keys| keys.iter().any(|k| k == key));
        if verbatim {
            return Ok(text.to_string());
        }
        template::render(text, &variables).map_err(|error| TemplateError { key, error })
    };
    let given_subject = param(intent, "subject").or(channel.subject.as_deref());
    let subject = given_subject.map(|s| render("subject", s)).transpose()?;
    let given = param(intent, "text")
        .or(channel.text.as_deref())
        .map(|t| render("text", t))
        .transpose()?;
    let text = given.clone().unwrap_or_else(|| facts.default_text());
    let slack = match channel.kind {
        NotifyKind::Slack { .. } => facts
            .slack(given.as_deref(), &text)
            .to_string()
            .into_bytes(),
        _ => Vec::new(),
    };
    let subject = match channel.kind {
        NotifyKind::Email { .. } => Some(subject.unwrap_or_else(|| facts.default_subject())),
        _ => subject,
    }
    // A subject is one line, whoever wrote it: a newline from a template or from a
    // label in the default would reach the header (lettre encodes it, readers show it).
    .map(|s| message::one_line(&s));
    Ok(Prepared {
        subject,
        text,
        slack,
        via: param(intent, "via").map(str::to_string),
        webhook: None,
    })
}

impl Sender {
    /// Sends `prepared`, retrying transient failures: the outcome of a message, or of
    /// a summary (no `intent`).
    async fn deliver(
        &self,
        channel: &NotifyChannel,
        intent: Option<&Intent>,
        context: &ActionContext,
        prepared: &Prepared,
    ) -> Outcome {
        let name = &channel.name;
        let kind = channel.kind.type_name();
        let status_key = match channel.kind {
            NotifyKind::Email { .. } => "smtp_status",
            _ => "status",
        };
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let detail = |status: Option<u16>| {
                let mut d = json!({ "channel": name, "type": kind, "attempts": attempts });
                if let Some(s) = status {
                    d[status_key] = json!(s);
                }
                d
            };
            match self.attempt(channel, intent, context, prepared).await {
                Attempt::Delivered { status } => return Outcome::ok(detail(status)),
                Attempt::Permanent { error, status } => {
                    return Outcome::failed(error, detail(status))
                }
                Attempt::Transient {
                    error,
                    status,
                    retry_after,
                } => {
                    if attempts > channel.retries {
                        let error = if attempts > 1 {
                            format!("{error} (gave up after {attempts} attempts)")
                        } else {
                            error
                        };
                        return Outcome::failed(error, detail(status));
                    }
                    let wait = match retry_after {
                        Some(wait) if wait > MAX_RETRY_AFTER => {
                            return Outcome::failed(
                                format!(
                                    "{error}: the receiver asks to retry after {}s, longer than salve waits",
                                    wait.as_secs()
                                ),
                                detail(status),
                            )
                        }
                        Some(wait) => wait,
                        None => backoff(channel.backoff, attempts),
                    };
                    tracing::info!(channel = %name, attempt = attempts, %error, wait_ms = wait.as_millis() as u64, "notification not delivered; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[async_trait]
impl Executor for NotifyExecutor {
    fn backend(&self) -> Backend {
        Backend::Notify
    }

    async fn execute(&self, intent: &Intent, context: &ActionContext) -> Outcome {
        let Target::Notify { channel: name } = &intent.target else {
            return Outcome::failed(
                format!("notify cannot act on {}", intent.target),
                json!(null),
            );
        };
        let Some(channel) = self.channels.get(name) else {
            return Outcome::failed(
                format!("no notification channel named {name:?} in the config"),
                json!({ "channel": name }),
            );
        };
        let prepared = match prepare(channel, intent, context) {
            Ok(p) => p,
            Err(error) => {
                return Outcome::failed(
                    error.to_string(),
                    json!({ "channel": name, "type": channel.kind.type_name(), "attempts": 0 }),
                )
            }
        };
        // Rendered first: a message that cannot be rendered fails as it would without
        // a rate, and one that is held is named in the summary as it would have read.
        let _turn = match self.paces.get(name) {
            None => None,
            Some(pace) => {
                let line = || {
                    message::summary_line(
                        chrono::Utc::now(),
                        prepared.subject.as_deref(),
                        &prepared.text,
                    )
                };
                match pace.admit(tokio::time::Instant::now(), line) {
                    Admit::Send => Some(pace.sending.lock().await),
                    Admit::Held { first } => {
                        if first {
                            tokio::spawn(pace::flush(
                                pace.clone(),
                                channel.clone(),
                                self.sender.clone(),
                            ));
                        }
                        return pace::folded(channel, pace);
                    }
                }
            }
        };
        self.sender
            .deliver(channel, Some(intent), context, &prepared)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for retry in 1..=4 {
            let full = Duration::from_millis(100 * (1 << (retry - 1)));
            let wait = backoff(Duration::from_millis(100), retry);
            assert!(wait >= full / 2 && wait <= full, "{retry}: {wait:?}");
        }
    }
}
