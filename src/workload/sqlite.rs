//! `sqlite`: inserting rows into SQLite (rusqlite over its bundled C library, as the
//! examples use it), one statement per row in autocommit, one statement per row inside
//! one transaction, `prepare_cached` inside one transaction, against one call that inserts
//! every row inside SQLite's C.
//!
//! Public figures for the same patterns on disk: 117 509 rows/s with a transaction per
//! row, 209 512 in one transaction, 970 874 with `prepare_cached` as well (blog.liw.fi,
//! 2022-03-05). Here the database is in memory, so the figures are the library's and the
//! boundary's, with no disk. Each row replaces one of 1 024 (`INSERT OR REPLACE` on a key
//! cycling through them): every variant does the same work on a table that never grows,
//! however many rounds run.

use std::hint::black_box;

use rusqlite::{params, Connection};

use super::{nothing_shared, runner, Input, Role, Runner, Variant, Workload};
use crate::error::{Error, Result};

/// Rows the table keeps: keys cycle through them.
const KEYS: u64 = 1024;

const INSERT: &str = "INSERT OR REPLACE INTO t (k, v) VALUES (?1, ?2)";

/// A fresh in-memory database with the table, filled once so every variant replaces rows.
fn database() -> Result<Connection> {
    let fail = |e: rusqlite::Error| Error::Internal(format!("SQLite: {e}"));
    let conn = Connection::open_in_memory().map_err(fail)?;
    conn.execute_batch(
        "CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 1023)
         INSERT INTO t SELECT x, x FROM c;",
    )
    .map_err(fail)?;
    Ok(conn)
}

/// The rows `n` inserts starting at `next`: key, value.
fn row(i: u64) -> (i64, i64) {
    ((i % KEYS) as i64, (i.wrapping_mul(0x9E37_79B9) & 0xFFFF_FFFF) as i64)
}

/// A runner over `conn` that inserts rows 0 to n - 1 with `insert(conn, 0, n)` (each
/// batch replaces the same rows with the same values: the same work every time); the
/// checksum is the last row's value read back.
fn inserting(
    conn: Connection,
    insert: fn(&Connection, u64, u64) -> rusqlite::Result<()>,
) -> Result<Box<dyn Runner>> {
    runner(move |n| {
        if n == 0 {
            return 0;
        }
        insert(&conn, 0, n).expect("inserting into an in-memory table");
        let last = row(n - 1);
        let v: i64 = conn
            .query_row("SELECT v FROM t WHERE k = ?1", [last.0], |r| r.get(0))
            .expect("the row just inserted");
        black_box(v as u64)
    })
}

fn per_row_autocommit(conn: &Connection, first: u64, n: u64) -> rusqlite::Result<()> {
    for i in first..first + n {
        let (k, v) = row(i);
        conn.execute(INSERT, params![k, v])?;
    }
    Ok(())
}

fn per_row_in_transaction(conn: &Connection, first: u64, n: u64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    for i in first..first + n {
        let (k, v) = row(i);
        conn.execute(INSERT, params![k, v])?;
    }
    conn.execute_batch("COMMIT")
}

fn prepare_cached(conn: &Connection, first: u64, n: u64) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    for i in first..first + n {
        let (k, v) = row(i);
        conn.prepare_cached(INSERT)?.execute(params![k, v])?;
    }
    conn.execute_batch("COMMIT")
}

/// One call: SQLite's C makes the rows (a recursive query) and inserts them, in one
/// transaction.
fn batched(conn: &Connection, first: u64, n: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "WITH RECURSIVE c(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM c WHERE i < ?2)
         INSERT OR REPLACE INTO t (k, v) SELECT i % 1024, (i * 2654435769) & 4294967295 FROM c",
    )?
    .execute(params![first as i64, (first + n - 1) as i64])?;
    Ok(())
}

pub(super) fn workload() -> Workload {
    Workload {
        name: "sqlite",
        about: "rows into SQLite (rusqlite, bundled C): a statement per row in autocommit, per \
                row in one transaction, prepare_cached, or one call for every row",
        inputs: vec![Input { name: "rows", value: 0, calls_per_iteration: 1_000 }],
        share: nothing_shared,
        variants: vec![
            Variant::plain(
                "batched",
                Role::Baseline,
                "one statement: SQLite's C makes and inserts every row, one transaction",
                |_, _, _| inserting(database()?, batched),
            ),
            Variant::plain(
                "per-row-autocommit",
                Role::PerCall,
                "conn.execute per row: a statement prepared and a transaction committed per row",
                |_, _, _| inserting(database()?, per_row_autocommit),
            ),
            Variant::plain(
                "per-row-transaction",
                Role::PerCall,
                "conn.execute per row, inside one transaction: a statement prepared per row",
                |_, _, _| inserting(database()?, per_row_in_transaction),
            ),
            Variant::plain(
                "prepare-cached",
                Role::PerCall,
                "prepare_cached per row inside one transaction: the statement bound and run",
                |_, _, _| inserting(database()?, prepare_cached),
            ),
        ],
        loops: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant leaves the same table: the same rows, replaced the same way.
    #[test]
    fn every_variant_writes_the_same_rows() {
        let sum = |insert: fn(&Connection, u64, u64) -> rusqlite::Result<()>| {
            let conn = database().unwrap();
            insert(&conn, 5, 3000).unwrap();
            let (count, total): (i64, i64) = conn
                .query_row("SELECT count(*), sum(v) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap();
            (count, total)
        };
        let expected = sum(batched);
        assert_eq!(expected.0, 1024);
        for insert in [per_row_autocommit, per_row_in_transaction, prepare_cached] {
            assert_eq!(sum(insert), expected);
        }
    }
}
