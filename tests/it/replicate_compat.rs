//! Compatibility of the replicator runtime with the real litestream 0.5.17, both
//! directions, on `file://` and on S3 (a SeaweedFS gateway started on loopback):
//!
//! (a) a workload of a few thousand transactions of mixed sizes, with an application
//!     checkpoint attempt, a VACUUM and the replicator's own checkpoints, compactions and
//!     snapshots, replicated by `gleaner replicate`; `litestream restore` and
//!     `gleaner restore` give byte-identical files equal in content to the source, for
//!     the latest state and for `-txid` / `-timestamp` restores of recorded intermediate
//!     states;
//! (b) a database replicated by `litestream replicate`, restored by `gleaner restore`:
//!     byte-identical to litestream's own restore.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::*;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection};

fn open_rw(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    c
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("gleaner.toml");
    std::fs::write(
        &p,
        "[log]\nlevel = \"info\"\n\
         [replicate]\nsync_interval_ms = 50\ncheckpoint_wal_bytes = 262144\n\
         checkpoint_interval_secs = 1\ntruncate_wal_bytes = 4194304\n\
         level_intervals_secs = [1, 3]\nsnapshot_interval_secs = 4\n",
    )
    .unwrap();
    p
}

/// One transaction of the workload: inserts of mixed sizes, sometimes updates/deletes.
fn txn(c: &mut Connection, rng: &mut rand::rngs::StdRng) {
    let tx = c.transaction().unwrap();
    let n = rng.random_range(1..=4);
    for _ in 0..n {
        let size = match rng.random_range(0..10) {
            0 => rng.random_range(8_000..40_000),
            1..=3 => rng.random_range(1_000..4_000),
            _ => rng.random_range(10..300),
        };
        let blob: Vec<u8> = (0..size).map(|_| rng.random()).collect();
        tx.execute(
            "INSERT INTO t (v, n) VALUES (?1, ?2)",
            params![blob, size as i64],
        )
        .unwrap();
    }
    match rng.random_range(0..10) {
        0 => {
            tx.execute(
                "UPDATE t SET n = n + 1 WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 3)",
                [],
            )
            .unwrap();
        }
        1 => {
            tx.execute(
                "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 2)",
                [],
            )
            .unwrap();
        }
        _ => {}
    }
    tx.commit().unwrap();
}

/// Waits until the replica restores to exactly the local content; returns its TXID.
fn caught_up(b: &Backend, src: &Path, dir: &Path) -> u64 {
    let want = content(src);
    let out = dir.join("probe.db");
    wait_for(Duration::from_secs(60), "the replica to catch up", || {
        let _ = std::fs::remove_file(&out);
        let err = gleaner_restore(b, &["--quiet"], &out).ok()?;
        (content(&out) == want).then(|| restored_txid(&err))
    })
}

struct State {
    txid: u64,
    content: String,
    after: SystemTime,
}

fn gleaner_to_litestream(b: &Backend, dir: &Path) {
    let src = dir.join("src.db");
    let mut c = open_rw(&src);
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL, n INTEGER NOT NULL);",
    )
    .unwrap();
    let cfg = write_config(dir);
    let (mut child, log) = spawn_replicate(&cfg, &src, b);

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut states = Vec::new();
    const N: usize = 2_500;
    for i in 1..=N {
        txn(&mut c, &mut rng);
        if i == 700 {
            // An application checkpoint attempt: the replicator's read transaction keeps
            // it from passing frames not yet shipped.
            let _: (i64, i64, i64) = c
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .unwrap();
        }
        if i == 1_300 {
            c.execute("DELETE FROM t WHERE id % 3 = 0", []).unwrap();
            c.execute_batch("VACUUM").unwrap();
        }
        if i % 500 == 0 {
            let txid = caught_up(b, &src, dir);
            // A time window, not a wait: `after` must be clearly later than this state's
            // files and earlier than the next state's, for the -timestamp restores below.
            std::thread::sleep(Duration::from_millis(30));
            let after = SystemTime::now();
            std::thread::sleep(Duration::from_millis(30));
            states.push(State {
                txid,
                content: content(&src),
                after,
            });
        }
    }
    signal(&child, libc::SIGINT);
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(
        st.success(),
        "gleaner replicate failed: {}",
        log.lock().unwrap().join("\n")
    );
    drop(c);

    // Latest: both tools, byte-identical, equal in content to the source.
    let (g, l) = (dir.join("g.db"), dir.join("l.db"));
    gleaner_restore(b, &["--quiet"], &g).unwrap();
    litestream_restore(b, &[], &l).unwrap();
    assert_eq!(
        std::fs::read(&g).unwrap(),
        std::fs::read(&l).unwrap(),
        "latest restores differ"
    );
    assert_eq!(
        content(&g),
        content(&src),
        "latest restore differs from the source"
    );
    assert_eq!(integrity(&g), "ok");

    // Intermediate states by TXID and by timestamp.
    assert!(states.len() >= 4);
    let ids: Vec<u64> = states.iter().map(|s| s.txid).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "TXIDs {ids:?}");
    let last = states.len() - 1;
    for (k, s) in states.iter().enumerate() {
        let hex = format!("{:016x}", s.txid);
        let ts = rfc3339(s.after);
        let mut targets = vec![("--txid", "-txid", hex.as_str())];
        // A time after the newest file is refused by both tools ("timestamp does not
        // exist"), so the last state is only checked by TXID.
        if k != last {
            targets.push(("--timestamp", "-timestamp", ts.as_str()));
        }
        for (flag_g, flag_l, val) in targets {
            let (g, l) = (dir.join("g-pit.db"), dir.join("l-pit.db"));
            let _ = std::fs::remove_file(&g);
            let _ = std::fs::remove_file(&l);
            let err = gleaner_restore(b, &["--quiet", flag_g, val], &g)
                .unwrap_or_else(|e| panic!("gleaner restore {flag_g} {val}: {e}"));
            litestream_restore(b, &[flag_l, val], &l)
                .unwrap_or_else(|e| panic!("litestream restore {flag_l} {val}: {e}"));
            assert_eq!(
                std::fs::read(&g).unwrap(),
                std::fs::read(&l).unwrap(),
                "{flag_g} {val}: the two restores differ"
            );
            assert_eq!(content(&g), s.content, "{flag_g} {val}: wrong state");
            if flag_g == "--txid" {
                assert_eq!(restored_txid(&err), s.txid, "{flag_g} {val}");
            }
        }
    }

    // The replicator compacted and snapshotted along the way (levels 1 and 9 exist).
    assert!(
        replica_files(b, 1) > 0,
        "no level-1 compaction in the replica"
    );
    assert!(replica_files(b, 9) > 0, "no snapshot in the replica");

    // verify agrees.
    let mut v = command();
    v.arg("verify").arg(b.gleaner_url()).envs(b.env());
    let o = run(v);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("integrity:  ok"));
}

fn litestream_to_gleaner(b: &Backend, dir: &Path) {
    let src = dir.join("ls-src.db");
    let mut c = open_rw(&src);
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL, n INTEGER NOT NULL);",
    )
    .unwrap();
    let yml = dir.join("litestream.yml");
    std::fs::write(
        &yml,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 100ms\n{}levels:\n  - interval: 2s\nsnapshot:\n  interval: 3s\n",
            src.display(),
            b.litestream_yaml()
        ),
    )
    .unwrap();
    let mut cmd = ls_cmd();
    cmd.args(["replicate", "-config"]).arg(&yml);
    stdio_piped(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let log = collect_stderr(&mut child);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for i in 0..600 {
        txn(&mut c, &mut rng);
        if i == 300 {
            c.execute("DELETE FROM t WHERE id % 2 = 0", []).unwrap();
            c.execute_batch("VACUUM").unwrap();
        }
        if i % 100 == 0 {
            // Pacing, not waiting: spreads the workload over several of litestream's
            // sync, compaction (2 s) and snapshot (3 s) intervals.
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    // litestream has shipped everything (its own restore is the source) and has compacted
    // and snapshotted, so gleaner reads levels 0, 1 and 9 below.
    let want = content(&src);
    let probe = dir.join("ls-probe.db");
    wait_until(
        Duration::from_secs(60),
        "litestream's replica to hold the source, a level-1 compaction and a snapshot",
        || {
            let _ = std::fs::remove_file(&probe);
            replica_files(b, 1) > 0
                && replica_files(b, 9) > 0
                && litestream_restore(b, &[], &probe).is_ok()
                && content(&probe) == want
        },
    );
    signal(&child, libc::SIGINT);
    let st = wait_exit(&mut child, Duration::from_secs(30));
    assert!(
        st.success(),
        "litestream failed: {}",
        log.lock().unwrap().join("\n")
    );
    drop(c);

    let (g, l) = (dir.join("g2.db"), dir.join("l2.db"));
    gleaner_restore(b, &["--quiet"], &g).unwrap();
    litestream_restore(b, &[], &l).unwrap();
    assert_eq!(
        std::fs::read(&g).unwrap(),
        std::fs::read(&l).unwrap(),
        "restores differ"
    );
    assert_eq!(content(&g), content(&src));
    // An intermediate TXID too.
    let (g, l) = (dir.join("g3.db"), dir.join("l3.db"));
    let err = gleaner_restore(b, &["--quiet", "--txid", "3"], &g).unwrap();
    assert_eq!(restored_txid(&err), 3);
    litestream_restore(b, &["-txid", "0000000000000003"], &l).unwrap();
    assert_eq!(
        std::fs::read(&g).unwrap(),
        std::fs::read(&l).unwrap(),
        "txid 3 differs"
    );
}

#[test]
fn file_replicas_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    gleaner_to_litestream(&Backend::File(a.join("replica")), &a);
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    litestream_to_gleaner(&Backend::File(b.join("replica")), &b);
}

#[test]
fn s3_replicas_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("compat");
    let a = dir.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    gleaner_to_litestream(&s3.backend("compat", "gleaner/db"), &a);
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    litestream_to_gleaner(&s3.backend("compat", "litestream/db"), &b);
}
