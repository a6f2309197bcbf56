//! Retention of the trail in PostgreSQL (`[store] keep_for`): the records older than
//! `keep_for` go, oldest first, but never one that the oldest kept checkpoint, or a
//! live replica that has yet to read it, still needs. They go in batches of
//! consecutive sequence numbers, each its own short transaction, so writers never wait
//! long and autovacuum gives the space back to the inserts that follow: the table
//! stays at about `keep_for`'s worth of rows rather than growing (BENCHMARKS.md,
//! "Retention in the store").

use super::postgres::{connection, sql_error, store_error};
use super::{AuditError, PgTrail};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// Records one delete removes at most: a transaction of a few tens of milliseconds.
const BATCH: i64 = 10_000;

/// What one pass of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Records removed by this pass.
    pub removed: u64,
    /// The last record removed so far, by any pass (0: none ever).
    pub through: i64,
    /// More could go: the pass ran out of its time.
    pub more: bool,
}

impl PgTrail {
    /// Removes what `keep_for` lets go and nothing a checkpoint or a replica seen
    /// within `replicas_within` needs, for at most `budget`; what is left waits for the
    /// next pass.
    pub async fn apply_retention(
        &self,
        keep_for: Duration,
        replicas_within: Duration,
        budget: Duration,
    ) -> Result<Trimmed, AuditError> {
        let started = Instant::now();
        let mut client = connection(&self.pool).await?;
        // LEAST passes over NULLs: no checkpoint counts as 0 (nothing may go), no live
        // replica and no young record as no bound.
        const BOUND: &str = "SELECT r.removed_through, GREATEST(r.removed_through, LEAST( \
             COALESCE((SELECT min(seq) FROM salve_checkpoint), 0), \
             (SELECT min(followed) FROM salve_replica \
                 WHERE seen_at > clock_timestamp() - make_interval(secs => $2)), \
             COALESCE((SELECT seq - 1 FROM salve_trail \
                 WHERE at >= clock_timestamp() - make_interval(secs => $1) ORDER BY at LIMIT 1), \
                 (SELECT max(seq) FROM salve_trail)))) \
             FROM salve_retention r WHERE r.id = 1";
        let row = client
            .query_one(
                BOUND,
                &[&keep_for.as_secs_f64(), &replicas_within.as_secs_f64()],
            )
            .await
            .map_err(sql_error("cannot read what retention may remove", BOUND))?;
        let column = |e: tokio_postgres::Error| store_error("unexpected retention row", &e);
        let mut through: i64 = row.try_get(0).map_err(column)?;
        let bound: Option<i64> = row.try_get(1).map_err(column)?;
        let bound = bound.unwrap_or(through);
        const DELETE: &str = "DELETE FROM salve_trail WHERE seq > $1 AND seq <= $2";
        const MARK: &str = "UPDATE salve_retention \
             SET removed_through = GREATEST(removed_through, $1) WHERE id = 1";
        let mut trimmed = Trimmed::default();
        while through < bound {
            if started.elapsed() >= budget {
                trimmed.more = true;
                break;
            }
            let to = bound.min(through.saturating_add(BATCH));
            let transaction = client
                .transaction()
                .await
                .map_err(sql_error("cannot remove old records", DELETE))?;
            let removed = transaction
                .execute(DELETE, &[&through, &to])
                .await
                .map_err(sql_error("cannot remove old records", DELETE))?;
            transaction
                .execute(MARK, &[&to])
                .await
                .map_err(sql_error("cannot record what retention removed", MARK))?;
            transaction
                .commit()
                .await
                .map_err(sql_error("cannot remove old records", DELETE))?;
            trimmed.removed += removed;
            through = to;
        }
        trimmed.through = through;
        Ok(trimmed)
    }

    /// A read that asked for the records after `after` and found `first` first: an error
    /// when retention removed what lies between. Numbers skip now and then (a failed
    /// insert spends its own), so only a gap asks PostgreSQL.
    pub(super) async fn not_trimmed_past(&self, after: i64, first: i64) -> Result<(), AuditError> {
        if first <= after + 1 {
            return Ok(());
        }
        match self.kept_from().await? {
            Some((through, _)) if through > after => Err(AuditError::Trimmed { after, through }),
            _ => Ok(()),
        }
    }

    /// When retention has removed records: the last one removed, and the time of the
    /// oldest one kept (now, when none is).
    pub async fn kept_from(&self) -> Result<Option<(i64, DateTime<Utc>)>, AuditError> {
        const KEPT: &str = "SELECT r.removed_through, \
             (SELECT at FROM salve_trail WHERE seq > r.removed_through ORDER BY seq LIMIT 1) \
             FROM salve_retention r WHERE r.id = 1";
        let client = connection(&self.pool).await?;
        let row = client
            .query_one(KEPT, &[])
            .await
            .map_err(sql_error("cannot read what retention removed", KEPT))?;
        let column = |e: tokio_postgres::Error| store_error("unexpected retention row", &e);
        let through: i64 = row.try_get(0).map_err(column)?;
        let oldest: Option<DateTime<Utc>> = row.try_get(1).map_err(column)?;
        Ok((through > 0).then(|| (through, oldest.unwrap_or_else(Utc::now))))
    }
}
