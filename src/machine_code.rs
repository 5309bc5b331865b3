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
fn code_at<'d>(file: &object::File<'d>, address: u64, len: u64) -> Option<&'d [u8]> {
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
