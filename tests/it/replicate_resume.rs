//! Restarts cost no more than they must (issue 20, items 1 and 6):
//!
//! - a SIGKILL right after the replicator's own checkpoint, with the commit that restarted
//!   the WAL not shipped yet, must not make the next start upload the whole database: the
//!   replica's L0 files hold exactly one full capture (the first) however many such kills
//!   there were, and the replica still restores to the local data;
//! - a process that never lives as long as the level-1 compaction interval still compacts
//!   a large L0 backlog: soon after a start with many L0 files a level-1 file exists, and
//!   the replica restores to the local data;
//! - a compaction level takes what the level below produced after it ran, with no new
//!   upload needed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{
    self, content, gleaner_restore, integrity, replica_files, wait_replica, wait_until, Api,
    Backend, Server,
};
use serde_json::json;

const TENANT: &str = "resume-a";

fn tenant_db(data: &Path) -> PathBuf {
    data.join("tenants").join(format!("{TENANT}.db"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn base_env(replica: &Path) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN.to_owned()),
        ("GLEANER_REPLICATE__ENABLED", "true".to_owned()),
        (
            "GLEANER_REPLICATE__URL",
            format!("file://{}", replica.display()),
        ),
        // L0 files stay, so the test can read every capture the server made.
        ("GLEANER_REPLICATE__L0_RETENTION_SECS", "86400".to_owned()),
    ];
    v.extend(support::NO_RATE_LIMITS.map(|(k, v)| (k, v.to_owned())));
    v
}

fn env_ref<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn write(api: &Api, tag: &str, n: usize) {
    let recs: Vec<_> = (0..n)
        .map(|j| json!({"source": "resume", "key": format!("{tag}-{j}"), "fields": {"j": j}}))
        .collect();
    api.ok(
        "POST",
        &format!("/v1/tenants/{TENANT}/records"),
        support::ADMIN_TOKEN,
        Some(json!({ "records": recs })),
    )
    .await;
}

/// Salt-1 of the WAL header (0 without a WAL).
fn wal_salt1(db: &Path) -> u32 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::read(PathBuf::from(wal)) {
        Ok(b) if b.len() >= 32 => u32::from_be_bytes(b[16..20].try_into().unwrap()),
        _ => 0,
    }
}

/// L0 files of a file replica that hold every page of the database ("full" captures), by
/// TXID.
fn full_l0s(replica: &Path) -> Vec<u64> {
    let dir = replica.join("ltx").join("0");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let d = gleaner::replicate::ltx::decode_file(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if d.pages.len() as u32 == d.header.commit {
            out.push(d.header.min_txid);
        }
    }
    out.sort();
    out
}

#[test]
fn sigkill_after_a_checkpoint_takes_no_full_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (data, replica) = (dir.path().join("data"), dir.path().join("replica"));
    let mut env = base_env(&replica);
    // A checkpoint after a shipped sync once the WAL passes 64 KiB; a long interval, so the commit that restarts
    // the WAL after it stays unshipped until the kill.
    env.push(("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "1500".to_owned()));
    env.push((
        "GLEANER_REPLICATE__CHECKPOINT_WAL_BYTES",
        "65536".to_owned(),
    ));
    let env = env_ref(&env);
    let rt = runtime();
    let db = tenant_db(&data);
    let tenant_replica = replica.join("tenants").join(TENANT);
    let probe = dir.path().join("probe.db");

    let kills = 4;
    for round in 0..=kills {
        let server = Server::start(&data, &[], &env);
        let api = Api::new(&server);
        if round == 0 {
            rt.block_on(api.create_tenant(TENANT));
            // A database of some size, so a full capture cannot pass for an incremental.
            for i in 0..20 {
                rt.block_on(write(&api, &format!("seed-{i}"), 20));
            }
        }
        wait_replica(
            &Backend::File(tenant_replica.clone()),
            &content(&db),
            &probe,
            Duration::from_secs(60),
            &format!("round {round}: the replica to catch up"),
        );
        if round == kills {
            assert!(server.stop().success(), "clean stop failed");
            break;
        }
        // Write until a commit restarts the WAL (the replicator checkpointed after
        // shipping), then kill at once: that commit is acknowledged and not yet shipped.
        let salt = wal_salt1(&db);
        let mut i = 0;
        while wal_salt1(&db) == salt {
            rt.block_on(write(&api, &format!("r{round}-{i}"), 3));
            i += 1;
            assert!(i < 2000, "round {round}: the WAL never restarted");
        }
        server.signal(libc::SIGKILL);
        let mut server = server;
        assert!(!server.wait(Duration::from_secs(10)).success());
        assert_eq!(integrity(&db), "ok");
    }

    let full = full_l0s(&tenant_replica);
    assert_eq!(
        full,
        vec![1],
        "only the first capture may hold every page; {kills} kills after a checkpoint gave \
         full L0 files at TXIDs {full:?}"
    );
    let out = dir.path().join("final.db");
    gleaner_restore(&Backend::File(tenant_replica), &["--quiet"], &out).unwrap();
    assert_eq!(integrity(&out), "ok");
    assert_eq!(
        content(&out),
        content(&db),
        "the restore differs from local"
    );
}

#[test]
fn startup_compacts_a_large_l0_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let (data, replica) = (dir.path().join("data"), dir.path().join("replica"));
    let mut env = base_env(&replica);
    env.push(("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "20".to_owned()));
    // Level 1 is due only after an hour: this process never lives that long.
    env.push((
        "GLEANER_REPLICATE__LEVEL_INTERVALS_SECS",
        "[3600, 7200, 14400]".to_owned(),
    ));
    env.push((
        "GLEANER_REPLICATE__STARTUP_COMPACT_L0_FILES",
        "40".to_owned(),
    ));
    let env = env_ref(&env);
    let rt = runtime();
    let db = tenant_db(&data);
    let tenant_replica = Backend::File(replica.join("tenants").join(TENANT));

    let server = Server::start(&data, &[], &env);
    let api = Api::new(&server);
    rt.block_on(api.create_tenant(TENANT));
    // One write per sync interval or so: one L0 file each.
    let mut i = 0;
    while replica_files(&tenant_replica, 0) < 60 {
        let want = replica_files(&tenant_replica, 0) + 1;
        rt.block_on(write(&api, &format!("w{i}"), 2));
        wait_until(Duration::from_secs(10), "the write to be shipped", || {
            replica_files(&tenant_replica, 0) >= want
        });
        i += 1;
    }
    assert!(server.stop().success(), "clean stop failed");
    assert_eq!(
        replica_files(&tenant_replica, 1),
        0,
        "level 1 ran within its interval"
    );

    // The tenant database is opened at start only if it has unshipped frames: open it.
    let server = Server::start(&data, &[], &env);
    let api = Api::new(&server);
    rt.block_on(write(&api, "after-restart", 1));
    wait_until(
        Duration::from_secs(30),
        "a level-1 compaction after start-up",
        || replica_files(&tenant_replica, 1) > 0,
    );
    wait_replica(
        &tenant_replica,
        &content(&db),
        &dir.path().join("probe.db"),
        Duration::from_secs(30),
        "the replica to catch up",
    );
    assert!(server.stop().success(), "clean stop failed");
    let out = dir.path().join("final.db");
    gleaner_restore(&tenant_replica, &["--quiet"], &out).unwrap();
    assert_eq!(
        content(&out),
        content(&db),
        "the restore differs from local"
    );
}

/// A level whose timer fires before the level below it has compacted must still take that
/// level's new file, without waiting for another upload. Level 2 is due every second and
/// level 1 every two, so after the tenant's first writes level 2 runs first (with nothing to
/// take) and level 1 a second later; before the fix level 2 stayed behind until the next
/// write, which in an idle database never comes.
#[test]
fn a_level_takes_what_the_level_below_compacted_after_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let (data, replica) = (dir.path().join("data"), dir.path().join("replica"));
    let mut env = base_env(&replica);
    env.push(("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "20".to_owned()));
    env.push((
        "GLEANER_REPLICATE__LEVEL_INTERVALS_SECS",
        "[2, 1]".to_owned(),
    ));
    let env = env_ref(&env);
    let rt = runtime();
    let tenant_replica = Backend::File(replica.join("tenants").join(TENANT));

    let server = Server::start(&data, &[], &env);
    let api = Api::new(&server);
    rt.block_on(api.create_tenant(TENANT));
    rt.block_on(write(&api, "only", 3));
    let level_max = |lv: &[(u8, usize, u64)], l: u8| lv.iter().find(|x| x.0 == l).map(|x| x.2);
    wait_until(
        Duration::from_secs(30),
        "level 2 to reach level 1's highest TXID with no further write",
        || {
            let lv = support::replica_levels(&tenant_replica);
            let (l1, l2) = (level_max(&lv, 1), level_max(&lv, 2));
            l1.is_some_and(|m| m > 0) && l1 == l2 && l1 == level_max(&lv, 0)
        },
    );
    assert!(server.stop().success(), "clean stop failed");
}
