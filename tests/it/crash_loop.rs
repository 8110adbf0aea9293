//! Crash loop: `gleaner serve` with replication to a file replica takes acknowledged record
//! writes into two tenants and is SIGKILLed at random moments — while writing, and now and
//! then while it is still starting up (recovering WAL, catching the replica up). After every
//! kill:
//! - every database in the data directory passes `PRAGMA integrity_check`;
//! - every write the client saw acknowledged (a 200 from `POST .../records`) is in the local
//!   tenant database, each hot key at least at the version its ack reported;
//! - the replica, restored by `gleaner restore` as it stands, is intact and is a past state
//!   of the local database: none of its keys is missing locally and no hot key is ahead.
//!
//! After every restart the replica catches up to exactly the local content. After the last
//! kill the server is started once more and stopped cleanly (SIGTERM ships the last
//! frames), so the replica's latest TXID is the local state: `gleaner restore` and
//! `litestream restore -txid <that TXID>` must both give exactly the local content (and
//! byte-identical files), with every acknowledged write in them. Last, a start with
//! settings that compact every level and prune at once (`PRUNE_ENV`) shows the replica
//! after compaction and retention: both restores are checked again, and the replicas must
//! hold at most 1.2x the data's bytes.
//!
//! The kill moments come from a seeded RNG. The seed is printed; replay a failure with
//! `GLEANER_CRASH_SEED=<seed>`. `GLEANER_CRASH_KILLS` sets the number of kills (default 8;
//! `scripts/bench-crash.sh` runs 100 and more).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{
    self, content, gleaner_restore, integrity, litestream_restore, open_ro, restored_txid,
    wait_replica, Backend,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TENANTS: [&str; 2] = ["crash-a", "crash-b"];
const SOURCE: &str = "crash";
const WRITERS: usize = 3;
/// New records per request, besides the writer's hot key.
const BATCH: usize = 6;

fn kills() -> usize {
    std::env::var("GLEANER_CRASH_KILLS")
        .ok()
        .map(|v| v.parse().expect("GLEANER_CRASH_KILLS must be a number"))
        .unwrap_or(8)
}

fn seed() -> u64 {
    match std::env::var("GLEANER_CRASH_SEED") {
        Ok(v) => v.parse().expect("GLEANER_CRASH_SEED must be a u64"),
        Err(_) => rand::rng().random(),
    }
}

fn env(replicas: &Replicas) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN.to_owned()),
        ("GLEANER_REPLICATE__ENABLED", "true".to_owned()),
        ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "50".to_owned()),
        // Checkpoint often, so kills land around checkpoints and snapshots too.
        (
            "GLEANER_REPLICATE__CHECKPOINT_WAL_BYTES",
            "65536".to_owned(),
        ),
        (
            "GLEANER_REPLICATE__CHECKPOINT_INTERVAL_SECS",
            "1".to_owned(),
        ),
    ];
    // Writes as fast as it can; rate limiting is tested elsewhere.
    v.extend(support::NO_RATE_LIMITS.map(|(k, v)| (k, v.to_owned())));
    v.extend(replicas.server_env());
    v
}

/// What the client saw acknowledged, per tenant: new keys, and each hot key's highest
/// acknowledged version.
#[derive(Default)]
struct Acked {
    keys: HashMap<&'static str, Vec<String>>,
    hot: HashMap<(&'static str, String), i64>,
    requests: usize,
}

impl Acked {
    fn total_keys(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }
}

fn tenant_db(data: &Path, t: &str) -> PathBuf {
    data.join("tenants").join(format!("{t}.db"))
}

/// Where the server replicates to: a directory (the suite), or with
/// `GLEANER_CRASH_REPLICA=s3` a SeaweedFS S3 gateway on loopback (the bench).
enum Replicas {
    File(PathBuf),
    S3 {
        // Kept for the test's lifetime; dropping it stops the gateway.
        _server: support::S3Server,
        endpoint: String,
    },
}

const BUCKET: &str = "crash";

impl Replicas {
    fn new(work: &Path) -> Replicas {
        match std::env::var("GLEANER_CRASH_REPLICA").as_deref() {
            Ok("s3") => {
                let server = support::S3Server::start(&work.join("s3"));
                server.create_bucket(BUCKET);
                let endpoint = server.endpoint.clone();
                Replicas::S3 {
                    _server: server,
                    endpoint,
                }
            }
            Ok("file") | Err(_) => Replicas::File(work.join("replica")),
            Ok(other) => panic!("GLEANER_CRASH_REPLICA must be file or s3, not {other}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Replicas::File(_) => "file",
            Replicas::S3 { .. } => "s3",
        }
    }

    /// `replicate.url` and the environment the server needs for it.
    fn server_env(&self) -> Vec<(&'static str, String)> {
        match self {
            Replicas::File(root) => vec![(
                "GLEANER_REPLICATE__URL",
                format!("file://{}", root.display()),
            )],
            Replicas::S3 { endpoint, .. } => vec![
                (
                    "GLEANER_REPLICATE__URL",
                    Backend::S3 {
                        endpoint: endpoint.clone(),
                        bucket: BUCKET.into(),
                        path: "node".into(),
                    }
                    .gleaner_url(),
                ),
                ("AWS_ACCESS_KEY_ID", support::ACCESS_KEY.to_owned()),
                ("AWS_SECRET_ACCESS_KEY", support::SECRET_KEY.to_owned()),
            ],
        }
    }

    /// The replica of one database: `control` or `tenants/<id>`.
    fn of(&self, sub: &str) -> Backend {
        match self {
            Replicas::File(root) => Backend::File(root.join(sub)),
            Replicas::S3 { endpoint, .. } => Backend::S3 {
                endpoint: endpoint.clone(),
                bucket: BUCKET.into(),
                path: format!("node/{sub}"),
            },
        }
    }

    fn tenant(&self, t: &str) -> Backend {
        self.of(&format!("tenants/{t}"))
    }
}

/// `key → version` of the workload's records in a database.
fn versions(db: &Path) -> HashMap<String, i64> {
    let c = open_ro(db);
    let mut st = c
        .prepare("SELECT key, version FROM records WHERE source = ?1")
        .unwrap();
    st.query_map([SOURCE], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every `.db` file in the data directory.
fn databases(data: &Path) -> Vec<PathBuf> {
    let mut out = vec![data.join("control.db")];
    if let Ok(rd) = std::fs::read_dir(data.join("tenants")) {
        for e in rd {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "db") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every acknowledged write is in `db`; `what` names the database in the message.
fn assert_acked_in(acked: &Acked, t: &'static str, db: &Path, what: &str, ctx: &str) {
    let have = versions(db);
    let missing: Vec<&String> = acked
        .keys
        .get(t)
        .into_iter()
        .flatten()
        .filter(|k| !have.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{ctx}: {} acknowledged record(s) of {t} missing from {what}, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    for ((tt, k), v) in &acked.hot {
        if *tt == t {
            let got = have.get(k).copied().unwrap_or(0);
            assert!(
                got >= *v,
                "{ctx}: {t}/{k} acknowledged at version {v}, {what} has {got}"
            );
        }
    }
}

/// `words` random lowercase words of 2-10 letters: text that compresses about as well as
/// prose does (a repeated phrase would make every size figure look better than it is).
fn prose(words: usize) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(words * 7);
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        for _ in 0..rng.random_range(2..=10) {
            s.push(char::from(rng.random_range(b'a'..=b'z')));
        }
    }
    s
}

/// Sends writes from `WRITERS` tasks until `stop`; records what was acknowledged.
async fn write_load(
    base: String,
    round: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> usize {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (client, base, stop, acked) =
            (client.clone(), base.clone(), stop.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0usize;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let t = TENANTS[(w + i) % TENANTS.len()];
                let hot = format!("hot-w{w}");
                let mut recs: Vec<serde_json::Value> = (0..BATCH)
                    .map(|j| {
                        serde_json::json!({"source": SOURCE, "key": format!("r{round}-w{w}-{i}-{j}"),
                            "fields": {"round": round, "writer": w, "i": i, "j": j,
                                       "body": prose(40)}})
                    })
                    .collect();
                recs.push(serde_json::json!({"source": SOURCE, "key": hot,
                    "fields": {"round": round, "i": i}}));
                let keys: Vec<String> = recs[..BATCH]
                    .iter()
                    .map(|r| r["key"].as_str().unwrap().to_owned())
                    .collect();
                i += 1;
                sent += 1;
                let r = client
                    .post(format!("{base}/v1/tenants/{t}/records"))
                    .bearer_auth(support::ADMIN_TOKEN)
                    .json(&serde_json::json!({ "records": recs }))
                    .send()
                    .await;
                let Ok(r) = r else { continue };
                if r.status().as_u16() != 200 {
                    continue;
                }
                // The status line is the acknowledgement; the body (lost if the kill lands
                // between the two) only adds the hot key's version.
                let body: Option<serde_json::Value> = r.json().await.ok();
                let mut a = acked.lock().unwrap();
                a.requests += 1;
                a.keys.entry(t).or_default().extend(keys);
                if let Some(v) = body.as_ref().and_then(|b| b["results"][BATCH]["version"].as_i64())
                {
                    let e = a.hot.entry((t, hot)).or_insert(0);
                    *e = (*e).max(v);
                }
            }
            sent
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    sent
}

/// After a kill: integrity of every database, acknowledged writes present locally, and the
/// replica as it stands restores to an intact past state of the local database.
fn check_after_kill(data: &Path, replicas: &Replicas, acked: &Acked, work: &Path, ctx: &str) {
    for db in databases(data) {
        assert_eq!(
            integrity(&db),
            "ok",
            "{ctx}: {} corrupt after SIGKILL",
            db.display()
        );
    }
    for t in TENANTS {
        let local_db = tenant_db(data, t);
        assert_acked_in(acked, t, &local_db, "the local database", ctx);
        let local = versions(&local_db);
        let out = work.join(format!("after-kill-{t}.db"));
        let _ = std::fs::remove_file(&out);
        gleaner_restore(&replicas.tenant(t), &["--quiet"], &out)
            .unwrap_or_else(|e| panic!("{ctx}: the replica of {t} does not restore: {e}"));
        assert_eq!(integrity(&out), "ok", "{ctx}: restored {t} corrupt");
        for (k, v) in versions(&out) {
            let lv = local.get(&k).copied();
            assert!(
                lv.is_some_and(|lv| lv >= v),
                "{ctx}: the replica of {t} has {k} at version {v}, the local database {lv:?}: \
                 the replica is not a past state of the local database"
            );
        }
    }
}

/// Starts the server and kills it before (or soon after) it reports listening: recovery,
/// restore-on-start and the first syncs get interrupted too. Returns its log.
fn kill_during_startup(data: &Path, env: &[(&str, &str)], after: Duration) -> String {
    let mut cmd = support::Server::command(data, &[], env);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn gleaner");
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    // Not a wait for anything: the kill lands at this random moment of start-up.
    std::thread::sleep(after);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    support::wait_exit(&mut child, Duration::from_secs(10));
    log.join().unwrap_or_default()
}

/// Full L0 captures a server logged (its first sync of a new replica logs at debug level and
/// is not counted): each one re-uploads the whole database.
fn full_captures<'a>(lines: impl IntoIterator<Item = &'a str>) -> usize {
    lines
        .into_iter()
        .filter(|l| l.contains("shipped a full L0"))
        .count()
}

/// Bytes of a database with its WAL.
fn db_bytes(db: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    [db.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn sigkill_loop_loses_no_acknowledged_write() {
    let kills = kills();
    let seed = seed();
    eprintln!("crash loop: {kills} kills, seed {seed} (replay with GLEANER_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let data = work.join("data");
    let replicas = Replicas::new(work);
    eprintln!("crash loop: {} replica", replicas.kind());
    let env = env(&replicas);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let probe = work.join("probe.db");

    // The tenants exist (and are replicated) before the first kill.
    let server = support::Server::start(&data, &[], &env_ref);
    rt.block_on(async {
        let api = support::Api::new(&server);
        for t in TENANTS {
            api.create_tenant(t).await;
        }
    });
    drop(server);

    let mut startup_kills = 0usize;
    let mut sent_total = 0usize;
    // Full captures logged by the servers between the first kill and the final stop.
    let mut full_l0 = 0usize;
    for round in 0..kills {
        let ctx = format!("seed {seed}, kill {}/{kills}", round + 1);
        // One kill in five lands while the server is starting.
        if round > 0 && rng.random_range(0..5) == 0 {
            let after = Duration::from_millis(rng.random_range(0..400));
            eprintln!("{ctx}: SIGKILL {after:?} after spawn (start-up)");
            let log = kill_during_startup(&data, &env_ref, after);
            full_l0 += full_captures(log.lines());
            startup_kills += 1;
            check_after_kill(&data, &replicas, &acked.lock().unwrap(), work, &ctx);
            continue;
        }
        let server = support::Server::start(&data, &[], &env_ref);
        // The replica catches up with what the last run left behind.
        for t in TENANTS {
            wait_replica(
                &replicas.tenant(t),
                &content(&tenant_db(&data, t)),
                &probe,
                Duration::from_secs(60),
                &format!("{ctx}: the replica of {t} to catch up after restart"),
            );
        }
        let kill_at = Duration::from_millis(rng.random_range(50..1500));
        eprintln!("{ctx}: SIGKILL {kill_at:?} into the writes");
        let stop = Arc::new(AtomicBool::new(false));
        let load = rt.spawn(write_load(
            server.url(""),
            round,
            stop.clone(),
            acked.clone(),
        ));
        // The random kill moment is the test's point, not a wait for a condition.
        rt.block_on(async { tokio::time::sleep(kill_at).await });
        server.signal(libc::SIGKILL);
        stop.store(true, Ordering::Relaxed);
        let mut server = server;
        let st = server.wait(Duration::from_secs(10));
        assert!(!st.success(), "{ctx}: the server exited on its own");
        // The reader thread has the whole log once the pipe closes; what it has not
        // forwarded yet is at most the last lines, which a kill cuts off anyway.
        let log: Vec<String> = server
            .startup_log()
            .iter()
            .cloned()
            .chain(server.drain_log())
            .collect();
        full_l0 += full_captures(log.iter().map(String::as_str));
        sent_total += rt.block_on(load).unwrap();
        check_after_kill(&data, &replicas, &acked.lock().unwrap(), work, &ctx);
    }
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    assert!(
        acked.total_keys() > kills,
        "seed {seed}: the workload got only {} records acknowledged",
        acked.total_keys()
    );

    // A last start and a clean stop: SIGTERM ships the last frames, so the replica's latest
    // TXID is the local state.
    let server = support::Server::start(&data, &[], &env_ref);
    let early: Vec<String> = server.startup_log().to_vec();
    let mut server = server;
    server.signal(libc::SIGTERM);
    assert!(
        server.wait(Duration::from_secs(30)).success(),
        "seed {seed}: clean stop failed"
    );
    let log: Vec<String> = early.into_iter().chain(server.drain_log()).collect();
    full_l0 += full_captures(log.iter().map(String::as_str));
    drop(server);
    let kept = verify_final(
        &data,
        &replicas,
        &acked,
        work,
        &format!("seed {seed}, at stop"),
    );

    // Then the replica after compaction: a start that keeps only what a restore needs.
    let mut acked = acked;
    let log = compact_and_prune(&data, &env_ref, &replicas, &mut acked, &probe, &rt, seed);
    full_l0 += full_captures(log.iter().map(String::as_str));
    let pruned = verify_final(
        &data,
        &replicas,
        &acked,
        work,
        &format!("seed {seed}, pruned"),
    );
    assert!(
        pruned.ratio() <= 1.2,
        "seed {seed}: after compaction and retention the replicas hold {} bytes for {} bytes \
         of data ({:.2}x, target at most 1.2x)",
        pruned.census.bytes,
        pruned.data_bytes,
        pruned.ratio()
    );
    let dbs = pruned.dbs;
    eprintln!(
        "crash loop passed: {} replica, seed {seed}, {kills} kills ({startup_kills} during start-up), \
         {} acknowledged requests / {} records ({} requests sent), 0 lost, \
         integrity ok after every kill, {} final restores equal to local, \
         {} full L0 uploaded ({} beyond the first of each of {dbs} databases), \
         replica {} bytes / data {} bytes = {:.2} at stop, {:.2} after compaction, {:.1} s",
        replicas.kind(),
        acked.requests,
        acked.total_keys(),
        sent_total,
        kept.checks + pruned.checks,
        pruned.census.full_l0,
        pruned.census.full_l0.saturating_sub(dbs),
        kept.census.bytes,
        kept.data_bytes,
        kept.ratio(),
        pruned.ratio(),
        started.elapsed().as_secs_f64()
    );
    // One line for scripts/bench-crash.sh (docs/benchmarks.md): the issue 20 figures.
    eprintln!(
        "crash-bench: replica={} kills={kills} acknowledged_writes={} lost={} corrupt={} \
         full_l0_captures={full_l0} full_l0_beyond_first={} l9_snapshots={} \
         replica_bytes={} data_bytes={} replica_per_data={:.2} \
         pruned_replica_bytes={} pruned_data_bytes={} pruned_replica_per_data={:.2}",
        replicas.kind(),
        acked.total_keys(),
        kept.lost + pruned.lost,
        kept.corrupt + pruned.corrupt,
        kept.census.full_l0.saturating_sub(dbs),
        kept.census.snapshots,
        kept.census.bytes,
        kept.data_bytes,
        kept.ratio(),
        pruned.census.bytes,
        pruned.data_bytes,
        pruned.ratio()
    );
}

/// The settings of the start that shows the replica "after compaction": every level
/// compacts each second, a snapshot follows each second, and whatever a restore no longer
/// needs goes at once (L0 files covered by L1, older snapshots and the files below them).
const PRUNE_ENV: [(&str, &str); 5] = [
    ("GLEANER_REPLICATE__LEVEL_INTERVALS_SECS", "[1, 1, 1]"),
    ("GLEANER_REPLICATE__SNAPSHOT_INTERVAL_SECS", "1"),
    ("GLEANER_REPLICATE__SNAPSHOT_RETENTION_SECS", "0"),
    ("GLEANER_REPLICATE__L0_RETENTION_SECS", "0"),
    ("GLEANER_REPLICATE__STARTUP_COMPACT_L0_FILES", "1"),
];

/// Starts the server with [`PRUNE_ENV`] and, three times, writes one acknowledged record
/// to each tenant and waits until every level and a single snapshot hold it and, from the
/// second round on, until the retention pass that deleted the previous snapshot has
/// finished; then stops it cleanly. Three rounds because retention deletes only the
/// compacted files *below* the newest deleted snapshot (Litestream's rule): the third pass
/// removes what the first one compacted out of the crash loop's backlog. Returns the log.
fn compact_and_prune(
    data: &Path,
    env: &[(&str, &str)],
    replicas: &Replicas,
    acked: &mut Acked,
    probe: &Path,
    rt: &tokio::runtime::Runtime,
    seed: u64,
) -> Vec<String> {
    let mut env = env.to_vec();
    env.extend(PRUNE_ENV);
    let mut server = support::Server::start(data, &[], &env);
    let mut log: Vec<String> = server.startup_log().to_vec();
    let pruned = |log: &[String], t: &str| {
        log.iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["message"] == "retention deleted files"
                    && v["replica"]
                        .as_str()
                        .is_some_and(|r| r.ends_with(&format!("tenants/{t}")))
                    && v["snapshots"].as_u64().is_some_and(|n| n > 0)
            })
            .count()
    };
    for round in 1..=3 {
        let ctx = format!("seed {seed}, pruning round {round}");
        let before: Vec<usize> = TENANTS.iter().map(|t| pruned(&log, t)).collect();
        let api = support::Api::new(&server);
        for t in TENANTS {
            let key = format!("prune-{round}");
            let body = serde_json::json!({"records": [
                {"source": SOURCE, "key": key, "fields": {"round": round}}]});
            rt.block_on(api.ok(
                "POST",
                &format!("/v1/tenants/{t}/records"),
                support::ADMIN_TOKEN,
                Some(body),
            ));
            acked.requests += 1;
            acked.keys.entry(t).or_default().push(key);
        }
        for (t, before) in TENANTS.iter().zip(before) {
            let b = replicas.tenant(t);
            wait_replica(
                &b,
                &content(&tenant_db(data, t)),
                probe,
                Duration::from_secs(60),
                &format!("{ctx}: the replica of {t} to take the write"),
            );
            // Polled by hand so that a timeout shows the levels and what the server warned.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let lv = support::replica_levels(&b);
                let l0 = lv[0].2;
                let done = lv
                    .iter()
                    .filter(|(l, _, _)| matches!(l, 1..=3 | 9))
                    .all(|(_, _, max)| *max == l0)
                    && lv.iter().any(|(l, n, _)| *l == 9 && *n == 1);
                if done {
                    break;
                }
                log.extend(server.drain_log());
                if Instant::now() > deadline {
                    let warned: Vec<&String> = log
                        .iter()
                        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
                        .collect();
                    panic!(
                        "{ctx}: every level of {t} and one snapshot at the latest TXID not \
                         reached in 60 s; (level, files, max TXID): {lv:?}; warnings: {warned:#?}"
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if round > 1 {
                support::wait_until(
                    Duration::from_secs(60),
                    &format!("{ctx}: the retention pass of {t} that deleted a snapshot"),
                    || {
                        log.extend(server.drain_log());
                        pruned(&log, t) > before
                    },
                );
            }
        }
    }
    server.signal(libc::SIGTERM);
    assert!(
        server.wait(Duration::from_secs(30)).success(),
        "seed {seed}: clean stop after pruning failed"
    );
    log.extend(server.drain_log());
    log
}

/// What [`verify_final`] found over every database.
struct Final {
    lost: usize,
    corrupt: usize,
    checks: usize,
    dbs: usize,
    data_bytes: u64,
    census: support::Census,
}

impl Final {
    fn ratio(&self) -> f64 {
        self.census.bytes as f64 / self.data_bytes.max(1) as f64
    }
}

/// After a clean stop: every database is intact; `gleaner restore` and `litestream restore
/// -txid <that TXID>` of its replica both give exactly the local content, byte-identical,
/// with every acknowledged write in it; and what the replicas hold.
fn verify_final(data: &Path, replicas: &Replicas, acked: &Acked, work: &Path, ctx: &str) -> Final {
    let mut out = Final {
        lost: 0,
        corrupt: 0,
        checks: 0,
        dbs: 0,
        data_bytes: 0,
        census: support::Census::default(),
    };
    let tag = ctx.replace([' ', ','], "-");
    for (name, local, replica) in TENANTS
        .iter()
        .map(|t| (t.to_string(), tenant_db(data, t), replicas.tenant(t)))
        .chain([(
            "control".to_string(),
            data.join("control.db"),
            replicas.of("control"),
        )])
    {
        out.data_bytes += db_bytes(&local);
        out.corrupt += usize::from(integrity(&local) != "ok");
        assert_eq!(integrity(&local), "ok", "{ctx}: {name} corrupt");
        let (g, l) = (
            work.join(format!("final-g-{name}-{tag}.db")),
            work.join(format!("final-l-{name}-{tag}.db")),
        );
        let o = gleaner_restore(&replica, &["--quiet"], &g)
            .unwrap_or_else(|e| panic!("{ctx}: gleaner restore of {name}: {e}"));
        let txid = restored_txid(&o);
        litestream_restore(&replica, &["-txid", &format!("{txid:016x}")], &l)
            .unwrap_or_else(|e| panic!("{ctx}: litestream restore of {name}: {e}"));
        for (tool, db) in [("gleaner", &g), ("litestream", &l)] {
            out.corrupt += usize::from(integrity(db) != "ok");
            assert_eq!(integrity(db), "ok", "{ctx}: {tool}'s restore of {name}");
            assert_eq!(
                content(db),
                content(&local),
                "{ctx}: {tool}'s restore of {name} at TXID {txid:#x} differs from the local database"
            );
        }
        assert_eq!(
            std::fs::read(&g).unwrap(),
            std::fs::read(&l).unwrap(),
            "{ctx}: gleaner's and litestream's restores of {name} differ"
        );
        if let Some(t) = TENANTS.iter().find(|t| **t == name) {
            let have = versions(&g);
            out.lost += acked
                .keys
                .get(t)
                .into_iter()
                .flatten()
                .filter(|k| !have.contains_key(*k))
                .count();
            assert_acked_in(acked, t, &g, "the restored replica", ctx);
        }
        out.checks += 2;
        let c = support::census(&replica);
        out.census.files += c.files;
        out.census.bytes += c.bytes;
        out.census.full_l0 += c.full_l0;
        out.census.snapshots += c.snapshots;
        out.dbs += 1;
        eprintln!(
            "crash loop ({ctx}): {name} restored at TXID {txid:#x} by both tools, equal to local; \
            replica {} files, {} bytes, {} full L0, {} snapshots; data {} bytes",
            c.files,
            c.bytes,
            c.full_l0,
            c.snapshots,
            db_bytes(&local)
        );
    }
    out
}
