//! Files and directories are written whole or not at all.
//!
//! A file goes into a temporary file beside its target and is renamed over it
//! ([`AtomicFile`], [`write_atomic`]), so a crash or a full disk never leaves a
//! half-written result. A run directory is built in a hidden staging directory beside its
//! destination and renamed into place when complete ([`Staging`]), so an interrupted run
//! leaves nothing under the run's name and earlier runs intact, and re-running into an
//! existing directory replaces it whole instead of mixing two runs' files.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file that appears at its path only when committed.
pub(crate) struct AtomicFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

fn parent_or_cwd(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl AtomicFile {
    /// Creates the temporary file now, so that an unwritable destination is reported
    /// ([`Error::Destination`]) before any work is done.
    pub(crate) fn create(path: &Path) -> Result<AtomicFile> {
        let err = |source| Error::Destination { path: path.to_owned(), source };
        if path.is_dir() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory; give a file name",
            )));
        }
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file_name(path)))
            .suffix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(parent_or_cwd(path))
            .map_err(err)?;
        Ok(AtomicFile { path: path.to_owned(), temp })
    }

    /// Writes `bytes` and renames the file into place.
    pub(crate) fn commit(mut self, bytes: &[u8]) -> Result<()> {
        let write_err = |source| Error::Write { path: self.path.clone(), source };
        self.temp.write_all(bytes).map_err(write_err)?;
        self.temp.as_file().sync_all().map_err(write_err)?;
        let path = self.path.clone();
        self.temp.persist(&path).map_err(|e| Error::Write { path, source: e.error })?;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let file = AtomicFile::create(path).map_err(|e| match e {
        Error::Destination { path, source } => Error::Write { path, source },
        other => other,
    })?;
    file.commit(bytes)
}

/// Writes `bytes` atomically to `rel` under `dir`, creating the directories between.
pub(crate) fn write_under(dir: &Path, rel: &Path, bytes: &[u8]) -> Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|source| Error::Write { path: parent.to_owned(), source })?;
    }
    write_atomic(&path, bytes)
}

/// A directory being filled, renamed into place on [`Staging::commit`] and removed if
/// dropped before.
pub(crate) struct Staging {
    dir: tempfile::TempDir,
    dest: PathBuf,
}

impl Staging {
    /// Creates the staging directory beside `dest` (creating `dest`'s parent if needed):
    /// an unwritable destination fails here ([`Error::Destination`]), before any work.
    pub(crate) fn new(dest: &Path) -> Result<Staging> {
        let err = |source| Error::Destination { path: dest.to_owned(), source };
        if dest.exists() && !dest.is_dir() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            )));
        }
        let parent = parent_or_cwd(dest);
        std::fs::create_dir_all(parent).map_err(err)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{}.partial-", file_name(dest)))
            .tempdir_in(parent)
            .map_err(err)?;
        Ok(Staging { dir, dest: dest.to_owned() })
    }

    /// Where files go until commit.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the complete directory into place, replacing an earlier one of the same name.
    pub(crate) fn commit(self) -> Result<PathBuf> {
        let write_err = |source| Error::Write { path: self.dest.clone(), source };
        let staged = self.dir.keep();
        if self.dest.exists() {
            let old = tempfile::Builder::new()
                .prefix(".replaced-")
                .tempdir_in(parent_or_cwd(&staged))
                .map_err(write_err)?;
            let old_path = old.path().join("run");
            std::fs::rename(&self.dest, &old_path).map_err(write_err)?;
            std::fs::rename(&staged, &self.dest).map_err(write_err)?;
            drop(old); // removes the replaced directory
        } else {
            std::fs::rename(&staged, &self.dest).map_err(write_err)?;
        }
        Ok(self.dest)
    }
}

/// True when `path` is the file `file_name`, or a directory holding one.
pub(crate) fn holds(path: &Path, file_name: &str) -> bool {
    if path.is_dir() {
        path.join(file_name).is_file()
    } else {
        path.file_name().is_some_and(|n| n == file_name)
    }
}

/// Reads a census file: `file_name` in `path` (a directory) or `path` itself, whose
/// `schema_version` must be `version`. A file that is missing, not JSON, of another
/// version or of another shape is [`Error::InputUnreadable`] or [`Error::CensusCorrupt`].
pub(crate) fn load_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    file_name: &str,
    version: u32,
) -> Result<T> {
    load_versions(path, file_name, version..=version)
}

/// As [`load_versioned`], for a file whose schema reads any version in `versions` (fields
/// added later have defaults).
pub(crate) fn load_versions<T: serde::de::DeserializeOwned>(
    path: &Path,
    file_name: &str,
    versions: std::ops::RangeInclusive<u32>,
) -> Result<T> {
    let version = *versions.end();
    let file = if path.is_dir() { path.join(file_name) } else { path.to_owned() };
    let text = std::fs::read_to_string(&file)
        .map_err(|source| Error::InputUnreadable { path: file.clone(), source })?;
    let corrupt = |reason: String| Error::CensusCorrupt { path: file.clone(), reason };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if u32::try_from(v).is_ok_and(|v| versions.contains(&v)) => {}
        Some(v) => {
            return Err(corrupt(format!(
                "{file_name} schema_version {v} is not supported (this ffiprof reads version \
                 {version})"
            )))
        }
        None => return Err(corrupt("no schema_version".into())),
    }
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

/// Where a comparison of `old` with `new` goes: `out` where given, else
/// `compare-vs-<old's name>` in `new` (a directory) or beside it (a file).
pub(crate) fn compare_dir(old: &Path, new: &Path, out: Option<&Path>) -> PathBuf {
    let name = old
        .canonicalize()
        .ok()
        .and_then(|p| {
            let p = if p.is_dir() { p } else { p.parent()?.to_owned() };
            p.file_name().map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "old".into());
    match out {
        Some(o) => o.to_owned(),
        None if new.is_dir() => new.join(format!("compare-vs-{name}")),
        None => new.parent().unwrap_or(Path::new(".")).join(format!("compare-vs-{name}")),
    }
}

/// Writes a census comparison into the directory for it ([`compare_dir`]): `compare.json`
/// from `comparison`, `compare.md` from `markdown`; returns the directory.
pub(crate) fn write_comparison(
    old: &Path,
    new: &Path,
    out: Option<&Path>,
    comparison: &impl serde::Serialize,
    markdown: &str,
) -> Result<PathBuf> {
    let out = compare_dir(old, new, out);
    let json = serde_json::to_string_pretty(comparison)
        .map_err(|source| Error::Serialize { what: "compare.json", source })?;
    write_under(&out, Path::new("compare.json"), json.as_bytes())?;
    write_under(&out, Path::new("compare.md"), markdown.as_bytes())?;
    Ok(out)
}

/// Points `latest` beside `dir` at `dir` (a relative symlink, replaced atomically).
pub(crate) fn point_latest(dir: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { return Ok(()) };
    let latest = parent.join("latest");
    let temp = parent.join(format!(".latest.{}", std::process::id()));
    let err = |source| Error::Write { path: latest.clone(), source };
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(name, &temp).map_err(err)?;
    std::fs::rename(&temp, &latest).map_err(err)
}

/// Compares `actual` with the golden file `tests/data/<name>`; with `FFIPROF_BLESS` set,
/// writes it there first. For the unit tests' golden files.
#[cfg(test)]
pub(crate) fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    if std::env::var_os("FFIPROF_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with FFIPROF_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{name} differs (FFIPROF_BLESS=1 to accept)");
}
