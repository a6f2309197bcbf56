//! The window as it is read: requests wait for their place, steps are taken in it, and
//! each round's decisions are compared with the recorded ones for the same events.

use super::{
    difference, told, Answers, Assume, Difference, Key, Keyer, Mode, Replay, Summary, Told, Window,
};
use crate::audit::{AuditRecord, Entry, OutcomeRecord};
use crate::engine::{fold, replay_round, Runtime};
use crate::event::Event;
use crate::model::{Decision, Outcome, OutcomeStatus};
use crate::policy::PolicyState;
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// A recorded decision, numbered in the order read.
type Numbered = (usize, Decision);

/// One request of the window, as received, until it is decided.
struct Request {
    at: DateTime<Utc>,
    /// Positions of its first and last `received` records.
    first: usize,
    last: usize,
    received: Vec<AuditRecord>,
    /// How many of its `received` records have been folded in their place.
    folded: usize,
    /// Its events that a rule matched when received and whose `evaluated` record has not
    /// been read yet (by a hash of their ids): what was decided about them comes first.
    awaiting: Vec<u64>,
    /// Where and when its first event's `evaluated` record stands.
    evaluated: Option<(usize, DateTime<Utc>)>,
    /// More `received` records of the same instant may still join it.
    open: bool,
    /// Its place among the steps is known.
    placed: bool,
    /// The decisions recorded about its events, each numbered in the order read.
    recorded: Vec<Numbered>,
    decided: bool,
}

/// One step of a replay, at a position of the recorded window; a request is decided
/// after the record in its place is folded.
struct Step {
    position: usize,
    then: u8,
    what: StepKind,
}

enum StepKind {
    /// One of a request's `received` records.
    Received {
        request: usize,
        index: usize,
    },
    /// A window change: what was decided before it is decided first, and outcomes due
    /// by then are applied.
    Change(Box<AuditRecord>),
    /// What was decided about an event received before the window, with its outcome:
    /// history, as it was recorded.
    History(Box<AuditRecord>),
    Decide {
        request: usize,
    },
}

impl PartialEq for Step {
    fn eq(&self, other: &Step) -> bool {
        (self.position, self.then) == (other.position, other.then)
    }
}
impl Eq for Step {}
impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Step) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Step {
    fn cmp(&self, other: &Step) -> std::cmp::Ordering {
        (self.position, self.then).cmp(&(other.position, other.then))
    }
}

/// A replayed action's outcome, applied once the replay reaches its time.
struct Pending {
    at: DateTime<Utc>,
    decision: Decision,
    status: OutcomeStatus,
    /// The recorded twin whose outcome has not been read yet.
    awaiting: Option<String>,
}

/// Where an event of the window stands.
enum Seen {
    Waiting(usize),
    Decided,
    Before,
}

pub(super) struct Replayer<'r> {
    runtime: &'r Runtime,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    assume: Assume,
    /// How approvals the replay asks are answered.
    answers: Answers,
    mode: Mode,
    /// Whether salve ran in dry-run, as the last request that showed it says: the mode
    /// of a request with nothing recorded to tell.
    dry_run_then: bool,
    state: Arc<RwLock<PolicyState>>,
    oldest: Option<DateTime<Utc>>,
    /// The window begins at the first record of its time; what comes before is folded.
    in_window: bool,
    position: usize,
    /// Requests not yet decided, oldest first; the front one is number `front`.
    requests: VecDeque<Request>,
    front: usize,
    /// The oldest request whose place is not known yet: no step after its first record
    /// can be taken.
    unplaced: usize,
    /// The request of each event received in the window, by a hash of its id.
    events: FxHashMap<u64, usize>,
    /// The actions the window decided to run: the outcome of any other is history
    /// (an action decided before the window).
    window_actions: FxHashSet<String>,
    outcomes: FxHashMap<String, (OutcomeStatus, DateTime<Utc>)>,
    steps: BinaryHeap<Reverse<Step>>,
    round: Vec<(Vec<Event>, Vec<Numbered>)>,
    /// The mode each request of the round is decided in.
    round_modes: Vec<bool>,
    round_now: Option<DateTime<Utc>>,
    pending: Vec<Pending>,
    recorded_read: usize,
    replayed: usize,
    /// With the order they are listed in: recorded ones by the recording, then those
    /// only replayed.
    differences: Vec<((u8, usize), Difference)>,
    summary: Summary,
    events_replayed: usize,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(id)
}

impl<'r> Replayer<'r> {
    pub(super) fn new(
        runtime: &'r Runtime,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        (assume, answers): (Assume, Answers),
        mode: Mode,
    ) -> Replayer<'r> {
        Replayer {
            runtime,
            since,
            until,
            assume,
            answers,
            mode,
            dry_run_then: false,
            state: Arc::new(RwLock::new(PolicyState::new(runtime.config.policy.clone()))),
            oldest: None,
            in_window: false,
            position: 0,
            requests: VecDeque::new(),
            front: 0,
            unplaced: 0,
            events: FxHashMap::default(),
            window_actions: FxHashSet::default(),
            outcomes: FxHashMap::default(),
            steps: BinaryHeap::new(),
            round: Vec::new(),
            round_modes: Vec::new(),
            round_now: None,
            pending: Vec::new(),
            recorded_read: 0,
            replayed: 0,
            differences: Vec::new(),
            summary: Summary::default(),
            events_replayed: 0,
        }
    }

    /// The request numbered `number`, while it is held.
    fn held(&self, number: usize) -> Option<&Request> {
        self.requests.get(number.checked_sub(self.front)?)
    }

    fn request(&mut self, number: usize) -> Option<&mut Request> {
        self.requests.get_mut(number.checked_sub(self.front)?)
    }

    fn seen(&self, event_id: &str) -> Seen {
        match self.events.get(&id_hash(event_id)) {
            None => Seen::Before,
            Some(&number) => match self.held(number) {
                Some(request) if !request.decided => Seen::Waiting(number),
                _ => Seen::Decided,
            },
        }
    }

    fn step(&mut self, position: usize, then: u8, what: StepKind) {
        self.steps.push(Reverse(Step {
            position,
            then,
            what,
        }));
    }

    /// Takes one record of the trail, oldest first.
    pub(super) fn read(&mut self, record: AuditRecord) {
        self.oldest.get_or_insert(record.at);
        if record.at > self.until {
            return;
        }
        if !self.in_window {
            if record.at < self.since {
                self.read_before_window(&record);
                return;
            }
            self.in_window = true;
            let mut settings = self.runtime.config.policy.clone();
            settings.approvals.assumed = self.answers.assumed();
            self.state.write().set_settings(settings);
        }
        self.position += 1;
        let position = self.position;
        let at = record.at;
        // A reconsidered alert is decided again as a re-send is: a request of its own.
        let received = match &record.entry {
            Entry::Received {
                event, unmatched, ..
            } => Some((id_hash(&event.id), *unmatched, false)),
            Entry::Reconsidered { event, .. } => Some((id_hash(&event.id), false, true)),
            _ => None,
        };
        if let Some((hash, unmatched, alone)) = received {
            self.read_received(record, (hash, unmatched, alone), position, at);
            return;
        }
        match &record.entry {
            Entry::Maintenance(_) | Entry::StateReset { .. } => {
                self.close_open();
                self.step(position, 0, StepKind::Change(Box::new(record)));
            }
            // A person's answer, as recorded, to the approval the replay asked at the
            // same moment for the same (its id is made of both).
            Entry::ApprovalDecided(_) if self.answers == Answers::Recorded => {
                self.close_open();
                self.step(position, 0, StepKind::Change(Box::new(record)));
            }
            Entry::Evaluated { .. } => self.read_evaluated(record, position),
            Entry::Decision(_) => self.read_decision(record, position),
            Entry::Outcome(_) => self.read_outcome(record, position),
            _ => {}
        }
    }

    /// A record before the window: what the state and the mode were when it opens.
    fn read_before_window(&mut self, record: &AuditRecord) {
        if let Entry::Decision(d) = &record.entry {
            self.learn_mode(told([d]));
        }
        fold(&mut self.state.write(), record);
    }

    /// An `evaluated` record: a request waiting for it may be placed now.
    fn read_evaluated(&mut self, record: AuditRecord, position: usize) {
        let Entry::Evaluated { event_id, .. } = &record.entry else {
            return;
        };
        match self.seen(event_id) {
            Seen::Waiting(number) => {
                let hash = id_hash(event_id);
                if let Some(request) = self.request(number) {
                    if let Some(i) = request.awaiting.iter().position(|h| *h == hash) {
                        request.awaiting.swap_remove(i);
                    }
                    let first = request.received.first().and_then(|r| match &r.entry {
                        Entry::Received { event, .. } => Some(event.id.as_str()),
                        Entry::Reconsidered { event, .. } => Some(event.id.as_str()),
                        _ => None,
                    });
                    if request.evaluated.is_none() && first == Some(event_id.as_str()) {
                        request.evaluated = Some((position, record.at));
                    }
                }
                self.place(number);
            }
            Seen::Before => self.step(position, 0, StepKind::History(Box::new(record))),
            Seen::Decided => {}
        }
    }

    /// A recorded decision: kept to compare with its request's replay, or history.
    fn read_decision(&mut self, record: AuditRecord, position: usize) {
        let Entry::Decision(d) = &record.entry else {
            return;
        };
        match self.seen(&d.event_id) {
            Seen::Waiting(number) => {
                if d.executes() {
                    self.window_actions.insert(d.id.clone());
                }
                let read = self.recorded_read;
                self.recorded_read += 1;
                if let Entry::Decision(d) = record.entry {
                    if let Some(request) = self.request(number) {
                        request.recorded.push((read, d));
                    }
                }
            }
            Seen::Before => self.step(position, 0, StepKind::History(Box::new(record))),
            // What outcomes led to: replay follows the outcomes it assumes instead.
            Seen::Decided => {
                if d.executes() {
                    self.window_actions.insert(d.id.clone());
                }
            }
        }
    }

    /// A recorded outcome: of an action in the window, what its replayed twin takes;
    /// else history.
    fn read_outcome(&mut self, record: AuditRecord, position: usize) {
        let Entry::Outcome(o) = &record.entry else {
            return;
        };
        if !self.window_actions.contains(&o.decision_id) {
            self.step(position, 0, StepKind::History(Box::new(record)));
            return;
        }
        let (status, id, at) = (o.outcome.outcome, o.decision_id.clone(), record.at);
        for p in &mut self.pending {
            if p.awaiting.as_deref() == Some(id.as_str()) {
                (p.at, p.status, p.awaiting) = (at, status, None);
            }
        }
        self.outcomes.entry(id).or_insert((status, at));
    }

    /// A `received` record: its event joins the request being read, or starts one; a
    /// `reconsidered` one (`alone`) is a request of its own.
    fn read_received(
        &mut self,
        record: AuditRecord,
        (hash, unmatched, alone): (u64, bool, bool),
        position: usize,
        at: DateTime<Utc>,
    ) {
        if alone || !self.requests.back().is_some_and(|r| r.open && r.at == at) {
            self.close_open();
            self.requests.push_back(Request {
                at,
                first: position,
                last: position,
                received: Vec::new(),
                folded: 0,
                awaiting: Vec::new(),
                evaluated: None,
                open: true,
                placed: false,
                recorded: Vec::new(),
                decided: false,
            });
        }
        let number = self.front + self.requests.len() - 1;
        self.events.insert(hash, number);
        let Some(request) = self.requests.back_mut() else {
            return;
        };
        request.last = position;
        if !unmatched {
            request.awaiting.push(hash);
        }
        let index = request.received.len();
        request.received.push(record);
        self.step(
            position,
            0,
            StepKind::Received {
                request: number,
                index,
            },
        );
        if alone {
            // Live, each reconsidered alert is a notification of its own.
            self.close_open();
        }
    }

    /// The request still taking `received` records takes no more.
    fn close_open(&mut self) {
        if let Some(request) = self.requests.back_mut().filter(|r| r.open) {
            request.open = false;
            let number = self.front + self.requests.len() - 1;
            self.place(number);
        }
    }

    /// Gives a request its place once everything it waits for has been read: where its
    /// first event's `evaluated` record stands, at that record's time; a request no
    /// rule matched where it was received.
    fn place(&mut self, number: usize) {
        let Some(request) = self.request(number) else {
            return;
        };
        if request.open || request.placed || !request.awaiting.is_empty() {
            return;
        }
        request.placed = true;
        let position = request.evaluated.map_or(request.last, |(p, _)| p);
        self.step(position, 1, StepKind::Decide { request: number });
        while self.held(self.unplaced).is_some_and(|r| r.placed) {
            self.unplaced += 1;
        }
    }

    /// Takes every step whose turn has come: those before the oldest request still
    /// waiting for its place, while no replayed action waits for its recorded outcome.
    /// At the end of the window nothing more can come, and everything is taken.
    pub(super) fn advance(&mut self, end: bool) {
        loop {
            if !end && self.pending.iter().any(|p| p.awaiting.is_some()) {
                return;
            }
            let Some(Reverse(next)) = self.steps.peek() else {
                return;
            };
            if !end {
                let frontier = self.held(self.unplaced).map(|r| r.first);
                if frontier.is_some_and(|f| (next.position, next.then) >= (f, 1)) {
                    return;
                }
            }
            // Requests the engine decided at one instant were one round: decided
            // together, as then, each in its turn.
            let closes = match &next.what {
                StepKind::Change(_) => true,
                StepKind::Decide { request } => {
                    let now = self.request_now(*request);
                    self.round_now.is_some_and(|n| Some(n) != now) || self.round.len() >= 256
                }
                StepKind::Received { .. } | StepKind::History(_) => false,
            };
            if closes && self.round_now.is_some() {
                self.decide_round(end);
                continue;
            }
            let Some(Reverse(step)) = self.steps.pop() else {
                return;
            };
            match step.what {
                StepKind::Received { request, index } => {
                    let state = Arc::clone(&self.state);
                    if let Some(request) = self.request(request) {
                        if let Some(record) = request.received.get(index) {
                            fold(&mut state.write(), record);
                        }
                        request.folded += 1;
                    }
                }
                StepKind::Change(record) => {
                    self.apply_due(record.at);
                    fold(&mut self.state.write(), &record);
                }
                StepKind::History(record) => fold(&mut self.state.write(), &record),
                StepKind::Decide { request } => self.take_request(request),
            }
            self.drop_decided();
        }
    }

    fn request_now(&self, number: usize) -> Option<DateTime<Utc>> {
        let request = self.held(number)?;
        Some(request.evaluated.map_or(request.at, |(_, at)| at))
    }

    /// Puts a request in the round.
    fn take_request(&mut self, number: usize) {
        let Some(now) = self.request_now(number) else {
            return;
        };
        if self.round.is_empty() {
            self.apply_due(now);
        }
        let Some(request) = self.request(number) else {
            return;
        };
        request.decided = true;
        let at = request.at;
        // Moved out once every record was folded in its place; copied if some wait.
        let received = if request.folded == request.received.len() {
            std::mem::take(&mut request.received)
        } else {
            request.received.clone()
        };
        let recorded = std::mem::take(&mut request.recorded);
        let dry_run = match (self.mode, told(recorded.iter().map(|(_, d)| d))) {
            (Mode::Live, _) => false,
            // Whoever's dry-run it was, these decisions are compared like with like.
            (Mode::AsRecorded, Told::Unsure) => true,
            (Mode::AsRecorded, told) => self.learn_mode(told),
        };
        let notification: Vec<Event> = received
            .into_iter()
            .filter_map(|r| match r.entry {
                Entry::Received { event, .. } => {
                    let mut event = Arc::unwrap_or_clone(event);
                    event.received_at = at;
                    Some(event)
                }
                // Decided again with its first arrival, as live.
                Entry::Reconsidered { event, .. } => Some(event),
                _ => None,
            })
            .collect();
        self.events_replayed += notification.len();
        self.round_now = Some(now);
        self.round.push((notification, recorded));
        self.round_modes.push(dry_run);
    }

    /// Keeps what `told` shows of salve's mode; returns the mode as now known.
    fn learn_mode(&mut self, told: Told) -> bool {
        match told {
            Told::Live => self.dry_run_then = false,
            Told::DryRun => self.dry_run_then = true,
            Told::Unsure | Told::Nothing => {}
        }
        self.dry_run_then
    }

    fn drop_decided(&mut self) {
        while self
            .requests
            .front()
            .is_some_and(|r| r.decided && r.folded >= r.received.len())
        {
            self.requests.pop_front();
            self.front += 1;
        }
    }

    /// Decides the round, compares what it decided with what was recorded for the same
    /// events, and gives each replayed action its outcome.
    fn decide_round(&mut self, end: bool) {
        let Some(now) = self.round_now.take() else {
            return;
        };
        let (notifications, recorded): (Vec<Vec<Event>>, Vec<Vec<Numbered>>) =
            std::mem::take(&mut self.round).into_iter().unzip();
        let modes = std::mem::take(&mut self.round_modes);
        let evaluation = replay_round(self.runtime, &self.state, &notifications, now, &modes);
        {
            let mut st = self.state.write();
            for record in &evaluation.records {
                if !matches!(record.entry, Entry::Decision(_)) {
                    fold(&mut st, record);
                }
            }
        }
        self.summary.rule_errors += evaluation.rule_errors.len();
        let mut keyer = Keyer::default();
        let mut twins: FxHashMap<Key, (usize, &Decision, bool)> = FxHashMap::default();
        for (read, d) in recorded.iter().flatten() {
            if let Some(key) = keyer.key(d) {
                twins.insert(key, (*read, d, false));
            }
        }
        // An event is decided in one round, so the round's own count of its intents is
        // the whole replay's.
        let mut keyer = Keyer::default();
        for d in &evaluation.decisions {
            let Some(key) = keyer.key(d) else {
                continue;
            };
            let replayed = self.replayed;
            self.replayed += 1;
            self.summary.decided_in_dry_run += usize::from(d.dry_run);
            if let Some(reason) = d.reason {
                *self
                    .summary
                    .suppressed
                    .entry(reason.as_str().to_string())
                    .or_default() += 1;
            }
            let twin = twins.get_mut(&key).map(|(read, r, used)| {
                *used = true;
                (*read, *r)
            });
            if let Some(difference) = difference(&key, twin.map(|(_, r)| r), Some(d)) {
                let order = twin.map_or((1, replayed), |(read, _)| (0, read));
                self.differences.push((order, difference));
            }
            if !d.executes() {
                continue;
            }
            let assumed = match self.assume {
                Assume::Ok => OutcomeStatus::Ok,
                Assume::Failed => OutcomeStatus::Failed,
            };
            let mut pending = Pending {
                at: now,
                decision: d.clone(),
                status: assumed,
                awaiting: None,
            };
            match twin.map(|(_, r)| r).filter(|r| r.executes()) {
                Some(r) => match self.outcomes.get(r.id.as_str()) {
                    Some((status, when)) => (pending.at, pending.status) = (*when, *status),
                    None if !end => pending.awaiting = Some(r.id.clone()),
                    None => self.summary.assumed_outcomes += 1,
                },
                None => self.summary.assumed_outcomes += 1,
            }
            self.pending.push(pending);
        }
        for (key, (read, r, used)) in &twins {
            if !used {
                if let Some(difference) = difference(key, Some(r), None) {
                    self.differences.push(((0, *read), difference));
                }
            }
        }
    }

    /// Folds the outcomes whose time has come.
    fn apply_due(&mut self, now: DateTime<Utc>) {
        self.pending.sort_by_key(|p| p.at);
        let due = self.pending.iter().take_while(|p| p.at <= now).count();
        let mut st = self.state.write();
        for p in self.pending.drain(..due) {
            let record = AuditRecord::new(
                p.at,
                Entry::Outcome(OutcomeRecord::of(
                    &p.decision,
                    Outcome {
                        outcome: p.status,
                        ..Outcome::ok(serde_json::Value::Null)
                    },
                )),
            );
            fold(&mut st, &record);
        }
    }

    /// The window is read: what still waits is decided as the window has it.
    pub(super) fn finish(mut self) -> Replay {
        self.close_open();
        // Requests whose `evaluated` record is not in the window (a stop cut them off,
        // or the window ends first) are decided where they were received.
        for number in self.front..self.front + self.requests.len() {
            if let Some(request) = self.request(number) {
                request.awaiting.clear();
            }
            self.place(number);
        }
        for p in &mut self.pending {
            if p.awaiting.take().is_some() {
                self.summary.assumed_outcomes += 1;
            }
        }
        self.advance(true);
        self.decide_round(true);
        self.differences.sort_by_key(|(order, _)| *order);
        let differences: Vec<Difference> = self.differences.into_iter().map(|(_, d)| d).collect();
        for d in &differences {
            match d.kind {
                "added" => self.summary.added += 1,
                "removed" => self.summary.removed += 1,
                _ => self.summary.changed += 1,
            }
        }
        // The state of a long window takes a while to free; the answer need not wait.
        let state = self.state;
        std::thread::spawn(move || drop(state));
        Replay {
            window: Window {
                since: self.since,
                until: self.until,
                events: self.events_replayed,
            },
            differences,
            summary: self.summary,
            oldest_record: self.oldest.filter(|o| *o > self.since),
        }
    }
}
