//! The store's upkeep, on the leader: checkpoints of the state in `salve_checkpoint`
//! as the trail grows, and retention of the rows no checkpoint and no replica needs
//! (`[store] keep_for`).

use super::checkpoint::{checkpoint_bytes, EVERY};
use super::Engine;
use crate::audit::{PgTrail, StoreSettings, TrailPosition};
use std::time::{Duration, Instant};

/// The store's checkpoints kept: a replica falls back through them, newest first.
pub(super) const STORE_CHECKPOINTS_KEPT: i64 = 3;

/// How long one pass of retention may delete before it lets the next second's work run.
const RETENTION_BUDGET: Duration = Duration::from_secs(2);

/// Whether a checkpoint of the store is due, `rows` records after the last one, made
/// `since` ago (none yet: `None`), at least every `every_rows`.
fn store_due(rows: i64, since: Option<Duration>, every_rows: u64) -> bool {
    let rows = u64::try_from(rows).unwrap_or(0);
    rows > 0 && (rows >= every_rows || since.is_none_or(|since| since >= EVERY))
}

impl Engine {
    /// The store and its settings, while this replica leads: who keeps the store.
    fn store_leading(&self) -> Option<(&PgTrail, StoreSettings)> {
        let pg = self.store()?;
        let store = self.runtime().config.store.clone()?;
        self.lead.is_leader().then_some((pg, store))
    }

    /// With `[store]`, on the leader: a checkpoint of the store once `checkpoint_rows`
    /// records, or a minute with any, were written since the last. It is built from the
    /// store alone (the newest checkpoint and the records after it, as a starting
    /// replica reads them), never from this replica's memory, which holds what it wrote
    /// itself ahead of what it has read back; so a checkpoint is exactly what its
    /// records fold to. True when it wrote one.
    pub(super) async fn store_checkpoint_if_due(&self) -> bool {
        let Some((pg, store)) = self.store_leading() else {
            return false;
        };
        let last = *self.checkpoints.lock();
        let rows = self.lead.followed() - last.seq_at;
        if !store_due(rows, last.at.map(|at| at.elapsed()), store.checkpoint_rows) {
            return false;
        }
        let started = Instant::now();
        let settings = self.runtime().config.policy.clone();
        let (mut state, seq) = match super::lead::fold_store(pg, &settings).await {
            Ok(built) => built,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a checkpoint of the store now");
                return false;
            }
        };
        let position = TrailPosition {
            inode: 0,
            offset: u64::try_from(seq).unwrap_or(0),
        };
        // As the live state is pruned: what has aged out is not carried on.
        let made = tokio::task::spawn_blocking(move || {
            state.prune(chrono::Utc::now());
            checkpoint_bytes(&state, position).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string());
        let bytes = match made.and_then(|bytes| bytes) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot make a checkpoint of the store");
                return false;
            }
        };
        if let Err(e) = pg
            .write_checkpoint(seq, &bytes, STORE_CHECKPOINTS_KEPT)
            .await
        {
            tracing::warn!(error = %e, "cannot write a checkpoint to the store");
            return false;
        }
        let mut written = self.checkpoints.lock();
        written.seq_at = seq;
        written.at = Some(Instant::now());
        written.image_bytes = bytes.len() as u64;
        tracing::info!(
            seq,
            bytes = bytes.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "checkpoint written to the store"
        );
        true
    }

    /// With `[store]`, on the leader: removes the records `[store] keep_for` lets go,
    /// after each checkpoint and at least once a minute, and sooner while a pass left
    /// some behind. It waits for the replicas seen lately (`lead::seen_within`).
    pub(super) async fn store_retention_if_due(&self, checkpointed: bool) {
        let Some((pg, store)) = self.store_leading() else {
            return;
        };
        let (at, more) = {
            let last = self.checkpoints.lock();
            (last.retained_at, last.retention_behind)
        };
        if !checkpointed && !more && at.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        let started = Instant::now();
        let replicas_within = super::lead::seen_within(store.takeover_after);
        let result = pg
            .apply_retention(store.keep_for, replicas_within, RETENTION_BUDGET)
            .await;
        let mut last = self.checkpoints.lock();
        last.retained_at = Some(Instant::now());
        match result {
            Ok(trimmed) => {
                last.retention_behind = trimmed.more;
                self.metrics.store_rows_removed(trimmed.removed);
                if trimmed.removed > 0 {
                    tracing::info!(
                        removed = trimmed.removed,
                        through_seq = trimmed.through,
                        more = trimmed.more,
                        took_ms = started.elapsed().as_millis() as u64,
                        "removed records older than [store] keep_for"
                    );
                }
            }
            Err(e) => {
                last.retention_behind = false;
                tracing::warn!(error = %e, "cannot apply [store] keep_for now");
            }
        }
    }
}
