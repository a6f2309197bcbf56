//! `TrailReader`: what every reader of the trail goes through (`salve audit`, `replay`
//! and `report`, and their API forms), wherever the trail is kept; and where retention
//! has left it beginning, so a reader can say when its window reaches back past that.

use super::{AuditRecord, PgTrail};
use chrono::{DateTime, Utc};

/// A trail to read, wherever it is kept: what `salve audit`, `replay` and `report` and
/// their API forms read.
#[derive(Clone)]
pub enum TrailReader {
    Files(std::path::PathBuf),
    /// The runtime the pool's connections run on.
    Postgres(PgTrail, tokio::runtime::Handle),
}

impl TrailReader {
    /// Calls `each` for every record (passing over what is older than `since` where
    /// that is cheap), oldest first. Blocking: call it off the async runtime.
    pub fn read_since(
        &self,
        since: Option<DateTime<Utc>>,
        each: impl FnMut(AuditRecord),
    ) -> Result<(), super::TrailError> {
        match self {
            TrailReader::Files(dir) => {
                super::read_records_since(dir, since, each)?;
                Ok(())
            }
            TrailReader::Postgres(trail, runtime) => {
                let mut each = each;
                let mut read = || runtime.block_on(trail.read_kept(since, &mut each));
                // On a worker of the runtime, the thread is handed over while it waits.
                let result = match tokio::runtime::Handle::try_current() {
                    Ok(_) => tokio::task::block_in_place(read),
                    Err(_) => read(),
                };
                result?;
                Ok(())
            }
        }
    }
}

impl TrailReader {
    /// When retention has removed records: the time of the oldest record kept. `None`
    /// when the trail holds everything ever written. Blocking, as `read_since` is.
    pub fn kept_from(&self) -> Result<Option<DateTime<Utc>>, super::TrailError> {
        match self {
            TrailReader::Files(dir) => {
                if !super::trimmed(dir) {
                    return Ok(None);
                }
                let oldest = super::reader::first_record(dir).map(|record| record.at);
                Ok(Some(oldest.unwrap_or_else(Utc::now)))
            }
            TrailReader::Postgres(trail, runtime) => {
                let read = || runtime.block_on(trail.kept_from());
                let kept = match tokio::runtime::Handle::try_current() {
                    Ok(_) => tokio::task::block_in_place(read),
                    Err(_) => read(),
                }?;
                Ok(kept.map(|(_, at)| at))
            }
        }
    }
}
