//! Compatibility with the real `litestream` 0.5.17 binary, both directions:
//! replicas Gleaner's LTX encoder writes must restore byte-identically with
//! `litestream restore` (latest, every TXID, timestamps between states), and replicas
//! `litestream replicate` writes must decode, verify and restore identically with
//! Gleaner's decoder, plan and apply.
//!
//! The binary comes from `scripts/install-litestream.sh` (or `GLEANER_LITESTREAM`); the
//! test fails without it, because silently skipping a compatibility check hides breakage.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gleaner::replicate::apply::apply_files;
use gleaner::replicate::ltx::{
    compact, decode_file, ltx_object_path, parse_file_name, Backend, Encoder, Header, PageEncoding,
    FLAG_NO_CHECKSUM, SNAPSHOT_LEVEL,
};
use gleaner::replicate::plan::{restore_plan, LtxFileInfo, RestoreTarget};
use gleaner::replicate::wal::{scan_slice, WalHeader};
use gleaner::replicate::Error;
use rusqlite::Connection;

use crate::support::{ls_cmd, wait_exit, wait_until};

// ---------------------------------------------------------------------------------------
// The peer binary (support::peers).

fn ls_command(args: &[&str]) -> Command {
    // Without AWS_* (0.5.17 refuses to build its S3 client when AWS_CA_BUNDLE is set, and
    // the variables are meaningless for file replicas anyway).
    let mut c = ls_cmd();
    c.args(args);
    c
}

fn ls(args: &[&str]) -> Output {
    ls_command(args).output().expect("run litestream")
}

/// `litestream restore` into a fresh path; the bytes, or stderr on failure.
fn ls_restore(url: &str, extra: &[&str], out: &Path) -> Result<Vec<u8>, String> {
    let mut args = vec!["restore"];
    args.extend_from_slice(extra);
    let o = out.to_str().unwrap();
    args.extend_from_slice(&["-o", o, url]);
    let r = ls(&args);
    if r.status.success() {
        Ok(fs::read(out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&r.stderr).into_owned())
    }
}

fn file_url(root: &Path) -> String {
    format!("file://{}", root.display())
}

fn txid_arg(t: u64) -> String {
    format!("{t:016x}")
}

fn rfc3339(t: SystemTime) -> String {
    let ns = t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn ms_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms as u64)
}

// ---------------------------------------------------------------------------------------
// Our side: list a file replica, plan, apply.

fn list_replica(root: &Path) -> Vec<(LtxFileInfo, PathBuf)> {
    let mut out = Vec::new();
    for level in 0..=SNAPSHOT_LEVEL {
        let dir = root.join("ltx").join(level.to_string());
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let Some((min, max)) = parse_file_name(&name) else {
                continue;
            };
            let mtime = e.metadata().unwrap().modified().unwrap();
            out.push((LtxFileInfo::new(level, min, max, mtime), e.path()));
        }
    }
    out.sort_by_key(|(f, _)| (f.level, f.min_txid, f.max_txid));
    out
}

fn our_restore(root: &Path, target: RestoreTarget) -> Result<Vec<u8>, Error> {
    let listing = list_replica(root);
    let infos: Vec<LtxFileInfo> = listing.iter().map(|(f, _)| *f).collect();
    let plan = restore_plan(&infos, target)?;
    let bytes: Vec<Vec<u8>> = plan
        .iter()
        .map(|p| {
            let (_, path) = listing.iter().find(|(f, _)| f == p).unwrap();
            fs::read(path).unwrap()
        })
        .collect();
    let (img, _) = apply_files(
        bytes.iter().map(|b| &b[..]),
        std::io::Cursor::new(Vec::new()),
    )?;
    Ok(img.into_inner())
}

// ---------------------------------------------------------------------------------------
// Database states captured with real SQLite.

const PAGE_SIZE: u32 = 4096;

struct State {
    db: Vec<u8>,
    timestamp_ms: i64,
}

fn checkpointed(c: &Connection, path: &Path) -> Vec<u8> {
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    fs::read(path).unwrap()
}

/// create, inserts, a 300-row growth, update, delete + VACUUM shrink, more inserts.
fn capture_states(dir: &Path) -> Vec<State> {
    let path = dir.join("source.db");
    let c = Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;")
        .unwrap();
    let steps = [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO t(body) VALUES ('first');",
        "INSERT INTO t(body) VALUES ('second'), ('third');",
        "INSERT INTO t(body) SELECT printf('row %d %s', i, hex(randomblob(120))) FROM \
         (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300) SELECT i FROM n);",
        "UPDATE t SET body = 'updated ' || id WHERE id % 5 = 0;",
        "DELETE FROM t WHERE id > 40; VACUUM;",
        "INSERT INTO t(body) SELECT 'late ' || hex(randomblob(64)) FROM \
         (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 30) SELECT i FROM n);",
    ];
    // Header timestamps an hour back, one second apart, so every restore timestamp
    // lies in the past and between two states.
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let mut states = Vec::new();
    for (i, sql) in steps.iter().enumerate() {
        c.execute_batch(sql).unwrap();
        let db = checkpointed(&c, &path);
        assert_eq!(db.len() % PAGE_SIZE as usize, 0);
        states.push(State {
            db,
            timestamp_ms: base + 1000 * i as i64 + 123,
        });
    }
    let pages: Vec<usize> = states
        .iter()
        .map(|s| s.db.len() / PAGE_SIZE as usize)
        .collect();
    assert!(
        pages[2] > pages[1] + 5,
        "growth step should add pages: {pages:?}"
    );
    assert!(pages[4] < pages[3], "VACUUM should shrink: {pages:?}");
    states
}

fn page(db: &[u8], n: u32) -> &[u8] {
    let ps = PAGE_SIZE as usize;
    &db[(n as usize - 1) * ps..n as usize * ps]
}

fn commit_of(db: &[u8]) -> u32 {
    (db.len() / PAGE_SIZE as usize) as u32
}

/// Writes one LTX file at its replica path with mtime = header timestamp, as Litestream's
/// file backend does (restore uses the mtime as the creation time).
fn write_ltx(root: &Path, level: u8, bytes: &[u8], h: &Header) -> PathBuf {
    let path = PathBuf::from(ltx_object_path(
        Backend::File,
        root.to_str().unwrap(),
        level,
        h.min_txid,
        h.max_txid,
    ));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(ms_time(h.timestamp_ms)).unwrap();
    path
}

fn encode(
    h: Header,
    pages: impl IntoIterator<Item = (u32, Vec<u8>)>,
    enc: PageEncoding,
) -> Vec<u8> {
    let mut e = Encoder::with_encoding(Vec::new(), h, enc).unwrap();
    for (n, d) in pages {
        e.write_page(n, &d).unwrap();
    }
    e.finish().unwrap().0
}

/// A full file holding every page of `db`.
fn full_file(db: &[u8], min: u64, max: u64, ts: i64, enc: PageEncoding) -> (Header, Vec<u8>) {
    let h = Header::new(PAGE_SIZE, commit_of(db), min, max, ts);
    (
        h,
        encode(
            h,
            (1..=commit_of(db)).map(|n| (n, page(db, n).to_vec())),
            enc,
        ),
    )
}

/// An incremental file: the pages that changed, plus every page past the old size.
fn incremental_file(prev: &[u8], next: &[u8], txid: u64, ts: i64) -> (Header, Vec<u8>) {
    let (pc, nc) = (commit_of(prev), commit_of(next));
    let h = Header::new(PAGE_SIZE, nc, txid, txid, ts);
    let pages = (1..=nc)
        .filter(|&n| n > pc || page(prev, n) != page(next, n))
        .map(|n| (n, page(next, n).to_vec()));
    (h, encode(h, pages, PageEncoding::Block))
}

/// Checks litestream and our restore agree with the captured states at every target.
fn check_all_targets(root: &Path, states: &[State], available: &[u64], tmp: &Path, tag: &str) {
    let url = file_url(root);
    let latest = &states.last().unwrap().db;
    let got = ls_restore(&url, &[], &tmp.join(format!("{tag}-latest.db"))).unwrap();
    assert!(got == *latest, "{tag}: litestream latest restore differs");
    assert!(
        our_restore(root, RestoreTarget::Latest).unwrap() == *latest,
        "{tag}: our latest differs"
    );

    for (i, s) in states.iter().enumerate() {
        let txid = i as u64 + 1;
        let out = tmp.join(format!("{tag}-txid-{txid}.db"));
        let theirs = ls_restore(&url, &["-txid", &txid_arg(txid)], &out);
        let ours = our_restore(root, RestoreTarget::Txid(txid));
        if available.contains(&txid) {
            assert!(
                theirs.unwrap() == s.db,
                "{tag}: litestream -txid {txid} differs"
            );
            assert!(ours.unwrap() == s.db, "{tag}: our -txid {txid} differs");
        } else {
            let e = theirs.unwrap_err();
            assert!(
                e.contains("no matching backup files available"),
                "{tag}: txid {txid}: {e}"
            );
            assert!(
                matches!(ours, Err(Error::TxnNotAvailable)),
                "{tag}: txid {txid}: {ours:?}"
            );
        }
    }
}

fn check_timestamps(root: &Path, states: &[State], tmp: &Path, tag: &str) {
    let url = file_url(root);
    for (i, s) in states.iter().enumerate() {
        // Half a second after state i: files are selected strictly before it.
        let t = ms_time(s.timestamp_ms + 500);
        let arg = rfc3339(t);
        let out = tmp.join(format!("{tag}-ts-{i}.db"));
        let theirs = ls_restore(&url, &["-timestamp", &arg], &out);
        let ours = our_restore(root, RestoreTarget::Timestamp(t));
        if i + 1 < states.len() {
            assert!(
                theirs.unwrap() == s.db,
                "{tag}: litestream -timestamp {arg} differs"
            );
            assert!(ours.unwrap() == s.db, "{tag}: our -timestamp {arg} differs");
        } else {
            // After the newest file: refused, not clamped.
            let e = theirs.unwrap_err();
            assert!(e.contains("timestamp does not exist"), "{tag}: {e}");
            assert!(
                matches!(ours, Err(Error::TimestampNotFound)),
                "{tag}: {ours:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// (a) Our L0 files → litestream restore.

#[test]
fn our_l0_replica_restores_with_litestream() {
    let dir = tempfile::tempdir().unwrap();
    let states = capture_states(dir.path());
    let root = dir.path().join("replica-a");
    let (h, f) = full_file(
        &states[0].db,
        1,
        1,
        states[0].timestamp_ms,
        PageEncoding::Block,
    );
    write_ltx(&root, 0, &f, &h);
    for i in 1..states.len() {
        let (h, f) = incremental_file(
            &states[i - 1].db,
            &states[i].db,
            i as u64 + 1,
            states[i].timestamp_ms,
        );
        write_ltx(&root, 0, &f, &h);
    }
    let all: Vec<u64> = (1..=states.len() as u64).collect();
    check_all_targets(&root, &states, &all, dir.path(), "a");
    check_timestamps(&root, &states, dir.path(), "a");

    let ok = ls(&[
        "restore",
        "-integrity-check",
        "full",
        "-o",
        dir.path().join("a-ic.db").to_str().unwrap(),
        &file_url(&root),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // A gap: litestream and we both refuse a latest restore.
    let gap = dir.path().join("replica-gap");
    for (i, s) in states.iter().enumerate().take(3) {
        let (h, f) = if i == 0 {
            full_file(&s.db, 1, 1, s.timestamp_ms, PageEncoding::Block)
        } else {
            incremental_file(&states[i - 1].db, &s.db, i as u64 + 1, s.timestamp_ms)
        };
        write_ltx(&gap, 0, &f, &h);
    }
    let (h, f) = incremental_file(&states[2].db, &states[3].db, 5, states[3].timestamp_ms);
    write_ltx(&gap, 0, &f, &h);
    let e = ls_restore(&file_url(&gap), &[], &dir.path().join("gap.db")).unwrap_err();
    assert!(e.contains("non-contiguous ltx files: have up to 0000000000000003 but next file starts at 0000000000000005"), "{e}");
    assert!(matches!(
        our_restore(&gap, RestoreTarget::Latest),
        Err(Error::NonContiguous { have: 3, next: 5 })
    ));
}

// ---------------------------------------------------------------------------------------
// (b) An L9 snapshot (legacy frame pages) and our own compactions.

#[test]
fn our_snapshot_and_compactions_restore_with_litestream() {
    let dir = tempfile::tempdir().unwrap();
    let states = capture_states(dir.path());
    let n = states.len() as u64;

    let root = dir.path().join("replica-b");
    let (h, snap) = full_file(
        &states[0].db,
        1,
        1,
        states[0].timestamp_ms,
        PageEncoding::LegacyFrame,
    );
    write_ltx(&root, SNAPSHOT_LEVEL, &snap, &h);
    let mut l0 = Vec::new();
    for i in 1..states.len() {
        let (h, f) = incremental_file(
            &states[i - 1].db,
            &states[i].db,
            i as u64 + 1,
            states[i].timestamp_ms,
        );
        write_ltx(&root, 0, &f, &h);
        l0.push(f);
    }
    // L1 2-4 from L0 2, 3, 4 (growth, update, shrink-free range).
    let (l1, h1, _) = compact(vec![&l0[0][..], &l0[1][..], &l0[2][..]], Vec::new()).unwrap();
    assert_eq!(
        (h1.min_txid, h1.max_txid, h1.commit, h1.timestamp_ms),
        (2, 4, commit_of(&states[3].db), states[3].timestamp_ms)
    );
    write_ltx(&root, 1, &l1, &h1);
    let all: Vec<u64> = (1..=n).collect();
    check_all_targets(&root, &states, &all, dir.path(), "b");

    // Without L0 2..4 only the compaction covers them: TXIDs 2 and 3 are gone, 4 stays.
    let root2 = dir.path().join("replica-b2");
    write_ltx(&root2, SNAPSHOT_LEVEL, &snap, &h);
    write_ltx(&root2, 1, &l1, &h1);
    for (i, f) in l0.iter().enumerate().skip(3) {
        let d = decode_file(f).unwrap();
        write_ltx(&root2, 0, f, &d.header);
        assert_eq!(d.header.min_txid, i as u64 + 2);
    }
    // And a later snapshot L9 1-5: merged from the L9 1-1, the L1 2-4 and L0 5 (VACUUM).
    let (l9, h9, _) = compact(vec![&snap[..], &l1[..], &l0[3][..]], Vec::new()).unwrap();
    assert!(h9.is_snapshot() && h9.max_txid == 5);
    write_ltx(&root2, SNAPSHOT_LEVEL, &l9, &h9);
    check_all_targets(&root2, &states, &[1, 4, 5, 6], dir.path(), "b2");
    let dry = ls(&[
        "restore",
        "-dry-run",
        "-o",
        dir.path().join("dry.db").to_str().unwrap(),
        &file_url(&root2),
    ]);
    assert!(dry.status.success());
}

// ---------------------------------------------------------------------------------------
// (c) litestream replicate → our decoder, plan and apply.

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| parse_file_name(&e.file_name().to_string_lossy()).is_some())
                .count()
        })
        .unwrap_or(0)
}

struct Replicator(Child);

impl Drop for Replicator {
    fn drop(&mut self) {
        // Only reached on a failed test: do not leave the child running.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn interrupt_and_wait(r: &mut Replicator) {
    let pid = r.0.id() as libc::pid_t;
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = wait_exit(&mut r.0, Duration::from_secs(15));
    assert!(status.success(), "litestream exited with {status:?}");
}

#[test]
fn litestream_replica_decodes_and_restores_with_ours() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let replica = dir.path().join("replica-c");
    let c = Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;
         CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO t(body) VALUES ('seed');",
    )
    .unwrap();

    let cfg = dir.path().join("litestream.yml");
    fs::write(
        &cfg,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 250ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 250ms\n\
             levels:\n  - interval: 2s\n  - interval: 4s\nsnapshot:\n  interval: 5s\n",
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    let log = fs::File::create(dir.path().join("litestream.log")).unwrap();
    let child = ls_command(&["replicate", "-config", cfg.to_str().unwrap()])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start litestream replicate");
    let mut rep = Replicator(child);
    let l0_dir = replica.join("ltx/0");
    wait_until(Duration::from_secs(10), "the first L0 file", || {
        count_files(&l0_dir) > 0
    });

    // Small transactions, each given a sync of its own.
    for i in 0..4 {
        let before = count_files(&l0_dir);
        c.execute("INSERT INTO t(body) VALUES (?1)", [format!("small {i}")])
            .unwrap();
        wait_until(
            Duration::from_secs(5),
            "an L0 file per small transaction",
            || count_files(&l0_dir) > before,
        );
    }
    // A big transaction, an update, then a shrink.
    let before = count_files(&l0_dir);
    c.execute_batch(
        "BEGIN; INSERT INTO t(body) SELECT hex(randomblob(400)) FROM \
         (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 1500) SELECT i FROM n); COMMIT;
         UPDATE t SET body = 'u' || id WHERE id % 7 = 0;",
    )
    .unwrap();
    wait_until(
        Duration::from_secs(5),
        "the big transaction's L0 file",
        || count_files(&l0_dir) > before,
    );
    let before = count_files(&l0_dir);
    c.execute_batch("DELETE FROM t WHERE id > 200; VACUUM;")
        .unwrap();
    wait_until(Duration::from_secs(5), "the VACUUM's L0 file", || {
        count_files(&l0_dir) > before
    });

    // Keep writing a little until Litestream has made L1, L2 and L9 files.
    let mut i = 0;
    wait_until(Duration::from_secs(25), "L1, L2 and L9 files", || {
        i += 1;
        c.execute("INSERT INTO t(body) VALUES (?1)", [format!("tick {i}")])
            .unwrap();
        // Pacing: one small write per step, so the levels fill from several syncs.
        std::thread::sleep(Duration::from_millis(200));
        [1, 2, 9]
            .iter()
            .all(|l| count_files(&replica.join(format!("ltx/{l}"))) > 0)
    });
    c.execute("INSERT INTO t(body) VALUES ('last')", [])
        .unwrap();
    let source_rows: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    let before = count_files(&l0_dir);
    wait_until(Duration::from_secs(5), "the last L0 file", || {
        count_files(&l0_dir) > before
    });
    interrupt_and_wait(&mut rep);

    // Every file Litestream wrote decodes and verifies, with the header fields it uses.
    let listing = list_replica(&replica);
    let mut max_l0 = 0;
    for (info, path) in &listing {
        let bytes = fs::read(path).unwrap();
        let d = decode_file(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let h = d.header;
        assert_eq!(
            (h.min_txid, h.max_txid),
            (info.min_txid, info.max_txid),
            "{}",
            path.display()
        );
        assert_eq!(h.flags, FLAG_NO_CHECKSUM);
        assert_eq!(
            (
                h.pre_apply_checksum,
                d.trailer.post_apply_checksum,
                h.node_id
            ),
            (0, 0, 0)
        );
        assert_eq!(h.page_size, PAGE_SIZE);
        match info.level {
            0 => {
                assert_eq!(h.min_txid, h.max_txid);
                assert!(h.wal_offset >= 32);
                max_l0 = max_l0.max(h.max_txid);
            }
            SNAPSHOT_LEVEL => assert!(h.is_snapshot()),
            _ => assert_eq!(
                (h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2),
                (0, 0, 0, 0)
            ),
        }
        assert_eq!(
            info.created_at,
            ms_time(h.timestamp_ms),
            "mtime = header timestamp"
        );
    }
    let summary: Vec<String> = listing
        .iter()
        .map(|(f, _)| format!("L{} {}-{}", f.level, f.min_txid, f.max_txid))
        .collect();
    eprintln!("litestream wrote: {}", summary.join(", "));
    assert!(
        listing.iter().any(|(f, _)| f.level == 1)
            && listing.iter().any(|(f, _)| f.level == SNAPSHOT_LEVEL)
    );
    assert!(
        max_l0 >= 8,
        "expected an L0 file per write step, got up to {max_l0}"
    );
    // Litestream's own local copies of its L0 files decode too.
    let local = dir.path().join(".live.db-litestream/ltx/0");
    let mut local_count = 0;
    for e in fs::read_dir(&local).unwrap() {
        let p = e.unwrap().path();
        if parse_file_name(&p.file_name().unwrap().to_string_lossy()).is_some() {
            decode_file(&fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            local_count += 1;
        }
    }
    assert!(local_count > 0);

    // Our WAL reader finds exactly the frames Litestream put in its L0 files: for every L0
    // file whose frames are still in the WAL, scanning its WAL range gives its commit,
    // and each page the scan finds is in the file with the same bytes.
    let wal = fs::read(dir.path().join("live.db-wal")).unwrap();
    let wh = WalHeader::parse(&wal).unwrap();
    let (mut checked, mut prev_commit) = (0, None);
    for (info, path) in listing.iter().filter(|(f, _)| f.level == 0) {
        let d = decode_file(&fs::read(path).unwrap()).unwrap();
        let h = d.header;
        let prev = prev_commit.replace(h.commit);
        if (h.wal_salt1, h.wal_salt2) != (wh.salt1, wh.salt2) || h.wal_size == 0 {
            continue;
        }
        let s = scan_slice(&wal, h.wal_offset as u64, Some(h.wal_size as u64)).unwrap();
        assert_eq!(
            (s.size, s.commit),
            (h.wal_size as u64, Some(h.commit)),
            "L0 {}",
            info.min_txid
        );
        for &pgno in s.pages.keys() {
            let ours = s.page(&wal, pgno).unwrap();
            let theirs = d
                .pages
                .iter()
                .find(|(n, _)| *n == pgno)
                .map(|(_, p)| &p[..]);
            assert_eq!(theirs, Some(ours), "L0 {} page {pgno}", info.min_txid);
        }
        // Besides WAL pages, an incremental L0 holds only the growth pages.
        if let Some(prev) = prev.filter(|_| h.wal_offset > 32) {
            for (pgno, _) in &d.pages {
                assert!(
                    s.pages.contains_key(pgno) || *pgno > prev,
                    "L0 {} page {pgno}",
                    info.min_txid
                );
            }
        }
        checked += 1;
    }
    eprintln!("{checked} L0 files matched against the WAL");
    assert!(
        checked >= 4,
        "only {checked} L0 files could be matched against the WAL"
    );

    // Our restore equals litestream's, latest and at every TXID.
    let url = file_url(&replica);
    let theirs = ls_restore(&url, &[], &dir.path().join("c-latest.db")).unwrap();
    let ours = our_restore(&replica, RestoreTarget::Latest).unwrap();
    assert!(ours == theirs, "latest restore differs from litestream's");
    let rc = Connection::open(dir.path().join("c-latest.db")).unwrap();
    let rows: i64 = rc
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, source_rows);
    for txid in 1..=max_l0 {
        let theirs = ls_restore(
            &url,
            &["-txid", &txid_arg(txid)],
            &dir.path().join(format!("c-{txid}.db")),
        );
        let ours = our_restore(&replica, RestoreTarget::Txid(txid));
        match (theirs, ours) {
            (Ok(a), Ok(b)) => assert!(a == b, "-txid {txid} differs"),
            (Err(e), Err(Error::TxnNotAvailable)) => {
                assert!(e.contains("no matching backup files"), "{e}")
            }
            (a, b) => panic!(
                "-txid {txid}: litestream {:?} vs ours {:?}",
                a.map(|v| v.len()),
                b.map(|v| v.len())
            ),
        }
    }
}
