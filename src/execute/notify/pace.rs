//! `[notify.NAME] rate`: a channel's own pace. A message past the rate is not dropped
//! (it may be another incident's page): it is held, and what is held goes out as one
//! summary naming each message as soon as the rate has room for one more. Held
//! messages live in memory only; each one's outcome in the trail says it was folded,
//! and a summary salve stops before sending is written to the log instead.

use super::message::{self, SUMMARY_LISTED};
use super::{NotifyChannel, NotifyKind, Prepared, Sender};
use crate::execute::ActionContext;
use crate::metrics::Metrics;
use crate::model::{Outcome, OutcomeStatus, RateLimit, SkipReason};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One channel's count of what it sent and what waits for its summary.
pub(super) struct Pace {
    rate: RateLimit,
    /// The engine's metrics, where it gave them.
    metrics: Option<Arc<Metrics>>,
    state: parking_lot::Mutex<State>,
    /// Held while a message or a summary is delivered. The dispatcher already sends a
    /// channel's messages one at a time; a summary goes out from its own task, and
    /// must take its turn like them.
    pub(super) sending: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// When each message still in the window was sent, oldest first (at most
    /// `rate.count`): a summary counts as one.
    sent: VecDeque<Instant>,
    /// What waits for the summary. While anything does, new messages wait with it, so
    /// the summary takes the next free place rather than each newcomer.
    held: Option<Held>,
}

/// Messages folded into the next summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Held {
    /// The first [`SUMMARY_LISTED`], as the summary names them.
    pub lines: Vec<String>,
    /// All of them.
    pub count: usize,
}

/// What to do with a message now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// Send it: it is counted.
    Send,
    /// Held for the summary. `first`: it starts a batch, whose [`flush`] the caller
    /// starts.
    Held { first: bool },
}

/// The summary's turn.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Turn {
    /// Send these now: the summary is counted.
    Send(Held),
    /// No room yet: ask again after this long.
    Wait(Duration),
}

/// Every channel's pace, kept from one executor to the next (a reload, the Docker
/// engine connecting), as the target locks are: a rebuild must not start a channel's
/// count again and let twice its rate through.
#[derive(Clone, Default)]
pub struct Paces {
    kept: Arc<parking_lot::Mutex<HashMap<String, Arc<Pace>>>>,
    metrics: Option<Arc<Metrics>>,
}

impl Paces {
    /// Paces that count what they fold and summarize in `metrics`.
    pub fn counted_in(metrics: Arc<Metrics>) -> Paces {
        Paces {
            kept: Arc::default(),
            metrics: Some(metrics),
        }
    }

    /// The paces of `channels`: a channel's own if its rate is unchanged, a new one if
    /// it is new or its rate changed; channels no longer there are forgotten.
    pub(super) fn of(
        &self,
        channels: &HashMap<String, NotifyChannel>,
    ) -> HashMap<String, Arc<Pace>> {
        let mut kept = self.kept.lock();
        let paces: HashMap<String, Arc<Pace>> = channels
            .iter()
            .filter_map(|(name, channel)| {
                let rate = channel.rate?;
                let pace = match kept.get(name) {
                    Some(pace) if *pace.rate() == rate => pace.clone(),
                    _ => Arc::new(Pace {
                        metrics: self.metrics.clone(),
                        ..Pace::new(rate)
                    }),
                };
                Some((name.clone(), pace))
            })
            .collect();
        *kept = paces.clone();
        paces
    }
}

impl Pace {
    pub fn new(rate: RateLimit) -> Pace {
        Pace {
            rate,
            metrics: None,
            state: parking_lot::Mutex::new(State::default()),
            sending: tokio::sync::Mutex::new(()),
        }
    }

    pub fn rate(&self) -> &RateLimit {
        &self.rate
    }

    /// Forgets sends that left the window; says whether there is room for one more.
    fn has_room(&self, state: &mut State, now: Instant) -> bool {
        while let Some(&oldest) = state.sent.front() {
            if now.saturating_duration_since(oldest) < self.rate.window {
                break;
            }
            state.sent.pop_front();
        }
        state.sent.len() < self.rate.count as usize
    }

    /// A message to the channel at `now`: sent if the rate has room and nothing waits,
    /// else held (named by `line`, asked only when the summary will list it).
    pub fn admit(&self, now: Instant, line: impl FnOnce() -> String) -> Admit {
        let mut state = self.state.lock();
        if state.held.is_none() && self.has_room(&mut state, now) {
            state.sent.push_back(now);
            return Admit::Send;
        }
        let first = state.held.is_none();
        let held = state.held.get_or_insert_with(Held::default);
        if held.lines.len() < SUMMARY_LISTED {
            held.lines.push(line());
        }
        held.count += 1;
        Admit::Held { first }
    }

    /// The summary at `now`: everything held, if the rate has room for it.
    pub fn take(&self, now: Instant) -> Turn {
        let mut state = self.state.lock();
        if self.has_room(&mut state, now) {
            state.sent.push_back(now);
            return Turn::Send(state.held.take().unwrap_or_default());
        }
        // has_room kept only sends inside the window, so the oldest leaves it next.
        let wait = state
            .sent
            .front()
            .map(|&oldest| {
                self.rate
                    .window
                    .saturating_sub(now.saturating_duration_since(oldest))
            })
            .unwrap_or_default();
        Turn::Wait(wait)
    }

    /// What waits and no summary took yet: what a stop leaves unsent.
    fn abandon(&self) -> Option<Held> {
        self.state.lock().held.take()
    }
}

/// The outcome of a message held for the summary, counted in
/// `salve_notifications_folded_total`.
pub(super) fn folded(channel: &NotifyChannel, pace: &Pace) -> Outcome {
    let rate = &pace.rate;
    if let Some(metrics) = &pace.metrics {
        metrics.notification_folded(&channel.name);
    }
    tracing::debug!(channel = %channel.name, %rate, "message held for the channel's summary");
    Outcome::skipped(
        format!(
            "held for a summary: channel {} reached its rate ({rate}); the summary is sent when the rate allows",
            channel.name
        ),
        Some(SkipReason::FoldedIntoSummary),
        json!({
            "channel": channel.name,
            "type": channel.kind.type_name(),
            "folded_into_summary": true,
        }),
    )
}

/// Sends what `pace` holds as one summary once the rate has room. Started with the
/// first message of a batch; ends when the summary has been tried, so the next held
/// message starts the next batch.
pub(super) async fn flush(pace: Arc<Pace>, channel: NotifyChannel, sender: Sender) {
    let mut unsent = Unsent {
        pace: &pace,
        channel: &channel,
        taken: None,
    };
    let held = loop {
        match pace.take(Instant::now()) {
            Turn::Send(held) => break unsent.taken.insert(held),
            Turn::Wait(wait) => tokio::time::sleep(wait).await,
        }
    };
    if held.count == 0 {
        unsent.taken = None;
        return;
    }
    let count = held.count;
    let prepared = prepare(&channel, &pace.rate, held);
    let outcome = {
        let _turn = pace.sending.lock().await;
        sender
            .deliver(&channel, None, &ActionContext::default(), &prepared)
            .await
    };
    unsent.taken = None;
    summary_tried(&pace, &channel.name, count, &outcome, &prepared.text);
}

/// The summary as every attempt sends it, `via = "summary"` on a webhook.
fn prepare(channel: &NotifyChannel, rate: &RateLimit, held: &Held) -> Prepared {
    let (subject, text) = message::summary(&channel.name, rate, &held.lines, held.count);
    let slack = match channel.kind {
        NotifyKind::Slack { .. } => message::summary_slack(&text).to_string().into_bytes(),
        _ => Vec::new(),
    };
    Prepared {
        subject: Some(subject),
        text,
        slack,
        via: Some("summary".into()),
        webhook: None,
    }
}

/// A summary sent or failed: no trail record speaks for it (each held message has its
/// own `folded_into_summary` outcome), so the log and the metric do. A failed one is
/// logged with its text, so what it named is not lost with it.
fn summary_tried(pace: &Pace, channel: &str, count: usize, outcome: &Outcome, text: &str) {
    if let Some(metrics) = &pace.metrics {
        metrics.notification_summary(channel, outcome.outcome.as_str());
    }
    if outcome.outcome == OutcomeStatus::Ok {
        tracing::info!(
            channel,
            messages = count,
            "sent the summary of messages held by the channel's rate"
        );
    } else {
        tracing::error!(
            channel,
            messages = count,
            error = outcome.error.as_deref().unwrap_or(""),
            "could not send the summary of messages held by the channel's rate: {text}"
        );
    }
}

/// What a flush still answers for. Dropped before it is done (salve stopping: the
/// runtime drops every task), it writes the summary that did not go out to the log.
struct Unsent<'a> {
    pace: &'a Pace,
    channel: &'a NotifyChannel,
    /// The batch taken for sending; before that, it is still in the pace.
    taken: Option<Held>,
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        let (held, state) = match self.taken.take() {
            Some(held) => (held, "was being sent and may not have arrived"),
            None => match self.pace.abandon() {
                Some(held) => (held, "was not sent"),
                None => return,
            },
        };
        if held.count == 0 {
            return;
        }
        let name = &self.channel.name;
        if let Some(metrics) = &self.pace.metrics {
            metrics.notification_summary(name, "unsent");
        }
        let (_, text) = message::summary(name, &self.pace.rate, &held.lines, held.count);
        tracing::warn!(
            channel = %name,
            messages = held.count,
            "stopping with messages held by the channel's rate; their summary {state}: {text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(count: u32, window_s: u64) -> Pace {
        Pace::new(RateLimit {
            count,
            window: Duration::from_secs(window_s),
            per_target: false,
        })
    }

    fn channels(rates: &[(&str, &str)]) -> HashMap<String, NotifyChannel> {
        rates
            .iter()
            .map(|(name, rate)| {
                let config: super::super::NotifyConfig =
                    toml::from_str(&format!("type = \"log\"\nrate = \"{rate}\"\n"))
                        .expect("a channel");
                let channel = NotifyChannel::from_config(name, &config).expect("valid");
                (name.to_string(), channel)
            })
            .collect()
    }

    #[test]
    fn a_rebuilt_executor_keeps_a_channels_count_unless_its_rate_changed() {
        let paces = Paces::default();
        let first = paces.of(&channels(&[("ops", "1 per 1h"), ("tickets", "5 per 1m")]));
        assert_eq!(first["ops"].admit(Instant::now(), String::new), Admit::Send);
        let again = paces.of(&channels(&[("ops", "1 per 1h"), ("tickets", "9 per 1m")]));
        assert!(Arc::ptr_eq(&first["ops"], &again["ops"]));
        assert_eq!(
            again["ops"].admit(Instant::now(), || "held".into()),
            Admit::Held { first: true },
            "the reload did not let a second message through"
        );
        assert!(!Arc::ptr_eq(&first["tickets"], &again["tickets"]));
        assert!(paces.of(&channels(&[])).is_empty());
    }

    #[test]
    fn past_the_rate_messages_are_held_until_one_summary_takes_the_next_free_place() {
        let pace = pace(2, 10);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(pace.admit(at(0), || "a".into()), Admit::Send);
        assert_eq!(pace.admit(at(1), || "b".into()), Admit::Send);
        assert_eq!(
            pace.admit(at(2), || "c".into()),
            Admit::Held { first: true }
        );
        assert_eq!(
            pace.admit(at(3), || "d".into()),
            Admit::Held { first: false }
        );
        // "a" leaves the window at 10s.
        assert_eq!(pace.take(at(4)), Turn::Wait(Duration::from_secs(6)));
        // A place is free, but the held messages have it: a newcomer joins them.
        assert_eq!(
            pace.admit(at(10), || "e".into()),
            Admit::Held { first: false }
        );
        assert_eq!(
            pace.take(at(10)),
            Turn::Send(Held {
                lines: vec!["c".into(), "d".into(), "e".into()],
                count: 3,
            })
        );
        // The summary counted as one: "b" and it fill the window until 11s.
        assert_eq!(
            pace.admit(at(10), || "f".into()),
            Admit::Held { first: true }
        );
        assert_eq!(pace.take(at(10)), Turn::Wait(Duration::from_secs(1)));
        assert_eq!(pace.abandon().map(|h| h.count), Some(1));
        assert_eq!(pace.admit(at(20), || "g".into()), Admit::Send);
    }

    #[test]
    fn a_storm_holds_a_bounded_list_and_counts_the_rest() {
        let pace = pace(1, 60);
        let now = Instant::now();
        assert_eq!(
            pace.admit(now, || unreachable!("sent, not listed")),
            Admit::Send
        );
        for i in 0..1000 {
            let line = || {
                assert!(i < SUMMARY_LISTED, "line {i} asked for");
                format!("message {i}")
            };
            pace.admit(now, line);
        }
        let Some(held) = pace.abandon() else {
            panic!("nothing held")
        };
        assert_eq!((held.lines.len(), held.count), (SUMMARY_LISTED, 1000));
    }
}
