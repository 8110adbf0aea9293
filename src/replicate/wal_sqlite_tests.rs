//! WAL reader against WAL files written by real SQLite (through rusqlite, in tests
//! only): rebuilding the database from the db file plus the committed frames must give
//! exactly the bytes SQLite itself produces on a full checkpoint.

use std::fs;
use std::path::Path;

use rusqlite::Connection;

use crate::replicate::wal::{scan_slice, WalEnd};

fn open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    c.execute_batch("PRAGMA wal_autocheckpoint=0;").unwrap();
    c
}

/// Applies a scan's committed pages to a database image.
fn apply(image: &mut Vec<u8>, wal: &[u8], from: u64) -> u64 {
    let s = scan_slice(wal, from, None).unwrap();
    let ps = s.header.page_size as usize;
    let commit = s.commit.expect("a committed transaction") as usize;
    image.resize(commit * ps, 0);
    for &pgno in s.pages.keys() {
        let at = (pgno as usize - 1) * ps;
        image[at..at + ps].copy_from_slice(s.page(wal, pgno).unwrap());
    }
    from + s.size
}

fn checkpointed_bytes(c: &Connection, db: &Path) -> Vec<u8> {
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0);
    fs::read(db).unwrap()
}

fn summary(c: &Connection) -> (i64, i64, String) {
    c.query_row(
        "SELECT count(*), coalesce(sum(length(body)), 0), coalesce(group_concat(id), '') FROM t",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[test]
fn rebuild_from_real_wal_equals_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let wal_path = dir.path().join("t.db-wal");
    let c = open(&db);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT); PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .unwrap();
    let base = fs::read(&db).unwrap();

    for i in 0..20 {
        c.execute(
            "INSERT INTO t(body) VALUES (?1)",
            [format!("row {i} {}", "x".repeat(i * 37))],
        )
        .unwrap();
    }
    let mid_wal = fs::read(&wal_path).unwrap();
    c.execute_batch(
        "BEGIN; INSERT INTO t(body) SELECT printf('%.*c', 900, 'y') FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 150) SELECT i FROM n); COMMIT;
         UPDATE t SET body = 'changed' WHERE id % 3 = 0;
         DELETE FROM t WHERE id > 100;",
    )
    .unwrap();
    let wal = fs::read(&wal_path).unwrap();
    assert_eq!(
        u32::from_be_bytes([wal[0], wal[1], wal[2], wal[3]]) & !1,
        0x377F_0682
    );

    // One scan over everything.
    let mut image = base.clone();
    let end = apply(&mut image, &wal, 32);
    let s = scan_slice(&wal, 32, None).unwrap();
    assert_eq!(s.end, WalEnd::Eof);
    assert_eq!(s.uncommitted_frames, 0);
    assert_eq!(end, wal.len() as u64);

    // Two syncs: up to the copy taken mid-way, then resume from its end.
    let mut image2 = base.clone();
    let resume = apply(&mut image2, &mid_wal, 32);
    assert!(resume > 32 && resume < wal.len() as u64);
    apply(&mut image2, &wal, resume);
    assert_eq!(image2, image);

    let live = summary(&c);
    let truth = checkpointed_bytes(&c, &db);
    assert_eq!(image.len(), truth.len());
    assert!(
        image == truth,
        "rebuilt image differs from SQLite's checkpointed file"
    );

    let copy = dir.path().join("copy.db");
    fs::write(&copy, &image).unwrap();
    let rc = Connection::open(&copy).unwrap();
    assert_eq!(summary(&rc), live);
    let ok: String = rc
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn open_transaction_spill_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let wal_path = dir.path().join("s.db-wal");
    let c = open(&db);
    c.execute_batch(
        "PRAGMA cache_size=5; CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO t(body) VALUES ('committed');",
    )
    .unwrap();
    let base = fs::read(&db).unwrap();
    let committed = fs::read(&wal_path).unwrap();

    // A transaction too big for a 5-page cache spills uncommitted frames into the WAL.
    c.execute_batch("BEGIN; INSERT INTO t(body) SELECT printf('%.*c', 2000, 'z') FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200) SELECT i FROM n);").unwrap();
    let spilled = fs::read(&wal_path).unwrap();
    assert!(spilled.len() > committed.len(), "expected spilled frames");

    let s = scan_slice(&spilled, 32, None).unwrap();
    assert!(s.uncommitted_frames > 0);
    assert_eq!(32 + s.size, committed.len() as u64);
    let mut a = base.clone();
    let mut b = base.clone();
    apply(&mut a, &spilled, 32);
    apply(&mut b, &committed, 32);
    assert_eq!(a, b);

    c.execute_batch("ROLLBACK;").unwrap();
    assert_eq!(checkpointed_bytes(&c, &db), a);
}
