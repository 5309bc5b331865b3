//! The recording's samples, one after another in time order, in a file rather than in
//! memory: 24 bytes each (time, period, thread, stack id), written as they are interned
//! and read back once, for the Firefox profile, which shows every sample at its time.
//! Everything else is computed from each thread's weight per distinct stack, which stays
//! in memory (see [`super::intern::ThreadLog`]); so ffiprof's memory while recording grows with
//! the distinct stacks a program has, not with how long it runs.
//!
//! The file is anonymous (unlinked at creation, in the output's staging directory): it
//! never shows among the outputs, and disappears with ffiprof, however it ends.

use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use super::table::StackId;
use crate::ids::Tid;

/// Bytes per sample in the file.
const RECORD_BYTES: usize = 24;
/// The truncated flag, in the top bit of the thread id (tids stay below 2^22).
const TRUNCATED: u32 = 1 << 31;
/// The off-CPU flag, in the next bit.
const OFF_CPU: u32 = 1 << 30;

/// What one thread's samples weigh on one stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Weight {
    /// Samples.
    pub samples: u64,
    /// The sum of their periods (CPU nanoseconds for cpu-clock, cycles for cycles).
    pub period: u64,
}

/// One sample as recorded: when, how much, and where (its stack in the recording's
/// [`super::table::StackTable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SampleRecord {
    /// CLOCK_MONOTONIC nanoseconds.
    pub time: u64,
    /// The sample's period (CPU nanoseconds for cpu-clock, cycles for cycles; for an
    /// off-CPU sample, the nanoseconds off CPU).
    pub period: u64,
    /// Its stack.
    pub stack: StackId,
    /// The stack was cut short by the stack-copy size.
    pub truncated: bool,
    /// Taken as the thread left the CPU, weighted by the time until it ran again.
    pub off_cpu: bool,
}

fn encode(tid: Tid, s: &SampleRecord) -> [u8; RECORD_BYTES] {
    let mut b = [0u8; RECORD_BYTES];
    b[0..8].copy_from_slice(&s.time.to_le_bytes());
    b[8..16].copy_from_slice(&s.period.to_le_bytes());
    b[16..20].copy_from_slice(&s.stack.to_raw().to_le_bytes());
    let tid = (tid.0 & !(TRUNCATED | OFF_CPU))
        | if s.truncated { TRUNCATED } else { 0 }
        | if s.off_cpu { OFF_CPU } else { 0 };
    b[20..24].copy_from_slice(&tid.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> (Tid, SampleRecord) {
    let word = |r: std::ops::Range<usize>| {
        let mut w = [0u8; 8];
        w[..r.len()].copy_from_slice(&b[r]);
        u64::from_le_bytes(w)
    };
    let tid = word(20..24) as u32;
    let record = SampleRecord {
        time: word(0..8),
        period: word(8..16),
        stack: StackId::from_raw(word(16..20) as u32),
        truncated: tid & TRUNCATED != 0,
        off_cpu: tid & OFF_CPU != 0,
    };
    (Tid(tid & !(TRUNCATED | OFF_CPU)), record)
}

/// The samples file while recording: append only.
pub(crate) struct SampleLog {
    file: BufWriter<File>,
    count: u64,
    /// The first write that failed (the disk is full, say): the recording goes on, and
    /// the outputs are refused at the end.
    failed: Option<io::Error>,
}

impl SampleLog {
    /// An anonymous file in `dir`.
    pub(crate) fn create_in(dir: &Path) -> io::Result<SampleLog> {
        let file = tempfile::tempfile_in(dir)?;
        Ok(SampleLog { file: BufWriter::with_capacity(1 << 16, file), count: 0, failed: None })
    }

    /// Appends thread `tid`'s sample.
    pub(crate) fn push(&mut self, tid: Tid, sample: &SampleRecord) {
        if self.failed.is_some() {
            return;
        }
        match self.file.write_all(&encode(tid, sample)) {
            Ok(()) => self.count += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    /// Ends writing: the file to read the samples back from.
    pub(crate) fn finish(self) -> io::Result<SampleFile> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        Ok(SampleFile { file, count: self.count })
    }
}

/// The samples file once recorded: read back in order, by any number of readers.
pub(crate) struct SampleFile {
    file: File,
    count: u64,
}

impl SampleFile {
    /// How many samples it holds.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Reads the samples back in the order written, with their threads. A read that
    /// fails ends the iteration; [`SampleReader::finish`] tells.
    pub(crate) fn reader(&self) -> SampleReader<'_> {
        SampleReader { file: &self.file, at: 0, buf: Vec::new(), pos: 0, read: 0, failed: None }
    }
}

/// Reads a [`SampleFile`] in blocks.
pub(crate) struct SampleReader<'a> {
    file: &'a File,
    /// Offset in the file of the next block.
    at: u64,
    buf: Vec<u8>,
    pos: usize,
    read: u64,
    failed: Option<io::Error>,
}

impl SampleReader<'_> {
    /// How many samples were read so far.
    pub(crate) fn read(&self) -> u64 {
        self.read
    }

    /// Whether every sample was read: the first read error, if any.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.failed.map_or(Ok(()), Err)
    }

    fn fill(&mut self) -> io::Result<bool> {
        self.buf.resize(RECORD_BYTES * 4096, 0);
        let mut filled = 0;
        while filled < self.buf.len() {
            match self.file.read_at(&mut self.buf[filled..], self.at + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if filled % RECORD_BYTES != 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a sample cut short"));
        }
        self.buf.truncate(filled);
        self.at += filled as u64;
        self.pos = 0;
        Ok(filled > 0)
    }
}

impl Iterator for SampleReader<'_> {
    type Item = (Tid, SampleRecord);

    fn next(&mut self) -> Option<(Tid, SampleRecord)> {
        if self.failed.is_some() {
            return None;
        }
        if self.pos == self.buf.len() {
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = Some(e);
                    return None;
                }
            }
        }
        let item = decode(&self.buf[self.pos..self.pos + RECORD_BYTES]);
        self.pos += RECORD_BYTES;
        self.read += 1;
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_read_back_in_order_with_their_threads_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SampleLog::create_in(dir.path()).unwrap();
        let sample = |i: u64| SampleRecord {
            time: i * 1000,
            period: 1_000_000 + i,
            stack: StackId::from_raw(if i % 7 == 0 { u32::MAX } else { i as u32 }),
            truncated: i % 5 == 0,
            off_cpu: i % 3 == 0,
        };
        // More than one read block.
        let n = 10_000u64;
        for i in 0..n {
            log.push(Tid(4_194_303 - (i % 3) as u32), &sample(i));
        }
        let file = log.finish().unwrap();
        assert_eq!(file.len(), n);
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the file is unlinked");
        for _ in 0..2 {
            let mut reader = file.reader();
            let back: Vec<(Tid, SampleRecord)> = reader.by_ref().collect();
            reader.finish().unwrap();
            assert_eq!(back.len() as u64, n);
            for (i, (tid, s)) in back.into_iter().enumerate() {
                assert_eq!((tid, s), (Tid(4_194_303 - (i % 3) as u32), sample(i as u64)));
            }
        }
    }
}
