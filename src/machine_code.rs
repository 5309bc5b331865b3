//! What a function's machine code calls, read with iced-x86: direct calls and jumps out
//! of it named by the symbol at their target (or the import a PLT stub jumps through),
//! indirect ones by the GOT slot they load where the code tells, else called a function
//! pointer. `per-call-xlto` reads its loops with it, `ffiprof xlto` the user's callers.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, RelocationTarget};

/// What an indirect call whose target the code does not name is called.
pub(crate) const FUNCTION_POINTER: &str =
    "a function pointer (an indirect call whose target the code does not name)";

/// The symbol a dynamic relocation at `address` (a GOT slot) fills in.
fn got_symbol(file: &object::File<'_>, address: u64) -> Option<String> {
    let dynsym = file.dynamic_symbol_table()?;
    file.dynamic_relocations()?.find(|(offset, _)| *offset == address).and_then(|(_, r)| {
        match r.target() {
            RelocationTarget::Symbol(index) => {
                dynsym.symbol_by_index(index).ok()?.name().ok().map(str::to_owned)
            }
            _ => None,
        }
    })
}

/// Bytes of the loaded image at `address`, `len` of them, from the section holding them.
pub(crate) fn code_at<'d>(file: &object::File<'d>, address: u64, len: u64) -> Option<&'d [u8]> {
    file.sections().find_map(|s| {
        let (start, end) = (s.address(), s.address() + s.size());
        (start <= address && address + len <= end && s.kind() == object::SectionKind::Text)
            .then(|| s.data().ok())
            .flatten()
            .map(|data| &data[(address - start) as usize..(address - start + len) as usize])
    })
}

/// The function or import a direct branch to `target` reaches: a symbol that starts
/// there, or a PLT stub whose first instruction jumps through a GOT slot.
fn direct_target(file: &object::File<'_>, target: u64) -> String {
    if let Some(name) = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.address() == target && s.is_definition() && s.size() > 0)
        .and_then(|s| s.name().ok().map(str::to_owned))
    {
        return name;
    }
    let via_plt = code_at(file, target, 16).and_then(|stub| {
        let first = Decoder::with_ip(64, stub, target, DecoderOptions::NONE).decode();
        first.is_ip_rel_memory_operand().then(|| got_symbol(file, first.ip_rel_memory_address()))?
    });
    via_plt.unwrap_or_else(|| format!("code at {target:#x}"))
}

/// The slot `reg` was loaded from, when the last instruction before `at` in `code` that
/// writes it (calls and branches only read theirs) loads it from a rip-relative address.
fn loaded_from(code: &[Instruction], at: usize, reg: Register) -> Option<u64> {
    code[..at]
        .iter()
        .rev()
        .filter(|i| i.flow_control() == FlowControl::Next)
        .find(|i| i.op_count() > 0 && i.op0_kind() == OpKind::Register && i.op0_register() == reg)
        .filter(|i| i.mnemonic() == Mnemonic::Mov && i.is_ip_rel_memory_operand())
        .map(Instruction::ip_rel_memory_address)
}

/// What the function `[start, start + size)` calls or jumps out to, named where the code
/// tells.
pub(crate) fn calls_in(
    file: &object::File<'_>,
    start: u64,
    size: u64,
) -> Result<Vec<String>, String> {
    let bytes = code_at(file, start, size).ok_or("the loop's code is not in a text section")?;
    let code: Vec<Instruction> =
        Decoder::with_ip(64, bytes, start, DecoderOptions::NONE).into_iter().collect();
    let mut calls = Vec::new();
    for (at, i) in code.iter().enumerate() {
        let leaves = |t: u64| t < start || t >= start + size;
        let named = match i.flow_control() {
            FlowControl::Call => Some(direct_target(file, i.near_branch_target())),
            FlowControl::UnconditionalBranch if leaves(i.near_branch_target()) => {
                Some(direct_target(file, i.near_branch_target()))
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                let slot = if i.is_ip_rel_memory_operand() {
                    Some(i.ip_rel_memory_address())
                } else if i.op0_kind() == OpKind::Register {
                    loaded_from(&code, at, i.op0_register())
                } else {
                    None
                };
                Some(
                    slot.and_then(|s| got_symbol(file, s))
                        .unwrap_or_else(|| FUNCTION_POINTER.to_owned()),
                )
            }
            _ => None,
        };
        calls.extend(named);
    }
    Ok(calls)
}

/// How a loop's machine code goes through a stack slot on every item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundTripKind {
    /// One instruction reads the slot and writes it back (`inc dword [rsp-4]`).
    ReadModifyWrite,
    /// The loop stores to the slot and loads it again: each item waits for the store to
    /// be forwarded to the load.
    StoreThenLoad,
}

/// A stack slot a loop's body goes through on every item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoundTrip {
    /// How.
    pub kind: RoundTripKind,
    /// The slot, as the code addresses it (`[rbp-0x38]`).
    pub slot: String,
    /// Address of the instruction that writes it.
    pub at: u64,
}

/// A loop in a function's machine code: a backward branch and the code from its target
/// up to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoopBody {
    /// The first instruction's address (the branch's target).
    pub head: u64,
    /// Instructions in the body, the branch included.
    pub instructions: usize,
}

/// One explicit stack access: base register, byte range off it, and how it is used.
struct StackAccess {
    base: Register,
    bytes: std::ops::Range<i64>,
    access: iced_x86::OpAccess,
    at: u64,
}

impl StackAccess {
    fn overlaps(&self, other: &StackAccess) -> bool {
        self.base == other.base
            && self.bytes.start < other.bytes.end
            && other.bytes.start < self.bytes.end
    }

    fn slot(&self) -> String {
        let base = format!("{:?}", self.base).to_lowercase();
        match self.bytes.start {
            0 => format!("[{base}]"),
            d if d < 0 => format!("[{base}-{:#x}]", d.unsigned_abs()),
            d => format!("[{base}+{d:#x}]"),
        }
    }
}

/// The explicit memory operands of `i` addressed off the stack or frame pointer alone
/// (`[rsp+8]`, `[rbp-0x38]`), with how each is used; pushes, pops, calls and returns use
/// the stack implicitly and are not among them.
fn stack_accesses(
    i: &Instruction,
    info: &mut iced_x86::InstructionInfoFactory,
) -> Vec<StackAccess> {
    let on_stack = matches!(i.memory_base(), Register::RSP | Register::RBP)
        && i.memory_index() == Register::None;
    if !on_stack {
        return Vec::new();
    }
    let facts = info.info(i);
    (0..i.op_count())
        .filter(|&k| i.op_kind(k) == OpKind::Memory)
        .map(|k| {
            let start = i.memory_displacement64() as i64;
            StackAccess {
                base: i.memory_base(),
                bytes: start..start + i.memory_size().size().max(1) as i64,
                access: facts.op_access(k),
                at: i.ip(),
            }
        })
        .collect()
}

/// The loops of `code` (a function's instructions): every branch back to an earlier
/// instruction of the same function.
fn loops_of(code: &[Instruction]) -> Vec<(usize, usize)> {
    code.iter()
        .enumerate()
        .filter(|(_, i)| {
            matches!(
                i.flow_control(),
                FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
            ) && i.near_branch_target() <= i.ip()
        })
        .filter_map(|(end, i)| {
            let head = code.iter().position(|h| h.ip() == i.near_branch_target())?;
            Some((head, end))
        })
        .collect()
}

/// The loops of the function whose machine code is `bytes` (at address `ip`), and the
/// stack slots each goes through on every item: a slot both stored and loaded in one
/// loop's body, or read and written by one instruction. A loop that keeps its values in
/// registers has none. Addresses off `rsp` are taken as the loop sees them: a body that
/// moves the stack pointer itself (pushes inside the loop) is read as it is written.
pub(crate) fn stack_round_trips(bytes: &[u8], ip: u64) -> (Vec<LoopBody>, Vec<RoundTrip>) {
    use iced_x86::OpAccess::{CondRead, CondWrite, Read, ReadCondWrite, ReadWrite, Write};
    let code: Vec<Instruction> =
        Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE).into_iter().collect();
    let mut info = iced_x86::InstructionInfoFactory::new();
    let (mut loops, mut trips) = (Vec::new(), Vec::new());
    for (head, end) in loops_of(&code) {
        let body = &code[head..=end];
        loops.push(LoopBody { head: body[0].ip(), instructions: body.len() });
        let accesses: Vec<StackAccess> =
            body.iter().flat_map(|i| stack_accesses(i, &mut info)).collect();
        for a in &accesses {
            let kind = match a.access {
                ReadWrite | ReadCondWrite => Some(RoundTripKind::ReadModifyWrite),
                Write | CondWrite
                    if accesses
                        .iter()
                        .any(|b| matches!(b.access, Read | CondRead) && b.overlaps(a)) =>
                {
                    Some(RoundTripKind::StoreThenLoad)
                }
                _ => None,
            };
            if let Some(kind) = kind {
                let trip = RoundTrip { kind, slot: a.slot(), at: a.at };
                if !trips.contains(&trip) {
                    trips.push(trip);
                }
            }
        }
    }
    (loops, trips)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `body` then `dec rbx; jne <body>; ret`: a loop whose body is `body`.
    fn looped(body: &[u8]) -> Vec<u8> {
        let mut code = body.to_vec();
        code.extend([0x48, 0xff, 0xcb]); // dec rbx
        let back = -(code.len() as i64 + 2);
        code.extend([0x75, back as u8, 0xc3]); // jne body; ret
        code
    }

    fn trips(body: &[u8]) -> Vec<(RoundTripKind, String)> {
        let (loops, trips) = stack_round_trips(&looped(body), 0x1000);
        assert_eq!(loops.len(), 1, "one loop");
        assert_eq!(loops[0].head, 0x1000);
        trips.into_iter().map(|t| (t.kind, t.slot)).collect()
    }

    #[test]
    fn a_loop_in_registers_has_no_round_trip() {
        // inc eax; call r14
        assert_eq!(trips(&[0xff, 0xc0, 0x41, 0xff, 0xd6]), []);
        // movsd xmm1, [rbp-0x20] (a value stored once before the loop, only loaded in it)
        assert_eq!(trips(&[0xf2, 0x0f, 0x10, 0x4d, 0xe0, 0x41, 0xff, 0xd7]), []);
    }

    #[test]
    fn a_value_kept_in_a_stack_slot_is_a_round_trip() {
        // inc dword [rsp-4]: black_box on an inlined `+1`
        assert_eq!(
            trips(&[0xff, 0x44, 0x24, 0xfc]),
            [(RoundTripKind::ReadModifyWrite, "[rsp-0x4]".to_owned())]
        );
        // mov [rsp+4], eax; mov edi, [rsp+4]; call r14: black_box on a call's result
        let stored = [0x89, 0x44, 0x24, 0x04, 0x8b, 0x7c, 0x24, 0x04, 0x41, 0xff, 0xd6];
        assert_eq!(trips(&stored), [(RoundTripKind::StoreThenLoad, "[rsp+0x4]".to_owned())]);
        // mov qword [rbp-0x38], 0; mov r15, [rbp-0x38]: an out-parameter
        let out = [0x48, 0xc7, 0x45, 0xc8, 0, 0, 0, 0, 0x4c, 0x8b, 0x7d, 0xc8];
        assert_eq!(trips(&out), [(RoundTripKind::StoreThenLoad, "[rbp-0x38]".to_owned())]);
    }

    #[test]
    fn different_slots_and_other_memory_are_not_round_trips() {
        // mov [rsp+8], eax; mov edi, [rsp+0x10]: different slots
        let apart = [0x89, 0x44, 0x24, 0x08, 0x8b, 0x7c, 0x24, 0x10];
        assert_eq!(trips(&apart), []);
        // mov [rdi], eax; mov eax, [rdi]: memory the workload owns, not the stack
        assert_eq!(trips(&[0x89, 0x07, 0x8b, 0x07]), []);
        // lea rdx, [rbp-0x38]: an address, no access
        assert_eq!(trips(&[0x48, 0x8d, 0x55, 0xc8]), []);
    }

    #[test]
    fn straight_code_has_no_loop() {
        let (loops, trips) = stack_round_trips(&[0xff, 0x44, 0x24, 0xfc, 0xc3], 0);
        assert!(loops.is_empty() && trips.is_empty());
    }
}
