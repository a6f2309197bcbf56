//! Appends records with group commit: every request waiting when a write starts
//! shares its one fdatasync, so concurrent webhooks cost one disk flush, not many.

use super::{AuditRecord, CURRENT_FILE};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("audit trail is closed")]
    Closed,
    /// The trail in PostgreSQL (`[store]`) could not take or give records.
    #[error("audit trail in PostgreSQL: {0}")]
    Store(String),
    /// Retention removed records after `after` before this replica read them (it was
    /// paused or cut off past what `[store] keep_for` waits for): its state must be
    /// read anew from the store's checkpoint.
    #[error("audit trail in PostgreSQL: the records after seq {after} were removed by retention (through seq {through}) before this replica read them")]
    Trimmed { after: i64, through: i64 },
}

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct AuditWriterStats {
    pub records: AtomicU64,
    pub fsyncs: AtomicU64,
    pub write_errors: AtomicU64,
    /// Bytes made durable since start.
    pub bytes: AtomicU64,
    pub rotations: AtomicU64,
}

/// A point in the trail: the file (by inode, which a rotation's rename keeps) and the
/// byte offset of the next record in it. A checkpoint holds everything before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrailPosition {
    pub inode: u64,
    pub offset: u64,
}

type FsyncObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

enum Request {
    Append {
        bytes: Vec<u8>,
        count: usize,
        done: oneshot::Sender<Result<(), AuditError>>,
    },
    Close(oneshot::Sender<()>),
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Request>,
    stats: Arc<AuditWriterStats>,
    position: Arc<parking_lot::Mutex<TrailPosition>>,
    dir: PathBuf,
}

struct FileState {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    max_bytes: u64,
    position: Arc<parking_lot::Mutex<TrailPosition>>,
}

fn inode(file: &File) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.ino())
}

impl AuditLog {
    /// Opens (or creates) the trail in `dir`. A torn last line, left by a crash in the
    /// middle of a write that was never acknowledged, is cut off first. Files rotate at
    /// `max_bytes`; rotated files are removed only by [`super::apply_retention`], once a
    /// checkpoint holds what they say.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        on_fsync: Option<FsyncObserver>,
    ) -> Result<AuditLog, AuditError> {
        let io = |message: String| AuditError::Io {
            path: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(format!("cannot create folder: {e}")))?;
        let path = dir.join(CURRENT_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(format!("cannot open {}: {e}", path.display())))?;
        let len = cut_torn_tail(&mut file)
            .map_err(|e| io(format!("cannot repair {}: {e}", path.display())))?;
        let position = Arc::new(parking_lot::Mutex::new(TrailPosition {
            inode: inode(&file).map_err(|e| io(format!("cannot stat {}: {e}", path.display())))?,
            offset: len,
        }));
        let state = FileState {
            dir: dir.to_path_buf(),
            path,
            file,
            len,
            max_bytes,
            position: position.clone(),
        };
        let stats = Arc::new(AuditWriterStats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("salve-audit".into())
            .spawn(move || run_writer(state, rx, thread_stats, on_fsync))
            .map_err(|e| io(format!("cannot start writer thread: {e}")))?;
        Ok(AuditLog {
            tx,
            stats,
            position,
            dir: dir.to_path_buf(),
        })
    }

    /// Where the next record will go: everything appended so far lies before it.
    pub fn position(&self) -> TrailPosition {
        *self.position.lock()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> &AuditWriterStats {
        &self.stats
    }

    /// Returns once the records are on disk (fdatasync done).
    pub async fn append(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(records.len() * 512);
        for record in records {
            record.write_line(&mut bytes).map_err(|e| AuditError::Io {
                path: self.dir.clone(),
                message: format!("cannot serialize record: {e}"),
            })?;
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request::Append {
                bytes,
                count: records.len(),
                done,
            })
            .map_err(|_| AuditError::Closed)?;
        wait.await.map_err(|_| AuditError::Closed)?
    }

    /// Waits until everything sent before this call is written and flushed.
    pub async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Request::Close(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

fn cut_torn_tail(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let tail_len = len.min(1 << 20);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(len);
    }
    let keep = match tail.iter().rposition(|b| *b == b'\n') {
        Some(pos) => len - tail_len + pos as u64 + 1,
        None if tail_len == len => 0,
        None => len, // one line longer than 1 MiB: leave it; the reader skips it
    };
    tracing::warn!(
        cut_bytes = len - keep,
        "audit trail ended in a torn line (a write interrupted by a crash); removed it"
    );
    file.set_len(keep)?;
    file.sync_data()?;
    Ok(keep)
}

fn run_writer(
    mut state: FileState,
    mut rx: mpsc::UnboundedReceiver<Request>,
    stats: Arc<AuditWriterStats>,
    on_fsync: Option<FsyncObserver>,
) {
    let mut batch: Vec<(usize, oneshot::Sender<Result<(), AuditError>>)> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut closing: Vec<oneshot::Sender<()>> = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Append { bytes, count, done } => {
                    buf.extend_from_slice(&bytes);
                    batch.push((count, done));
                }
                Request::Close(done) => closing.push(done),
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let started = Instant::now();
            let result = state.write_and_sync(&buf);
            let records: usize = batch.iter().map(|(n, _)| n).sum();
            match &result {
                Ok(()) => {
                    stats.records.fetch_add(records as u64, Ordering::Relaxed);
                    stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                    if let Some(observe) = &on_fsync {
                        observe(started.elapsed(), batch.len());
                    }
                }
                Err(e) => {
                    stats.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "audit write failed; the requests waiting on it are refused");
                }
            }
            for (_, done) in batch.drain(..) {
                let _ = done.send(result.clone());
            }
            buf.clear();
            if result.is_ok() {
                match state.rotate_if_needed() {
                    Ok(true) => {
                        stats.rotations.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "audit rotation failed; still writing to the current file")
                    }
                }
            }
        }
        if !closing.is_empty() {
            for done in closing {
                let _ = done.send(());
            }
        }
    }
}

impl FileState {
    fn error(&self, message: String) -> AuditError {
        AuditError::Io {
            path: self.path.clone(),
            message,
        }
    }

    fn write_and_sync(&mut self, buf: &[u8]) -> Result<(), AuditError> {
        let result = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.position.lock().offset = self.len;
                Ok(())
            }
            Err(e) => {
                // Leave no half-written line behind for the next write to extend.
                let _ = self.file.set_len(self.len);
                Err(self.error(e.to_string()))
            }
        }
    }

    /// Renames the current file to `audit.jsonl.1` (the older ones move up by one) and
    /// starts a new one. Nothing is deleted here: what the state still needs stays on
    /// disk until a checkpoint holds it.
    fn rotate_if_needed(&mut self) -> Result<bool, AuditError> {
        if self.len < self.max_bytes {
            return Ok(false);
        }
        let rotated = |n: usize| self.dir.join(format!("{CURRENT_FILE}.{n}"));
        let highest = super::reader::rotated_files(&self.dir)
            .iter()
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0);
        for n in (1..=highest).rev() {
            let from = rotated(n);
            if from.exists() {
                std::fs::rename(&from, rotated(n + 1))
                    .map_err(|e| self.error(format!("rotate: {e}")))?;
            }
        }
        std::fs::rename(&self.path, rotated(1)).map_err(|e| self.error(format!("rotate: {e}")))?;
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.error(format!("rotate: {e}")))?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        let inode = inode(&file).map_err(|e| self.error(format!("rotate: {e}")))?;
        self.file = file;
        self.len = 0;
        *self.position.lock() = TrailPosition { inode, offset: 0 };
        Ok(true)
    }
}
