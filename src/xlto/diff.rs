//! What cross-language LTO changed: the two builds' censuses side by side (which
//! crossings are gone, which remain), and why a remaining one remains, where the build
//! tells: a shared library, a callback, C code that reached the linker without bitcode.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::crossings::{CallKind, Census, Crossing, Direction};

/// A crossing of the ordinary build that the LTO build does not make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    /// The calling function.
    pub caller: String,
    /// The called function.
    pub callee: String,
    /// Its direction.
    pub direction: Direction,
    /// Calls in the ordinary build.
    pub calls_before: u64,
    /// Callers that still call the callee in the LTO build (empty: the callee is called
    /// from nowhere any more, inlined wherever it was called). Non-empty where the
    /// caller itself was inlined into them, so the crossing moved rather than vanished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_called_from: Vec<String>,
    /// Callees the same caller crosses to in the LTO build and did not before, with
    /// their calls: where the callee's body was inlined but a call inside it was not, so
    /// the boundary moved one call deeper rather than vanishing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub now_crossing_to: Vec<(String, u64)>,
}

/// A crossing the LTO build still makes, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remaining {
    /// The calling function.
    pub caller: String,
    /// The called function.
    pub callee: String,
    /// Its direction.
    pub direction: Direction,
    /// Calls in the LTO build.
    pub calls: u64,
    /// Calls of the same caller -> callee in the ordinary build (absent: a crossing the
    /// ordinary build did not make, such as one moved by inlining).
    pub calls_before: Option<u64>,
    /// The kind of call: within the program, into a shared library, or a callback.
    pub kind: CallKind,
    /// The callee's object's file name.
    pub callee_module: String,
    /// Why the call remains, as far as the build tells.
    pub why: WhyRemains,
}

impl Remaining {
    /// Why the call remains, in words ([`WhyRemains`] for this crossing).
    pub fn reason(&self) -> Reason<'_> {
        Reason(self)
    }
}

/// Why a crossing of the LTO build is still a call: the reason as data; its words are
/// [`Reason`]'s, in one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum WhyRemains {
    /// The callee is in a shared library, loaded at run time: no link-time optimisation
    /// reaches it.
    InSharedLibrary {
        /// True for the C library itself (libc, libm, libpthread, the loader).
        c_library: bool,
    },
    /// A callback from a shared library through a function pointer.
    CallbackFromSharedLibrary {
        /// The library the caller is in.
        library: String,
    },
    /// A callback through a function pointer within the program.
    Callback,
    /// The callee comes from machine code without bitcode: nothing for the linker to
    /// inline.
    NativeCode {
        /// The object (and archive) it comes from.
        object: String,
    },
    /// Both sides are in the LTO unit and the caller's machine code still calls the
    /// callee directly: the optimiser chose not to inline it.
    NotInlined {
        /// Instructions per call inside the callee.
        instructions_per_call: f64,
    },
    /// The caller's machine code reaches the callee only through an indirect call.
    ThroughPointer,
    /// Both sides are in the LTO unit and the call was kept; the caller's machine code
    /// was not read.
    Kept {
        /// Instructions per call inside the callee.
        instructions_per_call: f64,
    },
}

/// A remaining crossing's [`WhyRemains`] in words.
pub struct Reason<'a>(&'a Remaining);

impl std::fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Remaining { caller, callee, callee_module, .. } = self.0;
        match &self.0.why {
            WhyRemains::InSharedLibrary { c_library } => write!(
                f,
                "{callee} is in {} ({callee_module}), loaded at run time: link-time \
                 optimisation does not reach it",
                if *c_library { "the C library" } else { "a shared library" }
            ),
            WhyRemains::CallbackFromSharedLibrary { library } => write!(
                f,
                "a callback from {caller} in {library} (a shared library, which link-time \
                 optimisation does not reach) through a function pointer"
            ),
            WhyRemains::Callback => write!(
                f,
                "a callback: {caller} calls {callee} through a function pointer, which the \
                 optimiser inlines only where the pointer is a constant at the call"
            ),
            WhyRemains::NativeCode { object } => write!(
                f,
                "{callee} comes from {object}, machine code without bitcode (assembly, or C \
                 compiled without -flto): the linker has nothing to inline"
            ),
            WhyRemains::NotInlined { instructions_per_call } => write!(
                f,
                "both sides are in the LTO unit and the machine code still calls {callee} \
                 directly: the optimiser chose not to inline it ({instructions_per_call:.0} \
                 instructions per call inside it)"
            ),
            WhyRemains::ThroughPointer => write!(
                f,
                "{caller} reaches {callee} through a function pointer (an indirect call in its \
                 machine code), which the optimiser cannot inline"
            ),
            WhyRemains::Kept { instructions_per_call } => write!(
                f,
                "both sides are in the LTO unit, yet the optimiser kept the call \
                 ({instructions_per_call:.0} instructions per call inside {callee}: too large \
                 for its inlining threshold, or called through a pointer)"
            ),
        }
    }
}

/// The C and C++ objects that reached the linker, read from the LTO build's build-script
/// outputs: how many are bitcode, and which functions native ones define.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Objects {
    /// Objects (loose, or archive members) that are LLVM bitcode.
    pub bitcode: usize,
    /// Objects that are machine code (assembly, or compiled without `-flto`).
    pub native: usize,
    /// Functions the native objects define, with where (`member (archive)`).
    #[serde(skip)]
    pub native_functions: BTreeMap<String, String>,
}

const BITCODE: [u8; 4] = *b"BC\xc0\xde";
const BITCODE_WRAPPER: [u8; 4] = [0xde, 0xc0, 0x17, 0x0b];

impl Objects {
    /// Reads every `.o` and `.a` under `dir` (a target directory's `release/build`).
    pub fn read(dir: &Path) -> Objects {
        let mut objects = Objects::default();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let path = e.path();
                let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                } else if ext == "o" || ext == "a" {
                    if let Ok(data) = std::fs::read(&path) {
                        let name =
                            path.file_name().map_or(String::new(), |n| n.to_string_lossy().into());
                        objects.add_file(&name, &data);
                    }
                }
            }
        }
        objects
    }

    fn add_file(&mut self, name: &str, data: &[u8]) {
        match object::read::archive::ArchiveFile::parse(data) {
            Ok(archive) => {
                for member in archive.members().flatten() {
                    let member_name = String::from_utf8_lossy(member.name()).into_owned();
                    if let Ok(bytes) = member.data(data) {
                        self.add_object(&format!("{member_name} ({name})"), bytes);
                    }
                }
            }
            Err(_) => self.add_object(name, data),
        }
    }

    fn add_object(&mut self, name: &str, data: &[u8]) {
        let magic: Option<[u8; 4]> = data.get(..4).and_then(|m| m.try_into().ok());
        if magic == Some(BITCODE) || magic == Some(BITCODE_WRAPPER) {
            self.bitcode += 1;
            return;
        }
        let Ok(file) = object::File::parse(data) else { return };
        use object::{Object, ObjectSymbol};
        self.native += 1;
        for s in file.symbols() {
            if s.is_definition() && s.is_global() && s.kind() == object::SymbolKind::Text {
                if let Ok(n) = s.name() {
                    self.native_functions.entry(n.to_owned()).or_insert_with(|| name.to_owned());
                }
            }
        }
    }
}

/// How a caller's machine code reaches a callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A direct call (or jump) to it.
    Direct,
    /// No direct call, but an indirect one: through a function pointer.
    Pointer,
}

/// The LTO build's executable, to read what a caller's machine code calls.
pub struct Code {
    data: memmap2::Mmap,
    /// Each function by its demangled name (without Rust's hash): start and size.
    functions: HashMap<String, (u64, u64)>,
}

/// A symbol's name demangled, without Rust's hash; other names as they are.
fn plain(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_owned(),
    }
}

impl Code {
    /// Maps `executable` and indexes its functions; `None` where it cannot be read.
    pub fn open(executable: &Path) -> Option<Code> {
        use object::{Object, ObjectSymbol};
        let data = crate::ffi::map_file(&std::fs::File::open(executable).ok()?).ok()?;
        let functions = object::File::parse(&*data)
            .ok()?
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0)
            .filter_map(|s| Some((plain(s.name().ok()?), (s.address(), s.size()))))
            .collect();
        Some(Code { data, functions })
    }

    /// How `caller`'s machine code reaches `callee`, where the code tells: the caller found
    /// by its demangled name, its calls read ([`crate::machine_code`]).
    pub(crate) fn reach(&self, caller: &str, callee: &str) -> Option<Reach> {
        let &(start, size) = self.functions.get(caller)?;
        let file = object::File::parse(&*self.data).ok()?;
        let calls = crate::machine_code::calls_in(&file, start, size).ok()?;
        if calls.iter().any(|c| plain(c) == callee) {
            Some(Reach::Direct)
        } else if calls.iter().any(|c| c == crate::machine_code::FUNCTION_POINTER) {
            Some(Reach::Pointer)
        } else {
            None
        }
    }
}

fn is_rust_to_c(d: Direction) -> bool {
    matches!(d, Direction::RustToC | Direction::RustToCRuntime)
}

/// Calls from Rust into C and the C runtime in `census`.
pub fn rust_to_c_calls(census: &Census) -> u64 {
    census.crossings.iter().filter(|c| is_rust_to_c(c.direction)).map(|c| c.calls).sum()
}

/// Why `c` (a crossing of the LTO build) is still a call; `code` reads the LTO build's
/// machine code where given.
fn why(c: &Crossing, objects: &Objects, code: Option<&Code>) -> WhyRemains {
    match c.kind {
        CallKind::SharedLibrary => WhyRemains::InSharedLibrary {
            c_library: ["libc.so", "libm.so", "libpthread.so", "ld-linux"]
                .iter()
                .any(|p| c.callee_module.starts_with(p)),
        },
        CallKind::Callback if c.caller_module != c.callee_module => {
            WhyRemains::CallbackFromSharedLibrary { library: c.caller_module.clone() }
        }
        CallKind::Callback => WhyRemains::Callback,
        CallKind::Direct => match objects.native_functions.get(&c.callee) {
            Some(from) => WhyRemains::NativeCode { object: from.clone() },
            None => match code.and_then(|code| code.reach(&c.caller, &c.callee)) {
                Some(Reach::Direct) => {
                    WhyRemains::NotInlined { instructions_per_call: c.instructions_per_call }
                }
                Some(Reach::Pointer) => WhyRemains::ThroughPointer,
                None => WhyRemains::Kept { instructions_per_call: c.instructions_per_call },
            },
        },
    }
}

/// The crossings gone from `before` in `after`, and those of `after` with why they remain.
pub fn diff(
    before: &Census,
    after: &Census,
    objects: &Objects,
    code: Option<&Code>,
) -> (Vec<Removed>, Vec<Remaining>) {
    let key = |c: &Crossing| (c.caller.clone(), c.callee.clone(), c.direction);
    let before_calls: BTreeMap<_, u64> =
        before.crossings.iter().map(|c| (key(c), c.calls)).collect();
    let after_keys: BTreeSet<_> = after.crossings.iter().map(key).collect();
    let mut removed: Vec<Removed> = before
        .crossings
        .iter()
        .filter(|c| !after_keys.contains(&key(c)))
        .map(|c| Removed {
            caller: c.caller.clone(),
            callee: c.callee.clone(),
            direction: c.direction,
            calls_before: c.calls,
            still_called_from: after
                .crossings
                .iter()
                .filter(|a| a.callee == c.callee && a.direction == c.direction)
                .map(|a| a.caller.clone())
                .collect(),
            now_crossing_to: after
                .crossings
                .iter()
                .filter(|a| a.caller == c.caller && !before_calls.contains_key(&key(a)))
                .map(|a| (a.callee.clone(), a.calls))
                .collect(),
        })
        .collect();
    removed.sort_by(|a, b| b.calls_before.cmp(&a.calls_before).then(a.callee.cmp(&b.callee)));
    let mut remaining: Vec<Remaining> = after
        .crossings
        .iter()
        .map(|c| Remaining {
            caller: c.caller.clone(),
            callee: c.callee.clone(),
            direction: c.direction,
            calls: c.calls,
            calls_before: before_calls.get(&key(c)).copied(),
            kind: c.kind,
            callee_module: c.callee_module.clone(),
            why: why(c, objects, code),
        })
        .collect();
    remaining.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.callee.cmp(&b.callee)));
    (removed, remaining)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossings::render::tests::{crossing, hand_built};

    #[test]
    fn gone_crossings_moved_ones_and_reasons_for_the_rest() {
        let before = hand_built();
        let mut after = hand_built();
        // hot_loop -> c_cheap inlined; main -> c_expensive now made from main's caller
        // (main inlined into it); a call into libm and a native-code callee remain.
        after.crossings.retain(|c| c.callee != "c_cheap" && c.callee != "c_expensive");
        after.crossings.push(crossing("app::start", "c_expensive", Direction::RustToC, 12));
        let mut pow = crossing("app::main", "pow", Direction::RustToCRuntime, 5);
        pow.kind = CallKind::SharedLibrary;
        pow.callee_module = "libm.so.6".into();
        after.crossings.push(pow);
        after.crossings.push(crossing("app::main", "asm_hash", Direction::RustToC, 3));
        after.crossings.push(crossing("app::hot_loop", "c_inner", Direction::RustToC, 60_000));
        let mut objects = Objects::default();
        objects.native_functions.insert("asm_hash".into(), "hash.o (libhash.a)".into());

        let (removed, remaining) = diff(&before, &after, &objects, None);
        let gone: Vec<(&str, u64, usize)> = removed
            .iter()
            .map(|r| (r.callee.as_str(), r.calls_before, r.still_called_from.len()))
            .collect();
        assert_eq!(gone, [("c_cheap", 60_000, 0), ("c_expensive", 12, 1)]);
        assert_eq!(removed[1].still_called_from, ["app::start"]);
        assert_eq!(removed[0].now_crossing_to, [("c_inner".to_owned(), 60_000)]);
        let found = |callee: &str| remaining.iter().find(|r| r.callee == callee).unwrap();
        let why = |callee: &str| (found(callee).calls_before, found(callee).why.clone());
        assert_eq!(why("app::compare"), (Some(20_000), WhyRemains::Callback));
        assert_eq!(why("pow").1, WhyRemains::InSharedLibrary { c_library: true });
        assert_eq!(
            why("asm_hash").1,
            WhyRemains::NativeCode { object: "hash.o (libhash.a)".into() }
        );
        assert!(matches!(why("c_expensive"), (None, WhyRemains::Kept { .. })));
        // The words, made in one place.
        let words = |callee: &str| found(callee).reason().to_string();
        assert!(words("app::compare").starts_with("a callback"), "{}", words("app::compare"));
        assert!(words("pow").contains("the C library (libm.so.6)"), "{}", words("pow"));
        assert!(words("asm_hash").contains("hash.o (libhash.a), machine code"));
        assert!(words("c_expensive").contains("optimiser kept the call"));
        assert_eq!(rust_to_c_calls(&before), 60_012);
        assert_eq!(rust_to_c_calls(&after), 12 + 5 + 3 + 60_000);
    }

    #[test]
    fn bitcode_is_told_from_machine_code() {
        let mut objects = Objects::default();
        objects.add_file("a.o", b"BC\xc0\xde and the rest of a module");
        objects.add_file("b.o", &[0xde, 0xc0, 0x17, 0x0b, 0, 0, 0, 0]);
        objects.add_file("c.o", b"neither");
        assert_eq!((objects.bitcode, objects.native), (2, 0));
    }
}
