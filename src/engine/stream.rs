//! The trail followed as it grows, for `GET /api/v1/stream`: each record with its
//! position, read from the trail itself after a position, so a client that resumes from
//! the last record it saw misses none and sees none twice. An append wakes the
//! followers (`appended`) but carries nothing: a follower that falls behind reads on
//! from its position, and salve never waits for it.

use super::{Engine, PageError, Trail};
use crate::audit::{AuditRecord, TrailPosition};

/// How many records a follower reads from the trail at a time: what it holds at most.
const PAGE: usize = 256;

/// Where a follower of the trail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follower {
    /// Where the next record to read begins, or the record last sent (`resumed`).
    from: TrailPosition,
    /// `from` is the position of a record the client already has: it is passed over.
    resumed: bool,
}

impl Engine {
    /// Woken after every append to the trail this salve makes (never waited for: a
    /// follower that lags behind is told so and reads on from the trail).
    pub fn appended(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.appended.subscribe()
    }

    /// Tells the followers that records were appended, once they are durable.
    pub(super) fn announce_appended(&self) {
        // No follower is not an error.
        let _ = self.appended.send(());
    }

    /// Whether salve is stopping: a follower ends then, or the connections that follow
    /// would keep salve from stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A follower from the end of the trail now (`after` None: only what comes next),
    /// or from after the record at `after` (a position a stream gave as a record's id).
    pub async fn follow_trail(&self, after: Option<TrailPosition>) -> Result<Follower, PageError> {
        if let Some(from) = after {
            return Ok(Follower {
                from,
                resumed: true,
            });
        }
        let from = match &self.audit {
            Trail::Files(log) => log.position(),
            Trail::Postgres(pg) => TrailPosition {
                inode: 0,
                offset: pg.last_seq().await?.max(0) as u64,
            },
        };
        Ok(Follower {
            from,
            resumed: false,
        })
    }

    /// The next records after where `follower` stands (at most a page), each with its
    /// position, oldest first; the follower moves past them.
    pub async fn read_on(
        &self,
        follower: &mut Follower,
    ) -> Result<Vec<(TrailPosition, AuditRecord)>, PageError> {
        match &self.audit {
            Trail::Files(log) => {
                let dir = log.dir().to_path_buf();
                let until = log.position();
                let at = *follower;
                let (records, next) =
                    tokio::task::spawn_blocking(move || read_files(&dir, at, until)).await??;
                *follower = next;
                Ok(records)
            }
            Trail::Postgres(pg) => {
                // A sequence number needs no passing over: records after it are new.
                let page = pg
                    .page_after(follower.from.offset as i64, PAGE as i64)
                    .await?;
                if let Some((seq, _)) = page.last() {
                    follower.from.offset = *seq as u64;
                }
                follower.resumed = false;
                let position = |seq: i64| TrailPosition {
                    inode: 0,
                    offset: seq as u64,
                };
                Ok(page
                    .into_iter()
                    .map(|(seq, r)| (position(seq), r))
                    .collect())
            }
        }
    }
}

type Read = (Vec<(TrailPosition, AuditRecord)>, Follower);

fn read_files(
    dir: &std::path::Path,
    at: Follower,
    until: TrailPosition,
) -> Result<Read, crate::audit::ReadError> {
    let mut records = Vec::new();
    let next = crate::audit::read_positioned(dir, at.from, until, PAGE, |position, record| {
        if !(at.resumed && position == at.from) {
            records.push((position, record));
        }
    })?;
    let next = match next {
        Some(next) => next,
        // Retention removed the file it was in: on from the oldest left, as what was
        // between is gone from the trail too.
        None => match crate::audit::trail_start(dir) {
            Some(start) => {
                return read_files(
                    dir,
                    Follower {
                        from: start,
                        resumed: false,
                    },
                    until,
                )
            }
            None => at.from,
        },
    };
    Ok((
        records,
        Follower {
            from: next,
            resumed: false,
        },
    ))
}
