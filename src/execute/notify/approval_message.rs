//! What a message about an approval says: the request (the alert, the rule, the exact
//! action, what policy said, when it expires, and on a Slack channel with a signing
//! secret the Approve and Deny buttons) and what became of it, as Slack blocks, as
//! plain text (email, log) and as a webhook's JSON document.
//!
//! Every text from outside (labels, annotations, rule and target names, the name of
//! whoever decided, their comment) is escaped as `message.rs` escapes a notification's:
//! only the markup salve adds around it is read as mrkdwn.

use super::message::{cut, cut_mrkdwn, escape, field, is_link, one_line};
use crate::event::Event;
use crate::model::{ApprovalState, ApprovalView};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The `action_id` of the Approve button; its `value` is the approval's id alone.
pub const APPROVE_ACTION: &str = "approve";
/// The `action_id` of the Deny button; its `value` is the approval's id alone.
pub const DENY_ACTION: &str = "deny";
/// The `action_id`s of the link buttons (source, runbook): Slack sends their clicks
/// to the interactions endpoint too, which acknowledges them and does nothing.
pub const LINK_ACTIONS: [&str; 2] = ["source", "runbook"];

/// One approval, as a message about it speaks of it.
#[derive(Debug, Clone)]
pub struct ApprovalNotice {
    /// The approval as it stands: `pending` for the request, any other state for what
    /// became of it.
    pub approval: ApprovalView,
    /// The alert it is for.
    pub event: Arc<Event>,
    /// The rule's file, while the rule is loaded.
    pub rule_file: Option<String>,
    /// The signed links that answer the request without logging in, in the mail sent
    /// to one of the group's `emails` (the engine builds them, one token an address);
    /// without them, the mail says how to answer through the API.
    pub links: Option<ApprovalLinks>,
    /// Every address's signed links, by address, for the webhook document of the
    /// request: a webhook that pages people hands each their own (empty after it).
    pub webhook_links: std::collections::BTreeMap<String, ApprovalLinks>,
}

/// A signed link to approve and one to deny.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalLinks {
    pub approve: String,
    pub deny: String,
}

/// What a webhook channel POSTs about an approval.
#[derive(Serialize)]
struct ApprovalDocument<'a> {
    /// `approval_requested`, or `approval_decided` for every change after it (its
    /// `approval.state` says which).
    kind: &'static str,
    channel: &'a str,
    sent_at: DateTime<Utc>,
    approval: &'a ApprovalView,
    /// The alert (without the source's raw payload).
    event: &'a Event,
    /// The request's signed links, by the address each answers as.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    links: &'a std::collections::BTreeMap<String, ApprovalLinks>,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl ApprovalNotice {
    fn is_request(&self) -> bool {
        self.approval.state == ApprovalState::Pending
    }

    fn alertname(&self) -> &str {
        match self.approval.alertname.as_str() {
            "" => "alert",
            name => name,
        }
    }

    /// The params exactly as the rule gave them, as JSON; empty without any.
    fn params(&self) -> String {
        if self.approval.params.is_empty() {
            return String::new();
        }
        serde_json::to_string(&self.approval.params).unwrap_or_default()
    }

    /// `exec on exec:mark`.
    fn what(&self) -> String {
        format!("{} on {}", self.approval.action, self.approval.target)
    }

    /// The webhook document, as the bytes a channel signs.
    pub(super) fn webhook_body(&self, channel: &str) -> Vec<u8> {
        let document = ApprovalDocument {
            kind: if self.is_request() {
                "approval_requested"
            } else {
                "approval_decided"
            },
            channel,
            sent_at: Utc::now(),
            approval: &self.approval,
            event: &self.event,
            links: &self.webhook_links,
        };
        serde_json::to_vec(&document).unwrap_or_default()
    }

    /// What became of it, in one plain sentence.
    pub fn state_line(&self) -> String {
        let a = &self.approval;
        let by = a
            .decided_by
            .as_ref()
            .map_or_else(|| "someone".to_string(), ToString::to_string);
        let at = a.decided_at.map(time).unwrap_or_default();
        let comment = match a.comment.trim() {
            "" => String::new(),
            c => format!(": \"{}\"", one_line(c)),
        };
        match a.state {
            ApprovalState::Pending => format!("Waiting for an answer until {}", time(a.expires_at)),
            ApprovalState::Approved => format!("Approved by {by} at {at}{comment}"),
            ApprovalState::Denied => {
                format!("Denied by {by} at {at}{comment}: {} does not run", self.what())
            }
            ApprovalState::Expired => format!(
                "Expired at {}: nobody answered in time, so {} does not run",
                time(a.expires_at),
                self.what()
            ),
            ApprovalState::Cancelled => format!(
                "Cancelled at {at}: the alert stopped firing before anyone answered"
            ),
            ApprovalState::Invalidated => format!(
                "Invalidated at {at}: a reload changed the rule or the approval group; the alert asks again at its next decision"
            ),
            ApprovalState::Executed => {
                format!("Approved by {by} at {at}; salve ran {}", self.what())
            }
            ApprovalState::Suppressed => format!(
                "Approved by {by} at {at}, but policy held {} back{}",
                self.what(),
                match a.detail.as_str() {
                    "" => String::new(),
                    detail => format!(": {}", one_line(detail)),
                }
            ),
        }
    }

    /// The subject of a mail, on one line.
    pub(super) fn subject(&self) -> String {
        let head = if self.is_request() {
            "approval needed".to_string()
        } else {
            format!("approval {}", self.approval.state)
        };
        one_line(&format!(
            "salve: {head} for {} ({})",
            self.what(),
            self.alertname()
        ))
    }

    /// The plain text of a mail or a log line: the request's facts, or what became of
    /// it and which request it was.
    pub(super) fn text(&self) -> String {
        let a = &self.approval;
        let mut lines = Vec::new();
        if self.is_request() {
            lines.push(format!(
                "salve asks before it runs {}. Nothing runs without a yes; no answer by {} means no.",
                self.what(),
                time(a.expires_at)
            ));
        } else {
            lines.push(self.state_line());
        }
        lines.push(String::new());
        lines.extend(self.alert_lines());
        lines.push(String::new());
        let rule = match &self.rule_file {
            Some(file) => format!("{} ({file})", a.rule),
            None => a.rule.clone(),
        };
        lines.push(format!("Rule: {rule}"));
        lines.push(format!("Action: {}", a.action));
        lines.push(format!("Target: {}", a.target));
        if !a.params.is_empty() {
            lines.push(format!("Params: {}", self.params()));
        }
        if !a.verdict.is_empty() {
            lines.push(format!("Policy: {}", a.verdict));
        }
        lines.push(format!("Expires: {}", time(a.expires_at)));
        if !a.approvers.is_empty() {
            lines.push(format!("Who may decide: {}", a.approvers.join(", ")));
        }
        lines.push(format!("Approval: {} (group {})", a.id, a.group));
        if self.is_request() {
            lines.push(String::new());
            match &self.links {
                Some(links) => {
                    lines.push(format!("Approve: {}", links.approve));
                    lines.push(format!("Deny: {}", links.deny));
                }
                None => lines.push(format!(
                    "Answer with POST /api/v1/approvals/{}/approve (or /deny).",
                    a.id
                )),
            }
        }
        lines.join("\n")
    }

    /// The alert: its name and status, labels, annotations and where it came from.
    fn alert_lines(&self) -> Vec<String> {
        let e = &self.event;
        let mut lines = vec![format!(
            "Alert: {} [{}] since {}",
            self.alertname(),
            e.status.as_str().to_uppercase(),
            time(e.starts_at)
        )];
        let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.push(format!("Labels: {}", one_line(&labels.join(" "))));
        for (k, v) in &e.annotations {
            lines.push(format!("{k}: {}", one_line(v)));
        }
        if is_link(&e.generator_url) {
            lines.push(format!("Source: {}", e.generator_url));
        }
        lines
    }

    /// The request as Slack blocks; `buttons` adds Approve and Deny.
    pub(super) fn slack_request(&self, buttons: bool) -> Value {
        let mut blocks = self.slack_request_blocks();
        if buttons {
            blocks.push(self.slack_buttons());
        }
        json!({ "text": escape(&self.fallback()), "blocks": blocks })
    }

    /// The follow-up message: what became of the request.
    pub(super) fn slack_ended(&self) -> Value {
        let a = &self.approval;
        let text = format!(
            "*Approval {}:* {} for {}\n{}",
            a.state,
            escape(&self.what()),
            escape(self.alertname()),
            escape(&self.state_line())
        );
        json!({
            "text": escape(&self.fallback()),
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": cut_mrkdwn(&text, 3000) } },
                self.slack_context(),
            ],
        })
    }

    /// The request message as it should read now, for its `response_url`: the same
    /// facts, no buttons, and what became of it.
    pub fn slack_replacement(&self) -> Value {
        let mut blocks = self.slack_request_blocks();
        let outcome = format!(
            "*{}*: {}",
            self.approval.state.as_str().to_uppercase(),
            escape(&self.state_line())
        );
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": cut_mrkdwn(&outcome, 3000) },
        }));
        json!({ "replace_original": true, "text": escape(&self.fallback()), "blocks": blocks })
    }

    /// The notification's text where blocks are not shown.
    fn fallback(&self) -> String {
        let head = if self.is_request() {
            "Approval needed".to_string()
        } else {
            format!("Approval {}", self.approval.state)
        };
        format!(
            "{head}: {} for {} ({})",
            self.what(),
            self.alertname(),
            self.approval.id
        )
    }

    fn slack_request_blocks(&self) -> Vec<Value> {
        let a = &self.approval;
        let e = &self.event;
        let lead = format!(
            "salve asks before it runs *{}* on *{}*. Nothing runs without a yes; no answer by {} means no.",
            escape(&a.action.to_string()),
            escape(&a.target.to_string()),
            time(a.expires_at)
        );
        let mut facts = vec![
            field("Rule", &a.rule),
            field("Expires", &time(a.expires_at)),
        ];
        if let Some(file) = &self.rule_file {
            facts.push(field("Rule file", file));
        }
        if !a.params.is_empty() {
            facts.push(field("Params", &self.params()));
        }
        if !a.verdict.is_empty() {
            facts.push(field("Policy", &a.verdict));
        }
        let mut labels = vec![field("Status", e.status.as_str())];
        labels.extend(e.labels.iter().take(9).map(|(k, v)| field(k, v)));
        let mut blocks = vec![
            json!({
                "type": "header",
                "text": { "type": "plain_text", "text": cut(&format!("🔐 Approval needed: {}", self.alertname()), 150), "emoji": true },
            }),
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": cut_mrkdwn(&lead, 3000) } }),
            json!({ "type": "section", "fields": facts }),
            json!({ "type": "section", "fields": labels }),
        ];
        let annotations: Vec<String> = e
            .annotations
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("*{}:* {}", escape(k), escape(v.trim())))
            .collect();
        if !annotations.is_empty() {
            blocks.push(json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": cut_mrkdwn(&annotations.join("\n"), 3000) },
            }));
        }
        blocks.extend(self.slack_links());
        blocks.push(self.slack_context());
        blocks
    }

    /// Who may decide, and the approval's id and group.
    fn slack_context(&self) -> Value {
        let a = &self.approval;
        let mut line = format!(
            "approval {} · group {} · rule {}",
            escape(&a.id),
            escape(&a.group),
            escape(&a.rule)
        );
        if !a.approvers.is_empty() {
            line.push_str(&format!(
                " · who may decide: {}",
                escape(&a.approvers.join(", "))
            ));
        }
        json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": cut_mrkdwn(&line, 3000) }] })
    }

    /// Buttons to the alert's source and runbook (Slack refuses URLs past 3000 bytes).
    fn slack_links(&self) -> Option<Value> {
        let e = &self.event;
        let runbook = e.annotations.get("runbook_url").map(|u| u.trim());
        let buttons: Vec<Value> = [
            (LINK_ACTIONS[0], "Source", Some(e.generator_url.as_str())),
            (LINK_ACTIONS[1], "Runbook", runbook),
        ]
        .into_iter()
        .filter_map(|(id, name, url)| Some((id, name, url?)))
        .filter(|(_, _, url)| is_link(url) && url.len() <= 3000)
        .map(|(id, name, url)| {
            json!({
                "type": "button",
                "action_id": id,
                "text": { "type": "plain_text", "text": name },
                "url": url,
            })
        })
        .collect();
        (!buttons.is_empty()).then(|| json!({ "type": "actions", "elements": buttons }))
    }

    /// Approve and Deny: each carries the approval's id and nothing else, so a click
    /// says only which approval and which answer; everything else is read from salve's
    /// own state when the click arrives.
    fn slack_buttons(&self) -> Value {
        let button = |action_id: &str, text: &str, style: &str| {
            json!({
                "type": "button",
                "action_id": action_id,
                "text": { "type": "plain_text", "text": text },
                "style": style,
                "value": self.approval.id,
            })
        };
        json!({
            "type": "actions",
            "elements": [
                button(APPROVE_ACTION, "Approve", "primary"),
                button(DENY_ACTION, "Deny", "danger"),
            ],
        })
    }
}

/// A note only the person who clicked sees, through the click's `response_url`.
pub fn slack_ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "replace_original": false, "text": escape(text) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(state: &str) -> ApprovalNotice {
        let approval = serde_json::from_value(json!({
            "id": "0193a1b2-approval",
            "state": state,
            "group": "sre",
            "rule": "failover",
            "action": "exec",
            "target": "exec:mark",
            "params": { "args": ["db-1"], "approval": "sre" },
            "fingerprint": "75359c27e5221bdd",
            "alertname": "DbDown",
            "requested_at": "2026-12-07T03:00:00Z",
            "expires_at": "2026-12-07T03:15:00Z",
            "approvers": ["slack:U0123ABCD"],
            "verdict": "passed dedup, maintenance, limits, cooldown and breaker",
            "decided_by": { "via": "slack", "id": "U0123ABCD", "name": "<!channel>" },
            "decided_at": "2026-12-07T03:01:00Z",
        }))
        .expect("an approval view");
        let event = serde_json::from_value(json!({
            "id": "e1",
            "source": "native",
            "status": "firing",
            "labels": { "alertname": "DbDown", "host": "<@U999> & co" },
            "annotations": { "summary": "db down <http://evil.example|click>" },
            "starts_at": "2026-12-07T03:00:00Z",
            "fingerprint": "75359c27e5221bdd",
            "generator_url": "http://prometheus.example/graph",
        }))
        .expect("an event");
        ApprovalNotice {
            approval,
            event: Arc::new(event),
            rule_file: Some("/etc/salve/rules/failover.rhai".into()),
            links: None,
            webhook_links: Default::default(),
        }
    }

    fn buttons(message: &Value) -> Vec<Value> {
        message["blocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    #[test]
    fn the_request_buttons_carry_the_id_alone_and_links_stay_links() {
        let request = notice("pending").slack_request(true);
        let [source, approve, deny] = &buttons(&request)[..] else {
            panic!("three buttons: {request:#}");
        };
        assert_eq!(source["action_id"], "source");
        assert_eq!(source["url"], "http://prometheus.example/graph");
        assert_eq!(
            approve,
            &json!({ "type": "button", "action_id": "approve", "style": "primary",
                     "text": { "type": "plain_text", "text": "Approve" }, "value": "0193a1b2-approval" })
        );
        assert_eq!(deny["action_id"], "deny");
        assert_eq!(deny["value"], "0193a1b2-approval");
        let without = notice("pending").slack_request(false);
        assert_eq!(buttons(&without).len(), 1, "only the link: {without:#}");
    }

    #[test]
    fn text_from_the_alert_and_the_person_never_becomes_slack_markup() {
        for message in [
            notice("pending").slack_request(true),
            notice("approved").slack_ended(),
            notice("approved").slack_replacement(),
        ] {
            let text = message.to_string();
            for raw in ["<@U999>", "<!channel>", "<http://evil"] {
                assert!(!text.contains(raw), "{raw} unescaped in {message:#}");
            }
        }
        let request = notice("pending").slack_request(true).to_string();
        assert!(request.contains("&lt;@U999&gt; &amp; co"), "{request}");
        assert!(
            request.contains(r#"{\"approval\":\"sre\",\"args\":[\"db-1\"]}"#),
            "{request}"
        );
    }

    #[test]
    fn what_became_of_it_names_who_and_when() {
        assert_eq!(
            notice("denied").state_line(),
            "Denied by <!channel> <U0123ABCD> (slack) at 2026-12-07T03:01:00Z: exec on exec:mark does not run"
        );
        assert_eq!(
            notice("expired").state_line(),
            "Expired at 2026-12-07T03:15:00Z: nobody answered in time, so exec on exec:mark does not run"
        );
        let replaced = notice("executed").slack_replacement();
        assert_eq!(replaced["replace_original"], true);
        assert!(buttons(&replaced)
            .iter()
            .all(|b| b["action_id"] == "source"));
        assert!(replaced.to_string().contains("*EXECUTED*: Approved by"));
        assert_eq!(
            notice("pending").subject(),
            "salve: approval needed for exec on exec:mark (DbDown)"
        );
        let mail = notice("pending").text();
        assert!(
            mail.contains("Rule: failover (/etc/salve/rules/failover.rhai)"),
            "{mail}"
        );
        assert!(
            mail.contains("Answer with POST /api/v1/approvals/0193a1b2-approval/approve"),
            "{mail}"
        );
    }
}
