//! The heap interposer's log, read (`csrc/heap/interpose.c` writes it, one file per
//! process): records of 64-bit words, each a header (`kind | words << 8 | flags << 32`)
//! and its body, in the order the heap changed. A zero header ends the log; a log without
//! its end record is of a process that did not reach `exit` (killed by a signal, `_exit`,
//! or an exec), and holds what it did up to then; a lost record says the log could not
//! grow, and a last record cut short is read up to its start ([`Ending`]).

use std::hash::{BuildHasherDefault, Hasher};
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
const LOST: u64 = 9;
const FAULT: u64 = 10;
const SLACK: u64 = 11;
const MARK: u64 = 12;

/// The bytes the interposer maps at a time; a record never crosses one.
const CHUNK: usize = 16 << 20;

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
    /// A free that `realloc` made: it moved the block.
    pub(crate) const MOVED: u32 = 16;
    /// A fault's access was a write.
    pub(crate) const WRITE: u32 = 64;
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
    /// Guard mode: an access faulted on a guarded block's pages (`address`), the block at
    /// `block` of `size` bytes; `stack` from the faulting instruction `ip`.
    Fault { address: u64, block: u64, size: u64, stack: u64, ip: u64, flags: u32 },
    /// Guard mode: a guarded block's slack was found written at its free, first at
    /// `offset` from its start (negative before it).
    Slack { block: u64, size: u64, offset: i64, stack: u64, ip: u64 },
    /// A mark the program put in the log (`ffiprof_heap_mark`): batches' bounds.
    Mark { id: u64 },
}

impl Event {
    /// The return address (or faulting instruction) the event carries.
    pub(crate) fn ip(&self) -> u64 {
        match *self {
            Event::Alloc { ip, .. }
            | Event::Free { ip, .. }
            | Event::Realloc { ip, .. }
            | Event::Fault { ip, .. }
            | Event::Slack { ip, .. } => ip,
            Event::Mark { .. } => 0,
        }
    }
}

/// How a log ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its end record: the process reached `exit`.
    Exit,
    /// No end record: the process stopped without `exit` (a signal, `_exit`, or an exec
    /// into another program).
    #[default]
    Stopped,
    /// The interposer could not grow the log (a full disk or tmpfs, the file size limit):
    /// the program went on unlogged from there.
    Lost,
    /// Its last record is cut short (the process was stopped as it wrote it).
    Cut,
}

/// The log's bytes: mapped from its file, or owned (tests).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn get(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One process's log: its stacks, mappings and command read once, its events read from
/// the file each time they are walked ([`Log::events`]): a log of hundreds of millions of
/// events is replayed in the memory its live blocks and distinct stacks take.
pub(crate) struct Log {
    /// The process.
    pub(crate) pid: Pid,
    /// Which program the process ran, counting from 0, where it ran several (exec).
    pub(crate) image: u32,
    /// Its command line, arguments joined by spaces.
    pub(crate) command: String,
    /// Stacks by number: return addresses, innermost first.
    pub(crate) stacks: Fast<u64, Vec<u64>>,
    /// Its executable mappings, the latest reading of each address range last.
    pub(crate) mappings: Vec<Mapping>,
    /// How it ends.
    pub(crate) ending: Ending,
    /// Its events.
    pub(crate) event_count: u64,
    bytes: Bytes,
    /// Where its records end (in words).
    end: usize,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("pid", &self.pid)
            .field("image", &self.image)
            .field("ending", &self.ending)
            .field("event_count", &self.event_count)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// The mapping `address` lay in (the latest one read that covers it).
    pub(crate) fn mapping(&self, address: u64) -> Option<&Mapping> {
        self.mappings.iter().rev().find(|m| m.range.contains(&address))
    }

    /// Every event, in order, read from the log's bytes (pages of a mapped file let go
    /// once read past).
    pub(crate) fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let map = match &self.bytes {
            Bytes::Mapped(m) => Some(m),
            Bytes::Owned(_) => None,
        };
        let records = Records { bytes: self.bytes.get(), at: 0, end: self.end, map, released: 0 };
        records.filter_map(|r| r.event())
    }
}

fn text(words: &[u64]) -> String {
    let len = words.first().copied().unwrap_or(0) as usize;
    let bytes: Vec<u8> = words[1..].iter().flat_map(|w| w.to_le_bytes()).take(len).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One record, read where it lies.
struct Record<'b> {
    kind: u64,
    flags: u32,
    bytes: &'b [u8],
    /// Its body's first word and length, in words.
    at: usize,
    len: usize,
}

impl Record<'_> {
    fn word(&self, i: usize) -> u64 {
        let at = (self.at + i) * 8;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    fn body(&self) -> Vec<u64> {
        (0..self.len).map(|i| self.word(i)).collect()
    }

    /// The words an event of this kind needs.
    fn needs(&self) -> usize {
        match self.kind {
            ALLOC => 4,
            FREE => 3,
            REALLOC => 5,
            FAULT | SLACK => 5,
            MARK => 1,
            STACK => 1,
            _ => 0,
        }
    }

    fn event(&self) -> Option<Event> {
        let (b, flags) = (|i| self.word(i), self.flags);
        Some(match self.kind {
            ALLOC => Event::Alloc { ptr: b(0), size: b(1), stack: b(2), ip: b(3), flags },
            FREE => Event::Free { ptr: b(0), stack: b(1), ip: b(2), flags },
            REALLOC => Event::Realloc { old: b(0), new: b(1), size: b(2), ip: b(4), flags },
            FAULT => Event::Fault {
                address: b(0),
                block: b(1),
                size: b(2),
                stack: b(3),
                ip: b(4),
                flags,
            },
            SLACK => {
                Event::Slack { block: b(0), size: b(1), offset: b(2) as i64, stack: b(3), ip: b(4) }
            }
            MARK => Event::Mark { id: b(0) },
            _ => return None,
        })
    }
}

/// The records of a log's bytes up to `end` (words), chunk skips followed; the pages of
/// `map` read past are let go a window at a time.
struct Records<'b> {
    bytes: &'b [u8],
    at: usize,
    end: usize,
    map: Option<&'b memmap2::Mmap>,
    /// Bytes let go so far.
    released: usize,
}

/// How much of a mapped log is read before the pages behind are let go.
const WINDOW: usize = 32 << 20;

impl<'b> Iterator for Records<'b> {
    type Item = Record<'b>;

    fn next(&mut self) -> Option<Record<'b>> {
        if let Some(map) = self.map.filter(|_| self.at * 8 >= self.released + 2 * WINDOW) {
            crate::ffi::release_pages(map, self.released, WINDOW);
            self.released += WINDOW;
        }
        loop {
            if self.at >= self.end {
                return None;
            }
            let at = self.at * 8;
            let header = u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"));
            let (kind, words, flags) =
                (header & 0xff, ((header >> 8) & 0xff_ffff) as usize, (header >> 32) as u32);
            if kind == SKIP {
                self.at = (self.at * 8 / CHUNK + 1) * CHUNK / 8;
                continue;
            }
            let record = Record { kind, flags, bytes: self.bytes, at: self.at + 1, len: words - 1 };
            self.at += words;
            return Some(record);
        }
    }
}

/// Reads the log in `bytes`, of process `pid`: checks every record, keeps the stacks,
/// mappings and command, and where the records end. A last record cut short ends the log
/// there ([`Ending::Cut`]); a malformed one before it is an error.
fn parse_bytes(bytes: Bytes, pid: Pid, image: u32) -> std::result::Result<Log, String> {
    let data = bytes.get();
    let word = |i: usize| -> u64 {
        u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    };
    let total = data.len() / 8;
    let mut log = Log {
        pid,
        image,
        command: String::new(),
        stacks: Default::default(),
        mappings: Vec::new(),
        ending: Ending::Stopped,
        event_count: 0,
        bytes: Bytes::Owned(Vec::new()),
        end: 0,
    };
    let mut at = 0usize;
    let mut released = 0usize;
    while at < total {
        if let Bytes::Mapped(map) = &bytes {
            if at * 8 >= released + 2 * WINDOW {
                crate::ffi::release_pages(map, released, WINDOW);
                released += WINDOW;
            }
        }
        let header = word(at);
        if header == 0 {
            break;
        }
        let (kind, words) = (header & 0xff, ((header >> 8) & 0xff_ffff) as usize);
        if kind == SKIP {
            at = (at * 8 / CHUNK + 1) * CHUNK / 8;
            continue;
        }
        if words == 0 {
            return Err(format!("a record at byte {} has no length", at * 8));
        }
        if at + words > total {
            // Written as the process stopped, or the file cut: read up to here.
            log.ending = Ending::Cut;
            break;
        }
        let record = Record { kind, flags: 0, bytes: data, at: at + 1, len: words - 1 };
        if record.len < record.needs() {
            return Err(format!("a record of kind {kind} at byte {} is short", at * 8));
        }
        match kind {
            ALLOC | FREE | REALLOC | FAULT | SLACK | MARK => log.event_count += 1,
            STACK => {
                let body = record.body();
                log.stacks.insert(body[0], body[1..].to_vec());
            }
            MAPS => log.mappings.extend(executable_mappings(&text(&record.body()))),
            CMD => log.command = text(&record.body()).trim_end_matches('\0').replace('\0', " "),
            END => log.ending = Ending::Exit,
            LOST => {
                log.ending = Ending::Lost;
                at += words;
                break;
            }
            _ => return Err(format!("a record of unknown kind {kind} at byte {}", at * 8)),
        }
        at += words;
    }
    log.end = at;
    log.bytes = bytes;
    Ok(log)
}

/// Reads the log in `bytes`, of process `pid` (tests).
/// A hasher for addresses and stack numbers (a multiply and a shift, as in rustc's
/// FxHash): the replay looks up a block per event, and SipHash's resistance to chosen
/// keys buys nothing for a program's own addresses.
#[derive(Default)]
pub(crate) struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// A map whose keys are addresses, stack numbers or sides, hashed as [`AddressHasher`]
/// hashes them: looked up once per event of the log.
pub(crate) type Fast<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<AddressHasher>>;

/// A set hashed as [`Fast`] is.
pub(crate) type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<AddressHasher>>;

#[cfg(test)]
pub(crate) fn parse(bytes: &[u8], pid: Pid) -> std::result::Result<Log, String> {
    parse_bytes(Bytes::Owned(bytes.to_vec()), pid, 0)
}

/// The pid and image of a log's file name (`heap.<pid>.<image>.log`).
pub(crate) fn named(path: &Path) -> Option<(Pid, u32)> {
    let name = path.file_name()?.to_str()?.strip_prefix("heap.")?.strip_suffix(".log")?;
    let (pid, image) = name.split_once('.')?;
    Some((Pid(pid.parse().ok()?), image.parse().ok()?))
}

/// Reads the log at `path` (`heap.<pid>.<image>.log`).
pub(crate) fn read(path: &Path) -> Result<Log> {
    let (pid, image) = named(path).unwrap_or((Pid(0), 0));
    // Mapped: the file is as long as the chunks the interposer mapped, mostly zeros that
    // are never read.
    let read_error = |source| Error::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let bytes = crate::ffi::map_file(&file).map_err(read_error)?;
    parse_bytes(Bytes::Mapped(bytes), pid, image).map_err(|reason| {
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
        assert_eq!(log.ending, Ending::Exit);
        assert_eq!(log.stacks[&1], vec![0x55d8, 0x55d9]);
        assert_eq!(log.mapping(0x55d8).unwrap().path, "/usr/bin/x");
        assert_eq!(log.event_count, 3);
        assert_eq!(
            log.events().collect::<Vec<_>>(),
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
        assert_eq!(log.ending, Ending::Stopped);
        assert_eq!(log.events().count(), 2);
        let mut torn = words.clone();
        torn.truncate(words.len() - 1);
        let log = parse(&bytes(&torn), Pid(7)).unwrap();
        assert_eq!((log.ending, log.events().count()), (Ending::Cut, 1));
        // A record of an unknown kind is not a log of this interposer.
        assert!(parse(&bytes(&record(42, 0, &[1])), Pid(7)).is_err());
        // A lost record: the log could not grow; nothing after it is read.
        let mut lost = record(ALLOC, 1, &[0x1000, 24, 0, 0x55d8]);
        lost.extend(record(LOST, 0, &[]));
        lost.extend(record(FREE, 0, &[0x1000, 0, 0x55d9]));
        let log = parse(&bytes(&lost), Pid(7)).unwrap();
        assert_eq!((log.ending, log.events().count()), (Ending::Lost, 1));
    }

    /// Writes a log of `pairs` allocations and frees to `path` as the interposer lays it
    /// out: chunks of [`CHUNK`] bytes, a skip record where the next record would not fit
    /// (the interposer keeps a chunk's last word for a lost record). At most 64 blocks
    /// are live at once; 8 stacks.
    fn write_log(path: &Path, pairs: u64) {
        use std::io::Write;
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        let chunk_words = (CHUNK / 8) as u64;
        let mut pos = 0u64;
        let mut put = |r: &[u64], out: &mut std::io::BufWriter<std::fs::File>| {
            let n = r.len() as u64;
            if pos % chunk_words + n > chunk_words - 1 {
                let skip = SKIP | (1 << 8);
                let pad = chunk_words - pos % chunk_words;
                out.write_all(&skip.to_le_bytes()).unwrap();
                out.write_all(&vec![0u8; ((pad - 1) * 8) as usize]).unwrap();
                pos += pad;
            }
            for w in r {
                out.write_all(&w.to_le_bytes()).unwrap();
            }
            pos += n;
        };
        for s in 1..=8u64 {
            put(&record(STACK, 0, &[s, 0x1000 + s, 0x2000]), &mut out);
        }
        for i in 0..pairs {
            let ptr = 0x10_0000 + (i % 64) * 0x100;
            put(&record(ALLOC, 1, &[ptr, 16 + i % 32, 1 + i % 8, 0x1000 + 1 + i % 8]), &mut out);
            put(&record(FREE, 0, &[ptr, 0, 0x3000]), &mut out);
        }
        put(&record(END, 0, &[]), &mut out);
        out.flush().unwrap();
    }

    /// The bytes of `pairs` allocations of `16 + i % 32` bytes.
    fn bytes_of(pairs: u64) -> u64 {
        (0..pairs).map(|i| 16 + i % 32).sum()
    }

    #[test]
    fn a_log_over_64_mib_is_replayed_whole_from_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("heap.7.0.log");
        // 9 words a pair: 1 000 000 pairs are 72 MB, five chunks.
        let pairs = 1_000_000;
        write_log(&path, pairs);
        assert!(std::fs::metadata(&path).unwrap().len() > 64 << 20);
        let log = read(&path).unwrap();
        assert_eq!((log.pid, log.image, log.ending), (Pid(7), 0, Ending::Exit));
        assert_eq!(log.event_count, 2 * pairs);
        let r = crate::memory::replay::replay(log.events(), 0);
        assert_eq!((r.totals.blocks, r.totals.bytes), (pairs, bytes_of(pairs)));
        assert_eq!((r.totals.blocks_at_exit, r.totals.bytes_at_exit), (0, 0));
        assert_eq!(r.pairs.values().map(|c| c.blocks).sum::<u64>(), pairs);
    }

    /// More than 100 million events from a 3.6 GB file, replayed in the memory the live
    /// blocks and stacks take: run by hand (`cargo test --release --lib -- --ignored
    /// hundred_million`); it prints the peak resident set before and after.
    #[test]
    #[ignore = "writes 3.6 GB; run by hand"]
    fn a_hundred_million_events_are_replayed_in_bounded_memory() {
        // The peak resident set, in KiB.
        let peak = || -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmHWM")).unwrap().to_owned();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("heap.7.0.log");
        let pairs = 50_500_000;
        write_log(&path, pairs);
        eprintln!(
            "written: peak {} KiB, {} bytes",
            peak(),
            std::fs::metadata(&path).unwrap().len()
        );
        let log = read(&path).unwrap();
        let r = crate::memory::replay::replay(log.events(), 0);
        assert_eq!((r.totals.blocks, r.totals.bytes), (pairs, bytes_of(pairs)));
        eprintln!("replayed {} events: peak {} KiB", log.event_count, peak());
        assert!(log.event_count > 100_000_000);
        // The file is 3.6 GB; what stays resident is a few windows of it.
        assert!(peak() < 256 << 10, "{} KiB", peak());
    }

    #[test]
    fn a_logs_name_says_its_process_and_image() {
        assert_eq!(named(Path::new("/x/heap.42.1.log")), Some((Pid(42), 1)));
        assert_eq!(named(Path::new("/x/heap.42.log")), None);
    }
}
