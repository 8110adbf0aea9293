//! Crash safety of replication in `gleaner serve`: tenants are created over HTTP (each one
//! a control.db transaction plus a new tenant database) while the server is SIGKILLed at
//! random moments, 20 times. After every kill the local control.db passes
//! `integrity_check`; after every restart the replica catches up to exactly the local
//! content with no TXID gap (a latest restore refuses gaps), and at the end Litestream's
//! restore of the same replica is byte-identical to Gleaner's.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    self, content, gleaner_restore, integrity, litestream_restore, wait_for, wait_replica, Backend,
};
use rand::Rng;

const ROUNDS: usize = 20;

fn env(replica: &Path) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN.to_owned()),
        ("GLEANER_REPLICATE__ENABLED", "true".to_owned()),
        (
            "GLEANER_REPLICATE__URL",
            format!("file://{}", replica.display()),
        ),
        ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "50".to_owned()),
        // Checkpoint often, so kills land around checkpoints too.
        (
            "GLEANER_REPLICATE__CHECKPOINT_WAL_BYTES",
            "65536".to_owned(),
        ),
        (
            "GLEANER_REPLICATE__CHECKPOINT_INTERVAL_SECS",
            "1".to_owned(),
        ),
        ("GLEANER_STORE__MAX_OPEN_TENANTS", "64".to_owned()),
    ];
    // Writes as fast as it can; rate limiting is tested elsewhere.
    v.extend(support::NO_RATE_LIMITS.map(|(k, v)| (k, v.to_owned())));
    v
}

/// Waits until the control.db replica restores to the local content.
fn converge(replica: &Backend, local: &Path, dir: &Path, round: usize) {
    let out = dir.join("probe.db");
    wait_replica(
        replica,
        &content(local),
        &out,
        Duration::from_secs(30),
        &format!("round {round}: the replica to catch up with the local control.db"),
    );
    assert_eq!(
        integrity(&out),
        "ok",
        "round {round}: restored image corrupt"
    );
}

#[test]
fn sigkill_during_writes_never_loses_or_corrupts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let replica_root = dir.path().join("replica");
    let control_replica = Backend::File(replica_root.join("control"));
    let control = data.join("control.db");
    let env = env(&replica_root);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand::rng();
    let mut created_total = 0usize;
    for round in 0..ROUNDS {
        let server = support::Server::start(&data, &[], &env_ref);
        if round > 0 {
            converge(&control_replica, &control, dir.path(), round);
        }
        // Concurrent tenant creation for a random time, then SIGKILL mid-flight.
        let base = server.url("/v1/tenants");
        let run_for = Duration::from_millis(rng.random_range(150..700));
        let created = rt.block_on(async {
            let client = support::client();
            let stop = Instant::now() + run_for;
            let mut tasks = Vec::new();
            for w in 0..3 {
                let (client, base) = (client.clone(), base.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = 0usize;
                    let mut i = 0usize;
                    while Instant::now() < stop {
                        let id = format!("r{round}w{w}n{i}");
                        i += 1;
                        let r = client
                            .post(&base)
                            .bearer_auth(support::ADMIN_TOKEN)
                            .json(&serde_json::json!({"id": id}))
                            .send()
                            .await;
                        if matches!(r, Ok(ref r) if r.status().as_u16() == 201) {
                            n += 1;
                        }
                    }
                    n
                }));
            }
            let mut n = 0;
            for t in tasks {
                n += t.await.unwrap_or(0);
            }
            n
        });
        created_total += created;
        server.signal(libc::SIGKILL);
        let mut server = server;
        let st = server.wait(Duration::from_secs(10));
        assert!(!st.success());
        assert_eq!(
            integrity(&control),
            "ok",
            "round {round}: local control.db corrupt after SIGKILL"
        );
    }
    assert!(
        created_total > ROUNDS,
        "the workload created only {created_total} tenants"
    );

    // A last start: catch up, then a clean stop ships everything.
    let server = support::Server::start(&data, &[], &env_ref);
    converge(&control_replica, &control, dir.path(), ROUNDS);
    let st = server.stop();
    assert!(st.success());
    let local_rows: i64 = support::open_ro(&control)
        .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
        .unwrap();
    assert!(
        local_rows as usize >= created_total,
        "acknowledged tenants missing locally"
    );
    converge(&control_replica, &control, dir.path(), ROUNDS + 1);
    let (g, l) = (dir.path().join("g.db"), dir.path().join("l.db"));
    gleaner_restore(&control_replica, &["--quiet"], &g).unwrap();
    litestream_restore(&control_replica, &[], &l).unwrap();
    assert_eq!(std::fs::read(&g).unwrap(), std::fs::read(&l).unwrap());

    // Restore on start: a node with an empty data directory gets control.db and every
    // tenant database back.
    let local = content(&control);
    let tenant0 = data.join("tenants").join("r0w0n0.db");
    let tenant0_content = content(&tenant0);
    let tenants_before = std::fs::read_dir(data.join("tenants"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "db")
        })
        .count();
    std::fs::remove_dir_all(&data).unwrap();
    let server = support::Server::start(&data, &[], &env_ref);
    assert_eq!(content(&control), local, "control.db not restored on start");
    assert_eq!(
        content(&tenant0),
        tenant0_content,
        "tenant database not restored on start"
    );
    let tenants_after = std::fs::read_dir(data.join("tenants"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "db")
        })
        .count();
    assert_eq!(
        tenants_after, local_rows as usize,
        "not every tenant database was restored"
    );
    assert!(tenants_after <= tenants_before);
    assert!(server.stop().success());

    // Tenant databases are replicated as well.
    let t = Backend::File(replica_root.join("tenants").join("r0w0n0"));
    let out = dir.path().join("t.db");
    wait_for(Duration::from_secs(10), "a tenant replica", || {
        gleaner_restore(&t, &["--quiet", "--force"], &out).ok()
    });
    assert_eq!(integrity(&out), "ok");
}
