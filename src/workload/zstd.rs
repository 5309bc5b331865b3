//! `zstd`: compressing small messages with zstd (the `zstd` crate over its bundled C
//! library): a new compression context per message (`zstd::bulk::compress`), one context
//! reused for every message (`bulk::Compressor`), against one call over all the messages.
//!
//! Public figures for the same pattern: calling `ZSTD_compress` once per message made
//! 61.7 million allocations of 18 340 B (facebook/zstd#1328), and a reused context made
//! zstd-ruby 3.5x faster (zstd-ruby#113).
//!
//! The outputs differ, and so does the work: the per-message variants write one frame per
//! message, each compressed on its own; the batched baseline writes one frame for all of
//! them, where a message can refer back to the ones before it (smaller, and a different
//! amount of matching). So the batched baseline is what a program that may join its
//! messages would pay, not the same compression done in one call; `reused-context`
//! against `per-message` is the like-for-like comparison (the same frames, byte for byte).
//! The checksum is the bytes the frames say they hold (each frame's header records its
//! content size), the same for every variant.

use std::hint::black_box;
use std::rc::Rc;

use zstd::bulk::Compressor;

use super::{runner, shared_as, Input, Role, Shared, Variant, Workload};
use crate::error::{Error, Result};

/// zstd's default level.
const LEVEL: i32 = 3;

/// Messages the pool holds: a run cycles through them, and the batched baseline
/// compresses at most this many in one call.
const MESSAGES: usize = 1024;

/// Log lines of `size` bytes each, one after the other in one buffer: text that
/// compresses as such lines do (repeated field names, varying numbers).
fn messages(input: &Input) -> Shared {
    let size = input.value as usize;
    let mut all = Vec::with_capacity(size * MESSAGES);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..MESSAGES {
        let mut line = String::new();
        while line.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.push_str(&format!(
                "ts={} level={} user=u{:05} path=/api/v1/items/{} status={} ms={}; ",
                1_700_000_000 + i as u64,
                ["info", "warn", "debug"][(x % 3) as usize],
                x % 50_000,
                (x >> 20) % 10_000,
                [200, 201, 404, 500][((x >> 40) % 4) as usize],
                (x >> 50) % 900
            ));
        }
        all.extend_from_slice(&line.as_bytes()[..size]);
    }
    Rc::new(Pool { all, size })
}

/// The messages, `size` bytes each, contiguous.
struct Pool {
    all: Vec<u8>,
    size: usize,
}

impl Pool {
    /// Message `i`, cycling through the pool.
    fn message(&self, i: u64) -> &[u8] {
        let at = (i as usize % MESSAGES) * self.size;
        &self.all[at..at + self.size]
    }

    /// The messages a run of `n` compresses, in runs of at most [`MESSAGES`] contiguous
    /// ones: one slice per batched call.
    fn runs(&self, n: u64) -> impl Iterator<Item = &[u8]> {
        let mut left = n as usize;
        std::iter::from_fn(move || {
            let take = left.min(MESSAGES);
            left -= take;
            (take > 0).then(|| &self.all[..take * self.size])
        })
    }
}

/// The content size a zstd frame's header records (RFC 8878, 3.1.1.1), or 0 where the
/// header does not record one (the checksum then shows it).
pub(crate) fn frame_content_size(frame: &[u8]) -> u64 {
    if frame.len() < 5 || frame[..4] != [0x28, 0xB5, 0x2F, 0xFD] {
        return 0;
    }
    let descriptor = frame[4];
    let single_segment = descriptor & 0x20 != 0;
    let dictionary = [0, 1, 2, 4][(descriptor & 3) as usize];
    let at = 5 + usize::from(!single_segment) + dictionary;
    let width = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => return 0,
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let Some(field) = frame.get(at..at + width) else { return 0 };
    let value = field.iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b));
    if width == 2 {
        value + 256
    } else {
        value
    }
}

fn failed(e: std::io::Error) -> Error {
    Error::Internal(format!("zstd: {e}"))
}

/// One frame over every message, from one reused context into one reused buffer.
fn batched(_: &Input, shared: &Shared, _: super::Placement) -> Result<Box<dyn Runner>> {
    let pool = shared_as::<Pool>(shared);
    let mut context = Compressor::new(LEVEL).map_err(failed)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(MESSAGES * pool.size));
    runner(move |n| {
        let mut held = 0;
        for run in pool.runs(n) {
            out.clear();
            context.compress_to_buffer(run, &mut out).expect("the buffer is zstd's bound");
            held += frame_content_size(black_box(&out));
        }
        held
    })
}

/// `zstd::bulk::compress` per message: a context created, used once and freed, and the
/// frame returned in a new `Vec`.
fn per_message(_: &Input, shared: &Shared, _: super::Placement) -> Result<Box<dyn Runner>> {
    let pool = shared_as::<Pool>(shared);
    runner(move |n| {
        (0..n)
            .map(|i| {
                let frame = zstd::bulk::compress(pool.message(i), LEVEL).expect("compressing");
                frame_content_size(black_box(&frame))
            })
            .sum()
    })
}

/// One `bulk::Compressor` for every message, each frame written into one reused buffer.
fn reused_context(_: &Input, shared: &Shared, _: super::Placement) -> Result<Box<dyn Runner>> {
    let pool = shared_as::<Pool>(shared);
    let mut context = Compressor::new(LEVEL).map_err(failed)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(pool.size));
    runner(move |n| {
        (0..n)
            .map(|i| {
                out.clear();
                context
                    .compress_to_buffer(pool.message(i), &mut out)
                    .expect("the buffer is zstd's bound");
                frame_content_size(black_box(&out))
            })
            .sum()
    })
}

use super::Runner;

pub(super) fn workload() -> Workload {
    Workload {
        name: "zstd",
        about: "small messages through zstd (the zstd crate, bundled C): a new context per \
                message, one reused context, or one frame for all of them",
        inputs: vec![Input { name: "256B", value: 256, calls_per_iteration: 200 }],
        share: messages,
        variants: vec![
            Variant::plain(
                "batched",
                Role::Baseline,
                "one call, one frame over all the messages (smaller output: messages share \
                 matches)",
                batched,
            ),
            Variant::plain(
                "per-message",
                Role::PerCall,
                "zstd::bulk::compress per message: a context made and freed, a new Vec each",
                per_message,
            ),
            Variant::plain(
                "reused-context",
                Role::PerCall,
                "one bulk::Compressor, a frame per message into one reused buffer",
                reused_context,
            ),
        ],
        loops: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Rc<Pool> {
        shared_as::<Pool>(&messages(&Input { name: "256B", value: 256, calls_per_iteration: 1 }))
    }

    /// Per message, a reused context writes the very frames a new context does, and every
    /// frame gives its message back.
    #[test]
    fn reused_and_new_contexts_write_the_same_frames() {
        let pool = pool();
        let mut context = Compressor::new(LEVEL).unwrap();
        for i in [0, 1, 500, 1023, 1024] {
            let frame = zstd::bulk::compress(pool.message(i), LEVEL).unwrap();
            assert_eq!(context.compress(pool.message(i)).unwrap(), frame, "message {i}");
            assert_eq!(zstd::bulk::decompress(&frame, 256).unwrap(), pool.message(i));
            assert_eq!(frame_content_size(&frame), 256);
        }
    }

    /// One frame holds every message of a batch, and is smaller than their frames apart.
    #[test]
    fn the_batched_frame_holds_every_message() {
        let pool = pool();
        let runs: Vec<&[u8]> = pool.runs(1500).collect();
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [1024 * 256, 476 * 256]);
        let frame = zstd::bulk::compress(runs[1], LEVEL).unwrap();
        assert_eq!(zstd::bulk::decompress(&frame, runs[1].len()).unwrap(), runs[1]);
        let apart: usize =
            (0..476).map(|i| zstd::bulk::compress(pool.message(i), LEVEL).unwrap().len()).sum();
        assert!(frame.len() < apart, "{} against {apart}", frame.len());
    }

    /// The frame header is read as RFC 8878 lays it out: every width of the size field.
    #[test]
    fn frame_content_size_reads_every_field_width() {
        for size in [0usize, 1, 255, 256, 300, 65_791, 65_792, 1 << 20] {
            let data = vec![7u8; size];
            let frame = zstd::bulk::compress(&data, LEVEL).unwrap();
            assert_eq!(frame_content_size(&frame), size as u64, "{size} bytes");
        }
        assert_eq!(frame_content_size(b"not a frame"), 0);
        assert_eq!(frame_content_size(&[0x28, 0xB5, 0x2F, 0xFD]), 0);
    }
}
