//! A disk that fills: a small tmpfs the disk-full tests mount over salve's data folder.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted over a folder (as root), unmounted on drop: a disk that fills.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount (util-linux)");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (the disk-full tests need root): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Fills what is left with one file, which `free` removes.
    pub fn fill(&self) {
        let filler = self.path.join("filler");
        let mut file = File::create(&filler).expect("create the filler");
        for size in [64 * 1024, 4096, 1] {
            let block = vec![0u8; size];
            while std::io::Write::write_all(&mut file, &block).is_ok() {}
        }
        let _ = file.sync_all();
    }

    pub fn free(&self) {
        fs::remove_file(self.path.join("filler")).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
