//! The heap interposer's log, read (`csrc/heap/interpose.c` writes it, one file per
//! process): chunks of [`CHUNK`] bytes, each written by one thread, of records of 64-bit
//! words, each a header (`kind | words << 8 | flags << 32`) and its body, whose first word
//! is the record's number in a sequence the process's threads share. A zero header ends a
//! chunk's records. The chunks are merged by that number: the order the heap changed in.
//! A log without its end record is of a process that did not reach `exit` (killed by a
//! signal, `_exit`, or an exec), and holds what it did up to then; a lost record says the
//! log could not grow from there on, and a record cut short ends its chunk ([`Ending`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
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
const END: u64 = 8;
const LOST: u64 = 9;
const FAULT: u64 = 10;
const SLACK: u64 = 11;
const MARK: u64 = 12;

/// The bytes of a chunk: the interposer maps one at a time for a thread; a record never
/// crosses one.
const CHUNK: usize = 1 << 20;

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
    /// A block changed size (and maybe address). Where it moved, its old address was
    /// released before, by the [`Event::Release`] of the same `token` (0: it did not move).
    Realloc { old: u64, new: u64, size: u64, ip: u64, flags: u32, token: u64 },
    /// `realloc` released the block at `old` (another thread may be given the address from
    /// here on); it comes back, moved, at the [`Event::Realloc`] of the same `token`.
    Release { old: u64, token: u64 },
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
            Event::Mark { .. } | Event::Release { .. } => 0,
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

/// Where the log's bytes are: its file, read a chunk at a time (read, not mapped: on a
/// virtual machine a page fault costs more than copying the page), or owned (tests).
enum Source {
    File(std::fs::File, usize),
    Owned(Vec<u8>),
}

impl Source {
    /// Its length in words.
    fn words(&self) -> usize {
        match self {
            Source::File(_, len) => len / 8,
            Source::Owned(v) => v.len() / 8,
        }
    }

    /// Reads the words `[start, end)` into `buf`.
    fn read(&self, start: usize, end: usize, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.resize((end - start) * 8, 0);
        match self {
            Source::File(file, _) => {
                std::os::unix::fs::FileExt::read_exact_at(file, buf, (start * 8) as u64)
            }
            Source::Owned(v) => {
                buf.copy_from_slice(&v[start * 8..end * 8]);
                Ok(())
            }
        }
    }
}

/// A chunk's records: the words `[start, end)`, numbered from `first` on.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    first: u64,
    start: usize,
    end: usize,
}

/// One process's log: its stacks, mappings and command read once, its events read from
/// the file each time they are walked ([`Log::events`]): a log of hundreds of millions of
/// events is replayed in the memory its live blocks and distinct stacks take, and a few
/// pages of each thread's chunk being read.
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
    source: Source,
    /// Its chunks, by the number of their first record.
    chunks: Vec<Chunk>,
    /// Records numbered from here on are after the end (or were lost).
    limit: u64,
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

    /// Every event, in order: the threads' chunks merged by their records' numbers, each
    /// chunk read when the merge reaches it and let go once read.
    pub(crate) fn events(&self) -> impl Iterator<Item = Event> + '_ {
        Merge {
            source: &self.source,
            chunks: &self.chunks,
            admitted: 0,
            buffers: Vec::new(),
            idle: Vec::new(),
            cursors: BinaryHeap::new(),
            deferred: BinaryHeap::new(),
            limit: self.limit,
        }
    }
}

fn text(words: &[u64]) -> String {
    let len = words.get(1).copied().unwrap_or(0) as usize;
    let bytes: Vec<u8> = words[2..].iter().flat_map(|w| w.to_le_bytes()).take(len).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn word(bytes: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
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
        word(self.bytes, self.at + i)
    }

    /// Its number in the process's sequence.
    fn seq(&self) -> u64 {
        self.word(0)
    }

    fn body(&self) -> Vec<u64> {
        (0..self.len).map(|i| self.word(i)).collect()
    }

    /// The words a record of this kind needs.
    fn needs(&self) -> usize {
        match self.kind {
            ALLOC => 5,
            FREE => 4,
            REALLOC | FAULT | SLACK => 6,
            MARK | STACK | MAPS | CMD => 2,
            _ => 1,
        }
    }

    fn is_event(&self) -> bool {
        matches!(self.kind, ALLOC | FREE | REALLOC | FAULT | SLACK | MARK)
    }

    fn event(&self) -> Option<Event> {
        let (b, flags) = (|i| self.word(i), self.flags);
        Some(match self.kind {
            ALLOC => Event::Alloc { ptr: b(1), size: b(2), stack: b(3), ip: b(4), flags },
            FREE => Event::Free { ptr: b(1), stack: b(2), ip: b(3), flags },
            REALLOC => {
                let (old, new) = (b(1), b(2));
                let token = if old != new { b(0) } else { 0 };
                Event::Realloc { old, new, size: b(3), ip: b(5), flags, token }
            }
            FAULT => Event::Fault {
                address: b(1),
                block: b(2),
                size: b(3),
                stack: b(4),
                ip: b(5),
                flags,
            },
            SLACK => {
                Event::Slack { block: b(1), size: b(2), offset: b(3) as i64, stack: b(4), ip: b(5) }
            }
            MARK => Event::Mark { id: b(1) },
            _ => return None,
        })
    }
}

/// The record at word `at` of `bytes`, where one is: `Ok(None)` where the chunk's records
/// end (a zero header, or the chunk's end), `Err` where its header is malformed or it
/// runs past `limit` (cut short).
fn record_at(bytes: &[u8], at: usize, limit: usize) -> std::result::Result<Option<Record<'_>>, At> {
    if at >= limit {
        return Ok(None);
    }
    let header = word(bytes, at);
    if header == 0 {
        return Ok(None);
    }
    let (kind, words, flags) =
        (header & 0xff, ((header >> 8) & 0xff_ffff) as usize, (header >> 32) as u32);
    if words == 0 {
        return Err(At::Malformed(format!("a record at byte {} has no length", at * 8)));
    }
    if at + words > limit {
        return Err(At::Cut);
    }
    let record = Record { kind, flags, bytes, at: at + 1, len: words - 1 };
    if record.len < record.needs() {
        return Err(At::Malformed(format!("a record of kind {kind} at byte {} is short", at * 8)));
    }
    Ok(Some(record))
}

/// What is wrong at a record.
enum At {
    /// Written as the process stopped, or the file cut.
    Cut,
    Malformed(String),
}

/// The threads' chunks merged by their records' numbers. A chunk joins the merge when
/// the merge reaches its first number, read into a buffer of its own that serves another
/// chunk once this one is read: as many chunks are held at once as threads were writing
/// at the time.
struct Merge<'b> {
    source: &'b Source,
    chunks: &'b [Chunk],
    /// Chunks that joined so far (in order of their first numbers).
    admitted: usize,
    /// The open chunks' bytes.
    buffers: Vec<Vec<u8>>,
    /// Buffers whose chunk is read.
    idle: Vec<usize>,
    /// Each open chunk's next record: (its number, its buffer, where the record is and
    /// where the chunk's records end, in words of the buffer).
    cursors: BinaryHeap<Reverse<(u64, usize, usize, usize)>>,
    /// A moved block's arrival, waiting for its number.
    deferred: BinaryHeap<Reverse<(u64, DeferredRealloc)>>,
    limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct DeferredRealloc {
    old: u64,
    new: u64,
    size: u64,
    ip: u64,
    flags: u32,
    token: u64,
}

impl Merge<'_> {
    fn next_seq(&self) -> Option<u64> {
        let a = self.cursors.peek().map(|Reverse(c)| c.0);
        let b = self.deferred.peek().map(|Reverse(d)| d.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reads chunk `c` into a buffer and puts its first record in the merge. A chunk that
    /// can no longer be read (its file cut since it was checked) ends there.
    fn admit(&mut self, c: Chunk) {
        let slot = self.idle.pop().unwrap_or_else(|| {
            self.buffers.push(Vec::new());
            self.buffers.len() - 1
        });
        if self.source.read(c.start, c.end, &mut self.buffers[slot]).is_ok() {
            self.open(slot, 0, c.end - c.start);
        } else {
            self.idle.push(slot);
        }
    }

    /// Puts the record at `at` of buffer `slot` (whose records end at `end`) in the merge,
    /// or gives the buffer back where they end.
    fn open(&mut self, slot: usize, at: usize, end: usize) {
        match record_at(&self.buffers[slot], at, end) {
            Ok(Some(r)) => self.cursors.push(Reverse((r.seq(), slot, at, end))),
            _ => self.idle.push(slot),
        }
    }
}

impl Iterator for Merge<'_> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            // Every chunk whose first record comes before the merge's next one joins it.
            while let Some(c) = self.chunks.get(self.admitted) {
                if self.next_seq().is_some_and(|s| s < c.first) {
                    break;
                }
                self.admitted += 1;
                self.admit(*c);
            }
            let seq = self.next_seq()?;
            if seq >= self.limit {
                return None;
            }
            if self.deferred.peek().is_some_and(|Reverse(d)| d.0 == seq) {
                let Reverse((_, d)) = self.deferred.pop().expect("peeked");
                return Some(Event::Realloc {
                    old: d.old,
                    new: d.new,
                    size: d.size,
                    ip: d.ip,
                    flags: d.flags,
                    token: d.token,
                });
            }
            let Reverse((_, slot, at, end)) = self.cursors.pop().expect("a cursor");
            let Ok(Some(record)) = record_at(&self.buffers[slot], at, end) else { continue };
            let arrives = if record.kind == REALLOC { record.word(4) } else { 0 };
            let (event, next) = (record.event(), at + 1 + record.len);
            self.open(slot, next, end);
            match event {
                // Moved: the old address is released at the first number, the block
                // arrives at the second.
                Some(Event::Realloc { old, new, size, ip, flags, token }) if token != 0 => {
                    let d = DeferredRealloc { old, new, size, ip, flags, token };
                    self.deferred.push(Reverse((arrives, d)));
                    return Some(Event::Release { old, token });
                }
                Some(e) => return Some(e),
                None => continue,
            }
        }
    }
}

/// Reads the log in `source`, of process `pid`: checks every record, keeps the stacks,
/// mappings and command, and where each chunk's records end. A record cut short ends its
/// chunk there ([`Ending::Cut`]); a malformed one is an error.
fn parse(source: Source, pid: Pid, image: u32) -> std::result::Result<Log, String> {
    let total = source.words();
    let chunk_words = CHUNK / 8;
    let mut log = Log {
        pid,
        image,
        command: String::new(),
        stacks: Default::default(),
        mappings: Vec::new(),
        ending: Ending::Stopped,
        event_count: 0,
        source: Source::Owned(Vec::new()),
        chunks: Vec::new(),
        limit: u64::MAX,
    };
    let (mut maps, mut command, mut cut) = (Vec::new(), None, false);
    let (mut end_seq, mut lost_seq) = (None, None);
    // Each chunk's events: the last one's number, and how many.
    let mut counts: Vec<(u64, u64)> = Vec::new();
    let mut buf = Vec::new();
    let unreadable = |e: std::io::Error| format!("it cannot be read: {e}");
    for start in (0..total).step_by(chunk_words) {
        let end = (start + chunk_words).min(total);
        source.read(start, end, &mut buf).map_err(unreadable)?;
        let (mut at, mut first, mut last, mut events) = (0, None, 0, 0u64);
        loop {
            let record = match record_at(&buf, at, end - start) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(At::Cut) => {
                    cut = true;
                    break;
                }
                Err(At::Malformed(why)) => return Err(why),
            };
            let seq = record.seq();
            first.get_or_insert(seq);
            match record.kind {
                _ if record.is_event() => {
                    events += 1;
                    last = seq;
                }
                STACK => {
                    let body = record.body();
                    log.stacks.insert(body[1], body[2..].to_vec());
                }
                MAPS => maps.push((seq, executable_mappings(&text(&record.body())))),
                CMD => {
                    let line = text(&record.body()).trim_end_matches('\0').replace('\0', " ");
                    if command.as_ref().is_none_or(|(s, _)| seq < *s) {
                        command = Some((seq, line));
                    }
                }
                END => end_seq = Some(seq),
                LOST => lost_seq = Some(lost_seq.map_or(seq, |l: u64| l.min(seq))),
                kind => {
                    let byte = (start + at) * 8;
                    return Err(format!("a record of unknown kind {kind} at byte {byte}"));
                }
            }
            at += 1 + record.len;
        }
        if let Some(first) = first {
            log.chunks.push(Chunk { first, start, end: start + at });
            counts.push((last, events));
        }
    }
    log.ending = match (lost_seq, end_seq) {
        (Some(_), _) => Ending::Lost,
        (None, Some(_)) => Ending::Exit,
        (None, None) if cut => Ending::Cut,
        (None, None) => Ending::Stopped,
    };
    log.limit = lost_seq.or(end_seq).unwrap_or(u64::MAX);
    log.event_count = counts.iter().map(|c| c.1).sum();
    // Events numbered past the end are not the log's: counted again where a chunk has any.
    for (chunk, &(last, events)) in log.chunks.iter().zip(&counts) {
        if last >= log.limit {
            source.read(chunk.start, chunk.end, &mut buf).map_err(unreadable)?;
            let (mut at, mut kept) = (0, 0);
            while let Ok(Some(r)) = record_at(&buf, at, chunk.end - chunk.start) {
                kept += u64::from(r.is_event() && r.seq() < log.limit);
                at += 1 + r.len;
            }
            log.event_count -= events - kept;
        }
    }
    log.chunks.sort_by_key(|c| c.first);
    maps.sort_by_key(|m| m.0);
    log.mappings = maps.into_iter().flat_map(|m| m.1).collect();
    log.command = command.map(|c| c.1).unwrap_or_default();
    log.source = source;
    Ok(log)
}

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

/// Reads the log in `bytes`, of process `pid` (tests).
#[cfg(test)]
pub(crate) fn parse_owned(bytes: &[u8], pid: Pid) -> std::result::Result<Log, String> {
    parse(Source::Owned(bytes.to_vec()), pid, 0)
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
    let read_error = |source| Error::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len() as usize;
    parse(Source::File(file, len), pid, image).map_err(|reason| {
        Error::Internal(format!("the heap log {} is unreadable: {reason}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record numbered `seq`.
    fn record(kind: u64, flags: u64, seq: u64, body: &[u64]) -> Vec<u64> {
        let mut r = vec![kind | ((body.len() as u64 + 2) << 8) | (flags << 32), seq];
        r.extend_from_slice(body);
        r
    }

    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// Chunks of the given records, each padded to a whole chunk with zeros.
    fn chunks(each: &[Vec<u64>]) -> Vec<u8> {
        let mut out = Vec::new();
        for words in each {
            let mut b = bytes(words);
            b.resize(CHUNK, 0);
            out.extend(b);
        }
        out
    }

    fn text_body(text: &str) -> Vec<u64> {
        let mut m = vec![text.len() as u64];
        let mut b = text.as_bytes().to_vec();
        b.resize(b.len().div_ceil(8) * 8, 0);
        m.extend(b.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())));
        m
    }

    #[test]
    fn reads_events_stacks_and_the_end() {
        let maps = "55d0-55e0 r-xp 00001000 fd:01 42 /usr/bin/x\n";
        let mut words = record(CMD, 0, 1, &text_body("x\0-v\0"));
        words.extend(record(MAPS, 0, 2, &text_body(maps)));
        words.extend(record(STACK, 0, 3, &[1, 0x55d8, 0x55d9]));
        words.extend(record(ALLOC, 1, 4, &[0x1000, 24, 1, 0x55d8]));
        words.extend(record(REALLOC, 0, 5, &[0x1000, 0x2000, 48, 6, 0x55d8]));
        words.extend(record(FREE, 4, 7, &[0x2000, 0, 0x55d9]));
        words.extend(record(END, 0, 8, &[]));
        words.extend([0, 0]);
        let log = parse_owned(&bytes(&words), Pid(7)).unwrap();
        assert_eq!(log.ending, Ending::Exit);
        assert_eq!(log.command, "x -v");
        assert_eq!(log.stacks[&1], vec![0x55d8, 0x55d9]);
        assert_eq!(log.mapping(0x55d8).unwrap().path, "/usr/bin/x");
        assert_eq!(log.event_count, 3);
        let (old, new, size, ip) = (0x1000, 0x2000, 48, 0x55d8);
        assert_eq!(
            log.events().collect::<Vec<_>>(),
            vec![
                Event::Alloc { ptr: 0x1000, size: 24, stack: 1, ip: 0x55d8, flags: flag::SAMPLED },
                Event::Release { old, token: 5 },
                Event::Realloc { old, new, size, ip, flags: 0, token: 5 },
                Event::Free { ptr: 0x2000, stack: 0, ip: 0x55d9, flags: flag::DOUBLE_FREE },
            ]
        );
    }

    #[test]
    fn threads_chunks_are_merged_by_number_and_a_moved_block_arrives_at_its_own() {
        // Thread A reallocs 0x10 to 0x20, its numbers 2 (released) and 6 (arrived);
        // thread B is given 0x10 at 3, and frees 0x20 at 4 before A's realloc has it.
        let mut a = record(ALLOC, 1, 1, &[0x10, 8, 0, 0xa]);
        a.extend(record(REALLOC, 0, 2, &[0x10, 0x20, 16, 6, 0xa]));
        a.extend(record(FREE, 0, 7, &[0x20, 0, 0xa]));
        let mut b = record(ALLOC, 1, 0, &[0x20, 8, 0, 0xb]);
        b.extend(record(ALLOC, 1, 3, &[0x10, 8, 0, 0xb]));
        b.extend(record(FREE, 0, 4, &[0x20, 0, 0xb]));
        b.extend(record(END, 0, 8, &[]));
        // Numbered after the end: not the log's.
        b.extend(record(FREE, 0, 9, &[0x10, 0, 0xb]));
        let log = parse_owned(&chunks(&[a, b]), Pid(7)).unwrap();
        assert_eq!((log.ending, log.event_count), (Ending::Exit, 6));
        let order: Vec<(u64, u64)> = log
            .events()
            .map(|e| match e {
                Event::Alloc { ptr, ip, .. } => (1, ptr + ip),
                Event::Free { ptr, ip, .. } => (2, ptr + ip),
                Event::Release { old, .. } => (3, old),
                Event::Realloc { new, .. } => (4, new),
                _ => (0, 0),
            })
            .collect();
        assert_eq!(
            order,
            vec![(1, 0x2b), (1, 0x1a), (3, 0x10), (1, 0x1b), (2, 0x2b), (4, 0x20), (2, 0x2a)]
        );
        // Replayed, no block is seen live twice: 0x10 is B's at the end, nothing crossed.
        let r = crate::memory::replay::replay(log.events(), 0);
        assert_eq!((r.totals.blocks_at_exit, r.totals.bytes_at_exit), (1, 8));
        assert_eq!(r.pairs.values().map(|c| c.blocks).sum::<u64>(), 2);
    }

    #[test]
    fn a_log_cut_short_is_read_to_its_last_whole_record() {
        let mut words = record(ALLOC, 1, 1, &[0x1000, 24, 0, 0x55d8]);
        words.extend(record(FREE, 0, 2, &[0x1000, 0, 0x55d9]));
        let log = parse_owned(&bytes(&words), Pid(7)).unwrap();
        assert_eq!(log.ending, Ending::Stopped);
        assert_eq!(log.events().count(), 2);
        let mut torn = words.clone();
        torn.truncate(words.len() - 1);
        let log = parse_owned(&bytes(&torn), Pid(7)).unwrap();
        assert_eq!((log.ending, log.events().count()), (Ending::Cut, 1));
        // A record of an unknown kind is not a log of this interposer.
        assert!(parse_owned(&bytes(&record(42, 0, 1, &[1])), Pid(7)).is_err());
        // A lost record: the log could not grow from its number on, in any thread's chunk.
        let mut lost = record(ALLOC, 1, 1, &[0x1000, 24, 0, 0x55d8]);
        lost.extend(record(LOST, 0, 3, &[]));
        let other = record(FREE, 0, 4, &[0x1000, 0, 0x55d9]);
        let mut before = record(ALLOC, 1, 2, &[0x2000, 24, 0, 0x55d8]);
        before.extend(other);
        let log = parse_owned(&chunks(&[lost, before]), Pid(7)).unwrap();
        assert_eq!((log.ending, log.event_count, log.events().count()), (Ending::Lost, 2, 2));
    }

    /// Writes a log of `pairs` allocations and frees to `path` as the interposer lays it
    /// out for `threads` threads: chunks of [`CHUNK`] bytes, each a thread's, its records
    /// numbered in one sequence, the chunk's last two words kept free. At most 64 blocks
    /// are live at once; 8 stacks.
    fn write_log(path: &Path, pairs: u64, threads: u64) {
        use std::io::Write;
        let chunk_words = CHUNK / 8;
        let mut file =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        // Each thread's chunk being filled.
        let mut open: Vec<Vec<u64>> = vec![Vec::new(); threads as usize];
        let mut put = |thread: usize, r: Vec<u64>, file: &mut std::io::BufWriter<std::fs::File>| {
            let chunk = &mut open[thread];
            if chunk.len() + r.len() > chunk_words - 2 {
                chunk.resize(chunk_words, 0);
                file.write_all(&bytes(chunk)).unwrap();
                chunk.clear();
            }
            chunk.extend(r);
        };
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq
        };
        for s in 1..=8u64 {
            put(0, record(STACK, 0, next(), &[s, 0x1000 + s, 0x2000]), &mut file);
        }
        for i in 0..pairs {
            let t = (i % threads) as usize;
            let ptr = 0x10_0000 + (i % 64) * 0x100;
            let alloc = [ptr, 16 + i % 32, 1 + i % 8, 0x1000 + 1 + i % 8];
            put(t, record(ALLOC, 1, next(), &alloc), &mut file);
            put(t, record(FREE, 0, next(), &[ptr, 0, 0x3000]), &mut file);
        }
        put(0, record(END, 0, next(), &[]), &mut file);
        for mut chunk in open {
            if !chunk.is_empty() {
                chunk.resize(chunk_words, 0);
                file.write_all(&bytes(&chunk)).unwrap();
            }
        }
        file.flush().unwrap();
    }

    /// The bytes of `pairs` allocations of `16 + i % 32` bytes.
    fn bytes_of(pairs: u64) -> u64 {
        (0..pairs).map(|i| 16 + i % 32).sum()
    }

    #[test]
    fn a_log_over_64_mib_is_replayed_whole_from_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("heap.7.0.log");
        // 11 words a pair: 1 000 000 pairs are 88 MB, in the chunks of four threads.
        let pairs = 1_000_000;
        write_log(&path, pairs, 4);
        assert!(std::fs::metadata(&path).unwrap().len() > 64 << 20);
        let log = read(&path).unwrap();
        assert_eq!((log.pid, log.image, log.ending), (Pid(7), 0, Ending::Exit));
        assert_eq!(log.event_count, 2 * pairs);
        let r = crate::memory::replay::replay(log.events(), 0);
        assert_eq!((r.totals.blocks, r.totals.bytes), (pairs, bytes_of(pairs)));
        assert_eq!((r.totals.blocks_at_exit, r.totals.bytes_at_exit), (0, 0));
        assert_eq!(r.pairs.values().map(|c| c.blocks).sum::<u64>(), pairs);
    }

    /// More than 100 million events from a 4.4 GB file of eight threads' chunks, replayed in the memory the live
    /// blocks and stacks take: run by hand (`cargo test --release --lib -- --ignored
    /// hundred_million`); it prints the peak resident set before and after.
    #[test]
    #[ignore = "writes 4.4 GB; run by hand"]
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
        write_log(&path, pairs, 8);
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
        // The file is 4.4 GB; what stays resident is a chunk or two of each thread's.
        assert!(peak() < 256 << 10, "{} KiB", peak());
    }

    #[test]
    fn a_logs_name_says_its_process_and_image() {
        assert_eq!(named(Path::new("/x/heap.42.1.log")), Some((Pid(42), 1)));
        assert_eq!(named(Path::new("/x/heap.42.log")), None);
    }
}
