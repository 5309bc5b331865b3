//! DWARF CFI unwinding of a copied user stack, with `framehop`.
//!
//! The modules are the executable mappings of a process: this one's (/proc/self/maps),
//! or another's as `ffiprof record` learns them. For each, the ELF file's `.eh_frame`,
//! `.eh_frame_hdr`, `.debug_frame` (where present) and `.text` are read; framehop then
//! unwinds each sample from its registers (ip, sp, bp) and the bytes of stack the kernel
//! copied, so a function without a frame pointer (libm's pow) still yields its caller.
//! Where no unwind information covers a frame (hand-written assembly), its caller is
//! recovered as [`super::recover`] says, and counted apart.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use gimli::{BaseAddresses, EhFrame, EhFrameHdr, LittleEndian, UnwindSection};
use std::sync::Arc;

use super::recover::{ends_with_call, recover, Recovery};

use object::{Object, ObjectSection, ObjectSegment, SegmentFlags};

use crate::maps::{executable_mappings, Mapping};

/// Most frames kept per stack.
pub(crate) const MAX_FRAMES: usize = 256;

/// Section bytes, shared by every mapping and process that maps the same file.
/// A section's bytes in its file's mapping ([`crate::ffi::map_file`]), which every module
/// of that file shares: memory holds the pages the unwinder reads, not the sections.
/// (Empty only as framehop's default.)
#[derive(Clone, Default)]
pub(crate) struct Bytes(Option<(Arc<memmap2::Mmap>, Range<usize>)>);

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Some((map, range)) => &map[range.clone()],
            None => &[],
        }
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} mapped bytes", self.len())
    }
}

fn section<'d>(
    file: &object::File<'d, &'d [u8]>,
    map: &Arc<memmap2::Mmap>,
    name: &str,
) -> Option<(Range<u64>, Bytes)> {
    let s = file.section_by_name(name)?;
    let (offset, size) = s.file_range()?;
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    if end > map.len() {
        return None;
    }
    let bytes = Bytes(Some((Arc::clone(map), start..end)));
    Some((s.address()..s.address() + s.size(), bytes))
}

/// What unwinding needs of one ELF file, read once: its executable segments and the
/// sections framehop reads (`.text`, `.eh_frame`, `.eh_frame_hdr`, `.debug_frame`,
/// `.got`), in the file's mapping: only the pages the unwinder reads are loaded (debug
/// information can be most of a binary, and a compiler's `.text` a hundred megabytes).
#[derive(Debug, Clone)]
pub(crate) struct UnwindSections {
    /// Executable segments: (file offset, file size, virtual address).
    segments: Vec<(u64, u64, u64)>,
    /// Their bytes, by virtual address range (for telling return addresses).
    code: Vec<(Range<u64>, Bytes)>,
    text: Option<(Range<u64>, Bytes)>,
    eh_frame: Option<(Range<u64>, Bytes)>,
    eh_frame_hdr: Option<(Range<u64>, Bytes)>,
    debug_frame: Option<Bytes>,
    got: Option<Range<u64>>,
}

impl UnwindSections {
    /// Reads them from the file at `path`; None when it cannot be read or parsed.
    pub(crate) fn read(path: &std::path::Path) -> Option<UnwindSections> {
        let map = Arc::new(crate::ffi::map_file(&std::fs::File::open(path).ok()?).ok()?);
        let file = object::File::parse(&map[..]).ok()?;
        let segments = file
            .segments()
            .filter(|seg| {
                matches!(seg.flags(), SegmentFlags::Elf { p_flags, .. } if p_flags.contains(object::elf::PF_X))
            })
            .map(|seg| {
                let (off, size) = seg.file_range();
                (off, size, seg.address())
            })
            .collect::<Vec<_>>();
        let code = segments
            .iter()
            .filter_map(|&(off, size, addr)| {
                let start = usize::try_from(off).ok()?;
                let end = start.checked_add(usize::try_from(size).ok()?)?;
                (end <= map.len())
                    .then(|| (addr..addr + size, Bytes(Some((Arc::clone(&map), start..end)))))
            })
            .collect();
        Some(UnwindSections {
            segments,
            code,
            text: section(&file, &map, ".text"),
            eh_frame: section(&file, &map, ".eh_frame"),
            eh_frame_hdr: section(&file, &map, ".eh_frame_hdr"),
            debug_frame: section(&file, &map, ".debug_frame").map(|t| t.1),
            got: file.section_by_name(".got").map(|s| s.address()..s.address() + s.size()),
        })
    }
}

impl UnwindSections {
    /// True when `.eh_frame` (through `.eh_frame_hdr`'s table) has an entry covering the
    /// address `svma`; a file with only `.debug_frame` is taken as covered, as framehop
    /// reads it.
    fn covers(&self, svma: u64) -> bool {
        let (Some((hdr_at, hdr)), Some((eh_at, eh))) = (&self.eh_frame_hdr, &self.eh_frame) else {
            return self.debug_frame.is_some();
        };
        let mut bases =
            BaseAddresses::default().set_eh_frame_hdr(hdr_at.start).set_eh_frame(eh_at.start);
        if let Some((text_at, _)) = &self.text {
            bases = bases.set_text(text_at.start);
        }
        if let Some(got) = &self.got {
            bases = bases.set_got(got.start);
        }
        let Ok(parsed) = EhFrameHdr::new(&hdr[..], LittleEndian).parse(&bases, 8) else {
            return false;
        };
        let Some(table) = parsed.table() else { return false };
        let mut eh_frame = EhFrame::new(&eh[..], LittleEndian);
        eh_frame.set_address_size(8);
        table.fde_for_address(&eh_frame, &bases, svma, EhFrame::cie_from_offset).is_ok()
    }

    /// The code bytes that end at `svma`, up to `len` of them.
    fn code_before(&self, svma: u64, len: u64) -> Option<&[u8]> {
        let (range, bytes) = self.code.iter().find(|(r, _)| r.start < svma && svma <= r.end)?;
        let end = usize::try_from(svma - range.start).ok()?;
        let start = end.saturating_sub(usize::try_from(len).ok()?);
        bytes.get(start..end)
    }
}

/// The framehop module for one mapping of a file whose sections are `sections`, or None
/// when no executable segment of the file backs the mapping.
pub(crate) fn module_for(mapping: &Mapping, sections: &UnwindSections) -> Option<Module<Bytes>> {
    // The load bias: where the executable segment that backs this mapping landed.
    let len = mapping.range.end - mapping.range.start;
    let &(seg_off, _, seg_addr) = sections
        .segments
        .iter()
        .find(|(off, size, _)| *off <= mapping.offset + len && mapping.offset < off + size)?;
    let vaddr_at_offset = seg_addr.wrapping_add(mapping.offset).wrapping_sub(seg_off);
    let bias = mapping.range.start.wrapping_sub(vaddr_at_offset);
    let s = sections;
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: s.text.as_ref().map(|t| t.0.clone()),
        text: s.text.as_ref().map(|t| t.1.clone()),
        got_svma: s.got.clone(),
        eh_frame_svma: s.eh_frame.as_ref().map(|t| t.0.clone()),
        eh_frame: s.eh_frame.as_ref().map(|t| t.1.clone()),
        eh_frame_hdr_svma: s.eh_frame_hdr.as_ref().map(|t| t.0.clone()),
        eh_frame_hdr: s.eh_frame_hdr.as_ref().map(|t| t.1.clone()),
        debug_frame: s.debug_frame.clone(),
        ..Default::default()
    };
    Some(Module::new(mapping.path.clone(), mapping.range.clone(), bias, info))
}

/// How one unwind ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Unwound {
    /// The unwinder needed stack beyond the copy, and the copy was as long as asked for:
    /// the stack was cut short by the stack-copy size.
    pub truncated: bool,
    /// Callers found by the frame-pointer chain where no unwind information covered the
    /// frame.
    pub by_frame_pointer: u16,
    /// Callers found by scanning the stack for a return address.
    pub by_scan: u16,
}

impl Unwound {
    /// Frames found without unwind information.
    pub(crate) fn recovered(&self) -> u16 {
        self.by_frame_pointer + self.by_scan
    }
}

/// One executable mapping, as return addresses are told in it.
struct Code {
    end: u64,
    /// Address minus file address.
    bias: u64,
    sections: Arc<UnwindSections>,
}

/// How far past the stack copy a read is still taken for the stack's own (8 MiB, the
/// usual main-thread stack limit).
const STACK_REACH: u64 = 8 << 20;

/// Slots of the cache of whether an address has unwind information.
const COVERED_SLOTS: usize = 4096;

/// An unwinder over a process's modules, with its cache.
pub(crate) struct StackUnwinder {
    unwinder: UnwinderX86_64<Bytes>,
    cache: CacheX86_64,
    code: BTreeMap<u64, Code>,
    /// Direct-mapped: (address, covered by unwind information), `u64::MAX` when empty.
    covered: Box<[(u64, bool)]>,
    /// Files of executable mappings that could not be read or parsed (the perf sampler
    /// notes them: stacks stop where they enter one).
    pub unreadable: Vec<String>,
}

impl StackUnwinder {
    /// Loads the executable mappings of this process as they are now. Call it after the
    /// workload's libraries are loaded (dlopen) and before sampling.
    pub(crate) fn for_this_process() -> std::io::Result<StackUnwinder> {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut unwinder = StackUnwinder::empty();
        let mut files: HashMap<String, Option<Arc<UnwindSections>>> = HashMap::new();
        for mapping in executable_mappings(&maps) {
            if !mapping.path.starts_with('/') {
                continue; // [vdso] and friends: no file to read CFI from
            }
            let sections = files.entry(mapping.path.clone()).or_insert_with(|| {
                UnwindSections::read(std::path::Path::new(&mapping.path)).map(Arc::new)
            });
            unwinder.add(&mapping, sections.as_ref());
        }
        Ok(unwinder)
    }

    /// An unwinder that knows no module yet.
    pub(crate) fn empty() -> StackUnwinder {
        StackUnwinder {
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            code: BTreeMap::new(),
            covered: vec![(u64::MAX, false); COVERED_SLOTS].into_boxed_slice(),
            unreadable: Vec::new(),
        }
    }

    /// Adds the module of one executable mapping, given its file's sections (`None`: the
    /// file could not be read, which is noted). Returns whether unwind information was
    /// found.
    pub(crate) fn add(
        &mut self,
        mapping: &Mapping,
        sections: Option<&Arc<UnwindSections>>,
    ) -> bool {
        match sections.and_then(|s| Some((module_for(mapping, s)?, s))) {
            Some((module, sections)) => {
                let bias = module.base_avma();
                self.unwinder.add_module(module);
                let code = Code { end: mapping.range.end, bias, sections: Arc::clone(sections) };
                self.code.insert(mapping.range.start, code);
                self.covered.fill((u64::MAX, false));
                true
            }
            None => {
                if !self.unreadable.contains(&mapping.path) {
                    self.unreadable.push(mapping.path.clone());
                }
                false
            }
        }
    }

    /// Forgets the module whose mapping starts at `start`.
    pub(crate) fn remove(&mut self, start: u64) {
        self.unwinder.remove_module(start);
        self.code.remove(&start);
        self.covered.fill((u64::MAX, false));
    }

    fn code_at(&self, addr: u64) -> Option<(&Code, u64)> {
        let (_, code) = self.code.range(..=addr).next_back()?;
        (addr < code.end).then(|| (code, addr.wrapping_sub(code.bias)))
    }

    /// True when unwind information covers the code at `addr` (a lookup address).
    fn has_cfi(&mut self, addr: u64) -> bool {
        let slot = (addr ^ addr >> 12) as usize % COVERED_SLOTS;
        if self.covered[slot].0 == addr {
            return self.covered[slot].1;
        }
        let covered = self.code_at(addr).is_some_and(|(code, svma)| code.sections.covers(svma));
        self.covered[slot] = (addr, covered);
        covered
    }

    /// True when `addr` points into a known module just after a call instruction.
    fn is_return_address(&self, addr: u64) -> bool {
        self.code_at(addr)
            .and_then(|(code, svma)| code.sections.code_before(svma, 7))
            .is_some_and(ends_with_call)
    }

    /// Unwinds one sample into `out` (leaf first): `ip`, then return addresses. `stack` is
    /// the copy of the user stack starting at `sp`; `asked` is the copy size asked of the
    /// kernel (a shorter copy ended at the top of the stack). Each frame that unwind
    /// information covers is unwound by it (framehop); the caller of any other is
    /// recovered ([`super::recover`]) and counted.
    pub(crate) fn unwind(
        &mut self,
        ip: u64,
        sp: u64,
        bp: u64,
        stack: &[u8],
        asked: usize,
        out: &mut Vec<u64>,
    ) -> Unwound {
        let word = |addr: u64| -> Option<u64> {
            let off = usize::try_from(addr.checked_sub(sp)?).ok()?;
            Some(u64::from_le_bytes(stack.get(off..off.checked_add(8)?)?.try_into().ok()?))
        };
        // A read past the copy, but within a thread stack's usual reach of it, is stack the
        // copy did not hold; one farther off came from a register that held data (the
        // frame pointer of code that uses rbp for something else).
        let copy_end = sp.saturating_add(stack.len() as u64);
        let beyond = std::cell::Cell::new(false);
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let value = word(addr);
            let near = addr >= copy_end && addr - copy_end < STACK_REACH;
            beyond.set(beyond.get() || (value.is_none() && near));
            value.ok_or(())
        };
        let mut unwound = Unwound::default();
        let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
        let mut frame = FrameAddress::from_instruction_pointer(ip);
        while out.len() < MAX_FRAMES {
            out.push(frame.address());
            let lookup = frame.address_for_lookup();
            let before = regs;
            let exact = if self.has_cfi(lookup) {
                match self.unwinder.unwind_frame(frame, &mut regs, &mut self.cache, &mut read_stack)
                {
                    Ok(Some(ra)) => Some(ra),
                    Ok(None) => break, // a root: the unwind information says so
                    Err(_) if beyond.get() => break, // it needed stack beyond the copy
                    Err(_) => None,
                }
            } else {
                None
            };
            let ra = match exact {
                Some(ra) => ra,
                None => {
                    let Some(r) =
                        recover(before.sp(), before.bp(), word, |a| self.is_return_address(a))
                    else {
                        break;
                    };
                    match r.how {
                        Recovery::FramePointer => unwound.by_frame_pointer += 1,
                        Recovery::Scan => unwound.by_scan += 1,
                    }
                    regs = UnwindRegsX86_64::new(r.return_address, r.sp, r.bp);
                    r.return_address
                }
            };
            match FrameAddress::from_return_address(ra) {
                Some(next) => frame = next,
                None => break,
            }
        }
        unwound.truncated = beyond.get() && stack.len() >= asked;
        unwound
    }
}
