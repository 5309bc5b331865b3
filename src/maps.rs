//! A process's memory mappings as `/proc/<pid>/maps` lists them, and where an address of
//! a mapping lies in its file: what the samplers' unwinders and the machine-code audit of
//! the measured loops read.

use std::ops::Range;

use object::{Object, ObjectSegment};

/// An executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// Address range.
    pub range: Range<u64>,
    /// Offset in the file.
    pub offset: u64,
    /// File path, or a pseudo-name such as `[vdso]`.
    pub path: String,
}

/// Executable, file-backed or pseudo mappings of `/proc/<pid>/maps` text.
pub(crate) fn executable_mappings(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (range, perms, offset) = (parts.next()?, parts.next()?, parts.next()?);
            let (_dev, _inode) = (parts.next()?, parts.next()?);
            let path = parts.collect::<Vec<_>>().join(" ");
            if !perms.contains('x') || path.is_empty() {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some(Mapping {
                range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// The address in `file` (its virtual addresses, as its symbols give them) of `address`
/// in a process where `mapping` maps the file.
pub(crate) fn file_address(
    file: &object::File<'_>,
    mapping: &Mapping,
    address: u64,
) -> Option<u64> {
    let offset = address.checked_sub(mapping.range.start)? + mapping.offset;
    file.segments().find_map(|s| {
        let (start, size) = s.file_range();
        (start <= offset && offset < start + size).then(|| offset - start + s.address())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_mappings_only() {
        let maps = "\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 42 /usr/bin/x
55d0c0001000-55d0c0005000 r-xp 00001000 fd:01 42 /usr/bin/x
7ffd1000-7ffd3000 r-xp 00000000 00:00 0 [vdso]
7f00-8f00 rw-p 00000000 00:00 0
";
        let m = executable_mappings(maps);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].range, 0x55d0c0001000..0x55d0c0005000);
        assert_eq!(m[0].offset, 0x1000);
        assert_eq!(m[0].path, "/usr/bin/x");
        assert_eq!(m[1].path, "[vdso]");
    }
}
