//! Reads the trail back, oldest record first, across rotated files.

use super::{AuditRecord, RecordKind, TrailPosition, CURRENT_FILE};
use chrono::{DateTime, Utc};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("cannot read audit trail {path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Why the trail could not be read, wherever it is kept.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error(transparent)]
    Files(#[from] ReadError),
    #[error(transparent)]
    Store(#[from] super::AuditError),
}

/// The rotated files of the trail with their numbers (1 is the newest).
pub(super) fn rotated_files(dir: &Path) -> Vec<(usize, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let n = name
                .strip_prefix(CURRENT_FILE)?
                .strip_prefix('.')?
                .parse()
                .ok()?;
            Some((n, entry.path()))
        })
        .collect()
}

/// The files of the trail in the order they were written.
pub(super) fn files_oldest_first(dir: &Path) -> Vec<PathBuf> {
    let mut rotated = rotated_files(dir);
    rotated.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    let current = dir.join(CURRENT_FILE);
    if current.exists() {
        files.push(current);
    }
    files
}

/// Calls `each` for every record, oldest first. A line that does not parse (a torn
/// write, a hand edit) is reported and skipped; it never stops the replay.
pub fn read_records(dir: &Path, each: impl FnMut(AuditRecord)) -> Result<usize, ReadError> {
    read_records_since(dir, None, each)
}

/// The first record of the trail that reads, from the oldest file that has one.
pub fn first_record(dir: &Path) -> Option<AuditRecord> {
    use std::io::BufRead;
    files_oldest_first(dir).into_iter().find_map(|path| {
        let file = std::fs::File::open(path).ok()?;
        std::io::BufReader::new(file)
            .split(b'\n')
            .map_while(Result::ok)
            .find_map(|line| AuditRecord::from_line(&line).ok())
    })
}

/// A rotated file last written this long before `since` holds nothing as new as `since`
/// (the margin covers clock steps between writing a record and closing its file).
const ROTATED_MARGIN: Duration = Duration::from_secs(60);

/// As `read_records`, passing over rotated files last written well before `since`:
/// `salve audit --since 10m` reads the newest file, not the whole rotated history.
pub fn read_records_since(
    dir: &Path,
    since: Option<DateTime<Utc>>,
    mut each: impl FnMut(AuditRecord),
) -> Result<usize, ReadError> {
    let mut skipped = 0;
    for path in files_oldest_first(dir) {
        if !written_since(dir, &path, since) {
            continue;
        }
        skipped += read_file(&path, &mut each)?;
    }
    Ok(skipped)
}

/// Calls `each` for every record after `position`, oldest first: the rest of the file
/// it points into, then every newer file. `None` when no file of the trail is the one
/// it names (the folder was copied, the file is gone): then nothing was read.
pub fn read_records_after(
    dir: &Path,
    position: TrailPosition,
    mut each: impl FnMut(AuditRecord),
) -> Result<Option<usize>, ReadError> {
    use std::os::unix::fs::MetadataExt;
    let files = files_oldest_first(dir);
    let start = files.iter().position(|path| {
        std::fs::metadata(path)
            .is_ok_and(|m| m.ino() == position.inode && m.len() >= position.offset)
    });
    let Some(start) = start else {
        return Ok(None);
    };
    let mut skipped = 0;
    for (i, path) in files[start..].iter().enumerate() {
        let offset = if i == 0 { position.offset } else { 0 };
        skipped += read_file_from(path, offset, &mut each)?;
    }
    Ok(Some(skipped))
}

/// The newest `limit` records `filter` selects, oldest first, within `max_bytes` of
/// JSON, and before `before` when given. Files are read newest first and reading stops
/// once they hold enough, so "what happened lately" reads the current file, however
/// much history the trail keeps; what is held while reading is bounded by the page.
/// `older` is where the page begins when the trail holds more before it: the cursor of
/// the next (older) page.
pub fn newest_records(
    dir: &Path,
    filter: &AuditFilter,
    limit: usize,
    max_bytes: usize,
    before: Option<TrailPosition>,
) -> Result<Page, ReadError> {
    use std::os::unix::fs::MetadataExt;
    // Newest first: what each file (newest first) adds to the front of the page.
    // Each record kept as the JSON it is served as: a page holds its bytes, no more.
    let mut page: std::collections::VecDeque<(TrailPosition, String)> =
        std::collections::VecDeque::new();
    let mut bytes = 0;
    let mut cut = false;
    let mut files = files_oldest_first(dir);
    files.reverse();
    let mut reached_cursor = before.is_none();
    for path in files {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let inode = meta.ino();
        let end = match before {
            Some(cursor) if cursor.inode == inode => {
                reached_cursor = true;
                cursor.offset
            }
            _ if !reached_cursor => continue,
            _ => u64::MAX,
        };
        if page.len() >= limit || !written_since(dir, &path, filter.since) {
            cut |= page.len() >= limit;
            // Older files were written earlier still.
            break;
        }
        // This file's matches, keeping only its newest that can still fit.
        let room = limit - page.len();
        let mut mine: std::collections::VecDeque<(TrailPosition, String)> =
            std::collections::VecDeque::new();
        let mut mine_bytes = 0;
        read_file_lines(&path, |offset, record| {
            if offset >= end {
                return false;
            }
            if filter.matches(&record) {
                let json = serde_json::to_string(&record).unwrap_or_default();
                mine_bytes += json.len() + 1;
                mine.push_back((TrailPosition { inode, offset }, json));
                while mine.len() > room || (bytes + mine_bytes > max_bytes && mine.len() > 1) {
                    if let Some((_, json)) = mine.pop_front() {
                        mine_bytes -= json.len() + 1;
                        cut = true;
                    }
                }
            }
            true
        })?;
        if bytes + mine_bytes > max_bytes && !page.is_empty() {
            cut = true;
            break;
        }
        bytes += mine_bytes;
        for item in mine.into_iter().rev() {
            page.push_front(item);
        }
        if bytes >= max_bytes {
            cut = true;
            break;
        }
    }
    let older = if cut {
        page.front().map(|(position, _)| *position)
    } else {
        None
    };
    Ok(Page {
        records: page.into_iter().map(|(_, json)| json).collect(),
        older,
    })
}

/// A page of the trail: its records as JSON, oldest first, and the cursor of the
/// older page.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<String>,
    pub older: Option<TrailPosition>,
}

impl Page {
    /// The records as one JSON array.
    pub fn json_array(&self) -> String {
        let mut out =
            String::with_capacity(2 + self.records.iter().map(|r| r.len() + 1).sum::<usize>());
        out.push('[');
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(record);
        }
        out.push(']');
        out
    }
}

/// Calls `each` with every record of one file and the byte offset of its line, until
/// `each` says to stop.
fn read_file_lines(
    path: &Path,
    mut each: impl FnMut(u64, AuditRecord) -> bool,
) -> Result<(), ReadError> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ReadError {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut offset = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ReadError {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            return Ok(());
        }
        let at = offset;
        offset += read as u64;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Ok(record) = AuditRecord::from_line(&line) {
            if !each(at, record) {
                return Ok(());
            }
        }
    }
}

/// Whether the file at `path` may hold records as new as `since`: the current file
/// always may; a rotated one unless it was last written well before.
fn written_since(dir: &Path, path: &Path, since: Option<DateTime<Utc>>) -> bool {
    let Some(since) = since.filter(|_| path != dir.join(CURRENT_FILE)) else {
        return true;
    };
    let written = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    written
        .map(|t| DateTime::<Utc>::from(t + ROTATED_MARGIN))
        .is_none_or(|t| t >= since)
}

/// Calls `each` for every record of one file; returns how many lines were unreadable.
fn read_file(path: &Path, each: &mut impl FnMut(AuditRecord)) -> Result<usize, ReadError> {
    read_file_from(path, 0, each)
}

/// Lines are parsed this much at a time, on every core.
const BLOCK: usize = 4 << 20;

fn read_file_from(
    path: &Path,
    offset: u64,
    each: &mut impl FnMut(AuditRecord),
) -> Result<usize, ReadError> {
    let read_error = |source| ReadError {
        path: path.to_path_buf(),
        source,
    };
    let Some(mut file) = open_at(path, offset).map_err(read_error)? else {
        return Ok(0);
    };
    // Lines are parsed a block at a time on every core, and handed on in their order:
    // parsing is most of what reading the trail costs, and start-up waits on it.
    // A small file (the trail rotates at a few MiB by default) is read in one block of
    // its own size.
    let left = file
        .metadata()
        .map(|m| m.len().saturating_sub(offset) as usize)
        .unwrap_or(BLOCK);
    let block_size = left.clamp(1, BLOCK) + 1;
    let mut skipped = 0;
    let mut line_number = 0;
    let mut block: Vec<u8> = Vec::with_capacity(block_size);
    let mut at_end = false;
    while !at_end {
        at_end = fill(&mut file, &mut block, block_size).map_err(read_error)?;
        // Whole lines only; the rest waits for the next block (or is the last line).
        let whole = if at_end {
            block.len()
        } else {
            match block.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => continue,
            }
        };
        skipped += parse_lines(path, &block[..whole], line_number, each);
        line_number += block[..whole].iter().filter(|b| **b == b'\n').count();
        block.drain(..whole);
    }
    Ok(skipped)
}

/// The file at `path` from `offset` on; `None` if it is gone.
pub(super) fn open_at(path: &Path, offset: u64) -> std::io::Result<Option<std::fs::File>> {
    use std::io::{Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        // Rotated away (and out of `keep_files`) since the folder was listed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    Ok(Some(file))
}

/// Reads up to `more` bytes onto the end of `block`; whether the file has ended.
fn fill(file: &mut std::fs::File, block: &mut Vec<u8>, more: usize) -> std::io::Result<bool> {
    use std::io::Read;
    let start = block.len();
    block.resize(start + more, 0);
    let mut filled = start;
    let mut at_end = false;
    while filled < block.len() {
        match file.read(&mut block[filled..]) {
            Ok(0) => {
                at_end = true;
                break;
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    block.truncate(filled);
    Ok(at_end)
}

/// Parses whole lines (the first is line `line_number + 1`) on every core and hands
/// the records to `each` in their order; returns how many lines were unreadable.
fn parse_lines(
    path: &Path,
    whole_lines: &[u8],
    line_number: usize,
    each: &mut impl FnMut(AuditRecord),
) -> usize {
    use rayon::prelude::*;
    let lines: Vec<(usize, &[u8])> = whole_lines
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| (line_number + i + 1, line))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let parsed: Vec<(usize, serde_json::Result<AuditRecord>)> = lines
        .into_par_iter()
        .map(|(n, line)| (n, AuditRecord::from_line(line)))
        .collect();
    let mut skipped = 0;
    for (line, record) in parsed {
        match record {
            Ok(record) => each(record),
            Err(e) => {
                skipped += 1;
                tracing::warn!(file = %path.display(), line, error = %e, "skipping unreadable audit line");
            }
        }
    }
    skipped
}

/// What `salve audit` and `GET /api/v1/audit` select.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub rule: Option<String>,
    pub target: Option<String>,
    pub kind: Option<RecordKind>,
    pub fingerprint: Option<String>,
    /// A further test, after the others: the console's filters on a verdict, a reason,
    /// an outcome or an alert's name.
    pub also: Option<RecordTest>,
}

/// A test of one record, for [`AuditFilter::also`].
#[derive(Clone)]
pub struct RecordTest(pub std::sync::Arc<dyn Fn(&AuditRecord) -> bool + Send + Sync>);

impl std::fmt::Debug for RecordTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordTest")
    }
}

impl AuditFilter {
    pub fn matches(&self, record: &AuditRecord) -> bool {
        if self.since.is_some_and(|since| record.at < since) {
            return false;
        }
        if let Some(rule) = &self.rule {
            if record.rule() != Some(rule.as_str()) {
                return false;
            }
        }
        if let Some(target) = &self.target {
            if !record
                .target()
                .is_some_and(|t| target_matches(&t.to_string(), target))
            {
                return false;
            }
        }
        if self.kind.is_some_and(|kind| record.kind() != kind) {
            return false;
        }
        if let Some(fp) = &self.fingerprint {
            if record_fingerprint(record) != Some(fp.as_str()) {
                return false;
            }
        }
        self.also.as_ref().is_none_or(|test| (test.0)(record))
    }
}

/// A target as written (`docker:container/nc-app`), or its name alone (`nc-app`): the
/// part after the last `/` or `:`, which is what people call the thing. A name with no
/// `:` can never be a whole target, so the short form widens no exact query.
fn target_matches(target: &str, wanted: &str) -> bool {
    if target == wanted {
        return true;
    }
    !wanted.contains(':')
        && !wanted.is_empty()
        && target
            .rsplit(['/', ':'])
            .next()
            .is_some_and(|name| name == wanted)
}

fn record_fingerprint(record: &AuditRecord) -> Option<&str> {
    use super::Entry;
    match &record.entry {
        Entry::Received { event, .. } => Some(&event.fingerprint.0),
        Entry::RuleError { fingerprint, .. } | Entry::Evaluated { fingerprint, .. } => {
            Some(&fingerprint.0)
        }
        Entry::Decision(d) => Some(&d.fingerprint.0),
        Entry::Outcome(o) => o.fingerprint.as_ref().map(|f| f.0.as_str()),
        Entry::ApprovalRequested(r) => Some(&r.fingerprint.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::target_matches;

    #[test]
    fn a_target_is_matched_whole_or_by_its_name() {
        for (target, wanted) in [
            ("docker:container/nc-app", "docker:container/nc-app"),
            ("docker:container/nc-app", "nc-app"),
            ("k8s:prod/deployment/checkout", "checkout"),
            ("compose:shop/db", "db"),
            ("exec:mark", "mark"),
        ] {
            assert!(target_matches(target, wanted), "{target} {wanted}");
        }
        for (target, wanted) in [
            ("docker:container/nc-app", "nc"),
            ("docker:container/nc-app", "swarm:service/nc-app"),
            ("k8s:prod/deployment/checkout", "prod"),
            ("docker:container/nc-app", ""),
        ] {
            assert!(!target_matches(target, wanted), "{target} {wanted}");
        }
    }
}
