//! Where the engine records: the JSONL files in the data dir, or PostgreSQL (`[store]`).
//! Both acknowledge only what is durable. The files' checkpoints and retention are in
//! `checkpoint.rs`; the store's, kept in PostgreSQL itself, in `store_upkeep.rs`.

use crate::audit::{
    AuditError, AuditFilter, AuditLog, AuditRecord, AuditWriterStats, Page, PgTrail, TrailPosition,
    TrailReader,
};

/// Why a page of the trail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error(transparent)]
    Files(#[from] crate::audit::ReadError),
    #[error(transparent)]
    Store(#[from] AuditError),
    /// The task that read the files ended before it answered.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub enum Trail {
    Files(AuditLog),
    Postgres(PgTrail),
}

impl Trail {
    /// Returns once the records are durable: fsynced, or committed.
    pub async fn append(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        match self {
            Trail::Files(log) => log.append(records).await,
            Trail::Postgres(pg) => pg.append(records).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Trail::Files(log) => log.close().await,
            Trail::Postgres(pg) => pg.close().await,
        }
    }

    pub fn stats(&self) -> &AuditWriterStats {
        match self {
            Trail::Files(log) => log.stats(),
            Trail::Postgres(pg) => pg.stats(),
        }
    }

    /// The file trail, which checkpoints hold a position of.
    pub fn files(&self) -> Option<&AuditLog> {
        match self {
            Trail::Files(log) => Some(log),
            Trail::Postgres(_) => None,
        }
    }

    /// The same trail, to read.
    pub fn reader(&self) -> TrailReader {
        match self {
            Trail::Files(log) => TrailReader::Files(log.dir().to_path_buf()),
            Trail::Postgres(pg) => {
                TrailReader::Postgres(pg.clone(), tokio::runtime::Handle::current())
            }
        }
    }

    /// A page of the newest records `filter` selects.
    pub async fn newest(
        &self,
        filter: AuditFilter,
        limit: usize,
        max_bytes: usize,
        before: Option<TrailPosition>,
    ) -> Result<Page, PageError> {
        match self {
            Trail::Files(log) => {
                let dir = log.dir().to_path_buf();
                let page = tokio::task::spawn_blocking(move || {
                    crate::audit::newest_records(&dir, &filter, limit, max_bytes, before)
                })
                .await??;
                Ok(page)
            }
            Trail::Postgres(pg) => Ok(pg.newest(&filter, limit, max_bytes, before).await?),
        }
    }
}
