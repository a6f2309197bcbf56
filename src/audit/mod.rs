//! The audit trail: JSONL, fsynced, rotated by size; or, for replicas, PostgreSQL
//! (`[store]`). Also salve's memory across restarts.

mod follow;
mod lock;
mod pg_error;
mod pg_retention;
mod postgres;
mod reader;
mod record;
mod retention;
mod trail_reader;
mod writer;

pub use follow::{read_positioned, trail_start};
pub use lock::{DataDirLock, LockError, LOCK_FILE};
pub use pg_error::pg_error_text;
pub use pg_retention::Trimmed;
pub use postgres::{PgTrail, ReplicaRow, StoreSettings, Unreachable};
pub use reader::{
    newest_records, read_records, read_records_after, read_records_since, AuditFilter, Page,
    ReadError, RecordTest, TrailError,
};
pub use record::{
    AuditRecord, Entry, MaintenanceChange, OutcomeRecord, RecordKind, UnknownRecordKind,
};
pub use retention::{apply_retention, trimmed, Removed, Retention, TRIMMED_MARK};
pub use trail_reader::TrailReader;
pub use writer::{AuditError, AuditLog, AuditWriterStats, TrailPosition};

pub const CURRENT_FILE: &str = "audit.jsonl";

#[cfg(test)]
mod tests;
