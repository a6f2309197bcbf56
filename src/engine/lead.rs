//! Who decides, with `[store]`: every replica accepts webhooks and writes what it
//! receives; one replica, the holder of the lease in PostgreSQL, decides and acts.
//!
//! The lease is a row with an expiry, not an advisory lock: a lock lives as long as its
//! connection, and a paused (SIGSTOP) or cut-off process keeps its connection open, so
//! nobody could take over. A row with an expiry in PostgreSQL's own clock is taken over
//! once it runs out, whatever the old holder is doing; the epoch it carries fences the
//! old holder's late writes (`migrations/V2__lease.sql`), and the holder itself stops
//! starting actions before the lease can have run out by its own clock.
//!
//! Every replica folds what the others write by following the trail in `seq` order;
//! the leader also queues the events it finds there, whichever replica received them.

use super::recovery::fold;
use super::{Engine, Trail};
use crate::audit::{AuditError, Entry, PgTrail};
use crate::event::Event;
use crate::policy::PolicyState;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a follower looks for what the others wrote, at most.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// How often it looks at most, however often it is woken.
const FOLLOW_AT_MOST: Duration = Duration::from_millis(10);

pub(super) struct Lead {
    /// A replica with the file trail is its own leader, always.
    leader: AtomicBool,
    /// Until when this replica may start an action, by its own clock.
    valid_until: parking_lot::Mutex<Option<Instant>>,
    /// The last trail record folded.
    followed: AtomicI64,
    /// Epochs this replica held: what it wrote under them is in its state already.
    own_epochs: parking_lot::Mutex<Vec<i64>>,
    /// One follower pass at a time, and none while the lead changes hands.
    following: tokio::sync::Mutex<()>,
    pub(super) wake: tokio::sync::Notify,
    /// This replica's name in the lease.
    holder: String,
    /// The replicas seen lately, for `GET /api/v1/state`.
    pub(super) seen: super::replicas::Seen,
}

impl Lead {
    pub(super) fn new(store: bool) -> Lead {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Lead {
            leader: AtomicBool::new(!store),
            valid_until: parking_lot::Mutex::new(None),
            followed: AtomicI64::new(0),
            own_epochs: parking_lot::Mutex::new(Vec::new()),
            following: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            holder: format!("{host}/{}/{}", std::process::id(), uuid::Uuid::now_v7()),
            seen: Default::default(),
        }
    }

    /// This replica's name in the lease.
    pub(super) fn holder(&self) -> &str {
        &self.holder
    }

    pub(super) fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Whether an action may start now: this replica leads, and its lease cannot have
    /// run out yet.
    pub(super) fn may_act(&self) -> bool {
        self.is_leader()
            && self
                .valid_until
                .lock()
                .is_none_or(|until| Instant::now() < until)
    }

    /// The last trail record folded.
    pub(super) fn followed(&self) -> i64 {
        self.followed.load(Ordering::Acquire)
    }

    pub(super) fn set_followed(&self, seq: i64) {
        self.followed.store(seq, Ordering::Release);
    }
}

/// How often a replica's lease loop ticks: a follower asks for the lease every quarter
/// of `takeover_after`, and the lease lasts three quarters, so a dead leader is replaced
/// within `takeover_after`.
pub(super) fn lease_tick(takeover_after: Duration) -> Duration {
    takeover_after / 4
}

/// How long a replica counts as seen lately after its last row of `salve_replica`: three
/// ticks of its lease loop (`GET /api/v1/state`'s `replicas`, and what retention waits
/// for).
pub(super) fn seen_within(takeover_after: Duration) -> Duration {
    lease_tick(takeover_after) * 3
}

/// The state every record of the store holds, and the last record's number: the
/// newest checkpoint that reads back, and the records after it. A checkpoint that does
/// not read (damaged, or of a format this salve does not know) is passed over with a
/// warning for the one before it, and past them all the whole table is read.
///
/// Reading and folding millions of rows is CPU-bound for minutes, so it runs on a
/// blocking thread: on the runtime's workers it would starve the lease's renewal (a
/// leader building its first checkpoint lost the lead that way) and the webhooks.
pub(super) async fn fold_store(
    pg: &PgTrail,
    settings: &crate::policy::PolicySettings,
) -> Result<(PolicyState, i64), AuditError> {
    let (pg, settings) = (pg.clone(), settings.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(fold_store_here(&pg, &settings)))
        .await
        .map_err(|e| AuditError::Store(format!("reading the store's state failed: {e}")))?
}

async fn fold_store_here(
    pg: &PgTrail,
    settings: &crate::policy::PolicySettings,
) -> Result<(PolicyState, i64), AuditError> {
    let started = std::time::Instant::now();
    let (mut state, from) = newest_checkpoint(pg, settings).await?;
    let mut rows = 0u64;
    let last = pg
        .read_after(from, None, &[], |record| {
            rows += 1;
            fold(&mut state, &record);
        })
        .await?;
    tracing::info!(
        checkpoint_seq = from,
        rows_after = rows,
        last_seq = last,
        took_ms = started.elapsed().as_millis() as u64,
        "the store's state read"
    );
    Ok((state, last.max(from)))
}

/// The state of the newest checkpoint in the store that reads back, and the last
/// record it holds; an empty state at 0 when none does and the table is whole, and an
/// error when retention has trimmed it.
async fn newest_checkpoint(
    pg: &PgTrail,
    settings: &crate::policy::PolicySettings,
) -> Result<(PolicyState, i64), AuditError> {
    for (seq, bytes) in pg
        .checkpoints(super::store_upkeep::STORE_CHECKPOINTS_KEPT)
        .await?
    {
        match super::checkpoint::state_from_bytes(&bytes, settings) {
            Ok(state) => return Ok((state, seq)),
            Err(e) => tracing::warn!(seq, error = %e,
                "a checkpoint in the store cannot be read; reading the one before it (or the whole trail)"),
        }
    }
    if let Some((through, _)) = pg.kept_from().await? {
        return Err(AuditError::Store(format!(
            "no checkpoint in the store can be read, and retention ([store] keep_for) has \
             removed the records through seq {through}: the rows left no longer hold salve's \
             state (its limits, breakers and windows); restore salve_checkpoint from a backup"
        )));
    }
    Ok((PolicyState::new(settings.clone()), 0))
}

impl Engine {
    pub(super) fn store(&self) -> Option<&PgTrail> {
        match &self.audit {
            Trail::Postgres(pg) => Some(pg),
            Trail::Files(_) => None,
        }
    }

    /// Folds what was written since the last pass; the leader queues the events in it
    /// (one notification per request, as they came in).
    pub(super) async fn follow_once(&self) -> Result<(), AuditError> {
        let Some(pg) = self.store() else {
            return Ok(());
        };
        let _one = self.lead.following.lock().await;
        let own = self.lead.own_epochs.lock().clone();
        let leader = self.lead.is_leader();
        let mut notifications: Vec<Vec<Arc<Event>>> = Vec::new();
        let after = self.lead.followed.load(Ordering::Acquire);
        let last = pg
            .read_after(after, None, &own, |record| {
                fold(&mut self.state.write(), &record);
                match (leader, record.entry) {
                    (
                        true,
                        Entry::Received {
                            event,
                            unmatched: false,
                            ..
                        },
                    ) => match notifications.last_mut() {
                        Some(n) if n[0].received_at == event.received_at => n.push(event),
                        _ => notifications.push(vec![event]),
                    },
                    // Each alert reconsidered on its own, as it was held.
                    (true, Entry::Reconsidered { event, .. }) => {
                        notifications.push(vec![Arc::new(event)])
                    }
                    _ => {}
                }
            })
            .await?;
        self.lead.followed.store(last, Ordering::Release);
        if last > after {
            self.announce_appended();
        }
        for events in notifications {
            self.enqueue(events);
        }
        Ok(())
    }

    /// Follows the trail while the engine lives.
    pub(super) async fn follow(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(FOLLOW_EVERY, self.lead.wake.notified()).await;
            match self.follow_once().await {
                Ok(()) => {}
                Err(e @ AuditError::Trimmed { .. }) => {
                    tracing::warn!(error = %e, "this replica fell behind what retention removed; reading its state anew from the store's checkpoint");
                    self.refold_store().await;
                }
                Err(e) => tracing::debug!(error = %e, "cannot follow the trail now"),
            }
            // Under a flood each pass takes what came meanwhile, not one request each.
            tokio::time::sleep(FOLLOW_AT_MOST).await;
        }
    }

    /// Takes the lease when it is free, renews it while held, and gives the lead up
    /// when it cannot be renewed in time.
    pub(super) async fn hold_lease(self: Arc<Self>, takeover_after: Duration) {
        let Some(pg) = self.store().cloned() else {
            return;
        };
        let every = lease_tick(takeover_after);
        let lease = every * 3;
        // Starting actions stops a tenth of the lease before it can run out.
        let safe = lease.mul_f64(0.9);
        loop {
            let asked = Instant::now();
            if self.lead.is_leader() {
                let epoch = self.lead.own_epochs.lock().last().copied().unwrap_or(0);
                match pg.renew_lease(&self.lead.holder, epoch, lease).await {
                    Ok(true) => *self.lead.valid_until.lock() = Some(asked + safe),
                    Ok(false) => self.step_down("the lease ran out and was taken, or expired"),
                    Err(e) if !self.lead.may_act() => {
                        self.step_down(&format!("the lease could not be renewed in time: {e}"))
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lease; trying again"),
                }
            } else if !self.stopping.load(Ordering::Acquire) {
                match pg.take_lease(&self.lead.holder, lease).await {
                    Ok(Some(epoch)) => self.take_lead(&pg, epoch, asked + safe).await,
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "cannot ask for the lease now"),
                }
            }
            self.see_replicas(&pg, seen_within(takeover_after));
            tokio::time::sleep(every).await;
        }
    }

    async fn take_lead(self: &Arc<Self>, pg: &PgTrail, epoch: i64, valid_until: Instant) {
        let (undecided, pending) = {
            let _one = self.lead.following.lock().await;
            pg.set_epoch(epoch);
            self.lead.own_epochs.lock().push(epoch);
            *self.lead.valid_until.lock() = Some(valid_until);
            // Everything the last leader wrote, then what it left undone.
            let after = self.lead.followed.load(Ordering::Acquire);
            let own: Vec<i64> = self.lead.own_epochs.lock().clone();
            let read = pg
                .read_after(after, None, &own, |record| {
                    fold(&mut self.state.write(), &record)
                })
                .await;
            match read {
                Ok(last) => self.lead.followed.store(last, Ordering::Release),
                Err(e) => {
                    tracing::warn!(error = %e, "took the lease but cannot read the trail; giving it up");
                    pg.set_epoch(0);
                    return;
                }
            }
            let mut state = self.state.write();
            let undecided = state.undecided_events();
            let pending = state.take_pending();
            self.lead.leader.store(true, Ordering::Release);
            (undecided, pending)
        };
        self.metrics.leader(true);
        tracing::info!(
            epoch,
            undecided = undecided.len(),
            abandoned = pending.len(),
            holder = %self.lead.holder,
            "took the lead: this replica decides and acts"
        );
        self.backlog.fetch_add(undecided.len(), Ordering::AcqRel);
        self.recover(undecided, pending).await;
        self.go_live();
    }

    /// At a clean stop, once nothing is left running: the lease goes at once, then
    /// this replica's row of the replicas.
    pub(super) async fn give_up_lead(&self) {
        let Some(pg) = self.store() else {
            return;
        };
        if self.lead.is_leader() {
            let epoch = self.lead.own_epochs.lock().last().copied().unwrap_or(0);
            self.step_down("stopping");
            if let Err(e) = pg.release_lease(&self.lead.holder, epoch).await {
                tracing::warn!(error = %e, "cannot give the lease up; another replica takes over once it runs out");
            }
        }
        self.leave_replicas(pg).await;
    }

    fn step_down(&self, why: &str) {
        if let Some(pg) = self.store() {
            pg.set_epoch(0);
        }
        self.lead.leader.store(false, Ordering::Release);
        *self.lead.valid_until.lock() = None;
        self.metrics.leader(false);
        tracing::warn!(why, holder = %self.lead.holder, "lost the lead: this replica no longer decides or acts");
    }

    /// The state rebuilt from every record of the store (what a failed write leaves
    /// memory unsure of).
    pub(super) async fn refold_store(&self) {
        let Some(pg) = self.store() else {
            return;
        };
        let _one = self.lead.following.lock().await;
        match fold_store(pg, &self.runtime().config.policy).await {
            Ok((state, last)) => {
                *self.state.write() = state;
                self.lead.followed.store(last, Ordering::Release);
            }
            Err(e) => tracing::error!(error = %e, "cannot re-read the trail either"),
        }
    }
}
