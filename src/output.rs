//! Files are written whole or not at all: into a temporary file beside the target, then
//! renamed over it, so a crash or a full disk never leaves a half-written result.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file that appears at its path only when committed.
pub struct AtomicFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Creates the temporary file now, so that an unwritable destination is reported
    /// before any work is done.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let write_err = |source| Error::Write { path: path.to_owned(), source };
        if path.is_dir() {
            return Err(write_err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory; give a file name",
            )));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(parent)
            .map_err(write_err)?;
        Ok(AtomicFile { path: path.to_owned(), temp })
    }

    /// Writes `bytes` and renames the file into place.
    pub fn commit(mut self, bytes: &[u8]) -> Result<()> {
        let write_err = |source| Error::Write { path: self.path.clone(), source };
        self.temp.write_all(bytes).map_err(write_err)?;
        self.temp.as_file().sync_all().map_err(write_err)?;
        let path = self.path.clone();
        self.temp.persist(&path).map_err(|e| Error::Write { path, source: e.error })?;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    AtomicFile::create(path)?.commit(bytes)
}
