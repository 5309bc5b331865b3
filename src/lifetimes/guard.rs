//! `lifetimes --guard N`: the program at its own speed, about one allocation in N on
//! guard pages (the heap interposer's guard mode, `csrc/heap/interpose.c`), and what its
//! log says: each fault on a guarded block's pages, and each guarded block whose slack
//! was written, told as memcheck's errors are ([`super::attribute::error_of`]), the
//! block's allocation and free from the same log.

use std::collections::HashMap;

use super::attribute::{error_of, Parts, Told, Touched};
use super::schema::{Access, ErrorKind, LifetimeError};
use crate::memory::log::{flag, Event, Log};
use crate::memory::native::{side_of, Placer};
use crate::memory::replay::Side;
use crate::memory::sites::Placed;
use crate::symbol::FileSymbolizer;

/// A guarded block as the log has it so far.
#[derive(Clone, Copy)]
struct Block {
    alloc: Side,
    size: u64,
}

/// A finding, with the block's sides at its time.
struct Finding {
    kind: ErrorKind,
    access: Option<Access>,
    size: Option<u64>,
    /// Where it was touched: a stack (or a free's side, for a second free).
    touched: Result<(u64, u64), Side>,
    alloc: Option<Side>,
    free: Option<Side>,
    block_size: Option<u64>,
    what: String,
}

/// Bytes the instruction at `at` (an address of the process) reads or writes, decoded from
/// the file mapped there; none where the code cannot be read or the instruction has no
/// memory operand.
fn access_size(log: &Log, at: u64) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let m = log.mapping(at)?;
    let mut file = std::fs::File::open(&m.path).ok()?;
    file.seek(SeekFrom::Start(at - m.range.start + m.offset)).ok()?;
    let mut bytes = [0u8; 15];
    let n = file.read(&mut bytes).ok()?;
    let mut decoder =
        iced_x86::Decoder::with_ip(64, &bytes[..n], at, iced_x86::DecoderOptions::NONE);
    let size = decoder.decode().memory_size().size() as u64;
    (size > 0).then_some(size)
}

/// What the log of one process found, told and gathered.
pub(crate) fn errors(log: &Log, symbolizer: &mut FileSymbolizer) -> Vec<LifetimeError> {
    let cxx = |flags: u32| flags & flag::CXX != 0;
    let mut live: HashMap<u64, Block> = HashMap::new();
    let mut freed: HashMap<u64, (Block, Side, bool)> = HashMap::new();
    let mut found: Vec<Finding> = Vec::new();
    for e in log.events() {
        match e {
            Event::Alloc { ptr, size, stack, ip, flags } => {
                live.insert(ptr, Block { alloc: Side { stack, ip, cxx: cxx(flags) }, size });
                freed.remove(&ptr);
            }
            Event::Free { ptr, stack, ip, flags } => {
                let side = Side { stack, ip, cxx: cxx(flags) };
                if flags & flag::DOUBLE_FREE != 0 {
                    if let Some((block, first, _)) = freed.get(&ptr) {
                        found.push(Finding {
                            kind: ErrorKind::InvalidFree,
                            access: Some(Access::Free),
                            size: None,
                            touched: Err(side),
                            alloc: Some(block.alloc),
                            free: Some(*first),
                            block_size: Some(block.size),
                            what: "a guarded block freed again".into(),
                        });
                    }
                } else if let Some(block) = live.remove(&ptr) {
                    freed.insert(ptr, (block, side, flags & flag::MOVED != 0));
                }
            }
            Event::Realloc { .. } | Event::Release { .. } | Event::Mark { .. } => {}
            Event::Fault { address, block, size, stack, ip, flags } => {
                let access = if flags & flag::WRITE != 0 { Access::Write } else { Access::Read };
                let (kind, alloc, free) = if let Some(b) = live.get(&block) {
                    let kind = if address >= block + b.size {
                        ErrorKind::Overflow
                    } else if address < block {
                        ErrorKind::Underflow
                    } else {
                        ErrorKind::Wild
                    };
                    (kind, Some(b.alloc), None)
                } else if let Some((b, by, moved)) = freed.get(&block) {
                    let kind =
                        if *moved { ErrorKind::UseAfterMove } else { ErrorKind::UseAfterFree };
                    (kind, Some(b.alloc), Some(*by))
                } else {
                    (ErrorKind::Wild, None, None)
                };
                found.push(Finding {
                    kind,
                    access: Some(access),
                    // The log keeps one past the faulting instruction, as a return address.
                    size: access_size(log, ip - 1),
                    touched: Ok((stack, ip)),
                    alloc,
                    free,
                    block_size: Some(size),
                    what: format!("a fault at {address:#x} on a guarded block's pages"),
                });
            }
            Event::Slack { block, size, offset, stack: _, ip: _ } => {
                let Some((b, by, _)) = freed.get(&block) else { continue };
                let kind = if offset > 0 { ErrorKind::Overflow } else { ErrorKind::Underflow };
                found.push(Finding {
                    kind,
                    access: Some(Access::Write),
                    size: None,
                    touched: Err(*by),
                    alloc: Some(b.alloc),
                    free: Some(*by),
                    block_size: Some(size),
                    what: format!(
                        "the slack {offset} bytes from the block's start was written, found at \
                         its free"
                    ),
                });
            }
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let sides = found.iter().flat_map(|f| {
        let own = f.touched.err();
        [f.alloc, f.free, own].into_iter().flatten()
    });
    let returns: crate::memory::log::FastSet<u64> = sides.clone().map(|s| s.ip).collect();
    let stack_ips =
        |stack: u64, ip: u64| log.stacks.get(&stack).cloned().unwrap_or_else(|| vec![ip]);
    let mut addresses: Vec<u64> = returns.iter().copied().collect();
    for s in sides {
        addresses.extend(stack_ips(s.stack, s.ip));
    }
    for f in &found {
        if let Ok((stack, ip)) = f.touched {
            addresses.extend(stack_ips(stack, ip));
        }
    }
    let placer = Placer::new(log, addresses.into_iter(), &returns, symbolizer);
    let told = |side: &Side| {
        let (attributed, why) = side_of(log, &placer, side);
        let family = why.map_or(Ok(attributed.family), Err);
        Told { attributed, family }
    };
    let errors = found.into_iter().map(|f| {
        let touched = match f.touched {
            Ok((stack, ip)) => {
                let frames: Vec<Placed> =
                    placer.placed(&stack_ips(stack, ip)).into_iter().cloned().collect();
                Touched::Access(frames)
            }
            Err(side) if f.kind == ErrorKind::InvalidFree => Touched::Free(told(&side)),
            // Slack written: who wrote it is not known, only who freed the block.
            Err(_) => Touched::Access(Vec::new()),
        };
        error_of(Parts {
            kind: f.kind,
            access: f.access,
            size: f.size,
            touched,
            alloc: f.alloc.as_ref().map(told),
            free: f.free.as_ref().map(told),
            block_size: f.block_size,
            count: 1,
            what: f.what,
        })
    });
    errors.collect()
}
