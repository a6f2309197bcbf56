//! What a notification says: the template context, default subject and text built
//! from the alert and what salve did, the Slack message, and the summary of messages
//! a channel's rate held back.

use super::super::ActionContext;
use crate::event::Event;
use crate::model::OutcomeTrigger;
use crate::model::RateLimit;
use crate::model::Report;
use crate::model::{Decision, Verdict};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Labels that say which alert it is rather than where: not repeated as "key labels".
const NOT_KEY_LABELS: [&str; 2] = ["alertname", "severity"];
const MAX_KEY_LABELS: usize = 8;
/// The held messages a summary names; the rest are counted. A storm held back must
/// not become one message too long to read or to send.
pub(super) const SUMMARY_LISTED: usize = 20;
/// The characters a summary gives one held message.
const SUMMARY_LINE: usize = 200;

/// Everything a message can speak of.
pub(super) struct Facts<'a> {
    pub channel: &'a str,
    pub context: &'a ActionContext,
}

/// One action salve decided, as templates see it.
#[derive(Serialize)]
struct ActionView {
    action: String,
    target: String,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

impl ActionView {
    fn of(d: &Decision) -> ActionView {
        ActionView {
            action: d.action.to_string(),
            target: d.target.to_string(),
            decision: match d.decision {
                Verdict::Execute => "execute",
                Verdict::Suppress => "suppress",
            },
            reason: d.reason.map(|r| r.as_str()),
            detail: d.detail.clone(),
        }
    }
}

/// The variables a template sees (docs/notifications.md, "Templates").
#[derive(Serialize)]
pub(super) struct TemplateContext<'a> {
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    labels: BTreeMap<&'a str, &'a str>,
    annotations: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alertname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starts_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    /// The action the message is about: the reported one, or the rule's first other.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    main: Option<ActionView>,
    /// Everything else the rule decided about this event.
    actions: Vec<ActionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Value>,
}

impl<'a> Facts<'a> {
    fn event(&self) -> Option<&'a Event> {
        self.context.event.as_deref()
    }

    fn report(&self) -> Option<&'a Report> {
        self.context.report.as_ref()
    }

    fn label(&self, name: &str) -> Option<&'a str> {
        self.event()
            .and_then(|e| e.labels.get(name))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn annotation(&self, name: &str) -> Option<&'a str> {
        self.event()
            .and_then(|e| e.annotations.get(name))
            .map(String::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The other action this message is about, if any.
    fn main_action(&self) -> Option<&'a Decision> {
        if let Some(report) = self.report() {
            return Some(&report.decision);
        }
        self.context
            .related
            .iter()
            .find(|d| d.action != crate::model::Action::Notify)
    }

    fn key_labels(&self) -> Vec<(&'a str, &'a str)> {
        self.event()
            .map(|e| {
                e.labels
                    .iter()
                    .filter(|(k, v)| {
                        !NOT_KEY_LABELS.contains(&k.as_str())
                            && !k.starts_with("__")
                            && !v.is_empty()
                    })
                    .take(MAX_KEY_LABELS)
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn links(&self) -> Vec<(&'static str, &'a str)> {
        let mut links = Vec::new();
        if let Some(url) = self
            .event()
            .map(|e| e.generator_url.as_str())
            .filter(|u| is_link(u))
        {
            links.push(("Source", url));
        }
        if let Some(url) = self.annotation("runbook_url").filter(|u| is_link(u)) {
            links.push(("Runbook", url));
        }
        links
    }

    pub fn template_context(&self) -> TemplateContext<'a> {
        let event = self.event();
        let map = |m: Option<&'a crate::event::Labels>| -> BTreeMap<&'a str, &'a str> {
            m.map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                .unwrap_or_default()
        };
        let main = self.main_action();
        TemplateContext {
            channel: self.channel,
            rule: self.context.decision.as_ref().map(|d| d.rule.as_str()),
            labels: map(event.map(|e| &e.labels)),
            annotations: map(event.map(|e| &e.annotations)),
            alertname: self.label("alertname"),
            status: event.map(|e| e.status.as_str()),
            fingerprint: event.map(|e| e.fingerprint.0.as_str()),
            starts_at: event.map(|e| e.starts_at.to_rfc3339()),
            ends_at: event.and_then(|e| e.ends_at).map(|t| t.to_rfc3339()),
            generator_url: event
                .map(|e| e.generator_url.as_str())
                .filter(|u| !u.is_empty()),
            source: event.map(|e| e.source.as_str()),
            event_id: event.map(|e| e.id.as_str()),
            main: main.map(ActionView::of),
            actions: self.context.related.iter().map(ActionView::of).collect(),
            when: self.report().map(|r| r.when.as_str()),
            outcome: self.report().map(|r| {
                json!({
                    "outcome": r.outcome.outcome,
                    "error": r.outcome.error,
                    "duration_ms": r.outcome.duration_ms,
                    "verified": r.outcome.verified,
                })
            }),
        }
    }

    /// `[FIRING] ContainerDown (critical)`.
    fn headline(&self) -> Option<String> {
        let event = self.event()?;
        let name = self.label("alertname").unwrap_or("alert");
        let mut line = format!("[{}] {name}", event.status.as_str().to_uppercase());
        if let Some(severity) = self.label("severity") {
            line.push_str(&format!(" ({severity})"));
        }
        Some(line)
    }

    /// One line on the reported action: what failed and why.
    fn report_line(&self) -> Option<String> {
        let report = self.report()?;
        let d = &report.decision;
        let error = report.outcome.error.as_deref().unwrap_or("no error given");
        Some(match report.when {
            OutcomeTrigger::Failed => format!(
                "salve could not {} {}: {error} (rule {})",
                d.action, d.target, d.rule
            ),
            OutcomeTrigger::CircuitOpen => format!(
                "salve stopped trying to {} {}: it failed too many times in a row and its circuit breaker is open; last error: {error} (rule {})",
                d.action, d.target, d.rule
            ),
            OutcomeTrigger::Abandoned => format!(
                "salve stopped in the middle of {} on {} and will not repeat it: check whether it took effect (rule {})",
                d.action, d.target, d.rule
            ),
            OutcomeTrigger::RuleQuarantined => format!("salve quarantined rule {}", d.rule),
        })
    }

    /// What salve did about the event besides this message, in one line.
    fn did_line(&self) -> Option<String> {
        if self.report().is_some() {
            return None;
        }
        let rule = self.context.decision.as_ref().map(|d| d.rule.as_str())?;
        let done = self.actions_taken();
        (!done.is_empty()).then(|| format!("salve (rule {rule}): {}", done.join("; ")))
    }

    /// The rule's other decisions about the event, notifications aside.
    fn actions_taken(&self) -> Vec<String> {
        self.context
            .related
            .iter()
            .filter(|d| d.action != crate::model::Action::Notify)
            .map(describe_decision)
            .collect()
    }

    /// The subject when neither the rule nor the channel gives one.
    pub fn default_subject(&self) -> String {
        if let Some(report) = self.report() {
            let d = &report.decision;
            return match report.when {
                OutcomeTrigger::Failed => format!("salve: {} on {} failed", d.action, d.target),
                OutcomeTrigger::CircuitOpen => {
                    format!("salve: breaker open for {} on {}", d.action, d.target)
                }
                OutcomeTrigger::Abandoned => {
                    format!("salve: {} on {} interrupted", d.action, d.target)
                }
                OutcomeTrigger::RuleQuarantined => format!("salve: rule {} quarantined", d.rule),
            };
        }
        match (self.headline(), self.annotation("summary")) {
            (Some(h), Some(s)) => format!("{h}: {}", one_line(s)),
            (Some(h), None) => {
                let labels: Vec<String> = self
                    .key_labels()
                    .iter()
                    .take(3)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if labels.is_empty() {
                    h
                } else {
                    format!("{h} {}", labels.join(" "))
                }
            }
            _ => "salve notification".to_string(),
        }
    }

    /// The text when neither the rule nor the channel gives one.
    pub fn default_text(&self) -> String {
        let mut lines = Vec::new();
        if let Some(line) = self.report_line() {
            lines.push(line);
        }
        match self.headline() {
            Some(h) => {
                let h = match self.annotation("summary") {
                    Some(s) => format!("{h}: {s}"),
                    None => h,
                };
                lines.push(if self.report().is_some() {
                    format!("Alert: {h}")
                } else {
                    h
                });
            }
            None if lines.is_empty() => {
                lines.push(format!("salve: notification on channel {}", self.channel))
            }
            None => {}
        }
        let labels: Vec<String> = self
            .key_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !labels.is_empty() {
            lines.push(labels.join(" "));
        }
        if let Some(d) = self.annotation("description") {
            lines.push(d.to_string());
        }
        for (name, url) in self.links() {
            lines.push(format!("{name}: {url}"));
        }
        if let Some(line) = self.did_line() {
            lines.push(line);
        }
        lines.join("\n")
    }

    /// A Slack message with blocks: the text, the alert's facts as fields, summary and
    /// description, what salve did, and buttons to the source and the runbook. `text`
    /// stays as the notification's fallback. `given` is the rule's (or channel's) text;
    /// without it the blocks carry the facts and `text` is the default.
    ///
    /// Every text is escaped whole, the template's own words with the values rendered
    /// into it: by the time a rule's text arrives, `"down: " + label` cannot be told from
    /// a literal, so no part of it may become a mention or a link. Only the markup salve
    /// adds around the escaped texts (`*Status*`) is read as mrkdwn.
    pub fn slack(&self, given: Option<&str>, text: &str) -> Value {
        let Some(event) = self.event() else {
            return json!({ "text": escape(text) });
        };
        let lead = self.slack_lead(given);
        let mut blocks = vec![
            json!({
                "type": "header",
                "text": { "type": "plain_text", "text": cut(&self.slack_title(event), 150), "emoji": true },
            }),
            json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": cut_mrkdwn(&lead, 3000) },
            }),
            json!({ "type": "section", "fields": self.slack_fields(event) }),
        ];
        blocks.extend(self.slack_about(&lead));
        blocks.extend(self.slack_did());
        blocks.extend(self.slack_buttons());
        json!({ "text": escape(text), "blocks": blocks })
    }

    /// The header: what came of an action, or the alert's status and name.
    fn slack_title(&self, event: &Event) -> String {
        match self.report() {
            Some(r) => format!(
                "salve: {} {} on {}",
                r.decision.action,
                match r.when {
                    OutcomeTrigger::Failed => "failed",
                    OutcomeTrigger::CircuitOpen => "breaker open",
                    OutcomeTrigger::Abandoned => "interrupted",
                    OutcomeTrigger::RuleQuarantined => "quarantined",
                },
                r.decision.target
            ),
            None => format!(
                "{} {}: {}",
                match event.status {
                    crate::event::Status::Firing => "🔥",
                    crate::event::Status::Resolved => "✅",
                },
                event.status.as_str().to_uppercase(),
                self.label("alertname").unwrap_or("alert")
            ),
        }
    }

    /// The first section, escaped: the given text, else the report, else the summary.
    fn slack_lead(&self, given: Option<&str>) -> String {
        match given {
            Some(given) => escape(given),
            None => match self.report_line() {
                Some(line) => escape(&line),
                None => escape(
                    self.annotation("summary")
                        .or(self.label("alertname"))
                        .unwrap_or("alert"),
                ),
            },
        }
    }

    /// Status, severity and the key labels, at most the ten Slack shows.
    fn slack_fields(&self, event: &Event) -> Vec<Value> {
        let mut fields = vec![field("Status", event.status.as_str())];
        if let Some(severity) = self.label("severity") {
            fields.push(field("Severity", severity));
        }
        for (k, v) in self.key_labels() {
            if fields.len() == 10 {
                break;
            }
            fields.push(field(k, v));
        }
        fields
    }

    /// Summary and description, those the lead does not already say.
    fn slack_about(&self, lead: &str) -> Option<Value> {
        let mut about = Vec::new();
        for (name, value) in [
            ("Summary", self.annotation("summary")),
            ("Description", self.annotation("description")),
        ] {
            if let Some(value) = value.filter(|v| !lead.contains(&escape(v))) {
                about.push(format!("*{name}:* {}", escape(value)));
            }
        }
        (!about.is_empty()).then(|| {
            json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": cut_mrkdwn(&about.join("\n"), 3000) },
            })
        })
    }

    /// The rule, and what salve did (or, for an outcome notification, what came of it).
    fn slack_did(&self) -> Option<Value> {
        let did: Vec<String> = match self.report() {
            Some(r) => vec![format!(
                "{} → {}{}",
                describe_decision(&r.decision),
                r.outcome.outcome.as_str(),
                r.outcome
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )],
            None => self.actions_taken(),
        };
        let rule = self.report().map(|r| r.decision.rule.as_str()).or(self
            .context
            .decision
            .as_ref()
            .map(|d| d.rule.as_str()))?;
        let line = if did.is_empty() {
            format!("salve (rule {})", escape(rule))
        } else {
            format!("salve (rule {}): {}", escape(rule), escape(&did.join("; ")))
        };
        Some(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": cut_mrkdwn(&line, 3000) }],
        }))
    }

    /// Buttons to the source and the runbook (Slack refuses URLs past 3000 bytes).
    fn slack_buttons(&self) -> Option<Value> {
        let buttons: Vec<Value> = self
            .links()
            .into_iter()
            .filter(|(_, url)| url.len() <= 3000)
            .map(|(name, url)| {
                json!({
                    "type": "button",
                    "text": { "type": "plain_text", "text": name },
                    "url": url,
                })
            })
            .collect();
        (!buttons.is_empty()).then(|| json!({ "type": "actions", "elements": buttons }))
    }
}

/// `restart docker:container/web-1` or `... suppressed (cooldown)`.
fn describe_decision(d: &Decision) -> String {
    match (d.decision, d.reason) {
        (Verdict::Execute, _) => format!("{} {}", d.action, d.target),
        (Verdict::Suppress, Some(reason)) => {
            format!("{} {} suppressed ({reason})", d.action, d.target)
        }
        (Verdict::Suppress, None) => format!("{} {} suppressed", d.action, d.target),
    }
}

pub(super) fn field(name: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": cut_mrkdwn(&format!("*{}*\n{}", escape(name), escape(value)), 2000) })
}

pub(super) fn is_link(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// `text` on one line: runs of whitespace, newlines included, become one space.
pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Slack's mrkdwn reads `<`, `>` and `&` as markup (`<!channel>`, `<URL|text>`): these
/// three are all Slack lets a sender escape
/// (<https://api.slack.com/reference/surfaces/formatting#escaping>).
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with an ellipsis when cut (Slack refuses longer fields).
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// [`cut`] for escaped mrkdwn: an entity the cut falls into goes whole, so the end
/// never reads `&am…`. Every `&` in escaped text starts an entity.
pub(super) fn cut_mrkdwn(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut kept: String = text.chars().take(max - 1).collect();
    if let Some(amp) = kept.rfind('&').filter(|&amp| !kept[amp..].contains(';')) {
        kept.truncate(amp);
    }
    kept.push('…');
    kept
}

/// One held message as a summary names it: when it was held, then its subject or else
/// the first line of its text, on one line and cut.
pub(super) fn summary_line(at: DateTime<Utc>, subject: Option<&str>, text: &str) -> String {
    let first = subject
        .filter(|s| !s.trim().is_empty())
        .or_else(|| text.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("(empty message)");
    format!(
        "{} {}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        cut(&one_line(first), SUMMARY_LINE)
    )
}

/// The subject and text of the summary of `count` held messages, `lines` naming the
/// first of them. Plain text, escaped by each channel as any message is: the lines
/// come from alerts and rules. Each line is one line, so none can pass for salve's.
pub(super) fn summary(
    channel: &str,
    rate: &RateLimit,
    lines: &[String],
    count: usize,
) -> (String, String) {
    let messages = if count == 1 { "message" } else { "messages" };
    let subject = one_line(&format!(
        "salve: {count} more {messages} to {channel}, held by its rate ({rate})"
    ));
    let mut text = format!(
        "{count} more {messages} to {} while its rate ({rate}) was reached:",
        one_line(channel)
    );
    for line in lines.iter().take(SUMMARY_LISTED) {
        text.push_str("\n- ");
        text.push_str(&one_line(line));
    }
    let named = lines.len().min(SUMMARY_LISTED);
    if count > named {
        text.push_str(&format!("\nand {} more", count - named));
    }
    (subject, text)
}

/// A summary as Slack's incoming webhook takes it: the text alone, escaped whole.
pub(super) fn summary_slack(text: &str) -> Value {
    json!({ "text": escape(text) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_in_mrkdwn_never_leaves_half_an_entity() {
        let text = escape("a & b");
        assert_eq!(text, "a &amp; b");
        assert_eq!(cut_mrkdwn(&text, 9), "a &amp; b");
        assert_eq!(cut_mrkdwn(&text, 8), "a &amp;…");
        assert_eq!(cut_mrkdwn(&text, 6), "a …");
        assert_eq!(cut(&text, 6), "a &am…");
    }

    #[test]
    fn a_summary_names_each_held_message_on_one_line_and_its_markup_stays_text() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:47:42.537Z")
            .expect("a time")
            .with_timezone(&Utc);
        let rate = RateLimit::parse("2 per 5s").expect("a rate");
        let lines = vec![
            // The subject when there is one, else the text's first line that says something.
            summary_line(at, Some("[FIRING]  DiskFull\r\non host-a"), "ignored"),
            summary_line(
                at,
                None,
                "\n  \n<!channel> & <http://evil.example|click>\n- fake item",
            ),
            summary_line(at, None, &"x".repeat(500)),
        ];
        let (subject, text) = summary("ops", &rate, &lines, 3);
        assert_eq!(
            subject,
            "salve: 3 more messages to ops, held by its rate (2 per 5s)"
        );
        let long = format!("{}…", "x".repeat(SUMMARY_LINE - 1));
        assert_eq!(
            text,
            format!(
                "3 more messages to ops while its rate (2 per 5s) was reached:\n\
                 - 2026-11-23T10:47:42Z [FIRING] DiskFull on host-a\n\
                 - 2026-11-23T10:47:42Z <!channel> & <http://evil.example|click>\n\
                 - 2026-11-23T10:47:42Z {long}"
            )
        );
        assert_eq!(
            summary_slack(&text)["text"],
            format!(
                "3 more messages to ops while its rate (2 per 5s) was reached:\n\
                 - 2026-11-23T10:47:42Z [FIRING] DiskFull on host-a\n\
                 - 2026-11-23T10:47:42Z &lt;!channel&gt; &amp; &lt;http://evil.example|click&gt;\n\
                 - 2026-11-23T10:47:42Z {long}"
            )
        );
    }

    #[test]
    fn a_summary_of_a_storm_lists_the_first_and_counts_the_rest() {
        let rate = RateLimit::parse("30 per 1m").expect("a rate");
        let lines: Vec<String> = (1..=SUMMARY_LISTED).map(|i| format!("alert {i}")).collect();
        let (_, text) = summary("ops", &rate, &lines, 1000);
        let listed: Vec<&str> = text.lines().filter(|l| l.starts_with("- ")).collect();
        assert_eq!(listed.len(), SUMMARY_LISTED);
        assert_eq!(listed[0], "- alert 1");
        assert_eq!(
            text.lines().next_back(),
            Some(format!("and {} more", 1000 - SUMMARY_LISTED).as_str())
        );
        assert!(text.starts_with("1000 more messages to ops while its rate (30 per 1m)"));
        let (subject, text) = summary("ops", &rate, &["only".into()], 1);
        assert_eq!(
            subject,
            "salve: 1 more message to ops, held by its rate (30 per 1m)"
        );
        assert_eq!(
            text,
            "1 more message to ops while its rate (30 per 1m) was reached:\n- only"
        );
    }
}
