//! The trail read as it grows, each record with the position it begins at (its cursor
//! in `GET /api/v1/audit`): what `GET /api/v1/stream` sends, resumed from the last
//! record a client saw.

use super::reader::{files_oldest_first, open_at, ReadError};
use super::{AuditRecord, TrailPosition};
use std::io::BufRead;
use std::path::Path;

/// Calls `each` with at most `max` whole records of the file trail in `dir` from `from`
/// (where a record begins, or where the last one read ended) up to `until` (the
/// durable end: what is written and not yet fsynced is left for later), each with the
/// position it begins at, oldest first, across rotations. Returns where the next record
/// begins; `None` when no file of the trail is the one `from` names (retention has
/// removed it).
pub fn read_positioned(
    dir: &Path,
    from: TrailPosition,
    until: TrailPosition,
    max: usize,
    mut each: impl FnMut(TrailPosition, AuditRecord),
) -> Result<Option<TrailPosition>, ReadError> {
    use std::os::unix::fs::MetadataExt;
    let files: Vec<(std::path::PathBuf, u64)> = files_oldest_first(dir)
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::metadata(&path).ok()?;
            Some((path, meta.ino()))
        })
        .collect();
    let Some(start) = files.iter().position(|(_, inode)| *inode == from.inode) else {
        return Ok(None);
    };
    let mut next = from;
    let mut read = 0;
    for (i, (path, inode)) in files[start..].iter().enumerate() {
        let read_error = |source| ReadError {
            path: path.to_path_buf(),
            source,
        };
        let offset = if i == 0 { from.offset } else { 0 };
        let Some(file) = open_at(path, offset).map_err(read_error)? else {
            break;
        };
        // Rotated since the folder was listed: the next call lists it again.
        if file.metadata().map_err(read_error)?.ino() != *inode {
            break;
        }
        let end = (*inode == until.inode).then_some(until.offset);
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        next = TrailPosition {
            inode: *inode,
            offset,
        };
        loop {
            if read >= max || end.is_some_and(|end| next.offset >= end) {
                return Ok(Some(next));
            }
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(read_error)?;
            // Nothing more, or a line still being written: read when it is whole.
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            let begins = next;
            next.offset += n as u64;
            if let Ok(record) = AuditRecord::from_line(&line) {
                each(begins, record);
                read += 1;
            }
        }
        if end.is_some() {
            break;
        }
    }
    Ok(Some(next))
}

/// Where a file trail begins: the oldest file's first byte.
pub fn trail_start(dir: &Path) -> Option<TrailPosition> {
    use std::os::unix::fs::MetadataExt;
    let oldest = files_oldest_first(dir).into_iter().next()?;
    let inode = std::fs::metadata(oldest).ok()?.ino();
    Some(TrailPosition { inode, offset: 0 })
}
