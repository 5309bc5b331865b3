//! The heap interposer's log, read (`csrc/heap/interpose.c` writes it, one file per
//! process): records of 64-bit words, each a header (`kind | words << 8 | flags << 32`)
//! and its body, in the order the heap changed. A zero header ends the log; a log without
//! its end record is of a process that did not reach `exit` (killed by a signal, or
//! `_exit`), and holds what it did up to then.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ids::Pid;
use crate::maps::{executable_mappings, Mapping};

const ALLOC: u64 = 1;
const FREE: u64 = 2;
const REALLOC: u64 = 3;
const STACK: u64 = 4;
const MAPS: u64 = 5;
const CMD: u64 = 6;
const SKIP: u64 = 7;
const END: u64 = 8;

/// The bytes the interposer maps at a time; a record never crosses one.
const CHUNK: usize = 64 << 20;

/// Event flags, as the interposer sets them.
pub(crate) mod flag {
    /// The allocation's stack was kept (every one, unless sampling).
    pub(crate) const SAMPLED: u32 = 1;
    /// Called through C++'s operator new or delete.
    pub(crate) const CXX: u32 = 2;
    /// A free of a block already freed.
    pub(crate) const DOUBLE_FREE: u32 = 4;
    /// A free of an address never allocated (as far as the interposer saw).
    pub(crate) const NEVER_ALLOCATED: u32 = 8;
}

/// What happened to the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A block came out of the allocator.
    Alloc { ptr: u64, size: u64, stack: u64, ip: u64, flags: u32 },
    /// A block is given back.
    Free { ptr: u64, stack: u64, ip: u64, flags: u32 },
    /// A block changed size (and maybe address).
    Realloc { old: u64, new: u64, size: u64, ip: u64, flags: u32 },
}

/// One process's log.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// The process.
    pub(crate) pid: Pid,
    /// Its command line, arguments joined by spaces.
    pub(crate) command: String,
    /// Every event, in order.
    pub(crate) events: Vec<Event>,
    /// Stacks by number: return addresses, innermost first.
    pub(crate) stacks: HashMap<u64, Vec<u64>>,
    /// Its executable mappings, the latest reading of each address range last.
    pub(crate) mappings: Vec<Mapping>,
    /// False where the process never reached `exit`.
    pub(crate) complete: bool,
}

impl Log {
    /// The mapping `address` lay in (the latest one read that covers it).
    pub(crate) fn mapping(&self, address: u64) -> Option<&Mapping> {
        self.mappings.iter().rev().find(|m| m.range.contains(&address))
    }
}

fn text(words: &[u64]) -> String {
    let len = words.first().copied().unwrap_or(0) as usize;
    let bytes: Vec<u8> = words[1..].iter().flat_map(|w| w.to_le_bytes()).take(len).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads the log in `bytes`, of process `pid`.
pub(crate) fn parse(bytes: &[u8], pid: Pid) -> std::result::Result<Log, String> {
    let word = |i: usize| -> u64 {
        u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    };
    let total = bytes.len() / 8;
    let mut log = Log { pid, ..Log::default() };
    let mut at = 0usize;
    while at < total {
        let header = word(at);
        if header == 0 {
            break;
        }
        let (kind, words, flags) =
            (header & 0xff, ((header >> 8) & 0xff_ffff) as usize, (header >> 32) as u32);
        if kind == SKIP {
            at = (at * 8 / CHUNK + 1) * CHUNK / 8;
            continue;
        }
        if words == 0 || at + words > total {
            return Err(format!("a record at byte {} runs past the end", at * 8));
        }
        let len = words - 1;
        let need = |n: usize| {
            if len < n {
                Err(format!("a record of kind {kind} at byte {} is short", at * 8))
            } else {
                Ok(())
            }
        };
        // The body's words, read where they lie (millions of events: no copy each).
        let b = |i: usize| word(at + 1 + i);
        let body = || (at + 1..at + words).map(word).collect::<Vec<u64>>();
        match kind {
            ALLOC => {
                need(4)?;
                log.events.push(Event::Alloc {
                    ptr: b(0),
                    size: b(1),
                    stack: b(2),
                    ip: b(3),
                    flags,
                });
            }
            FREE => {
                need(3)?;
                log.events.push(Event::Free { ptr: b(0), stack: b(1), ip: b(2), flags });
            }
            REALLOC => {
                need(5)?;
                log.events.push(Event::Realloc {
                    old: b(0),
                    new: b(1),
                    size: b(2),
                    ip: b(4),
                    flags,
                });
            }
            STACK => {
                need(1)?;
                log.stacks.insert(b(0), body()[1..].to_vec());
            }
            MAPS => log.mappings.extend(executable_mappings(&text(&body()))),
            CMD => log.command = text(&body()).trim_end_matches('\0').replace('\0', " "),
            END => log.complete = true,
            _ => return Err(format!("a record of unknown kind {kind} at byte {}", at * 8)),
        }
        at += words;
    }
    Ok(log)
}

/// Reads the log at `path` (`heap.<pid>.log`).
pub(crate) fn read(path: &Path) -> Result<Log> {
    let pid = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("heap.")?.strip_suffix(".log")?.parse().ok())
        .map_or(Pid(0), Pid);
    // Mapped: the file is as long as the chunks the interposer mapped, mostly zeros that
    // are never read.
    let read_error = |source| Error::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let bytes = crate::ffi::map_file(&file).map_err(read_error)?;
    parse(&bytes, pid).map_err(|reason| {
        Error::Internal(format!("the heap log {} is unreadable: {reason}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u64, flags: u64, body: &[u64]) -> Vec<u64> {
        let mut r = vec![kind | ((body.len() as u64 + 1) << 8) | (flags << 32)];
        r.extend_from_slice(body);
        r
    }

    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn reads_events_stacks_and_the_end() {
        let maps = "55d0-55e0 r-xp 00001000 fd:01 42 /usr/bin/x\n";
        let mut m = vec![maps.len() as u64];
        let mut b = maps.as_bytes().to_vec();
        b.resize(b.len().div_ceil(8) * 8, 0);
        m.extend(b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())));
        let mut words = record(MAPS, 0, &m);
        words.extend(record(STACK, 0, &[1, 0x55d8, 0x55d9]));
        words.extend(record(ALLOC, 1, &[0x1000, 24, 1, 0x55d8]));
        words.extend(record(REALLOC, 0, &[0x1000, 0x2000, 48, 0, 0x55d8]));
        words.extend(record(FREE, 4, &[0x2000, 0, 0x55d9]));
        words.extend(record(END, 0, &[]));
        words.extend([0, 0]);
        let log = parse(&bytes(&words), Pid(7)).unwrap();
        assert!(log.complete);
        assert_eq!(log.stacks[&1], vec![0x55d8, 0x55d9]);
        assert_eq!(log.mapping(0x55d8).unwrap().path, "/usr/bin/x");
        assert_eq!(
            log.events,
            vec![
                Event::Alloc { ptr: 0x1000, size: 24, stack: 1, ip: 0x55d8, flags: flag::SAMPLED },
                Event::Realloc { old: 0x1000, new: 0x2000, size: 48, ip: 0x55d8, flags: 0 },
                Event::Free { ptr: 0x2000, stack: 0, ip: 0x55d9, flags: flag::DOUBLE_FREE },
            ]
        );
    }

    #[test]
    fn a_log_cut_short_is_read_to_its_last_whole_record() {
        let mut words = record(ALLOC, 1, &[0x1000, 24, 0, 0x55d8]);
        words.extend(record(FREE, 0, &[0x1000, 0, 0x55d9]));
        let log = parse(&bytes(&words), Pid(7)).unwrap();
        assert!(!log.complete);
        assert_eq!(log.events.len(), 2);
        let mut torn = words.clone();
        torn.truncate(words.len() - 1);
        assert!(parse(&bytes(&torn), Pid(7)).is_err());
    }
}
