//! The recorded program's processes as ffiprof follows them: each process's executable
//! mappings (from `/proc/<pid>/maps` at start, then the kernel's mmap, fork and exec
//! records), an unwinder over the modules read from disk, and every frame turned at once
//! into a module and a file offset, so that neither a later `dlclose` nor the program's
//! exit changes what a sample meant.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ids::Pid;
use crate::maps::{executable_mappings, Mapping};
use crate::sample::dwarf::{StackUnwinder, UnwindSections, Unwound};

/// A module of a recording: its index into [`Modules::files`], or [`ModuleIndex::NONE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ModuleIndex(pub u32);

impl ModuleIndex {
    /// The module of an address outside every known mapping.
    pub(crate) const NONE: ModuleIndex = ModuleIndex(u32::MAX);

    /// The index into [`Modules::files`], or `None` for [`ModuleIndex::NONE`].
    pub(crate) fn get(self) -> Option<usize> {
        (self != ModuleIndex::NONE).then_some(self.0 as usize)
    }
}

/// A code location: a module and the file offset of the lookup address (a return
/// address's minus one), or an address in no known module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Loc {
    /// The module, or [`ModuleIndex::NONE`].
    pub module: ModuleIndex,
    /// File offset in the module, or the address itself without one.
    pub offset: u64,
}

/// A module the program mapped.
#[derive(Debug, Clone)]
pub(crate) struct ModuleFile {
    /// Its path as the program saw it (`/usr/lib/.../libc.so.6`, `[vdso]`).
    pub path: String,
    /// Where to read it: the path itself, or ffiprof's copy of the vDSO.
    pub file: Option<PathBuf>,
}

impl ModuleFile {
    /// The file name, as frames name their module.
    pub(crate) fn name(&self) -> String {
        Path::new(&self.path)
            .file_name()
            .map_or_else(|| self.path.clone(), |n| n.to_string_lossy().into_owned())
    }
}

/// Every module seen, with what unwinding needs of it read once.
#[derive(Default)]
pub(crate) struct Modules {
    /// The modules, by index.
    pub files: Vec<ModuleFile>,
    by_path: HashMap<String, ModuleIndex>,
    sections: HashMap<ModuleIndex, Option<Arc<UnwindSections>>>,
}

impl Modules {
    fn intern(&mut self, path: &str, vdso: Option<&Path>) -> Option<ModuleIndex> {
        if let Some(&i) = self.by_path.get(path) {
            return Some(i);
        }
        let file = if path.starts_with('/') {
            Some(PathBuf::from(path.strip_suffix(" (deleted)").unwrap_or(path)))
        } else if path == "[vdso]" {
            Some(vdso?.to_owned())
        } else {
            return None; // [vsyscall], anonymous JIT code: no file
        };
        let i = ModuleIndex(self.files.len() as u32);
        self.files.push(ModuleFile { path: path.to_owned(), file });
        self.by_path.insert(path.to_owned(), i);
        Some(i)
    }

    fn sections(&mut self, module: ModuleIndex) -> Option<Arc<UnwindSections>> {
        let files = &self.files;
        self.sections
            .entry(module)
            .or_insert_with(|| {
                let file = files[module.get()?].file.as_ref()?;
                UnwindSections::read(file).map(Arc::new)
            })
            .clone()
    }
}

struct Map {
    end: u64,
    offset: u64,
    module: ModuleIndex,
}

#[derive(Default)]
struct Process {
    maps: BTreeMap<u64, Map>,
    unwinder: Option<StackUnwinder>,
}

impl Process {
    fn locate(&self, addr: u64) -> Loc {
        match self.maps.range(..=addr).next_back() {
            Some((&start, map)) if addr < map.end => {
                Loc { module: map.module, offset: addr - start + map.offset }
            }
            _ => Loc { module: ModuleIndex::NONE, offset: addr },
        }
    }
}

/// Registers and stack of one sample, as the kernel copied them.
pub(crate) struct UserStack<'a> {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub bp: u64,
    /// The stack copy, from `sp` up.
    pub stack: &'a [u8],
    /// The copy size asked for.
    pub asked: usize,
}

/// The processes of the recorded program.
pub(crate) struct Targets {
    /// Every module seen.
    pub modules: Modules,
    processes: HashMap<Pid, Process>,
    vdso: Option<tempfile::NamedTempFile>,
    frames: Vec<u64>,
}

impl Targets {
    /// No process yet. The vDSO is copied from this process (the kernel maps the same
    /// image into every process) so that it can be unwound and symbolized from a file.
    pub(crate) fn new() -> Targets {
        let vdso = own_vdso_file();
        Targets { modules: Modules::default(), processes: HashMap::new(), vdso, frames: Vec::new() }
    }

    /// Adds the executable mappings listed in `/proc/<pid>/maps` now.
    pub(crate) fn read_proc_maps(&mut self, pid: Pid) -> std::io::Result<()> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        for m in executable_mappings(&maps) {
            self.map(pid, m);
        }
        Ok(())
    }

    /// An executable mapping appeared in `pid`.
    pub(crate) fn map(&mut self, pid: Pid, mapping: Mapping) {
        let vdso = self.vdso.as_ref().map(|f| f.path().to_owned());
        let Some(module) = self.modules.intern(&mapping.path, vdso.as_deref()) else { return };
        let sections = self.modules.sections(module);
        let process = self.processes.entry(pid).or_default();
        if let Some(existing) = process.maps.get(&mapping.range.start) {
            if existing.end == mapping.range.end
                && existing.module == module
                && existing.offset == mapping.offset
            {
                return; // already known (from /proc and again from a record)
            }
        }
        // A new mapping replaces whatever it overlaps.
        let overlapped: Vec<u64> = process
            .maps
            .range(..mapping.range.end)
            .filter(|(_, m)| m.end > mapping.range.start)
            .map(|(&s, _)| s)
            .collect();
        let unwinder = process.unwinder.get_or_insert_with(StackUnwinder::empty);
        for start in overlapped {
            process.maps.remove(&start);
            unwinder.remove(start);
        }
        unwinder.add(&mapping, sections.as_ref());
        process.maps.insert(
            mapping.range.start,
            Map { end: mapping.range.end, offset: mapping.offset, module },
        );
    }

    /// `pid` executed a new program: its old mappings are gone.
    pub(crate) fn exec(&mut self, pid: Pid) {
        self.processes.insert(pid, Process::default());
    }

    /// `child` was forked from `parent` and starts with its mappings.
    pub(crate) fn fork(&mut self, parent: Pid, child: Pid) {
        let Some(p) = self.processes.get(&parent) else { return };
        let maps: Vec<Mapping> = p
            .maps
            .iter()
            .map(|(&start, m)| Mapping {
                range: start..m.end,
                offset: m.offset,
                path: self.modules.files[m.module.0 as usize].path.clone(),
            })
            .collect();
        self.processes.insert(child, Process::default());
        for m in maps {
            self.map(child, m);
        }
    }

    /// Unwinds one sample of `pid` into `out`, leaf first, as locations of lookup
    /// addresses (the leaf exact, each return address minus one).
    pub(crate) fn unwind(&mut self, pid: Pid, regs: &UserStack<'_>, out: &mut Vec<Loc>) -> Unwound {
        out.clear();
        let process = self.processes.entry(pid).or_default();
        self.frames.clear();
        let unwound = match process.unwinder.as_mut() {
            Some(u) => {
                u.unwind(regs.ip, regs.sp, regs.bp, regs.stack, regs.asked, &mut self.frames)
            }
            None => {
                self.frames.push(regs.ip);
                Unwound::default()
            }
        };
        for (i, &addr) in self.frames.iter().enumerate() {
            out.push(process.locate(if i == 0 { addr } else { addr.saturating_sub(1) }));
        }
        unwound
    }

    /// Modules whose files had no unwind information ffiprof could read.
    pub(crate) fn without_unwind_info(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .processes
            .values()
            .filter_map(|p| p.unwinder.as_ref())
            .flat_map(|u| u.unreadable.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl Default for Targets {
    fn default() -> Self {
        Self::new()
    }
}

fn own_vdso_file() -> Option<tempfile::NamedTempFile> {
    use std::io::Write;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let mapping = executable_mappings(&maps).into_iter().find(|m| m.path == "[vdso]")?;
    let bytes = crate::ffi::own_vdso(mapping.range)?;
    let mut file = tempfile::Builder::new().prefix("ffiprof-vdso-").tempfile().ok()?;
    file.write_all(&bytes).ok()?;
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(start: u64, end: u64, offset: u64, path: &str) -> Mapping {
        Mapping { range: start..end, offset, path: path.to_owned() }
    }

    #[test]
    fn locations_follow_maps_forks_and_execs() {
        let mut t = Targets::new();
        t.map(Pid(10), mapping(0x1000, 0x3000, 0x500, "/nonexistent/a.so"));
        t.map(Pid(10), mapping(0x8000, 0x9000, 0, "/nonexistent/b.so"));
        let p = &t.processes[&Pid(10)];
        assert_eq!(p.locate(0x1010), Loc { module: ModuleIndex(0), offset: 0x510 });
        assert_eq!(p.locate(0x8fff), Loc { module: ModuleIndex(1), offset: 0xfff });
        assert_eq!(p.locate(0x3000).module, ModuleIndex::NONE);
        // A mapping over part of another replaces it.
        t.map(Pid(10), mapping(0x2000, 0x4000, 0, "/nonexistent/c.so"));
        let p = &t.processes[&Pid(10)];
        assert_eq!(p.locate(0x1010).module, ModuleIndex::NONE);
        assert_eq!(p.locate(0x2010), Loc { module: ModuleIndex(2), offset: 0x10 });
        // A fork keeps the parent's mappings; an exec drops them.
        t.fork(Pid(10), Pid(11));
        assert_eq!(t.processes[&Pid(11)].locate(0x8001), Loc { module: ModuleIndex(1), offset: 1 });
        t.exec(Pid(11));
        assert_eq!(t.processes[&Pid(11)].locate(0x8001).module, ModuleIndex::NONE);
        assert_eq!(t.modules.files[1].name(), "b.so");
        // Unreadable files leave the mapping without unwind information, noted.
        assert!(t.without_unwind_info().contains(&"/nonexistent/b.so".to_owned()));
    }
}
