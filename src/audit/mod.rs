//! The audit trail: JSONL, fsynced, rotated by size. Also salve's memory across restarts.

mod reader;
mod record;
mod writer;

pub use reader::{newest_records, read_records, read_records_since, AuditFilter, ReadError};
pub use record::{AuditRecord, Entry, MaintenanceChange, OutcomeRecord};
pub use writer::{AuditError, AuditLog, AuditWriterStats};

pub const CURRENT_FILE: &str = "audit.jsonl";

#[cfg(test)]
mod tests;
