//! The history rules see while they plan, answered from the policy's memory.

use super::PolicyState;
use crate::alertmanager::Matchers;
use crate::model::{Action, History, Target};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use std::sync::Arc;

/// The read-only view rules query while they plan. `recent()` sees history as it was
/// when the notification arrived: every alert of one notification plans against the
/// same past, so their identical intents fold into one action instead of climbing an
/// escalation ladder within a single notification. Every `recent()` answer given is
/// kept, so a plan made ahead of time can be checked against the history its turn
/// finds (`answers_hold`) rather than made again.
pub struct SharedHistory {
    pub state: Arc<RwLock<PolicyState>>,
    pub as_of: u64,
    answers: parking_lot::Mutex<Vec<RecentAnswer>>,
}

/// One `recent()` question and the answer it got.
#[derive(Debug, Clone)]
struct RecentAnswer {
    target: Target,
    action: Action,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    count: usize,
}

impl SharedHistory {
    /// History as of now.
    pub fn new(state: Arc<RwLock<PolicyState>>) -> SharedHistory {
        let as_of = state.read().executions_recorded();
        SharedHistory::as_of(state, as_of)
    }

    /// History as of the `as_of`-th execution recorded.
    pub fn as_of(state: Arc<RwLock<PolicyState>>, as_of: u64) -> SharedHistory {
        SharedHistory {
            state,
            as_of,
            answers: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Whether every `recent()` answer given would be the same as of the `as_of`-th
    /// execution: then a plan made with them is the plan that history gives.
    pub fn answers_hold(&self, state: &PolicyState, as_of: u64) -> bool {
        as_of == self.as_of
            || self
                .answers
                .lock()
                .iter()
                .all(|a| state.recent(&a.target, a.action, a.from, a.to, as_of) == a.count)
    }
}

impl History for SharedHistory {
    fn recent(
        &self,
        target: &Target,
        action: Action,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> usize {
        let count = self
            .state
            .read()
            .recent(target, action, from, to, self.as_of);
        self.answers.lock().push(RecentAnswer {
            target: target.clone(),
            action,
            from,
            to,
            count,
        });
        count
    }

    fn firing(&self, matchers: &Matchers, now: DateTime<Utc>) -> bool {
        self.state.read().firing(matchers, now)
    }
}
