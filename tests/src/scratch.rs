//! Scratch directories for files a test hands to a tool.

use std::io;
use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory, removed with its contents
/// when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `pgshard-test-<label>-<random>`.
    pub fn new(label: &str) -> io::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "pgshard-test-{label}-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
