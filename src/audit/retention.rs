//! Which rotated files may go: never one a checkpoint does not yet hold; past that, the
//! ones older than `keep_for`, and beyond `keep_files` the oldest, which is logged and
//! counted when they are younger than `keep_for` (size forced them out early).

use super::reader::rotated_files;
use super::TrailPosition;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long and how many rotated files the trail keeps (`[audit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub keep_files: usize,
    pub keep_for: Duration,
}

/// Why a rotated file was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// Older than `keep_for`.
    Age,
    /// Beyond `keep_files` while younger than `keep_for`.
    Size,
}

impl Removed {
    pub fn as_str(self) -> &'static str {
        match self {
            Removed::Age => "age",
            Removed::Size => "size",
        }
    }
}

/// Present once retention has removed a file: from then on the trail alone does not
/// hold everything the state was folded from, and only a checkpoint does.
pub const TRIMMED_MARK: &str = "audit.trimmed";

/// Whether retention has removed any of the trail's files.
pub fn trimmed(dir: &Path) -> bool {
    dir.join(TRIMMED_MARK).exists()
}

/// Removes the rotated files that `retention` lets go and that lie wholly before
/// `held` (what the oldest kept checkpoint holds). Returns what it removed.
pub fn apply_retention(
    dir: &Path,
    retention: Retention,
    held: TrailPosition,
) -> Vec<(PathBuf, Removed)> {
    use std::os::unix::fs::MetadataExt;
    let mut rotated = rotated_files(dir);
    rotated.sort_by_key(|(n, _)| *n);
    // Files older than the one the checkpoint points into hold only what it holds.
    let Some(held_at) = rotated
        .iter()
        .position(|(_, path)| std::fs::metadata(path).is_ok_and(|m| m.ino() == held.inode))
        .or_else(|| {
            // The checkpoint points into the current file: every rotated file is held.
            let current = std::fs::metadata(dir.join(super::CURRENT_FILE)).ok()?;
            (current.ino() == held.inode).then_some(usize::MAX)
        })
    else {
        return Vec::new();
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for (index, (_, path)) in rotated.iter().enumerate() {
        if held_at != usize::MAX && index <= held_at {
            continue;
        }
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        let why = if age > retention.keep_for {
            Removed::Age
        } else if index >= retention.keep_files {
            Removed::Size
        } else {
            continue;
        };
        if !trimmed(dir) {
            // Written before the first removal, so that a start which cannot read its
            // checkpoints knows the trail alone no longer says everything.
            if let Err(e) = std::fs::write(dir.join(TRIMMED_MARK), b"") {
                tracing::warn!(error = %e, "cannot mark the trail as trimmed; keeping its files");
                return removed;
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => removed.push((path.clone(), why)),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove a rotated audit file")
            }
        }
    }
    removed
}
