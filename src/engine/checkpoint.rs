//! Checkpoints: the policy state written to the data dir (fsynced, atomically
//! replaced, versioned, checksummed) with the trail position it holds everything
//! before. Start-up reads the newest good checkpoint and the trail after it, so neither
//! start-up time nor retention depends on how much history there is. The previous
//! checkpoint is kept as a fallback, and the trail files it needs are kept with it.

use super::recovery::fold;
use super::Engine;
use crate::audit::{apply_retention, read_records, read_records_after, ReadError, TrailPosition};
use crate::policy::{
    ImageError, PolicySettings, PolicyState, StateImage, StateImageV1, StateImageV2, StateImageV3,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const CHECKPOINT_FILE: &str = "state.checkpoint";
const PREVIOUS_FILE: &str = "state.checkpoint.1";
const MAGIC: &[u8; 8] = b"SALVECKP";
/// Bumped whenever the image changes shape. Every older version keeps a reader in
/// [`decode`] that turns it into today's state, so an upgrade keeps what the limits,
/// breakers, windows and dedup need; a newer one is refused (see [`RecoveryError`]).
/// Whatever the version, the body's first field is the trail position.
const VERSION: u32 = 4;
/// Magic (8 bytes), version (4), body length (8), SHA-256 of the body (32).
const HEADER: usize = 52;
/// A checkpoint is written once this much trail has been written since the last, at
/// each rotation, and after a minute with anything new; but never before the trail has
/// grown by `TRAIL_PER_IMAGE` times the last checkpoint's size, so that writing
/// checkpoints costs a fraction of writing the trail however large the state (a storm's
/// firing set), and start-up after a crash reads at most that much trail after one.
const EVERY_BYTES: u64 = 16 << 20;
pub(super) const EVERY: Duration = Duration::from_secs(60);
const TRAIL_PER_IMAGE: u64 = 16;

/// Written from a snapshot's image, read back as a [`StateImage`].
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint<I = StateImage> {
    position: TrailPosition,
    image: I,
}

/// The header (magic, version, body length, body checksum), then the body, in a buffer
/// made `size_hint` bytes large at once (the last checkpoint's size), so a large image
/// is not copied each time its buffer doubles.
fn encode<I: Serialize>(
    checkpoint: &Checkpoint<I>,
    size_hint: usize,
) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = Vec::with_capacity(size_hint.max(1 << 20));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.resize(HEADER, 0);
    let mut bytes = postcard::to_extend(checkpoint, bytes).map_err(CheckpointError::Encode)?;
    seal(&mut bytes);
    Ok(bytes)
}

/// Why a checkpoint on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Damaged(#[from] Damage),
    #[error("{0}")]
    Undecodable(#[from] postcard::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("written by a salve whose checkpoint format is version {0}; this one reads versions 1 to {VERSION}")]
    OtherFormat(u32),
}

/// What is wrong with a checkpoint's header or body as bytes.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("shorter than its header")]
    ShorterThanHeader,
    #[error("not a salve checkpoint")]
    NotACheckpoint,
    #[error("no body")]
    NoBody,
    #[error("cut short")]
    CutShort,
    #[error("checksum mismatch")]
    ChecksumMismatch,
}

/// Why a checkpoint could not be made, written, or read back.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Encode(#[source] postcard::Error),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// What was written from a restored state does not read back.
    #[error("a re-written checkpoint does not read: {0}")]
    RewrittenUnreadable(#[source] Unreadable),
    /// What was written from a restored state reads but does not restore.
    #[error("a re-written checkpoint does not restore: {0}")]
    RewrittenUnrestorable(#[source] ImageError),
}

/// Fills in the header's body length and checksum of a buffer that holds a header
/// (`HEADER` bytes, magic and version set) and then the body.
fn seal(bytes: &mut [u8]) {
    let body_len = (bytes.len() - HEADER) as u64;
    let digest = Sha256::digest(&bytes[HEADER..]);
    bytes[12..20].copy_from_slice(&body_len.to_le_bytes());
    bytes[20..HEADER].copy_from_slice(&digest);
}

/// `body` with a header of this version around it, checksum and all: for the fuzzer
/// (`crate::fuzzing`), which could never guess a SHA-256 and so would otherwise never
/// reach the body's decoder.
#[doc(hidden)]
pub fn frame_checkpoint_body(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.resize(HEADER, 0);
    bytes.extend_from_slice(body);
    seal(&mut bytes);
    bytes
}

/// The checkpoint of `state` as `write` would put it on disk: for the fuzzer's seeds
/// and its round trip (`crate::fuzzing`).
#[doc(hidden)]
pub fn checkpoint_bytes(
    state: &PolicyState,
    position: TrailPosition,
) -> Result<Vec<u8>, CheckpointError> {
    let snapshot = state.snapshot();
    let image = snapshot.image()?;
    encode(&Checkpoint { position, image }, 0)
}

/// Reads the bytes of a checkpoint file back into a state, as start-up does before it
/// folds the trail after it; then writes the state as a checkpoint again, which must
/// read back too (a checkpoint salve writes but cannot read is a start refused later).
/// For the fuzzer (`crate::fuzzing`): start-up itself goes through [`replay`].
#[doc(hidden)]
pub fn restore_checkpoint(
    bytes: &[u8],
    settings: &PolicySettings,
) -> Result<PolicyState, CheckpointError> {
    let checkpoint = decode(bytes)?;
    let state = PolicyState::from_image(checkpoint.image, settings.clone())?;
    let again = checkpoint_bytes(&state, checkpoint.position)?;
    let reread = decode(&again).map_err(CheckpointError::RewrittenUnreadable)?;
    PolicyState::from_image(reread.image, settings.clone())
        .map_err(CheckpointError::RewrittenUnrestorable)?;
    Ok(state)
}

/// The state a checkpoint's bytes hold (of any version this salve reads), or why not,
/// as a person reads it: the store's checkpoints are these bytes.
pub(super) fn state_from_bytes(
    bytes: &[u8],
    settings: &PolicySettings,
) -> Result<PolicyState, String> {
    let checkpoint = decode(bytes).map_err(|e| e.to_string())?;
    PolicyState::from_image(checkpoint.image, settings.clone()).map_err(|e| e.to_string())
}

/// A checkpoint of any version this salve reads, as today's.
fn decode(bytes: &[u8]) -> Result<Checkpoint, Unreadable> {
    let body = verified_body(bytes)?;
    match version_of(bytes) {
        1 => {
            let v1: Checkpoint<StateImageV1> = postcard::from_bytes(body)?;
            Ok(Checkpoint {
                position: v1.position,
                image: v1.image.into(),
            })
        }
        2 => {
            let v2: Checkpoint<StateImageV2> = postcard::from_bytes(body)?;
            Ok(Checkpoint {
                position: v2.position,
                image: v2.image.into(),
            })
        }
        3 => {
            let v3: Checkpoint<StateImageV3> = postcard::from_bytes(body)?;
            Ok(Checkpoint {
                position: v3.position,
                image: v3.image.into(),
            })
        }
        4 => Ok(postcard::from_bytes(body)?),
        version => Err(Unreadable::OtherFormat(version)),
    }
}

fn version_of(bytes: &[u8]) -> u32 {
    match bytes.get(8..12) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The body of a checkpoint whose header and checksum hold, of whatever version.
fn verified_body(bytes: &[u8]) -> Result<&[u8], Damage> {
    let header = bytes.get(..HEADER).ok_or(Damage::ShorterThanHeader)?;
    if &header[..8] != MAGIC {
        return Err(Damage::NotACheckpoint);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[12..20]);
    let body = bytes.get(HEADER..).ok_or(Damage::NoBody)?;
    if body.len() as u64 != u64::from_le_bytes(len) {
        return Err(Damage::CutShort);
    }
    if Sha256::digest(body).as_slice() != &header[20..HEADER] {
        return Err(Damage::ChecksumMismatch);
    }
    Ok(body)
}

/// Written and synced this much at a time: on ext4 (data=ordered) the trail's own
/// fdatasync waits for the data of the checkpoint's pending writes, and it should wait
/// for a MiB of it, not for tens (measured by `bench/fsync_stall.py`).
const SYNC_EVERY: usize = 1 << 20;

/// Writes the checkpoint next to the trail: a temporary file, fsynced, renamed over the
/// current one (which becomes the previous one), and the folder fsynced. Returns its size.
fn write<I: Serialize>(
    dir: &Path,
    checkpoint: &Checkpoint<I>,
    size_hint: usize,
) -> Result<u64, CheckpointError> {
    let bytes = encode(checkpoint, size_hint)?;
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let io = |what: &'static str, source: std::io::Error| CheckpointError::Io {
        what,
        path: tmp.clone(),
        source,
    };
    let mut file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    for chunk in bytes.chunks(SYNC_EVERY) {
        file.write_all(chunk).map_err(|e| io("write", e))?;
        file.sync_data().map_err(|e| io("fsync", e))?;
    }
    file.sync_all().map_err(|e| io("fsync", e))?;
    let current = dir.join(CHECKPOINT_FILE);
    if current.exists() {
        std::fs::rename(&current, dir.join(PREVIOUS_FILE))
            .map_err(|e| io("keep previous of", e))?;
    }
    std::fs::rename(&tmp, &current).map_err(|e| io("rename", e))?;
    if let Ok(folder) = std::fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(bytes.len() as u64)
}

fn read_checkpoint(path: &Path) -> Option<Result<Checkpoint, Unreadable>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(decode(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(Unreadable::Io(e))),
    }
}

/// Why the state could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Read(#[from] ReadError),
    /// No checkpoint could be used and retention has removed trail files: the trail
    /// alone would forget spent limits, open breakers, windows and dedup, so salve
    /// does not start on it.
    #[error(
        "cannot restore salve's state from {}: {}; and retention has removed older trail files, \
         so the trail alone would forget spent limits, open breakers, maintenance windows and \
         dedup. Start the salve that wrote the checkpoint, or, to start with that memory lost, \
         move {CHECKPOINT_FILE} and {PREVIOUS_FILE} out of the data dir",
        dir.display(),
        problems.join("; ")
    )]
    Forgotten { dir: PathBuf, problems: Vec<String> },
}

/// The state as the trail in `dir` says: the newest good checkpoint and the records
/// after it, else the previous checkpoint and the records after that, else every
/// record (with a warning, when a checkpoint was there but could not be used, unless
/// retention has trimmed the trail: then an error).
pub fn replay(dir: &Path, settings: &PolicySettings) -> Result<PolicyState, RecoveryError> {
    let mut problems = Vec::new();
    for name in [CHECKPOINT_FILE, PREVIOUS_FILE] {
        let path = dir.join(name);
        let checkpoint = match read_checkpoint(&path) {
            None => continue,
            Some(Ok(checkpoint)) => checkpoint,
            Some(Err(e)) => {
                match &e {
                    Unreadable::Damaged(_) | Unreadable::Undecodable(_) | Unreadable::Io(_) => {
                        tracing::warn!(file = %path.display(), error = %e, "checkpoint is damaged; not using it")
                    }
                    Unreadable::OtherFormat(_) => {
                        tracing::warn!(file = %path.display(), error = %e, "checkpoint is of a format this salve does not read; not using it")
                    }
                }
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let mut state = match PolicyState::from_image(checkpoint.image, settings.clone()) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "checkpoint cannot be restored; not using it");
                problems.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match read_records_after(dir, checkpoint.position, |record| fold(&mut state, &record))? {
            Some(skipped) => {
                warn_skipped(skipped);
                return Ok(state);
            }
            None => {
                tracing::warn!(file = %path.display(), "checkpoint points into a trail file that is not there; not using it");
                problems.push(format!(
                    "{}: points into a trail file that is not there",
                    path.display()
                ));
            }
        }
    }
    if !problems.is_empty() && crate::audit::trimmed(dir) {
        return Err(RecoveryError::Forgotten {
            dir: dir.to_path_buf(),
            problems,
        });
    }
    if !problems.is_empty() {
        tracing::warn!("replaying the whole audit trail instead of a checkpoint");
    }
    let mut state = PolicyState::new(settings.clone());
    let skipped = read_records(dir, |record| fold(&mut state, &record))?;
    warn_skipped(skipped);
    Ok(state)
}

fn warn_skipped(skipped: usize) {
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "some audit lines could not be read and were skipped"
        );
    }
}

/// The positions of the two checkpoints on disk, newest first: retention keeps what
/// the older one needs.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Written {
    pub newest: Option<TrailPosition>,
    pub previous: Option<TrailPosition>,
    pub bytes_at: u64,
    pub rotations_at: u64,
    pub at: Option<Instant>,
    /// The size of the newest.
    pub image_bytes: u64,
    /// With `[store]`: the last record the newest checkpoint in the store holds.
    pub seq_at: i64,
    /// With `[store]`: when retention last ran.
    pub retained_at: Option<Instant>,
    /// With `[store]`: the last pass ran out of time with records still to remove.
    pub retention_behind: bool,
}

impl Written {
    /// What is on disk when the engine starts: the positions of the good checkpoints,
    /// read without restoring their images (which is most of the cost of a start).
    pub fn on_disk(dir: &Path) -> Written {
        let position = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).ok()?;
            let body = verified_body(&bytes).ok()?;
            // The position is the body's first field.
            postcard::take_from_bytes::<TrailPosition>(body)
                .ok()
                .map(|(position, _)| position)
        };
        Written {
            newest: position(CHECKPOINT_FILE),
            previous: position(PREVIOUS_FILE),
            ..Written::default()
        }
    }
}

/// Whether a checkpoint is due, `written` bytes of trail and `since` the last one of
/// `image_bytes` (none yet: `None`).
fn due(written: u64, rotated: bool, since: Option<Duration>, image_bytes: u64) -> bool {
    let a_minute_on = written > 0 && since.is_none_or(|since| since >= EVERY);
    a_minute_on || ((rotated || written >= EVERY_BYTES) && written >= TRAIL_PER_IMAGE * image_bytes)
}

impl Engine {
    /// Writes a checkpoint when enough has happened since the last one.
    pub(super) async fn checkpoint_if_due(&self) {
        let stats = self.audit.stats();
        let bytes = stats.bytes.load(Ordering::Relaxed);
        let rotations = stats.rotations.load(Ordering::Relaxed);
        let last = *self.checkpoints.lock();
        let due = due(
            bytes.saturating_sub(last.bytes_at),
            rotations != last.rotations_at,
            last.at.map(|at| at.elapsed()),
            last.image_bytes,
        );
        if due {
            self.checkpoint().await;
        }
    }

    /// Writes a checkpoint now, then lets retention remove what no checkpoint needs.
    pub(super) async fn checkpoint(&self) {
        // The store's checkpoints and retention are store_upkeep's.
        let Some(files) = self.audit.files() else {
            return;
        };
        let started = Instant::now();
        let stats = files.stats();
        let (position, snapshot, bytes, rotations, paused) = {
            // No record is between being written and being applied while this holds;
            // the snapshot shares the state's large sets, so this is microseconds.
            let _quiet = self.gate.write().await;
            let quiet_at = Instant::now();
            let position = files.position();
            let snapshot = self.state.read().snapshot();
            let bytes = stats.bytes.load(Ordering::Relaxed);
            (
                position,
                snapshot,
                bytes,
                stats.rotations.load(Ordering::Relaxed),
                quiet_at.elapsed(),
            )
        };
        let dir: PathBuf = files.dir().to_path_buf();
        let write_dir = dir.clone();
        // A little more than the last one: the state may have grown since.
        let last_size = self.checkpoints.lock().image_bytes as usize;
        let size_hint = last_size + last_size / 8;
        let written = tokio::task::spawn_blocking(move || {
            let image = snapshot
                .image()
                .map_err(|e| ("cannot make a checkpoint", CheckpointError::from(e)))?;
            write(&write_dir, &Checkpoint { position, image }, size_hint)
                .map_err(|e| ("cannot write a checkpoint; the trail is kept whole", e))
        })
        .await;
        let image_bytes = match written {
            Ok(Ok(size)) => size,
            Ok(Err((what, e))) => {
                tracing::error!(error = %e, "{what}");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write a checkpoint; the trail is kept whole");
                return;
            }
        };
        let held = {
            let mut last = self.checkpoints.lock();
            last.previous = last.newest.replace(position);
            last.bytes_at = bytes;
            last.rotations_at = rotations;
            last.at = Some(Instant::now());
            last.image_bytes = image_bytes;
            last.previous.unwrap_or(position)
        };
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            paused_us = paused.as_micros() as u64,
            bytes = image_bytes,
            "checkpoint written"
        );
        let retention = self.runtime().config.audit_retention;
        let removed = tokio::task::spawn_blocking(move || apply_retention(&dir, retention, held))
            .await
            .unwrap_or_default();
        for (path, why) in removed {
            if why == crate::audit::Removed::Size {
                tracing::warn!(file = %path.display(), keep_files = retention.keep_files,
                    "removed a rotated audit file younger than keep_for: keep_files forced it out (its facts are in the checkpoint)");
            } else {
                tracing::info!(file = %path.display(), "removed a rotated audit file older than keep_for");
            }
            self.metrics.audit_file_removed(why.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_costs_a_fraction_of_the_trail_written_since_the_last() {
        let second = Some(Duration::from_secs(1));
        const MIB: u64 = 1 << 20;
        // A small state: every rotation, every 16 MiB.
        assert!(due(MIB, true, second, 4096));
        assert!(due(16 * MIB, false, second, 4096));
        assert!(!due(15 * MIB, false, second, 4096));
        // A storm's state of 13 MiB waits for 16 times that much trail, rotations or not.
        assert!(!due(64 * MIB, true, second, 13 * MIB));
        assert!(!due(207 * MIB, false, second, 13 * MIB));
        assert!(due(208 * MIB, false, second, 13 * MIB));
        // A minute with anything new, whatever the size; nothing new, nothing to write.
        assert!(due(1, false, Some(EVERY), 13 * MIB));
        assert!(!due(0, false, Some(EVERY), 0));
        assert!(due(1, false, None, 0));
    }
}
