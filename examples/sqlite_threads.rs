//! A Rust program that uses a real C library through its usual crate: SQLite (compiled
//! in by `rusqlite`'s `bundled` feature) on several threads, each with its own database.
//! Each round inserts rows in a transaction, then runs an aggregate, a LIKE scan and an
//! indexed lookup per row. It prints its throughput, so that its slowdown under a
//! profiler can be measured, and how many times it stepped a statement: each statement
//! it runs through rusqlite (`execute`, `query_row`, `BEGIN`, `COMMIT`, the `CREATE`)
//! is one call of SQLite's `sqlite3_step`, what `ffiprof crossings` counts.
//!
//! With `--seconds S` it runs for that long instead, keeping each table at its last
//! 20 000 rows (a steady rate), and prints `progress <unix ns> <rows>` every
//! `--progress-ms` milliseconds: what `scripts/compare-record.py` reads to compare its
//! rate with and without a profiler attached, window by window.
//!
//! ```text
//! cargo run --release --example sqlite_threads -- [--threads N] [--rounds R]
//! cargo run --release -- record -- target/release/examples/sqlite_threads
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

const ROWS_PER_ROUND: i64 = 2_000;

/// Statements stepped, over every thread: one `sqlite3_step` each.
static STEPS: AtomicU64 = AtomicU64::new(0);

fn stepped(n: u64) {
    STEPS.fetch_add(n, Ordering::Relaxed);
}

/// One round; `keep` is the number of newest rows the table holds (all when None).
fn round(db: &mut Connection, round: i64, keep: Option<i64>) -> rusqlite::Result<i64> {
    let tx = db.transaction()?;
    stepped(1); // BEGIN
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO item (id, name, price) VALUES (?1, ?2, ?3)")?;
        for i in 0..ROWS_PER_ROUND {
            let id = round * ROWS_PER_ROUND + i;
            insert.execute(params![
                id,
                format!("item-{}-{}", id % 97, id),
                (id * 7919) % 10_007
            ])?;
            stepped(1);
        }
    }
    tx.commit()?;
    stepped(3); // COMMIT, then the two aggregates below
    let total: i64 = db.query_row(
        "SELECT COALESCE(SUM(price), 0) FROM item WHERE price % 3 = ?1",
        params![round % 3],
        |r| r.get(0),
    )?;
    let like: i64 = db.query_row(
        "SELECT COUNT(*) FROM item WHERE name LIKE ?1",
        params![format!("item-{}-%", round % 97)],
        |r| r.get(0),
    )?;
    let mut lookup = db.prepare_cached("SELECT price FROM item WHERE id = ?1")?;
    let mut found = 0i64;
    let high = (round + 1) * ROWS_PER_ROUND;
    let low = keep.map_or(0, |k| (high - k).max(0));
    for i in 0..ROWS_PER_ROUND {
        found +=
            lookup.query_row(params![low + (i * 31) % (high - low)], |r| r.get::<_, i64>(0))?;
        stepped(1);
    }
    Ok(total ^ like ^ found)
}

/// Rows kept per table in the timed mode.
const KEEP_ROWS: i64 = 20_000;

struct Until {
    stop: Arc<AtomicBool>,
    rows: Arc<AtomicU64>,
}

fn worker(rounds: i64, until: Option<Until>) -> rusqlite::Result<i64> {
    let mut db = Connection::open_in_memory()?;
    db.execute_batch(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price INTEGER NOT NULL);",
    )?;
    stepped(1);
    let mut check = 0;
    let mut r = 0;
    loop {
        match &until {
            None if r >= rounds => break,
            Some(u) if u.stop.load(Ordering::Relaxed) => break,
            _ => {}
        }
        check ^= round(&mut db, r, until.as_ref().map(|_| KEEP_ROWS))?;
        if let Some(u) = &until {
            db.execute(
                "DELETE FROM item WHERE id < ?1",
                params![(r + 1) * ROWS_PER_ROUND - KEEP_ROWS],
            )?;
            stepped(1);
            u.rows.fetch_add(ROWS_PER_ROUND as u64, Ordering::Relaxed);
        }
        r += 1;
    }
    Ok(check)
}

fn arg(args: &[String], flag: &str, default: i64) -> i64 {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{flag} wants a whole number, not {v}")))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = arg(&args, "--threads", 3).max(1);
    let rounds = arg(&args, "--rounds", 80).max(1);
    let seconds = arg(&args, "--seconds", 0);
    let progress_ms = arg(&args, "--progress-ms", 50).max(1) as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let rows = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let until = (seconds > 0).then(|| Until { stop: stop.clone(), rows: rows.clone() });
            std::thread::Builder::new()
                .name(format!("sqlite-{t}"))
                .spawn(move || worker(rounds, until))
                .expect("spawn a worker thread")
        })
        .collect();
    if seconds > 0 {
        let end = start + Duration::from_secs(seconds as u64);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(progress_ms));
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            println!("progress {} {}", now.as_nanos(), rows.load(Ordering::Relaxed));
        }
        stop.store(true, Ordering::Relaxed);
    }
    let mut check = 0;
    for h in handles {
        check ^= h.join().expect("worker panicked").expect("SQLite failed");
    }
    let done = if seconds > 0 {
        rows.load(Ordering::Relaxed) as f64
    } else {
        (threads * rounds * ROWS_PER_ROUND) as f64
    };
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{threads} threads x {rounds} rounds: {elapsed:.3} s, {:.0} rows/s (check {check})",
        done / elapsed
    );
    println!("sqlite3_step calls: {}", STEPS.load(Ordering::Relaxed));
}
