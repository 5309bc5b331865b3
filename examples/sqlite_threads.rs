//! A Rust program that uses a real C library through its usual crate: SQLite (compiled
//! in by `rusqlite`'s `bundled` feature) on several threads, each with its own database.
//! Each round inserts rows in a transaction, then runs an aggregate, a LIKE scan and an
//! indexed lookup per row. It prints its throughput, so that its slowdown under a
//! profiler can be measured.
//!
//! ```text
//! cargo run --release --example sqlite_threads -- [--threads N] [--rounds R]
//! cargo run --release -- record -- target/release/examples/sqlite_threads
//! ```

use std::time::Instant;

use rusqlite::{params, Connection};

const ROWS_PER_ROUND: i64 = 2_000;

fn round(db: &mut Connection, round: i64) -> rusqlite::Result<i64> {
    let tx = db.transaction()?;
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
        }
    }
    tx.commit()?;
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
    for i in 0..ROWS_PER_ROUND {
        found += lookup.query_row(params![(i * 31) % ((round + 1) * ROWS_PER_ROUND)], |r| {
            r.get::<_, i64>(0)
        })?;
    }
    Ok(total ^ like ^ found)
}

fn worker(rounds: i64) -> rusqlite::Result<i64> {
    let mut db = Connection::open_in_memory()?;
    db.execute_batch(
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price INTEGER NOT NULL);",
    )?;
    let mut check = 0;
    for r in 0..rounds {
        check ^= round(&mut db, r)?;
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
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::Builder::new()
                .name(format!("sqlite-{t}"))
                .spawn(move || worker(rounds))
                .expect("spawn a worker thread")
        })
        .collect();
    let mut check = 0;
    for h in handles {
        check ^= h.join().expect("worker panicked").expect("SQLite failed");
    }
    let seconds = start.elapsed().as_secs_f64();
    let rows = (threads * rounds * ROWS_PER_ROUND) as f64;
    println!(
        "{threads} threads x {rounds} rounds: {seconds:.3} s, {:.0} rows/s (check {check})",
        rows / seconds
    );
}
