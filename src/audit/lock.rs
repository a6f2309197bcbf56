//! One salve per data folder: two writing to one trail and one checkpoint would each
//! overwrite what the other wrote. An exclusive lock on `DATA_DIR/salve.lock`, taken
//! before anything in the folder is read and held for the process's life (the kernel
//! drops it when the process ends, however it ends), with the holder's pid inside so a
//! refused start can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "salve.lock";

/// The data folder, held.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another salve{} is serving from {} (it holds {}); stop it first, or give this one its own --data-dir",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        dir.display(),
        LOCK_FILE
    )]
    Held { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DataDirLock {
    /// Takes the folder (creating it), or says who has it.
    pub fn take(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_refused_naming_the_holder_and_free_again_once_let_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = DataDirLock::take(dir.path()).expect("the first takes it");
        match DataDirLock::take(dir.path()) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()))
            }
            other => panic!("a second lock was {other:?}"),
        }
        drop(held);
        DataDirLock::take(dir.path()).expect("free once the first let go");
    }
}
