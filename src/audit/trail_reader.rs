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
                blocking(runtime, trail.read_kept(since, &mut each))?;
                Ok(())
            }
        }
    }

    /// When retention has removed records of the window that starts at `since` (none:
    /// the whole trail): the time of the oldest record kept, where the window really
    /// begins. `None` when the window holds everything ever written in it. Blocking, as
    /// `read_since` is.
    pub fn reaches_past_retention(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, super::TrailError> {
        let kept = match self {
            TrailReader::Files(dir) => super::trimmed(dir).then(|| {
                super::reader::first_record(dir).map_or_else(Utc::now, |record| record.at)
            }),
            TrailReader::Postgres(trail, runtime) => {
                blocking(runtime, trail.kept_from())?.map(|(_, at)| at)
            }
        };
        Ok(kept.filter(|kept| since.is_none_or(|since| since < *kept)))
    }
}

/// Runs `read` to its end on `runtime`, from a thread that may block; on a worker of a
/// runtime, the thread is handed over while it waits.
fn blocking<T>(runtime: &tokio::runtime::Handle, read: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(|| runtime.block_on(read)),
        Err(_) => runtime.block_on(read),
    }
}
