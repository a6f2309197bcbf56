//! Sending messages about approvals to a channel, with the channel's retries, timeout,
//! signature and credentials, and updating a Slack message through a click's
//! `response_url`.
//!
//! Not paced by the channel's `rate`: a request folded into a summary would lose its
//! buttons, and a person waiting to be asked would never see it. Nor shaped by the
//! channel's `subject` and `text` templates, which speak of alerts and actions taken.

use super::approval_message::ApprovalNotice;
use super::{NotifyChannel, NotifyKind, Prepared, Sender};
use crate::execute::ActionContext;
use crate::model::{error_chain, Outcome};
use serde_json::Value;
use std::time::Duration;

/// How long an update through a `response_url` may take.
const RESPONSE_URL_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends approval messages; cheap to clone, one HTTP client shared.
#[derive(Clone)]
pub struct ApprovalMessenger {
    sender: Sender,
}

impl Default for ApprovalMessenger {
    fn default() -> Self {
        ApprovalMessenger::new()
    }
}

impl ApprovalMessenger {
    pub fn new() -> ApprovalMessenger {
        ApprovalMessenger {
            sender: Sender {
                http: super::http_client(),
            },
        }
    }

    /// Sends `notice` to `channel`: the request (with buttons on a Slack channel that
    /// has a signing secret), or what became of it.
    pub async fn send(&self, channel: &NotifyChannel, notice: &ApprovalNotice) -> Outcome {
        let slack = match &channel.kind {
            NotifyKind::Slack { signing_secret, .. } if notice.approval.state.is_open() => {
                notice.slack_request(signing_secret.is_some())
            }
            NotifyKind::Slack { .. } => notice.slack_ended(),
            _ => Value::Null,
        };
        let prepared = Prepared {
            subject: Some(notice.subject()),
            text: notice.text(),
            slack: slack.to_string().into_bytes(),
            via: Some("approval".into()),
            webhook: Some(notice.webhook_body(&channel.name)),
        };
        let context = ActionContext {
            event: Some(notice.event.clone()),
            ..ActionContext::default()
        };
        self.sender
            .deliver(channel, None, &context, &prepared)
            .await
    }

    /// POSTs `body` to a Slack click's `response_url`: the original message replaced,
    /// or a note to the person who clicked. One attempt: Slack takes at most five
    /// uses of a `response_url`, within 30 minutes of the click.
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), String> {
        let response = self
            .sender
            .http
            .post(response_url)
            .timeout(RESPONSE_URL_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| error_chain(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}
