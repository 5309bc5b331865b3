//! The user's cache directory, where the libraries ffiprof builds or embeds are written
//! under names that carry their content, so that the samplers can read them by path.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::ffi;
use crate::output::write_atomic;

/// FNV-1a, 64 bits (<http://www.isthe.com/chongo/tech/comp/fnv/>): a content tag for a
/// cached file's name, not a security measure.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `$XDG_CACHE_HOME/ffiprof`, else `~/.cache/ffiprof`, else a directory of the user's in
/// the system's temporary directory.
pub(crate) fn cache_dir() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("ffiprof"))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("ffiprof-{}", ffi::user_id())))
}

/// `bytes` (a library embedded in ffiprof's binary) as a file in the cache directory, named
/// `<stem>-<version>-<content hash>.so`, written (atomically) where it is not there with the
/// same bytes.
pub(crate) fn embedded(stem: &str, bytes: &[u8]) -> Result<PathBuf> {
    let dir = cache_dir();
    let name = format!("{stem}-{}-{:016x}.so", env!("CARGO_PKG_VERSION"), fnv1a(bytes));
    let path = dir.join(name);
    if std::fs::read(&path).is_ok_and(|found| found == bytes) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    write_atomic(&path, bytes)?;
    Ok(path)
}
