//! Which allocator a call reached, proved from the machine code around it, or said
//! unknown.
//!
//! The interposer sees a return address: where `malloc` or `free` goes back to. Rust's
//! allocator (`__rust_dealloc` -> `__rdl_dealloc` -> `free`), C++'s `operator delete` where
//! libstdc++ is linked in, and a C function whose last act is `free(p)` all jump on to the
//! allocator and leave no frame of their own: the address is then in their caller, after
//! the call that reached them. So the family is told by the code at that address:
//! - the function holding it is an allocator itself (`__rdl_alloc`, `operator new`, a
//!   program's own `malloc`): its family;
//! - else the call just before it: a call of an allocator entry (directly, through the
//!   PLT, or through a GOT slot, also one loaded into a register kept for it) is that
//!   entry's family; a call of another function whose every last jump that reaches an
//!   allocator reaches the same family is that family, and the function is given back as a
//!   frame (the free in `c_take_and_free`, under its Rust caller);
//! - a call through a function pointer (a destroy callback, a `dyn` drop), a function with
//!   no symbol (a stripped program), or jumps reaching more than one family: unknown, and
//!   why ([`Untold`]). Nothing is guessed.
//!
//! Rust or C++ code without line tables that calls C's allocator is the one case the code
//! alone cannot settle: Rust's own allocator inlined there (under LTO), or libstdc++'s
//! `operator delete` inlined into a library that links it in (rustc's LLVM), looks the
//! same as a call of `free`. The caller checks such sites against their line tables
//! ([`Reach::checked_sites`]).

use std::collections::HashMap;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};
use object::{Object, ObjectSymbol, RelocationTarget};
use serde::{Deserialize, Serialize};

use super::sites::{Family, C_ENTRIES};
use crate::machine_code::code_at;

/// Why a side's allocator family could not be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Untold {
    /// Called through a function pointer whose target jumped on to the allocator (a
    /// destroy callback, a `dyn` value's drop): no frame is left to say whose it was.
    FunctionPointer,
    /// Rust code without line tables called C's allocator: Rust's own allocator inlined
    /// there cannot be told from a call of C's.
    RustWithoutLineTables,
    /// C++ code without line tables called C's allocator: an `operator new` or `delete`
    /// inlined there (LTO inlines libstdc++'s where it is linked in) cannot be told from a
    /// call of `malloc` or `free`.
    CxxWithoutLineTables,
    /// The code has no symbol table (a stripped program or library).
    NoSymbols,
    /// The called function's last jumps reach no allocator that can be named, or more
    /// than one family.
    Unresolved,
    /// No code of a file is mapped at the address, or it does not follow a call.
    NoCode,
}

impl std::fmt::Display for Untold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Untold::FunctionPointer => {
                "called through a function pointer whose target jumped on to the allocator (a \
                 destroy callback, a dyn value's drop), which leaves no frame to tell whose \
                 allocator it was"
            }
            Untold::RustWithoutLineTables => {
                "Rust code without line tables called C's allocator, where Rust's own inlined \
                 allocator looks the same: build with debug = \"line-tables-only\" (ffiprof \
                 memory --bin does) to tell them"
            }
            Untold::CxxWithoutLineTables => {
                "C++ code without line tables called C's allocator, where an inlined operator \
                 new or delete looks the same: build it with -g1 to tell them"
            }
            Untold::NoSymbols => {
                "the code has no symbol table (stripped): build without strip = \"symbols\" \
                 to tell them"
            }
            Untold::Unresolved => {
                "the function called jumps on to no allocator that can be named, or to more \
                 than one"
            }
            Untold::NoCode => "no code of a file is mapped there, or it does not follow a call",
        })
    }
}

/// What the call that returns to an address reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reach {
    /// The family, or why it is not known.
    pub(crate) family: Result<Family, Untold>,
    /// The function called that jumped on to the allocator (not itself an allocator
    /// entry), by file virtual address: a frame the stack lost.
    pub(crate) tail: Option<u64>,
    /// Where Rust or C++ code called C's allocator (file virtual addresses of the call or
    /// jump), each with what it is where it has no line tables: [`Reach::family`] is C
    /// only if their line tables show no allocator of Rust's or C++'s inlined there.
    pub(crate) checked_sites: Vec<(u64, Untold)>,
}

impl Reach {
    fn told(family: Family) -> Reach {
        Reach { family: Ok(family), tail: None, checked_sites: Vec::new() }
    }

    fn untold(why: Untold) -> Reach {
        Reach { family: Err(why), tail: None, checked_sites: Vec::new() }
    }
}

/// Names of Rust's allocator shims and of std's `System` allocator (any mangling holds
/// them).
const RUST_ENTRIES: &[&str] = &[
    "__rust_alloc",
    "__rust_dealloc",
    "__rust_realloc",
    "__rdl_",
    "__rg_",
    "std::sys::alloc::",
    "std::sys::pal::unix::alloc::",
    "for std::alloc::System>::",
];

/// The family of an allocator entry by its (mangled or demangled) name, or `None` for
/// any other function.
pub(crate) fn entry_family(name: &str) -> Option<Family> {
    let bare = name.split('@').next().unwrap_or(name);
    if C_ENTRIES.contains(&bare) || bare.starts_with("__libc_") && libc_entry(bare) {
        return Some(Family::C);
    }
    // C++'s operators: _Znwm, _Znam, _ZdlPv, _ZdaPv and their aligned, sized and nothrow
    // forms.
    if ["_Znw", "_Zna", "_Zdl", "_Zda"].iter().any(|p| bare.starts_with(p))
        || bare.starts_with("operator new")
        || bare.starts_with("operator delete")
    {
        return Some(Family::Cxx);
    }
    if bare.contains("__rust_alloc_error") {
        return None;
    }
    if RUST_ENTRIES.iter().any(|e| bare.contains(e)) {
        return Some(Family::Rust);
    }
    let demangled = format!("{:#}", rustc_demangle::demangle(bare));
    (demangled != bare && RUST_ENTRIES.iter().any(|e| demangled.contains(e)))
        .then_some(Family::Rust)
}

fn libc_entry(name: &str) -> bool {
    C_ENTRIES.contains(&name.trim_start_matches("__libc_"))
}

/// What a call of C's allocator from the function named `name` needs to be told from an
/// inlined allocator of its language: Rust's and C++'s inline theirs.
fn inlining_language(name: &str) -> Option<Untold> {
    if is_rust_symbol(name) {
        Some(Untold::RustWithoutLineTables)
    } else if name.starts_with("_Z") {
        Some(Untold::CxxWithoutLineTables)
    } else {
        None
    }
}

/// True for a Rust symbol (v0 `_R`, or legacy `_ZN...17h<hash>E`).
pub(crate) fn is_rust_symbol(name: &str) -> bool {
    name.starts_with("_R")
        || (name.starts_with("_ZN")
            && name.len() > 20
            && name.ends_with('E')
            && name[..name.len() - 1].rsplit_once("17h").is_some_and(|(_, h)| h.len() == 16))
}

/// Where a call or jump goes, named where the file says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An import (through the PLT or a GOT slot), and where the file defines it, if it
    /// does (the loader may bind another definition first: the name decides where it is
    /// an allocator's).
    Import(String, Option<u64>),
    /// Code of the file.
    Code(u64),
    /// Not known from the code (a register or memory operand the code does not explain).
    Pointer,
}

/// One file's code, read for calls: its functions and GOT, each function decoded once.
pub(crate) struct CodeFile<'d> {
    file: &'d object::File<'d>,
    /// (start, end, name), by start: the symbol table and the dynamic one.
    functions: Vec<(u64, u64, String)>,
    has_symtab: bool,
    /// GOT slots: what the loader fills them with.
    got: HashMap<u64, Target>,
    decoded: HashMap<u64, Vec<Instruction>>,
    /// Each function's tail analysis (by start).
    tails: HashMap<u64, Reach>,
}

impl<'d> CodeFile<'d> {
    /// Reads `file`'s symbols and GOT.
    pub(crate) fn new(file: &'d object::File<'d>) -> CodeFile<'d> {
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition() && s.size() > 0)
            .filter_map(|s| Some((s.address(), s.address() + s.size(), s.name().ok()?.to_owned())))
            .collect();
        functions.sort();
        functions.dedup_by_key(|f| f.0);
        let has_symtab = file.symbols().next().is_some();
        let mut got = HashMap::new();
        let dynsym = file.dynamic_symbol_table();
        for (slot, r) in file.dynamic_relocations().into_iter().flatten() {
            let target = match r.target() {
                RelocationTarget::Symbol(i) => {
                    let Some(s) = dynsym.as_ref().and_then(|t| {
                        use object::ObjectSymbolTable;
                        t.symbol_by_index(i).ok()
                    }) else {
                        continue;
                    };
                    let Ok(name) = s.name() else { continue };
                    let local = (s.is_definition() && s.address() != 0).then(|| s.address());
                    Target::Import(name.to_owned(), local)
                }
                RelocationTarget::Absolute => Target::Code(r.addend() as u64),
                _ => continue,
            };
            got.insert(slot, target);
        }
        CodeFile {
            file,
            functions,
            has_symtab,
            got,
            decoded: HashMap::new(),
            tails: HashMap::new(),
        }
    }

    /// The function holding `address`: its start, end and name.
    pub(crate) fn function_at(&self, address: u64) -> Option<(u64, u64, &str)> {
        let i = self.functions.partition_point(|f| f.0 <= address).checked_sub(1)?;
        let (start, end, name) = &self.functions[i];
        (address < *end).then_some((*start, *end, name.as_str()))
    }

    fn name_at_start(&self, address: u64) -> Option<&str> {
        self.function_at(address).filter(|f| f.0 == address).map(|f| f.2)
    }

    /// The function `[start, end)` decoded (once): read with [`CodeFile::code`].
    fn decode(&mut self, start: u64, end: u64) {
        let file = self.file;
        self.decoded.entry(start).or_insert_with(|| {
            code_at(file, start, end - start)
                .map(|bytes| {
                    Decoder::with_ip(64, bytes, start, DecoderOptions::NONE).into_iter().collect()
                })
                .unwrap_or_default()
        });
    }

    /// The instructions of the function at `start`, once decoded.
    fn code(&self, start: u64) -> &[Instruction] {
        self.decoded.get(&start).map_or(&[], Vec::as_slice)
    }

    /// What a PLT stub at `at` jumps through, if it is one.
    fn plt_import(&self, at: u64) -> Option<Target> {
        // A stub is 16 bytes, or 8 at the end of `.plt.got`.
        let stub = [16, 8, 6].into_iter().find_map(|n| code_at(self.file, at, n))?;
        let mut decoder = Decoder::with_ip(64, stub, at, DecoderOptions::NONE);
        let mut first = decoder.decode();
        if first.mnemonic() == Mnemonic::Endbr64 {
            first = decoder.decode();
        }
        let jumps = first.flow_control() == FlowControl::IndirectBranch;
        (jumps && first.is_ip_rel_memory_operand())
            .then(|| self.got.get(&first.ip_rel_memory_address()).cloned())?
    }

    /// Where a direct branch to `t` goes: an import through a PLT stub, else the code.
    fn direct(&self, t: u64) -> Target {
        if self.name_at_start(t).is_none() {
            if let Some(target) = self.plt_import(t) {
                return target;
            }
        }
        Target::Code(t)
    }

    fn slot(&self, slot: u64) -> Target {
        self.got.get(&slot).cloned().unwrap_or(Target::Pointer)
    }

    /// Where the call or jump `code[at]` goes.
    fn call_target(&self, code: &[Instruction], at: usize) -> Target {
        let i = &code[at];
        match i.flow_control() {
            FlowControl::Call | FlowControl::UnconditionalBranch => {
                self.direct(i.near_branch_target())
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                if i.is_ip_rel_memory_operand() {
                    self.slot(i.ip_rel_memory_address())
                } else if i.op0_kind() == OpKind::Register {
                    register_slot(code, at, i.op0_register())
                        .map_or(Target::Pointer, |s| self.slot(s))
                } else {
                    Target::Pointer
                }
            }
            _ => Target::Pointer,
        }
    }

    /// The function at `start`'s call that returns to `here`: its address and target.
    fn call_returning_to(&self, start: u64, here: u64) -> Option<(u64, Target)> {
        let code = self.code(start);
        let at = code.iter().position(|i| i.next_ip() == here)?;
        matches!(code[at].flow_control(), FlowControl::Call | FlowControl::IndirectCall)
            .then(|| (code[at].ip(), self.call_target(code, at)))
    }

    /// The jumps by which the function `[start, end)` leaves as its last act, each with
    /// its address and target (jumps within the function and through registers are not).
    fn last_jumps(&self, start: u64, end: u64) -> Vec<(u64, Target)> {
        let code = self.code(start);
        let leaves = |i: &Instruction| match i.flow_control() {
            FlowControl::UnconditionalBranch => {
                let t = i.near_branch_target();
                t < start || t >= end
            }
            FlowControl::IndirectBranch => i.is_ip_rel_memory_operand(),
            _ => false,
        };
        (0..code.len())
            .filter(|&at| leaves(&code[at]))
            .map(|at| (code[at].ip(), self.call_target(code, at)))
            .collect()
    }

    /// What the call that returns to `here` (a file virtual address) reached.
    pub(crate) fn reached(&mut self, here: u64) -> Reach {
        let Some((start, end, name)) = self.function_at(here.saturating_sub(1)) else {
            return self.reached_without_symbols(here);
        };
        let inlines = inlining_language(name);
        if let Some(family) = entry_family(name) {
            return Reach::told(family);
        }
        self.decode(start, end);
        let Some((call, target)) = self.call_returning_to(start, here) else {
            return Reach::untold(Untold::NoCode);
        };
        let mut reach = self.target(target, 0);
        if let (Ok(Family::C), None, Some(why)) = (reach.family, reach.tail, inlines) {
            reach.checked_sites.push((call, why));
        }
        reach
    }

    /// A call read from the bytes alone, where no symbol says where the function is: a
    /// direct call or one through a GOT slot; anything else is unknown.
    fn reached_without_symbols(&mut self, here: u64) -> Reach {
        let why = if self.has_symtab { Untold::NoCode } else { Untold::NoSymbols };
        let Some(bytes) = here.checked_sub(6).and_then(|at| code_at(self.file, at, 6)) else {
            return Reach::untold(why);
        };
        let rel = |b: &[u8]| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let target = if bytes[1] == 0xE8 {
            self.direct(here.wrapping_add_signed(rel(&bytes[2..])))
        } else if bytes[0] == 0xFF && bytes[1] == 0x15 {
            self.slot(here.wrapping_add_signed(rel(&bytes[2..])))
        } else {
            return Reach::untold(why);
        };
        match self.target(target, 0) {
            Reach { family: Err(_), .. } => Reach::untold(why),
            told => told,
        }
    }

    /// What a call of `target` reaches, following its last jumps a few deep.
    fn target(&mut self, target: Target, depth: usize) -> Reach {
        let start = match target {
            Target::Pointer => return Reach::untold(Untold::FunctionPointer),
            Target::Import(name, local) => match (entry_family(&name), local) {
                (Some(family), _) => return Reach::told(family),
                (None, Some(t)) => t,
                (None, None) => return Reach::untold(Untold::Unresolved),
            },
            Target::Code(t) => t,
        };
        let Some((_, end, name)) = self.function_at(start).filter(|f| f.0 == start) else {
            let why = if self.has_symtab { Untold::Unresolved } else { Untold::NoSymbols };
            return Reach::untold(why);
        };
        if let Some(family) = entry_family(name) {
            return Reach::told(family);
        }
        if depth > 4 {
            return Reach::untold(Untold::Unresolved);
        }
        if let Some(known) = self.tails.get(&start) {
            return known.clone();
        }
        let inlines = inlining_language(name);
        self.decode(start, end);
        let mut found: Vec<Reach> = Vec::new();
        for (jump, next) in self.last_jumps(start, end) {
            let mut reach = self.target(next, depth + 1);
            if reach.family.is_err() {
                continue;
            }
            if let (Ok(Family::C), Some(why)) = (reach.family, inlines) {
                if reach.checked_sites.is_empty() {
                    reach.checked_sites.push((jump, why));
                }
            }
            found.push(reach);
        }
        let reach = match found.split_first() {
            None => Reach::untold(Untold::Unresolved),
            Some((first, rest)) if rest.iter().all(|r| r.family == first.family) => Reach {
                family: first.family,
                tail: Some(start),
                checked_sites: found.iter().flat_map(|r| r.checked_sites.iter().copied()).collect(),
            },
            Some(_) => Reach::untold(Untold::Unresolved),
        };
        self.tails.insert(start, reach.clone());
        reach
    }
}

/// The GOT slot a register holds when `code[at]` calls through it: the register's last
/// write before the call, in the same straight run of code, loads it from a rip-relative
/// slot; or it is a callee-saved register every write of which in the function is that
/// same load (a pointer kept for a loop) or its save and restore.
fn register_slot(code: &[Instruction], at: usize, reg: Register) -> Option<u64> {
    let reg = reg.full_register();
    let mut info = InstructionInfoFactory::new();
    let writes = |i: &Instruction, info: &mut InstructionInfoFactory| {
        info.info(i).used_registers().iter().any(|u| {
            u.register().full_register() == reg
                && matches!(
                    u.access(),
                    OpAccess::Write
                        | OpAccess::CondWrite
                        | OpAccess::ReadWrite
                        | OpAccess::ReadCondWrite
                )
        })
    };
    let load = |i: &Instruction| {
        (i.mnemonic() == Mnemonic::Mov && i.is_ip_rel_memory_operand())
            .then(|| i.ip_rel_memory_address())
    };
    let targets: std::collections::HashSet<u64> = code
        .iter()
        .filter(|i| {
            matches!(
                i.flow_control(),
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            )
        })
        .map(Instruction::near_branch_target)
        .collect();
    // The straight run before the call.
    for i in code[..at].iter().rev() {
        if writes(i, &mut info) {
            if let Some(slot) = load(i) {
                return Some(slot);
            }
            break;
        }
        if targets.contains(&i.ip()) || i.flow_control() != FlowControl::Next {
            break;
        }
    }
    const KEPT: &[Register] =
        &[Register::RBX, Register::RBP, Register::R12, Register::R13, Register::R14, Register::R15];
    if !KEPT.contains(&reg) {
        return None;
    }
    let mut slot = None;
    for i in code {
        if i.flow_control() != FlowControl::Next || !writes(i, &mut info) {
            continue;
        }
        if matches!(i.mnemonic(), Mnemonic::Push | Mnemonic::Pop) {
            continue;
        }
        match (load(i), slot) {
            (Some(s), None) => slot = Some(s),
            (Some(s), Some(t)) if s == t => {}
            _ => return None,
        }
    }
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_named_by_family() {
        assert_eq!(entry_family("free@GLIBC_2.2.5"), Some(Family::C));
        assert_eq!(entry_family("__libc_malloc"), Some(Family::C));
        assert_eq!(entry_family("_ZdlPvm"), Some(Family::Cxx));
        assert_eq!(entry_family("_ZnwmSt11align_val_t"), Some(Family::Cxx));
        assert_eq!(
            entry_family("_RNvCsfLfy6EI15iL_7___rustc14___rust_dealloc"),
            Some(Family::Rust)
        );
        assert_eq!(entry_family("_RNvCsfLfy6EI15iL_7___rustc11___rdl_alloc"), Some(Family::Rust));
        assert_eq!(entry_family("_RNvCsfLfy6EI15iL_7___rustc26___rust_alloc_error_handler"), None);
        for other in
            ["strdup", "c_take_and_free", "_ZN4main7destroy17h03b5423eec79f8bfE", "xmalloc"]
        {
            assert_eq!(entry_family(other), None, "{other}");
        }
    }

    #[test]
    fn rust_symbols_are_known_by_their_mangling() {
        assert!(is_rust_symbol("_ZN4main11destroy_vec17h03b5423eec79f8bfE"));
        assert!(is_rust_symbol("_RNvCs123_4main4main"));
        assert!(!is_rust_symbol("_ZN4llvm15allocate_bufferEmm"));
        assert!(!is_rust_symbol("c_take_and_free"));
    }

    fn decode(bytes: &[u8], ip: u64) -> Vec<Instruction> {
        Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE).into_iter().collect()
    }

    #[test]
    fn a_register_loaded_once_for_a_loop_is_its_slot() {
        // mov rbp, [rip+0x100]; L: mov rdi, rbx; call rbp; dec rbx; jne L; pop rbp
        let code = decode(
            &[
                0x48, 0x8B, 0x2D, 0x00, 0x01, 0x00, 0x00, // mov rbp,[rip+0x100]
                0x48, 0x89, 0xDF, // mov rdi,rbx
                0xFF, 0xD5, // call rbp
                0x48, 0xFF, 0xCB, // dec rbx
                0x75, 0xF6, // jne -10
                0x5D, // pop rbp
            ],
            0x1000,
        );
        let call = code.iter().position(|i| i.flow_control() == FlowControl::IndirectCall).unwrap();
        assert_eq!(register_slot(&code, call, Register::RBP), Some(0x1007 + 0x100));
        // A caller-saved register loaded before a branch target: not known.
        let code = decode(
            &[
                0x48, 0x8B, 0x05, 0x00, 0x01, 0x00, 0x00, // mov rax,[rip+0x100]
                0x48, 0x89, 0xDF, // L: mov rdi,rbx
                0xFF, 0xD0, // call rax
                0xEB, 0xF9, // jmp L
            ],
            0x1000,
        );
        let call = code.iter().position(|i| i.flow_control() == FlowControl::IndirectCall).unwrap();
        assert_eq!(register_slot(&code, call, Register::RAX), None);
        // A vtable's slot: a pointer.
        let code = decode(&[0x48, 0x8B, 0x00, 0xFF, 0xD0], 0x1000); // mov rax,[rax]; call rax
        assert_eq!(register_slot(&code, 1, Register::RAX), None);
    }
}
