//! The replicas `GET /api/v1/state` lists. With `[store]` each replica writes its row
//! of `salve_replica` (`migrations/V3__replicas.sql`) at every tick of its lease loop and
//! keeps the rows read back with it, so an answer reads memory, never PostgreSQL. This
//! is a view only: nothing decides by it, so a failure here is logged and the last list
//! kept, and it never touches the lease or the decide path.

use super::Engine;
use crate::audit::{PgTrail, ReplicaRow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    pub name: String,
    pub leader: bool,
    pub seen_at: DateTime<Utc>,
    /// How far it has read the trail (PostgreSQL `seq`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followed: Option<i64>,
    /// The replica answering.
    pub this: bool,
}

/// The replicas as last read, and what keeps this replica's row from outliving a stop.
#[derive(Default)]
pub(super) struct Seen {
    list: parking_lot::RwLock<Vec<ReplicaView>>,
    /// Held by the write of this replica's row under way, so a stop can wait it out.
    writing: Arc<tokio::sync::Mutex<()>>,
    /// Set at a clean stop: the row is deleted and never written again.
    gone: AtomicBool,
}

impl Engine {
    /// At a tick of the lease loop: writes this replica's row and reads back the rows
    /// seen `within`. On a task of its own, so a slow PostgreSQL never delays a renewal;
    /// a tick that finds the last write still under way lets it be.
    pub(super) fn see_replicas(self: &Arc<Self>, pg: &PgTrail, within: Duration) {
        let Ok(one) = self.lead.seen.writing.clone().try_lock_owned() else {
            return;
        };
        let engine = self.clone();
        let pg = pg.clone();
        tokio::spawn(async move {
            let _one = one;
            let lead = &engine.lead;
            if lead.seen.gone.load(Ordering::Acquire) {
                return;
            }
            let name = lead.holder();
            match pg
                .see_replica(name, lead.is_leader(), lead.followed(), within)
                .await
            {
                Ok(rows) => {
                    *lead.seen.list.write() = rows.into_iter().map(|r| view(r, name)).collect()
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot write or read the replicas now; keeping the last list")
                }
            }
        });
    }

    /// At a clean stop: this replica's row goes, so the others stop listing it at
    /// their next tick rather than once it ages out.
    pub(super) async fn leave_replicas(&self, pg: &PgTrail) {
        self.lead.seen.gone.store(true, Ordering::Release);
        let _one = self.lead.seen.writing.lock().await;
        if let Err(e) = pg.forget_replica(self.lead.holder()).await {
            tracing::warn!(error = %e, "cannot delete this replica's row; it ages out of the others' lists");
        }
    }

    /// Every replica seen lately: without `[store]`, this one alone.
    pub(super) fn replicas(&self, now: DateTime<Utc>) -> Vec<ReplicaView> {
        let store = self.store().is_some();
        let mut list = if store {
            self.lead.seen.list.read().clone()
        } else {
            Vec::new()
        };
        // Before the first tick has read the table back (or while PostgreSQL has been
        // away since the start), this replica still answers, so it is listed.
        if !list.iter().any(|r| r.this) {
            list.push(ReplicaView {
                name: self.lead.holder().to_string(),
                leader: self.lead.is_leader(),
                seen_at: now,
                followed: store.then(|| self.lead.followed()),
                this: true,
            });
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        list
    }
}

fn view(row: ReplicaRow, this: &str) -> ReplicaView {
    ReplicaView {
        this: row.name == this,
        name: row.name,
        leader: row.leader,
        seen_at: row.seen_at,
        followed: row.followed,
    }
}
