//! DHAT's JSON, read: `valgrind --tool=dhat` writes one file per process, format version
//! 2 (its notes are in valgrind's `dhat/dh_main.c`): `pps`, the program points (one per
//! distinct allocation stack) with `tb`/`tbk` (bytes and blocks allocated in all), `mb`/
//! `mbk` (the most live at once), `gb`/`gbk` (live at the global peak, `tg`), `eb`/`ebk`
//! (live at the end, `te`), and `fs`, the stack as indices into `ftbl`, the innermost frame
//! first; `ftbl`, each frame described as valgrind describes a code address:
//! `0x4012AB: main (prog.c:12)` with debug info, `0x48407B4: malloc (in /path/lib.so)`
//! without, `[root]` first. Nothing is counted here: every figure is DHAT's.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::ids::Pid;

/// One program point: an allocation stack and its figures.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Point {
    /// Bytes allocated here in all.
    pub(crate) tb: u64,
    /// Blocks.
    pub(crate) tbk: u64,
    /// Bytes live at the global peak.
    #[serde(default)]
    pub(crate) gb: u64,
    /// Blocks live at the global peak.
    #[serde(default)]
    pub(crate) gbk: u64,
    /// Bytes live at the end.
    #[serde(default)]
    pub(crate) eb: u64,
    /// Blocks live at the end.
    #[serde(default)]
    pub(crate) ebk: u64,
    /// The stack, innermost first, as indices into the frame table.
    pub(crate) fs: Vec<usize>,
}

/// One process's file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct File {
    #[serde(rename = "dhatFileVersion")]
    pub(crate) version: u32,
    /// `heap` for the heap profiler (ad-hoc and copy profiles are other modes).
    pub(crate) mode: String,
    /// The command line.
    pub(crate) cmd: String,
    /// The process.
    pub(crate) pid: Pid,
    /// The points.
    pub(crate) pps: Vec<Point>,
    /// The frame table.
    pub(crate) ftbl: Vec<String>,
}

/// A frame as valgrind describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its code address.
    pub(crate) address: u64,
    /// The function (`???` when unknown).
    pub(crate) function: String,
    /// The source file, where debug info names it.
    pub(crate) file: Option<String>,
    /// The object file (its path), where valgrind names it instead of a source file.
    pub(crate) object: Option<String>,
}

/// Reads `0x4012AB: main (prog.c:12)`, `0x48407B4: malloc (in /usr/lib/x.so)`, or
/// `0x4012AB: ???`; `None` for `[root]` and what is none of those. Function names may
/// hold parentheses and spaces (C++ and Rust), so the location is read from the end.
pub(crate) fn parse_frame(text: &str) -> Option<Frame> {
    let (address, rest) = text.split_once(": ")?;
    let address = u64::from_str_radix(address.strip_prefix("0x")?, 16).ok()?;
    let mut frame = Frame { address, function: rest.to_owned(), file: None, object: None };
    if let Some(body) = rest.strip_suffix(')') {
        if let Some(open) = body.rfind(" (") {
            let (function, location) = (&body[..open], &body[open + 2..]);
            if let Some(object) = location.strip_prefix("in ") {
                frame.object = Some(object.to_owned());
                frame.function = function.to_owned();
            } else if let Some((file, line)) = location.rsplit_once(':') {
                if line.bytes().all(|b| b.is_ascii_digit()) && !line.is_empty() {
                    frame.file = Some(file.to_owned());
                    frame.function = function.to_owned();
                }
            }
        }
    }
    Some(frame)
}

fn not_dhat(path: &Path, reason: impl Into<String>) -> Error {
    Error::NotDhat { path: path.to_owned(), reason: reason.into() }
}

/// Reads one of DHAT's files; anything else is the user's to fix ([`Error::NotDhat`]).
pub(crate) fn read(path: &Path) -> Result<File> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| not_dhat(path, format!("cannot read it: {e}")))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| not_dhat(path, format!("not JSON: {e}")))?;
    match value.get("dhatFileVersion").and_then(|v| v.as_u64()) {
        Some(2) => {}
        Some(v) => return Err(not_dhat(path, format!("dhatFileVersion {v}; this reads 2"))),
        None => return Err(not_dhat(path, "no dhatFileVersion")),
    }
    let file: File = serde_json::from_value(value).map_err(|e| not_dhat(path, e.to_string()))?;
    if file.mode != "heap" {
        return Err(not_dhat(
            path,
            format!("mode {}: the heap profile is needed (not --mode=copy or ad-hoc)", file.mode),
        ));
    }
    if let Some(bad) = file.pps.iter().flat_map(|p| &p.fs).find(|&&i| i >= file.ftbl.len()) {
        return Err(not_dhat(path, format!("a stack names frame {bad}, beyond the frame table")));
    }
    for (k, p) in file.pps.iter().enumerate() {
        if let Some(what) = inconsistent(p) {
            return Err(not_dhat(
                path,
                format!("program point {k} is inconsistent ({what}): the file is cut or edited"),
            ));
        }
    }
    Ok(file)
}

/// What of a point's figures cannot be: more live at a moment than allocated in all, bytes
/// without blocks, or no stack.
fn inconsistent(p: &Point) -> Option<String> {
    let over =
        [("gb", p.gb, p.tb), ("eb", p.eb, p.tb), ("gbk", p.gbk, p.tbk), ("ebk", p.ebk, p.tbk)]
            .into_iter()
            .find(|(_, part, whole)| part > whole);
    if let Some((name, part, whole)) = over {
        let total = if name.ends_with('k') { "tbk" } else { "tb" };
        return Some(format!("{name} {part} is more than {total} {whole}"));
    }
    if p.tbk == 0 && p.tb > 0 {
        return Some(format!("{} bytes in no block", p.tb));
    }
    p.fs.is_empty().then(|| "no stack".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_as_valgrind_writes_them() {
        let f = parse_frame("0x1091DD: alloc_some (t.c:4)").unwrap();
        assert_eq!((f.address, f.function.as_str()), (0x1091DD, "alloc_some"));
        assert_eq!((f.file.as_deref(), f.object.as_deref()), (Some("t.c"), None));
        let f =
            parse_frame("0x48417B4: malloc (in /usr/libexec/valgrind/vgpreload_dhat.so)").unwrap();
        assert_eq!(f.object.as_deref(), Some("/usr/libexec/valgrind/vgpreload_dhat.so"));
        let f = parse_frame("0x10: <alloc::vec::Vec<T> as Clone>::clone (vec.rs:12)").unwrap();
        assert_eq!(f.function, "<alloc::vec::Vec<T> as Clone>::clone");
        let f = parse_frame("0x20: foo(int, char const*) (x.cpp:3)").unwrap();
        assert_eq!(
            (f.function.as_str(), f.file.as_deref()),
            ("foo(int, char const*)", Some("x.cpp"))
        );
        let f = parse_frame("0x30: ???").unwrap();
        assert_eq!((f.function.as_str(), f.file, f.object), ("???", None, None));
        assert_eq!(parse_frame("[root]"), None);
    }

    #[test]
    fn anything_but_a_dhat_heap_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let case = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            read(&p).unwrap_err().to_string()
        };
        assert!(case("a", "not json").contains("not JSON"));
        assert!(case("b", "{}").contains("no dhatFileVersion"));
        assert!(case("c", r#"{"dhatFileVersion":1}"#).contains("this reads 2"));
        let copy = r#"{"dhatFileVersion":2,"mode":"copy","cmd":"x","pid":1,"pps":[],"ftbl":[]}"#;
        assert!(case("d", copy).contains("mode copy"));
        let beyond = r#"{"dhatFileVersion":2,"mode":"heap","cmd":"x","pid":1,
            "pps":[{"tb":1,"tbk":1,"fs":[3]}],"ftbl":["[root]"]}"#;
        assert!(case("e", beyond).contains("beyond the frame table"));
        let point = |figures: &str| {
            format!(
                r#"{{"dhatFileVersion":2,"mode":"heap","cmd":"x","pid":1,
                "pps":[{{{figures},"fs":[1]}}],"ftbl":["[root]","0x1: f (f.c:1)"]}}"#
            )
        };
        let more_live = case("f", &point(r#""tb":8,"tbk":1,"gb":16,"gbk":1"#));
        assert!(more_live.contains("point 0 is inconsistent (gb 16 is more than tb 8)"));
        assert!(case("g", &point(r#""tb":8,"tbk":1,"ebk":2"#)).contains("ebk 2 is more than tbk 1"));
        assert!(case("h", &point(r#""tb":8,"tbk":0"#)).contains("8 bytes in no block"));
        let fine = dir.path().join("fine");
        std::fs::write(&fine, point(r#""tb":8,"tbk":1,"gb":8,"gbk":1,"eb":0,"ebk":0"#)).unwrap();
        assert_eq!(read(&fine).unwrap().pps.len(), 1);
        assert!(read(&dir.path().join("missing")).unwrap_err().is_usage());
    }
}
