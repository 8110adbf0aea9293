//! Replication honesty under an object-store outage (SeaweedFS on loopback, killed and
//! restarted): lag counts from the first unshipped commit, a replica position that cannot
//! be read counts as behind since start-up, and a stop with unshipped data says so and
//! exits non-zero, while a stop after the store came back ships everything first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{self, *};

/// One server replicating control.db to one S3 bucket, and the requests the tests send it.
struct Node {
    s3: S3Server,
    data: PathBuf,
    env: Vec<(&'static str, String)>,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Node {
    fn new(dir: &Path, bucket: &str, extra: &[(&'static str, &str)]) -> Node {
        let s3 = S3Server::start(&dir.join("s3"));
        s3.create_bucket(bucket);
        let url = s3.backend(bucket, "node1").gleaner_url();
        let mut env: Vec<(&'static str, String)> = vec![
            ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN.into()),
            ("GLEANER_REPLICATE__ENABLED", "true".into()),
            ("GLEANER_REPLICATE__URL", url),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ];
        env.extend(support::NO_RATE_LIMITS.map(|(k, v)| (k, v.to_string())));
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        Node {
            s3,
            data: dir.join("data"),
            env,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            // No pooled connections: the server may close idle ones while S3 restarts.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn start(&self) -> Server {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(&self.data, &[], &env)
    }

    fn replica(&self, bucket: &str) -> Backend {
        self.s3.backend(bucket, "node1/control")
    }

    fn create(&self, srv: &Server, n: usize, tag: &str) {
        self.rt.block_on(async {
            for i in 0..n {
                let r = self
                    .client
                    .post(srv.url("/v1/tenants"))
                    .bearer_auth(support::ADMIN_TOKEN)
                    .json(&serde_json::json!({"id": format!("{tag}{i}")}))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("create {tag}{i}: {e:?}"));
                assert_eq!(r.status().as_u16(), 201, "create {tag}{i}");
            }
        })
    }

    fn ready(&self, srv: &Server) -> (u16, String) {
        self.rt.block_on(async {
            let r = self.client.get(srv.url("/readyz")).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.text().await.unwrap_or_default())
        })
    }

    /// The value of an unlabelled gauge on /metrics.
    fn gauge(&self, srv: &Server, name: &str) -> f64 {
        let text = self.rt.block_on(async {
            let r = self.client.get(srv.url("/metrics")).send().await.unwrap();
            r.text().await.unwrap()
        });
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    }

    fn control(&self) -> PathBuf {
        self.data.join("control.db")
    }
}

/// Waits until the server logged a line containing every one of `words`; all lines seen.
fn wait_log(srv: &Server, seen: &mut Vec<String>, within: Duration, words: &[&str]) {
    wait_until(within, &format!("a log line with {words:?}"), || {
        seen.extend(srv.drain_log());
        seen.iter().any(|l| words.iter().all(|w| l.contains(w)))
    });
}

#[test]
fn lag_counts_from_the_first_unshipped_commit() {
    let dir = tempfile::tempdir().unwrap();
    // Default upload attempts: a failing sync then takes a while to give up, which is
    // when the old code froze lag and the WAL gauge.
    let node = Node::new(
        dir.path(),
        "lag",
        &[
            ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "100"),
            ("GLEANER_REPLICATE__MAX_LAG_SECS", "1"),
        ],
    );
    let srv = node.start();
    node.create(&srv, 5, "up");
    let probe = dir.path().join("probe.db");
    wait_replica(
        &node.replica("lag"),
        &content(&node.control()),
        &probe,
        Duration::from_secs(60),
        "the replica before the outage",
    );
    wait_until(Duration::from_secs(10), "lag 0 while caught up", || {
        node.gauge(&srv, "gleaner_replication_lag_seconds") == 0.0
    });
    let wal_before = node.gauge(&srv, "gleaner_replication_wal_bytes");

    // Frozen, not gone: requests hang instead of being refused.
    node.s3.pause();
    node.create(&srv, 20, "down");
    // Before the fix lag read 0 (and the WAL gauge stood still) for ~18 s of an outage.
    // 5 s is fifty sync intervals: lag must show long before that.
    wait_until(
        Duration::from_secs(5),
        "lag > 0 after unshipped commits",
        || node.gauge(&srv, "gleaner_replication_lag_seconds") > 0.0,
    );
    wait_until(Duration::from_secs(5), "the WAL gauge to grow", || {
        node.gauge(&srv, "gleaner_replication_wal_bytes") > wal_before
    });
    wait_until(Duration::from_secs(10), "/readyz 503 on lag", || {
        let (s, body) = node.ready(&srv);
        s == 503 && body.contains("replication lag")
    });
    node.s3.resume();
}

#[test]
fn unknown_replica_position_reads_as_behind_since_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::new(
        dir.path(),
        "unknown",
        &[
            ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "100"),
            ("GLEANER_REPLICATE__MAX_LAG_SECS", "2"),
            ("GLEANER_REPLICATE__UPLOAD_ATTEMPTS", "2"),
        ],
    );
    let mut srv = node.start();
    node.create(&srv, 5, "up");
    let probe = dir.path().join("probe.db");
    wait_replica(
        &node.replica("unknown"),
        &content(&node.control()),
        &probe,
        Duration::from_secs(60),
        "the replica before the outage",
    );
    // Unshipped writes, then a crash while the store is down; restart still down.
    node.s3.stop();
    node.create(&srv, 20, "down");
    srv.child.kill().unwrap();
    srv.wait(Duration::from_secs(10));
    drop(srv);
    let srv = node.start();
    let mut seen = Vec::new();
    wait_log(
        &srv,
        &mut seen,
        Duration::from_secs(30),
        &["cannot read the replica position"],
    );
    // Before the fix: ready with lag 0 for as long as the store stayed down.
    wait_until(
        Duration::from_secs(30),
        "/readyz 503 past max_lag_secs",
        || {
            let (s, body) = node.ready(&srv);
            s == 503 && body.contains("replication lag")
        },
    );
    // The store returns: everything ships and readiness recovers.
    node.s3.restart();
    wait_replica(
        &node.replica("unknown"),
        &content(&node.control()),
        &probe,
        Duration::from_secs(120),
        "the replica after the outage",
    );
    wait_until(Duration::from_secs(60), "/readyz 200 again", || {
        node.ready(&srv).0 == 200
    });
    assert!(srv.stop().success());
}

#[test]
fn stop_ships_when_the_store_is_back_and_fails_loudly_when_not() {
    let dir = tempfile::tempdir().unwrap();
    // A long sync interval: the store is back (a restart takes seconds) well before the
    // tick after the failed one, so whatever ships after the restart is the stop's doing.
    let mut node = Node::new(
        dir.path(),
        "stop",
        &[
            ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "20000"),
            ("GLEANER_REPLICATE__MAX_LAG_SECS", "600"),
            ("GLEANER_REPLICATE__SHUTDOWN_SHIP_TIMEOUT_MS", "10000"),
            ("GLEANER_REPLICATE__UPLOAD_ATTEMPTS", "2"),
        ],
    );
    let probe = dir.path().join("probe.db");

    // 1. The store is down, then back when SIGTERM comes: the stop ships everything.
    let mut srv = node.start();
    node.create(&srv, 5, "up");
    node.s3.stop();
    node.create(&srv, 30, "down");
    let mut seen = Vec::new();
    wait_log(
        &srv,
        &mut seen,
        Duration::from_secs(60),
        &["replication sync failed"],
    );
    node.s3.restart();
    srv.signal(libc::SIGTERM);
    let st = srv.wait(Duration::from_secs(60));
    seen.extend(srv.drain_log());
    assert!(
        st.success(),
        "stop after the store returned: {st}\n{}",
        seen.join("\n")
    );
    drop(srv);
    wait_replica(
        &node.replica("stop"),
        &content(&node.control()),
        &probe,
        Duration::from_secs(30),
        "every record in the replica after the stop",
    );
    let n: i64 = open_ro(&probe)
        .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 35);

    // 2. SIGTERM while the store is down: exits non-zero, naming what stayed unshipped.
    let mut srv = node.start();
    node.create(&srv, 5, "again");
    node.s3.stop();
    node.create(&srv, 10, "lost");
    srv.signal(libc::SIGTERM);
    let st = srv.wait(Duration::from_secs(60));
    let mut seen = srv.drain_log();
    seen.retain(|l| l.contains("ERROR") && l.contains("unshipped"));
    assert!(!st.success(), "stop with the store down exited {st}");
    assert!(
        seen.iter()
            .any(|l| l.contains("control") && l.contains("wal_bytes")),
        "no error naming the unshipped data of control.db: {seen:?}"
    );
}

#[test]
fn replicate_command_stop_with_the_store_down_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("ext");
    let b = s3.backend("ext", "src");
    let src = dir.path().join("src.db");
    let c = rusqlite::Connection::open(&src).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);")
        .unwrap();
    let cfg = dir.path().join("gleaner.toml");
    std::fs::write(
        &cfg,
        "[replicate]\nsync_interval_ms = 100\nupload_attempts = 2\nshutdown_ship_timeout_ms = 2000\n",
    )
    .unwrap();
    let (mut child, log) = spawn_replicate(&cfg, &src, &b);
    c.execute("INSERT INTO t (v) VALUES ('shipped')", [])
        .unwrap();
    let probe = dir.path().join("probe.db");
    wait_replica(
        &b,
        &content(&src),
        &probe,
        Duration::from_secs(60),
        "the replica before the outage",
    );
    s3.stop();
    for i in 0..10 {
        c.execute("INSERT INTO t (v) VALUES (?1)", [format!("unshipped {i}")])
            .unwrap();
    }
    signal(&child, libc::SIGTERM);
    let st = wait_exit(&mut child, Duration::from_secs(60));
    let lines = log.lock().unwrap().clone();
    assert!(
        !st.success(),
        "gleaner replicate exited {st}:\n{}",
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ERROR") && l.contains("unshipped") && l.contains("wal_bytes")),
        "no error line naming the unshipped data:\n{}",
        lines.join("\n")
    );
}
