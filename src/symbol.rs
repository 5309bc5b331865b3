//! Addresses to functions, with `blazesym`: demangled name, module, file:line and the
//! functions inlined at the address. Works without root (`map_files = false`: files are
//! opened by path, not through `/proc/<pid>/map_files`, which needs CAP_SYS_ADMIN).

use std::collections::HashMap;
use std::path::Path;

use blazesym::symbolize::source::{Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use blazesym::Pid;

use crate::error::{Error, Result};

/// One function frame at an address (an address can stand for several frames when
/// functions were inlined there).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// Demangled function name without Rust's hash suffix; `None` when unknown.
    pub function: Option<String>,
    /// File name of the module (`libm.so.6`, `ffiprof`), or `None`.
    pub module: Option<String>,
    /// Source file, when debug info says.
    pub file: Option<String>,
    /// Source line, when debug info says.
    pub line: Option<u32>,
    /// True for a function inlined into its caller at this address.
    pub inlined: bool,
}

/// Removes the `::h0123456789abcdef` hash that legacy Rust mangling appends.
pub(crate) fn strip_rust_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

fn file_name(path: &std::ffi::OsStr) -> String {
    Path::new(path).file_name().unwrap_or(path).to_string_lossy().into_owned()
}

/// The frames blazesym found at one address, innermost first, in `module`.
fn frames_of(result: Symbolized<'_>, module: Option<String>) -> Vec<Frame> {
    let code_file = |c: Option<&blazesym::symbolize::CodeInfo<'_>>| {
        c.map(|c| c.to_path().to_string_lossy().into_owned())
    };
    match result {
        Symbolized::Sym(sym) => {
            let mut frames = Vec::with_capacity(sym.inlined.len() + 1);
            // blazesym lists inlined functions outermost first; stacks here are leaf
            // first, so the innermost inlined function comes first.
            for inl in sym.inlined.iter().rev() {
                frames.push(Frame {
                    function: Some(strip_rust_hash(&inl.name).to_owned()),
                    module: module.clone(),
                    file: code_file(inl.code_info.as_ref()),
                    line: inl.code_info.as_ref().and_then(|c| c.line),
                    inlined: true,
                });
            }
            frames.push(Frame {
                function: Some(strip_rust_hash(&sym.name).to_owned()),
                module,
                file: code_file(sym.code_info.as_deref()),
                line: sym.code_info.as_ref().and_then(|c| c.line),
                inlined: false,
            });
            frames
        }
        Symbolized::Unknown(_) => {
            vec![Frame { function: None, module, file: None, line: None, inlined: false }]
        }
    }
}

/// Symbolizes offsets into ELF files on disk (another process's modules, which stay
/// readable after it exits). One instance caches each file's parsed symbols.
pub(crate) struct FileSymbolizer {
    inner: Symbolizer,
}

impl Default for FileSymbolizer {
    fn default() -> Self {
        FileSymbolizer {
            inner: Symbolizer::builder().enable_code_info(true).enable_inlined_fns(true).build(),
        }
    }
}

impl FileSymbolizer {
    /// The frames at each file offset of `path` (lookup offsets: a return address's minus
    /// one), innermost first; `module` names the module in frames.
    pub(crate) fn resolve(
        &mut self,
        path: &Path,
        offsets: &[u64],
        module: &str,
    ) -> Result<Vec<Vec<Frame>>> {
        self.resolve_with(path, offsets, module, true)
    }

    /// As [`FileSymbolizer::resolve`], from the file's symbol tables alone where
    /// `debug_info` is false: the C runtime's functions are known by the names it exports,
    /// and reading its separate debug information (where installed) costs more than the
    /// rest of a census.
    pub(crate) fn resolve_with(
        &mut self,
        path: &Path,
        offsets: &[u64],
        module: &str,
        debug_info: bool,
    ) -> Result<Vec<Vec<Frame>>> {
        let mut elf = blazesym::symbolize::source::Elf::new(path);
        elf.debug_syms = debug_info;
        let src = Source::Elf(elf);
        let results = self
            .inner
            .symbolize(&src, Input::FileOffset(offsets))
            .map_err(|e| Error::Symbolize(format!("{}: {e}", path.display())))?;
        Ok(results.into_iter().map(|r| frames_of(r, Some(module.to_owned()))).collect())
    }
}

/// Symbolizes addresses of this process. Results are cached per address.
pub struct ProcessSymbolizer {
    inner: Symbolizer,
    cache: HashMap<u64, Vec<Frame>>,
}

impl Default for ProcessSymbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessSymbolizer {
    /// A symbolizer with code info and inlined functions on.
    pub fn new() -> Self {
        let inner = Symbolizer::builder().enable_code_info(true).enable_inlined_fns(true).build();
        ProcessSymbolizer { inner, cache: HashMap::new() }
    }

    /// Symbolizes every address not yet cached. Lookup addresses: for a return address,
    /// pass the address minus one (inside the call instruction).
    pub fn resolve(&mut self, addrs: &[u64]) -> Result<()> {
        let mut todo: Vec<u64> =
            addrs.iter().copied().filter(|a| !self.cache.contains_key(a)).collect();
        todo.sort_unstable();
        todo.dedup();
        if todo.is_empty() {
            return Ok(());
        }
        let mut process = Process::new(Pid::Slf);
        process.map_files = false;
        let src = Source::Process(process);
        let results = self
            .inner
            .symbolize(&src, Input::AbsAddr(&todo))
            .map_err(|e| Error::Symbolize(e.to_string()))?;
        for (addr, result) in todo.iter().zip(results) {
            let module = match &result {
                Symbolized::Sym(sym) => sym.module.as_deref().map(file_name),
                Symbolized::Unknown(_) => None,
            };
            let frames = frames_of(result, module);
            self.cache.insert(*addr, frames);
        }
        Ok(())
    }

    /// The frames at a lookup address, innermost first; `resolve` must have seen it.
    pub fn frames(&self, addr: u64) -> &[Frame] {
        self.cache.get(&addr).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_a_real_hash() {
        assert_eq!(strip_rust_hash("a::b::h0123456789abcdef"), "a::b");
        assert_eq!(strip_rust_hash("a::hello"), "a::hello");
        assert_eq!(strip_rust_hash("pow"), "pow");
    }
}
