//! `gleaner restore` on damaged replicas: a TXID gap, a corrupt page, a bad file checksum,
//! no snapshot, a timestamp before the first file. Each fails naming the file (or the
//! replica) and the reason, and leaves nothing at OUT (nor OUT.tmp). An existing OUT is
//! never overwritten without --force; --if-db-not-exists and --if-replica-exists skip
//! without error and without touching OUT.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::support::*;

/// A replica of a small database with several L0 files, made by `gleaner replicate`.
fn make_replica(dir: &Path) -> PathBuf {
    let db = dir.join("src.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v BLOB);")
        .unwrap();
    let replica = dir.join("replica");
    let mut cmd = command();
    cmd.env("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "50")
        .args(["replicate", "--db"])
        .arg(&db)
        .arg("--replica")
        .arg(format!("file://{}", replica.display()));
    stdio_piped(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let l0 = replica.join("ltx/0");
    for i in 0..5 {
        c.execute("INSERT INTO t VALUES (randomblob(3000))", [])
            .unwrap();
        wait_for(Duration::from_secs(10), "an L0 file per write", || {
            (fs::read_dir(&l0).map_or(0, |d| d.count()) > i).then_some(())
        });
    }
    signal(&child, libc::SIGINT);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    replica
}

fn l0(replica: &Path, txid: u64) -> PathBuf {
    replica
        .join("ltx/0")
        .join(format!("{txid:016x}-{txid:016x}.ltx"))
}

fn copy_dir(from: &Path, to: &Path) {
    for level in fs::read_dir(from.join("ltx")).unwrap() {
        let level = level.unwrap();
        let dst = to.join("ltx").join(level.file_name());
        fs::create_dir_all(&dst).unwrap();
        for f in fs::read_dir(level.path()).unwrap() {
            let f = f.unwrap();
            let d = dst.join(f.file_name());
            fs::copy(f.path(), &d).unwrap();
            // Keep mtimes: they are the files' creation times for point-in-time restore.
            let t = f.metadata().unwrap().modified().unwrap();
            fs::File::options()
                .write(true)
                .open(&d)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
    }
}

/// Restores a damaged copy; returns stderr after checking nothing was written.
fn fails(dir: &Path, name: &str, damage: impl FnOnce(&Path), extra: &[&str]) -> String {
    let good = dir.join("replica");
    let bad = dir.join(name);
    copy_dir(&good, &bad);
    damage(&bad);
    let out = dir.join(format!("{name}.db"));
    let err = gleaner_restore(&Backend::File(bad), extra, &out)
        .expect_err(&format!("{name}: restore should fail"));
    assert!(!out.exists(), "{name}: something was written at OUT");
    let mut tmp = out.clone().into_os_string();
    tmp.push(".tmp");
    assert!(!Path::new(&tmp).exists(), "{name}: OUT.tmp left behind");
    err
}

#[test]
fn damaged_replicas_fail_with_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let replica = make_replica(d);
    // The undamaged replica restores.
    let ok = d.join("ok.db");
    gleaner_restore(&Backend::File(replica.clone()), &["--quiet"], &ok).unwrap();
    assert_eq!(integrity(&ok), "ok");

    let e = fails(d, "gap", |r| fs::remove_file(l0(r, 3)).unwrap(), &[]);
    assert!(
        e.contains("TXID gap") && e.contains("0000000000000004-0000000000000004.ltx"),
        "gap: {e}"
    );

    let e = fails(
        d,
        "corrupt",
        |r| {
            let p = l0(r, 2);
            let mut b = fs::read(&p).unwrap();
            let mid = 100 + 20;
            b[mid] ^= 0xff;
            fs::write(&p, b).unwrap();
        },
        &[],
    );
    assert!(
        e.contains("0000000000000002-0000000000000002.ltx")
            && (e.contains("LZ4") || e.contains("checksum") || e.contains("invalid")),
        "corrupt: {e}"
    );

    let e = fails(
        d,
        "checksum",
        |r| {
            let p = l0(r, 4);
            let mut b = fs::read(&p).unwrap();
            let n = b.len();
            b[n - 1] ^= 0x01;
            fs::write(&p, b).unwrap();
        },
        &[],
    );
    assert!(
        e.contains("0000000000000004-0000000000000004.ltx") && e.contains("file checksum mismatch"),
        "checksum: {e}"
    );

    let e = fails(d, "nosnap", |r| fs::remove_file(l0(r, 1)).unwrap(), &[]);
    assert!(e.contains("no snapshot"), "no snapshot: {e}");

    let early = rfc3339(UNIX_EPOCH + Duration::from_secs(1_000_000));
    let e = fails(d, "early", |_| {}, &["--timestamp", &early]);
    assert!(
        e.contains("timestamp does not exist"),
        "early timestamp: {e}"
    );

    // OUT exists: refused without --force, replaced with it.
    fs::write(&ok, b"keep me").unwrap();
    let e = gleaner_restore(&Backend::File(replica.clone()), &["--quiet"], &ok).unwrap_err();
    assert!(e.contains("--force"), "{e}");
    assert_eq!(fs::read(&ok).unwrap(), b"keep me");
    gleaner_restore(&Backend::File(replica), &["--quiet", "--force"], &ok).unwrap();
    assert_eq!(integrity(&ok), "ok");
}

#[test]
fn if_guards_skip_without_touching_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let replica = make_replica(d);
    let out = d.join("out.db");

    // --if-db-not-exists: an existing OUT is kept, and that is a success.
    fs::write(&out, b"keep me").unwrap();
    let b = Backend::File(replica.clone());
    let msg = gleaner_restore(&b, &["--quiet", "--if-db-not-exists"], &out).unwrap();
    assert!(msg.contains("nothing restored"), "{msg}");
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
    // With OUT missing and a replica present, both guards restore as usual.
    fs::remove_file(&out).unwrap();
    let guards = ["--quiet", "--if-db-not-exists", "--if-replica-exists"];
    gleaner_restore(&b, &guards, &out).unwrap();
    assert_eq!(integrity(&out), "ok");

    // --if-replica-exists: an empty replica is a success that writes nothing...
    let empty = Backend::File(d.join("empty-replica"));
    let none = d.join("none.db");
    let msg = gleaner_restore(&empty, &["--quiet", "--if-replica-exists"], &none).unwrap();
    assert!(msg.contains("no replica"), "{msg}");
    assert!(!none.exists());
    // ...and without it, an error that writes nothing either.
    assert!(gleaner_restore(&empty, &["--quiet"], &none).is_err());
    assert!(!none.exists());

    // --force and --if-db-not-exists contradict each other.
    let e = gleaner_restore(&b, &["--force", "--if-db-not-exists"], &out).unwrap_err();
    assert!(e.contains("cannot be used with"), "{e}");
}
