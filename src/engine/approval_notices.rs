//! Telling people about approvals: the request goes to every channel of its group's
//! `notify` list once it is on disk, and so does every change after it (approved,
//! denied, expired, cancelled, invalidated, executed, suppressed). A Slack message a
//! person clicked is also changed in place, through the click's `response_url`.
//!
//! Best-effort and never in the way: messages are sent from tasks of their own, so
//! neither the decision loop nor an answer waits for Slack or a mail server; a message
//! that cannot be sent is logged with its channel and counted
//! (`salve_approval_notices_total`), and the approval goes on without it. The messages
//! about one approval are sent one after the other, in the order its records were
//! written (one task per approval, while it has messages to send): "approved" never
//! lands after "executed", nor the request after its expiry.

use super::Engine;
use crate::audit::{AuditRecord, Entry};
use crate::execute::{ApprovalMessenger, ApprovalNotice, NotifyChannel};
use crate::metrics::Metrics;
use crate::model::{ApprovalState, Decision, OutcomeStatus};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// At most this many `response_url`s are kept: one per pending approval a person
/// clicked in the last half hour, which a few groups never approach.
const MAX_RESPONSE_URLS: usize = 10_000;

/// How long Slack takes a `response_url` after the click that gave it.
const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long an approval's sending task waits for its next message before it ends
/// (the next message then starts another).
const QUEUE_IDLE: Duration = Duration::from_secs(60);

/// What sends approval messages, and the Slack messages to change in place.
#[derive(Default)]
pub(super) struct Notices {
    messenger: ApprovalMessenger,
    /// The last click's `response_url` on each approval, by approval id, and when it
    /// came: kept in memory only (it is no fact of the trail), for as long as Slack
    /// takes it.
    response_urls: Mutex<HashMap<String, (String, Instant)>>,
    /// The task sending each approval's messages in order, by approval id.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>,
}

/// One message about an approval, to its channels and its Slack `response_url`.
struct Message {
    channels: Vec<NotifyChannel>,
    notice: ApprovalNotice,
    response_url: Option<String>,
}

impl Engine {
    /// Tells the channels of each approval's group where it stands now: the request
    /// while it is pending, else what became of it. Read at once, sent later: what is
    /// sent is the state these records made, whatever follows.
    pub(super) fn announce_approvals(&self, ids: &[String]) {
        self.announce_approvals_with(ids, &[]);
    }

    /// As [`Engine::announce_approvals`], a request's webhook documents carrying the
    /// signed links of `links` (a round's, once on disk).
    pub(super) fn announce_approvals_with(
        &self,
        ids: &[String],
        links: &[crate::model::ApprovalLink],
    ) {
        if ids.is_empty() {
            return;
        }
        let runtime = self.runtime();
        let base = external_url(&runtime);
        let state = self.state.read();
        for id in ids {
            let Some(entry) = state.approval(id) else {
                continue;
            };
            let request = &entry.request;
            let notice = ApprovalNotice {
                approval: entry.view(),
                event: Arc::new(request.event.clone()),
                rule_file: runtime.rules.get(&request.rule).map(rule_place),
                links: None,
                webhook_links: links
                    .iter()
                    .filter(|l| l.approval == *id)
                    .map(|l| (l.email.clone(), signed_links(&base, &l.token)))
                    .collect(),
            };
            let channels: Vec<NotifyChannel> = request
                .channels
                .iter()
                .filter_map(|name| {
                    let channel = runtime.config.notify.get(name).cloned();
                    if channel.is_none() {
                        tracing::warn!(approval = %id, channel = %name, "approval message not sent: the channel is gone from the config");
                    }
                    channel
                })
                .collect();
            let response_url = if entry.state.is_open() {
                None
            } else {
                self.notices.response_url(id, ended(entry.state))
            };
            let message = Message {
                channels,
                notice,
                response_url,
            };
            self.notices.queue(id, message, &self.metrics);
        }
    }

    /// Mails each signed link of a round's requests to its address, through the first
    /// email channel of the group's `notify` (its server and sender, this address as
    /// the only recipient), after the request itself.
    pub(super) fn mail_links(&self, links: &[crate::model::ApprovalLink]) {
        if links.is_empty() {
            return;
        }
        let runtime = self.runtime();
        let base = external_url(&runtime);
        let state = self.state.read();
        for link in links {
            let Some(entry) = state.approval(&link.approval) else {
                continue;
            };
            let mailer = entry.request.channels.iter().find_map(|name| {
                let channel = runtime.config.notify.get(name)?;
                matches!(channel.kind, crate::execute::NotifyKind::Email { .. })
                    .then(|| channel.clone())
            });
            let Some(mut channel) = mailer else {
                tracing::warn!(approval = %link.approval, email = %link.email,
                    "signed link not sent: the group's notify names no email channel");
                continue;
            };
            if let crate::execute::NotifyKind::Email { to, cc, .. } = &mut channel.kind {
                *to = vec![link.email.clone()];
                cc.clear();
            }
            let notice = ApprovalNotice {
                approval: entry.view(),
                event: Arc::new(entry.request.event.clone()),
                rule_file: runtime.rules.get(&entry.request.rule).map(rule_place),
                links: Some(signed_links(&base, &link.token)),
                webhook_links: Default::default(),
            };
            let message = Message {
                channels: vec![channel],
                notice,
                response_url: None,
            };
            self.notices.queue(&link.approval, message, &self.metrics);
        }
    }

    /// The approvals a round asked for, and those its decisions spent (executed, or
    /// held back by policy after the yes): what `process_many` announces once the
    /// round is written.
    pub(super) fn approvals_moved(
        &self,
        records: &[AuditRecord],
        decided: &[Decision],
    ) -> Vec<String> {
        let mut ids: Vec<String> = records
            .iter()
            .filter_map(|record| match &record.entry {
                Entry::ApprovalRequested(request) => Some(request.id.clone()),
                _ => None,
            })
            .collect();
        let state = self.state.read();
        for decision in decided {
            let Some(id) = &decision.approval else {
                continue;
            };
            let spent_now = state
                .approval(id)
                .and_then(|entry| entry.spent_by.as_ref())
                .is_some_and(|(by, _)| *by == decision.id);
            if spent_now && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// The `approval_decided` records that took effect: not one that lost to an
    /// earlier answer (another replica's, another person's).
    pub(super) fn approvals_decided(&self, records: &[AuditRecord]) -> Vec<String> {
        let state = self.state.read();
        records
            .iter()
            .filter_map(|record| match &record.entry {
                Entry::ApprovalDecided(d) => Some(d),
                _ => None,
            })
            .filter(|d| {
                state.approval(&d.id).is_some_and(|entry| {
                    entry.state == d.state
                        && (d.state == ApprovalState::Suppressed
                            || entry
                                .decided
                                .as_ref()
                                .is_some_and(|x| x.record == d.decision))
                })
            })
            .map(|d| d.id.clone())
            .collect()
    }

    /// Remembers the `response_url` of a Slack click on approval `id`, so that the
    /// message clicked shows what became of the approval. Only for a pending approval
    /// (what a click names is not trusted to grow memory), whose end forgets it.
    pub fn remember_slack_response(&self, id: &str, response_url: &str) {
        let pending = self
            .state
            .read()
            .approval(id)
            .is_some_and(|entry| entry.state.is_open());
        if !pending || !is_http(response_url) {
            return;
        }
        let mut urls = self.notices.response_urls.lock();
        urls.retain(|_, (_, at)| at.elapsed() < RESPONSE_URL_LIFETIME);
        if urls.len() >= MAX_RESPONSE_URLS && !urls.contains_key(id) {
            tracing::warn!(approval = %id, "not keeping a Slack response_url: {MAX_RESPONSE_URLS} are kept already");
            return;
        }
        urls.insert(id.to_string(), (response_url.to_string(), Instant::now()));
    }

    /// A click on an approval that was decided already: the message clicked is
    /// changed to say what became of it, from a task of its own.
    pub fn show_slack_state(&self, id: &str, response_url: &str) {
        let Some(entry) = self.state.read().approval(id).cloned() else {
            return;
        };
        if !is_http(response_url) {
            return;
        }
        let notice = ApprovalNotice {
            approval: entry.view(),
            event: Arc::new(entry.request.event.clone()),
            rule_file: self
                .runtime()
                .rules
                .get(&entry.request.rule)
                .map(rule_place),
            links: None,
            webhook_links: Default::default(),
        };
        let body = notice.slack_replacement();
        self.respond_to_slack(response_url, body);
    }

    /// A note only the person who clicked sees (why their click was refused).
    pub fn tell_slack_user(&self, response_url: &str, text: &str) {
        if is_http(response_url) {
            self.respond_to_slack(response_url, crate::execute::slack_ephemeral(text));
        }
    }

    fn respond_to_slack(&self, response_url: &str, body: serde_json::Value) {
        let messenger = self.notices.messenger.clone();
        let metrics = self.metrics.clone();
        let url = response_url.to_string();
        tokio::spawn(async move {
            let result = messenger.respond(&url, &body).await;
            count_update(&metrics, result);
        });
    }
}

impl Notices {
    /// Hands `message` to the task sending approval `id`'s messages, starting one if
    /// none runs (or the last one ended, idle).
    fn queue(&self, id: &str, message: Message, metrics: &Arc<Metrics>) {
        let mut queues = self.queues.lock();
        queues.retain(|_, queue| !queue.is_closed());
        let unsent = match queues.get(id) {
            Some(queue) => queue.send(message).err().map(|e| e.0),
            None => Some(message),
        };
        if let Some(message) = unsent {
            let (queue, messages) = mpsc::unbounded_channel();
            // Sent on a channel just made, whose receiver is alive: cannot fail.
            let _ = queue.send(message);
            tokio::spawn(send_in_order(
                messages,
                self.messenger.clone(),
                metrics.clone(),
            ));
            queues.insert(id.to_string(), queue);
        }
    }

    /// The `response_url` to update for approval `id`, while Slack takes it;
    /// forgotten once the approval has `ended`.
    fn response_url(&self, id: &str, ended: bool) -> Option<String> {
        let mut urls = self.response_urls.lock();
        let kept = if ended {
            urls.remove(id)
        } else {
            urls.get(id).cloned()
        };
        kept.filter(|(_, at)| at.elapsed() < RESPONSE_URL_LIFETIME)
            .map(|(url, _)| url)
    }
}

/// The rule's file, and the line that asks when the rule itself does.
fn rule_place(rule: &crate::rules::Rule) -> String {
    match rule.asks_at_line {
        Some(line) => format!("{}:{line}", rule.path.display()),
        None => rule.path.display().to_string(),
    }
}

/// Where people's browsers reach salve: `[approvals] external_url`, else `listen`.
fn external_url(runtime: &super::Runtime) -> String {
    runtime
        .config
        .approvals
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", runtime.config.listen))
}

/// A token's page, opened to approve or to deny.
fn signed_links(base: &str, token: &str) -> crate::execute::ApprovalLinks {
    let page = format!("{base}/approvals/link/{token}");
    crate::execute::ApprovalLinks {
        approve: format!("{page}?choice=approve"),
        deny: format!("{page}?choice=deny"),
    }
}

/// Whether nothing more will become of an approval in `state`.
fn ended(state: ApprovalState) -> bool {
    !matches!(state, ApprovalState::Pending | ApprovalState::Approved)
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// Sends one approval's messages as they come, each to its channels and then to the
/// Slack message a person clicked, if any; ends once none came for [`QUEUE_IDLE`].
async fn send_in_order(
    mut messages: mpsc::UnboundedReceiver<Message>,
    messenger: ApprovalMessenger,
    metrics: Arc<Metrics>,
) {
    while let Ok(Some(message)) = tokio::time::timeout(QUEUE_IDLE, messages.recv()).await {
        send(&messenger, &metrics, message).await;
    }
}

async fn send(messenger: &ApprovalMessenger, metrics: &Metrics, message: Message) {
    let notice = &message.notice;
    let kind = if notice.approval.state.is_open() {
        "request"
    } else {
        "ended"
    };
    let id = &notice.approval.id;
    for channel in &message.channels {
        let outcome = messenger.send(channel, notice).await;
        if outcome.outcome == OutcomeStatus::Ok {
            metrics.approval_notice(kind, &channel.name, "ok");
            tracing::info!(approval = %id, channel = %channel.name, state = %notice.approval.state, "approval message sent");
        } else {
            metrics.approval_notice(kind, &channel.name, "failed");
            tracing::warn!(approval = %id, channel = %channel.name, state = %notice.approval.state,
                error = outcome.error.as_deref().unwrap_or(""), "cannot send an approval message");
        }
    }
    if let Some(url) = &message.response_url {
        let result = messenger.respond(url, &notice.slack_replacement()).await;
        count_update(metrics, result);
    }
}

/// Counts an update through a `response_url`, and logs one that failed.
fn count_update(metrics: &Metrics, result: Result<(), String>) {
    let outcome = match result {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "cannot update a Slack message through its response_url");
            "failed"
        }
    };
    metrics.approval_notice("slack_update", "response_url", outcome);
}
