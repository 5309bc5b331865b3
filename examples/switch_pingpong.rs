//! Two threads passing a byte back and forth over a socket pair, each spinning a while on
//! CPU after each byte: a switch-heavy program, thousands of switches off a CPU a second,
//! for `record --off-cpu`'s cost (`scripts/offcpu-cost.sh`, and the `sampling` tests).
//!
//! `switch_pingpong ROUNDS SPIN_MICROSECONDS` prints the round trips' switch rate it saw
//! (two switches per round trip, at least) and a check value.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// On CPU for `us` microseconds.
#[inline(never)]
fn spin(us: u64) -> u64 {
    let t = Instant::now();
    let mut x = 1u64;
    while t.elapsed() < Duration::from_micros(us) {
        for _ in 0..100 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    x
}

/// `rounds` times: send a byte and wait for the answer (`first`), or wait for a byte and
/// answer; then spin.
#[inline(never)]
fn ping(mut s: UnixStream, rounds: u64, us: u64, first: bool) -> u64 {
    let mut b = [0u8; 1];
    let mut acc = 0u64;
    for _ in 0..rounds {
        if first {
            s.write_all(&b).unwrap();
            s.read_exact(&mut b).unwrap();
        } else {
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
        }
        acc = acc.wrapping_add(spin(us));
    }
    acc
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|x| x.parse().expect("a number")).collect();
    let (rounds, us) = (args.first().copied().unwrap_or(8000), args.get(1).copied().unwrap_or(40));
    let (x, y) = UnixStream::pair().unwrap();
    let t = Instant::now();
    let p = std::thread::spawn(move || ping(x, rounds, us, true));
    let q = std::thread::spawn(move || ping(y, rounds, us, false));
    let check = p.join().unwrap() ^ q.join().unwrap();
    let rate = (2 * rounds) as f64 / t.elapsed().as_secs_f64();
    println!("{rate:.0} switches/s at least (check {})", check & 0xff);
}
