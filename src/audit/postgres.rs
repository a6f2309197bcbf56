//! The trail in PostgreSQL (`[store]`), for replicas that share one memory. The same
//! records and the same protocol as the file trail: an append returns once its
//! transaction has committed, and appends that wait together share one transaction, as
//! the file trail's share one fsync. Records are committed one transaction at a time
//! (a transaction-scoped advisory lock), so their sequence numbers are in commit order
//! and a reader that has seen number N has seen everything before it.

use super::pg_error::pg_error_text;
use super::{
    AuditError, AuditFilter, AuditRecord, AuditWriterStats, Page, RecordKind, TrailPosition,
};
use crate::model::Secret;
use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// `[store]`: where the shared trail is and how salve connects to it.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The connection URL (`postgres://user:password@host:port/db`), from a file or an
    /// environment variable: it holds a password.
    pub url: Secret,
    pub pool_size: usize,
    /// How long connecting, or waiting for a free connection, may take.
    pub connect_timeout: Duration,
    /// How long one statement may run before PostgreSQL cancels it.
    pub statement_timeout: Duration,
    /// The lease: how long after the leader was last heard from another replica takes
    /// over.
    pub takeover_after: Duration,
    /// A checkpoint of the store at least every this many records.
    pub checkpoint_rows: u64,
    /// Records older than this go, once no checkpoint and no replica needs them.
    pub keep_for: Duration,
}

/// Every writer's transactions queue on this lock, so sequence numbers follow commits.
const WRITE_LOCK: i64 = 0x5a1e_7a11;
/// Held (session-level) around the migrations, so replicas started at once on an empty
/// database run them one after the other: the first creates the tables, the others
/// find them made. docs/replicas.md documents the key.
const MIGRATION_LOCK: i64 = 0x5a1e_0000;
/// Records per insert statement at most: one group commit may hold several.
const MAX_ROWS: usize = 4096;

struct Append {
    at: Vec<DateTime<Utc>>,
    kinds: Vec<&'static str>,
    /// The decider's epoch, on what only the decider writes.
    epochs: Vec<Option<i64>>,
    lines: Vec<String>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// A handle to the PostgreSQL trail; cheap to clone.
#[derive(Clone)]
pub struct PgTrail {
    pub(super) pool: deadpool_postgres::Pool,
    tx: mpsc::UnboundedSender<Append>,
    stats: Arc<AuditWriterStats>,
    /// The epoch of the lease this replica holds; 0 when it holds none.
    epoch: Arc<std::sync::atomic::AtomicI64>,
}

/// A replica's row of `salve_replica` (`migrations/V3__replicas.sql`).
#[derive(Debug, Clone)]
pub struct ReplicaRow {
    pub name: String,
    pub seen_at: DateTime<Utc>,
    /// It said it led at its last tick, and the lease still names it.
    pub leader: bool,
    pub followed: Option<i64>,
}

/// What only the decider writes, so what the lease fences.
fn decided_kind(kind: RecordKind) -> bool {
    matches!(
        kind,
        RecordKind::Decision | RecordKind::Outcome | RecordKind::Evaluated | RecordKind::RuleError
    )
}

pub(super) fn store_error(what: &str, e: &(dyn std::error::Error + 'static)) -> AuditError {
    AuditError::Store(format!("{what}: {}", pg_error_text(e, None)))
}

/// A statement's error, the statement named when the server refused it.
pub(super) fn sql_error<'a>(
    what: &'a str,
    sql: &'a str,
) -> impl FnOnce(tokio_postgres::Error) -> AuditError + 'a {
    move |e| AuditError::Store(format!("{what}: {}", pg_error_text(&e, Some(sql))))
}

/// The connection settings the URL gives, with salve's timeouts added.
fn connection_config(settings: &StoreSettings) -> Result<tokio_postgres::Config, AuditError> {
    let mut config: tokio_postgres::Config = settings
        .url
        .expose()
        .parse()
        // The parser's message never repeats the URL, so the password stays out of it.
        .map_err(|e| store_error("store.postgres_url is not a PostgreSQL URL", &e))?;
    config.connect_timeout(settings.connect_timeout);
    config.application_name("salve");
    config.options(format!(
        "-c statement_timeout={}",
        settings.statement_timeout.as_millis()
    ));
    Ok(config)
}

impl PgTrail {
    /// Connects, creates or upgrades the tables (versioned migrations), and starts the
    /// writer. Fails, saying why, when PostgreSQL cannot be reached.
    pub async fn open(
        settings: &StoreSettings,
        on_commit: Option<Arc<dyn Fn(Duration, usize) + Send + Sync>>,
    ) -> Result<PgTrail, AuditError> {
        let config = connection_config(settings)?;
        let (mut client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| store_error("cannot connect to PostgreSQL", &e))?;
        let connection = tokio::spawn(connection);
        migrate(&mut client).await?;
        drop(client);
        let _ = connection.await;

        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| store_error("cannot make the connection pool", &e))?;
        let stats = Arc::new(AuditWriterStats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_writer(pool.clone(), rx, stats.clone(), on_commit));
        Ok(PgTrail {
            pool,
            tx,
            stats,
            epoch: Arc::new(std::sync::atomic::AtomicI64::new(0)),
        })
    }

    pub fn stats(&self) -> &AuditWriterStats {
        &self.stats
    }

    /// Returns once the records are committed.
    pub async fn append(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut lines = Vec::with_capacity(records.len());
        for record in records {
            let mut line = Vec::with_capacity(512);
            record
                .write_line(&mut line)
                .map_err(|e| store_error("cannot serialize record", &e))?;
            line.pop();
            lines.push(String::from_utf8(line).map_err(|e| store_error("record", &e))?);
        }
        let (done, wait) = oneshot::channel();
        let epoch = self.epoch.load(Ordering::Acquire);
        self.tx
            .send(Append {
                at: records.iter().map(|r| r.at).collect(),
                kinds: records.iter().map(|r| r.kind().as_str()).collect(),
                epochs: records
                    .iter()
                    .map(|r| decided_kind(r.kind()).then_some(epoch))
                    .collect(),
                lines,
                done,
            })
            .map_err(|_| AuditError::Closed)?;
        wait.await.map_err(|_| AuditError::Closed)?
    }

    /// Takes the lease for `duration` if it is free (never held, or expired), as
    /// `holder`; the new epoch if so. The time is PostgreSQL's, one clock for all.
    pub async fn take_lease(
        &self,
        holder: &str,
        duration: Duration,
    ) -> Result<Option<i64>, AuditError> {
        let client = connection(&self.pool).await?;
        const TAKE: &str = "UPDATE salve_lease SET holder = $1, epoch = epoch + 1, \
             expires_at = clock_timestamp() + make_interval(secs => $2) \
             WHERE id = 1 AND expires_at <= clock_timestamp() RETURNING epoch";
        let row = client
            .query_opt(TAKE, &[&holder, &duration.as_secs_f64()])
            .await
            .map_err(sql_error("cannot take the lease", TAKE))?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| store_error("cannot read the lease", &e))
    }

    /// Extends the lease `epoch` holds by `duration` from now; false when it is no
    /// longer held (expired, or taken by another).
    pub async fn renew_lease(
        &self,
        holder: &str,
        epoch: i64,
        duration: Duration,
    ) -> Result<bool, AuditError> {
        let client = connection(&self.pool).await?;
        const RENEW: &str = "UPDATE salve_lease \
             SET expires_at = clock_timestamp() + make_interval(secs => $3) \
             WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()";
        let n = client
            .execute(RENEW, &[&holder, &epoch, &duration.as_secs_f64()])
            .await
            .map_err(sql_error("cannot renew the lease", RENEW))?;
        Ok(n == 1)
    }

    /// Gives the lease up at once (a clean stop), so another replica need not wait
    /// for it to run out.
    pub async fn release_lease(&self, holder: &str, epoch: i64) -> Result<(), AuditError> {
        let client = connection(&self.pool).await?;
        const RELEASE: &str = "UPDATE salve_lease SET expires_at = '-infinity' \
             WHERE id = 1 AND holder = $1 AND epoch = $2";
        client
            .execute(RELEASE, &[&holder, &epoch])
            .await
            .map_err(sql_error("cannot release the lease", RELEASE))?;
        Ok(())
    }

    /// Writes `name`'s row of `salve_replica` as of now, then reads every row written
    /// within `within`, by name. The time is PostgreSQL's, as for the lease.
    pub async fn see_replica(
        &self,
        name: &str,
        leader: bool,
        followed: i64,
        within: Duration,
    ) -> Result<Vec<ReplicaRow>, AuditError> {
        let client = connection(&self.pool).await?;
        const SEEN: &str = "INSERT INTO salve_replica (name, seen_at, leader, followed) \
             VALUES ($1, clock_timestamp(), $2, $3) ON CONFLICT (name) DO UPDATE \
             SET seen_at = EXCLUDED.seen_at, leader = EXCLUDED.leader, followed = EXCLUDED.followed";
        client
            .execute(SEEN, &[&name, &leader, &followed])
            .await
            .map_err(sql_error("cannot write this replica's row", SEEN))?;
        // A killed leader's row says `leader` until it ages out; the lease says who
        // holds it now, so at most one row reads as the leader.
        const LATELY: &str = "SELECT r.name, r.seen_at, \
             r.leader AND l.holder = r.name AND l.expires_at > clock_timestamp(), r.followed \
             FROM salve_replica r LEFT JOIN salve_lease l ON l.id = 1 \
             WHERE r.seen_at > clock_timestamp() - make_interval(secs => $1) ORDER BY r.name";
        let rows = client
            .query(LATELY, &[&within.as_secs_f64()])
            .await
            .map_err(sql_error("cannot read the replicas", LATELY))?;
        let column = |e: tokio_postgres::Error| store_error("unexpected replica row", &e);
        rows.iter()
            .map(|row| {
                Ok(ReplicaRow {
                    name: row.try_get(0).map_err(column)?,
                    seen_at: row.try_get(1).map_err(column)?,
                    leader: row.try_get::<_, Option<bool>>(2).map_err(column)? == Some(true),
                    followed: row.try_get(3).map_err(column)?,
                })
            })
            .collect()
    }

    /// Deletes `name`'s row (a clean stop), so the others stop listing it at once.
    pub async fn forget_replica(&self, name: &str) -> Result<(), AuditError> {
        let client = connection(&self.pool).await?;
        const FORGET: &str = "DELETE FROM salve_replica WHERE name = $1";
        client
            .execute(FORGET, &[&name])
            .await
            .map_err(sql_error("cannot delete this replica's row", FORGET))?;
        Ok(())
    }

    /// The epoch this replica writes decisions with (0: none; they are refused).
    pub fn set_epoch(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Whether PostgreSQL answers now; why not, as a person reads it.
    pub async fn reachable(&self) -> Result<(), Unreachable> {
        let client = self.pool.get().await.map_err(|e| Unreachable {
            source: Box::new(e),
            statement: None,
        })?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| Unreachable {
                source: Box::new(e),
                statement: Some("SELECT 1"),
            })?;
        Ok(())
    }

    /// Calls `each` for every record after sequence number `after`, oldest first;
    /// returns the last number read. What builds state reads this way: when retention
    /// has removed records after `after`, it is an error ([`AuditError::Trimmed`]).
    /// With `since`, records older than it are passed over; so are records written
    /// under the epochs `skip` (what this replica wrote as leader, and holds already).
    pub async fn read_after(
        &self,
        after: i64,
        since: Option<DateTime<Utc>>,
        skip: &[i64],
        each: impl FnMut(AuditRecord),
    ) -> Result<i64, AuditError> {
        self.read_rows(after, since, skip, true, each).await
    }

    /// Every record retention has kept, oldest first (`since` as for `read_after`):
    /// what a reader of the history reads.
    pub async fn read_kept(
        &self,
        since: Option<DateTime<Utc>>,
        each: impl FnMut(AuditRecord),
    ) -> Result<i64, AuditError> {
        self.read_rows(0, since, &[], false, each).await
    }

    async fn read_rows(
        &self,
        after: i64,
        since: Option<DateTime<Utc>>,
        skip: &[i64],
        whole: bool,
        mut each: impl FnMut(AuditRecord),
    ) -> Result<i64, AuditError> {
        const PAGE: i64 = 5000;
        let since = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let client = connection(&self.pool).await?;
        const READ: &str = "SELECT seq, CASE WHEN epoch = ANY($4) THEN NULL ELSE record::text END \
             FROM salve_trail WHERE seq > $1 AND at >= $3 ORDER BY seq LIMIT $2";
        let statement = client
            .prepare_cached(READ)
            .await
            .map_err(sql_error("cannot read the trail", READ))?;
        let mut last = after;
        loop {
            let rows = client
                .query(&statement, &[&last, &PAGE, &since, &skip])
                .await
                .map_err(sql_error("cannot read the trail", READ))?;
            if whole && last == after {
                if let Some(first) = rows.first() {
                    let first: i64 = first
                        .try_get(0)
                        .map_err(|e| store_error("unexpected trail row", &e))?;
                    self.not_trimmed_past(after, first).await?;
                }
            }
            let n = rows.len();
            for row in rows {
                let (seq, record) = trail_row(&row)?;
                last = seq;
                if let Some(record) = record {
                    each(record);
                }
            }
            if (n as i64) < PAGE {
                return Ok(last);
            }
        }
    }

    /// At most `limit` records after sequence number `after`, oldest first, with their
    /// numbers: a page of what `GET /api/v1/stream` follows.
    pub async fn page_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, AuditRecord)>, AuditError> {
        const PAGE: &str =
            "SELECT seq, record::text FROM salve_trail WHERE seq > $1 ORDER BY seq LIMIT $2";
        let client = connection(&self.pool).await?;
        let rows = client
            .query(PAGE, &[&after, &limit])
            .await
            .map_err(sql_error("cannot read the trail", PAGE))?;
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            if let (seq, Some(record)) = trail_row(&row)? {
                page.push((seq, record));
            }
        }
        Ok(page)
    }

    /// The newest `limit` checkpoints, newest first: the last record each holds, and
    /// its bytes.
    pub async fn checkpoints(&self, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, AuditError> {
        const NEWEST: &str = "SELECT seq, body FROM salve_checkpoint ORDER BY seq DESC LIMIT $1";
        let client = connection(&self.pool).await?;
        let rows = client
            .query(NEWEST, &[&limit])
            .await
            .map_err(sql_error("cannot read the checkpoints", NEWEST))?;
        let column = |e: tokio_postgres::Error| store_error("unexpected checkpoint row", &e);
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(column)?,
                    row.try_get(1).map_err(column)?,
                ))
            })
            .collect()
    }

    /// Writes the checkpoint that holds every record up to `seq`, and removes all but
    /// the newest `keep`, in one transaction.
    pub async fn write_checkpoint(
        &self,
        seq: i64,
        body: &[u8],
        keep: i64,
    ) -> Result<(), AuditError> {
        const WRITE: &str = "INSERT INTO salve_checkpoint (seq, body) VALUES ($1, $2) \
             ON CONFLICT (seq) DO UPDATE SET body = EXCLUDED.body, written_at = clock_timestamp()";
        const PRUNE: &str = "DELETE FROM salve_checkpoint WHERE seq NOT IN \
             (SELECT seq FROM salve_checkpoint ORDER BY seq DESC LIMIT $1)";
        let mut client = connection(&self.pool).await?;
        let transaction = client
            .transaction()
            .await
            .map_err(sql_error("cannot write a checkpoint", WRITE))?;
        transaction
            .execute(WRITE, &[&seq, &body])
            .await
            .map_err(sql_error("cannot write a checkpoint", WRITE))?;
        transaction
            .execute(PRUNE, &[&keep])
            .await
            .map_err(sql_error("cannot remove old checkpoints", PRUNE))?;
        transaction
            .commit()
            .await
            .map_err(sql_error("cannot write a checkpoint", WRITE))
    }

    /// The sequence number of the last record committed (0 for an empty trail).
    pub async fn last_seq(&self) -> Result<i64, AuditError> {
        const LAST: &str = "SELECT COALESCE(max(seq), 0) FROM salve_trail";
        let client = connection(&self.pool).await?;
        let row = client
            .query_one(LAST, &[])
            .await
            .map_err(sql_error("cannot read the trail", LAST))?;
        row.try_get(0)
            .map_err(|e| store_error("unexpected trail row", &e))
    }

    /// The newest `limit` records `filter` selects (before `before`, a sequence number
    /// carried in a [`TrailPosition`]'s offset), oldest first, within `max_bytes`.
    pub async fn newest(
        &self,
        filter: &AuditFilter,
        limit: usize,
        max_bytes: usize,
        before: Option<TrailPosition>,
    ) -> Result<Page, AuditError> {
        const CHUNK: i64 = 1000;
        let client = connection(&self.pool).await?;
        let since = filter.since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        const NEWEST: &str = "SELECT seq, record::text FROM salve_trail \
             WHERE seq < $1 AND at >= $2 AND ($3::text IS NULL OR kind = $3) \
             ORDER BY seq DESC LIMIT $4";
        let statement = client
            .prepare_cached(NEWEST)
            .await
            .map_err(sql_error("cannot read the trail", NEWEST))?;
        let mut below = before.map_or(i64::MAX, |p| p.offset as i64);
        let kind = filter.kind.map(RecordKind::as_str);
        let mut page: Vec<(i64, String)> = Vec::new();
        let mut bytes = 0;
        let mut cut = false;
        'chunks: loop {
            let rows = client
                .query(&statement, &[&below, &since, &kind, &CHUNK])
                .await
                .map_err(sql_error("cannot read the trail", NEWEST))?;
            let n = rows.len();
            for row in rows {
                let (seq, record) = trail_row(&row)?;
                below = seq;
                let Some(record) = record else {
                    continue;
                };
                if !filter.matches(&record) {
                    continue;
                }
                let json = serde_json::to_string(&record)
                    .map_err(|e| store_error("cannot serialize record", &e))?;
                if page.len() >= limit || bytes + json.len() > max_bytes && !page.is_empty() {
                    cut = true;
                    break 'chunks;
                }
                bytes += json.len();
                page.push((seq, json));
            }
            if (n as i64) < CHUNK {
                break;
            }
        }
        page.reverse();
        let older = match (cut, page.first()) {
            (true, Some((seq, _))) => Some(TrailPosition {
                inode: 0,
                offset: *seq as u64,
            }),
            _ => None,
        };
        Ok(Page {
            records: page.into_iter().map(|(_, json)| json).collect(),
            older,
        })
    }

    /// Waits until everything sent before this call is committed.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Append {
            at: Vec::new(),
            kinds: Vec::new(),
            epochs: Vec::new(),
            lines: Vec::new(),
            done,
        });
        if sent.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Runs the migrations under [`MIGRATION_LOCK`], held by this connection's session and
/// released after (a replica that dies holding it loses its connection, and the lock
/// with it). The wait for the lock is bounded by the statement timeout.
async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), AuditError> {
    const LOCK: &str = "SELECT pg_advisory_lock($1)";
    const UNLOCK: &str = "SELECT pg_advisory_unlock($1)";
    client
        .execute(LOCK, &[&MIGRATION_LOCK])
        .await
        .map_err(sql_error("cannot take the migration lock", LOCK))?;
    let migrated = embedded::migrations::runner()
        .run_async(client)
        .await
        .map_err(|e| store_error("cannot migrate the PostgreSQL schema", &e));
    let unlocked = client
        .execute(UNLOCK, &[&MIGRATION_LOCK])
        .await
        .map_err(sql_error("cannot release the migration lock", UNLOCK));
    for migration in migrated?.applied_migrations() {
        tracing::info!(version = migration.version(), name = %migration.name(), "PostgreSQL schema migrated");
    }
    unlocked.map(|_| ())
}

/// A row of `seq, record::text`: its number, and its record unless SQL passed over it
/// (NULL) or it cannot be read (warned about, and skipped as the file trail skips a line).
fn trail_row(row: &tokio_postgres::Row) -> Result<(i64, Option<AuditRecord>), AuditError> {
    let column = |e: tokio_postgres::Error| store_error("unexpected trail row", &e);
    let seq: i64 = row.try_get(0).map_err(column)?;
    let text: Option<&str> = row.try_get(1).map_err(column)?;
    let record = text.and_then(|text| match AuditRecord::from_line(text.as_bytes()) {
        Ok(record) => Some(record),
        Err(e) => {
            tracing::warn!(seq, error = %e, "skipping unreadable audit record in PostgreSQL");
            None
        }
    });
    Ok((seq, record))
}

/// A connection of the pool, or why there is none.
pub(super) async fn connection(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::Object, AuditError> {
    pool.get()
        .await
        .map_err(|e| store_error("PostgreSQL is unreachable", &e))
}

async fn run_writer(
    pool: deadpool_postgres::Pool,
    mut rx: mpsc::UnboundedReceiver<Append>,
    stats: Arc<AuditWriterStats>,
    on_commit: Option<Arc<dyn Fn(Duration, usize) + Send + Sync>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut rows = batch[0].lines.len();
        while rows < MAX_ROWS {
            match rx.try_recv() {
                Ok(next) => {
                    rows += next.lines.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = if rows == 0 {
            Ok(())
        } else {
            insert(&pool, &batch).await
        };
        match &result {
            Ok(()) if rows > 0 => {
                stats.records.fetch_add(rows as u64, Ordering::Relaxed);
                let bytes: usize = batch.iter().flat_map(|a| &a.lines).map(String::len).sum();
                stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                if let Some(observe) = &on_commit {
                    observe(started.elapsed(), batch.len());
                }
            }
            Ok(()) => {}
            Err(e) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "audit write to PostgreSQL failed; the requests waiting on it are refused");
            }
        }
        for append in batch {
            let _ = append.done.send(result.clone());
        }
    }
}

async fn insert(pool: &deadpool_postgres::Pool, batch: &[Append]) -> Result<(), AuditError> {
    let client = connection(pool).await?;
    // One statement, one round trip, its own transaction: the lock (taken before any
    // row gets its number, and held to the commit) puts numbers in commit order.
    const INSERT: &str = "WITH turn AS (SELECT pg_advisory_xact_lock($5)) \
         INSERT INTO salve_trail (at, kind, record, epoch) \
         SELECT at, kind, record::json, epoch FROM turn, \
         unnest($1::timestamptz[], $2::text[], $3::text[], $4::bigint[]) AS t(at, kind, record, epoch)";
    let statement = client
        .prepare_cached(INSERT)
        .await
        .map_err(sql_error("cannot prepare the insert", INSERT))?;
    let at: Vec<DateTime<Utc>> = batch.iter().flat_map(|a| a.at.iter().copied()).collect();
    let kinds: Vec<&str> = batch.iter().flat_map(|a| a.kinds.iter().copied()).collect();
    let lines: Vec<&str> = batch
        .iter()
        .flat_map(|a| a.lines.iter().map(String::as_str))
        .collect();
    let epochs: Vec<Option<i64>> = batch
        .iter()
        .flat_map(|a| a.epochs.iter().copied())
        .collect();
    client
        .execute(&statement, &[&at, &kinds, &lines, &epochs, &WRITE_LOCK])
        .await
        .map_err(sql_error("cannot insert records", INSERT))?;
    Ok(())
}

/// Why PostgreSQL did not answer: the server's message, SQLSTATE and the statement at
/// fault, as [`pg_error_text`] reads them.
#[derive(Debug, thiserror::Error)]
#[error("{}", pg_error_text(.source.as_ref(), *.statement))]
pub struct Unreachable {
    source: Box<dyn std::error::Error + Send + Sync>,
    statement: Option<&'static str>,
}
