//! Replication against a real S3-compatible server (SeaweedFS on loopback): an outage in
//! the middle of writes (the server keeps accepting writes, the WAL grows, /readyz turns
//! 503 on lag, and once S3 is back the replica catches up with no TXID gap), and clear
//! errors for wrong credentials and a missing bucket.

use std::time::{Duration, Instant};

use crate::support::{self, *};

#[test]
fn outage_then_recovery_without_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("outage");
    let data = dir.path().join("data");
    let url = s3.backend("outage", "node1").gleaner_url();
    let second_root = dir.path().join("second");
    let second_url = format!("file://{}", second_root.display());
    let mut env = vec![
        ("GLEANER_REPLICATE__SECOND_URL", second_url.as_str()),
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN),
        ("GLEANER_REPLICATE__ENABLED", "true"),
        ("GLEANER_REPLICATE__URL", url.as_str()),
        ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "100"),
        ("GLEANER_REPLICATE__UPLOAD_ATTEMPTS", "2"),
        ("GLEANER_REPLICATE__MAX_LAG_SECS", "2"),
        ("GLEANER_REPLICATE__CHECKPOINT_WAL_BYTES", "65536"),
        ("GLEANER_REPLICATE__CHECKPOINT_INTERVAL_SECS", "1"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    // This test creates tenants as fast as it can; rate limiting is tested elsewhere.
    env.extend(support::NO_RATE_LIMITS);
    let server = support::Server::start(&data, &[], &env);
    let control = data.join("control.db");
    let wal = data.join("control.db-wal");
    let replica = s3.backend("outage", "node1/control");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // No pooled connections: the server may close idle ones while S3 restarts.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let create = |n: usize, tag: &str| {
        rt.block_on(async {
            for i in 0..n {
                let r = client
                    .post(server.url("/v1/tenants"))
                    .bearer_auth(support::ADMIN_TOKEN)
                    .json(&serde_json::json!({"id": format!("{tag}{i}")}))
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        let log = server.drain_log();
                        let tail = &log[log.len().saturating_sub(25)..];
                        panic!("create {tag}{i}: {e:?}; log tail:\n{}", tail.join("\n"))
                    });
                assert_eq!(
                    r.status().as_u16(),
                    201,
                    "create {tag}{i} while S3 is {tag}"
                );
            }
        })
    };
    let ready = || {
        rt.block_on(async {
            client
                .get(server.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    create(30, "up");
    let probe = dir.path().join("probe.db");
    let want = content(&control);
    wait_replica(
        &replica,
        &want,
        &probe,
        Duration::from_secs(90),
        "the replica before the outage",
    );
    assert_eq!(ready(), 200);

    // Outage: writes keep succeeding locally; nothing can be checkpointed, so the WAL
    // grows; readiness fails once the lag passes its bound.
    s3.stop();
    let wal_before = std::fs::metadata(&wal).map_or(0, |m| m.len());
    create(200, "down");
    let t0 = Instant::now();
    wait_for(
        Duration::from_secs(20),
        "/readyz to fail during the outage",
        || (ready() == 503).then_some(()),
    );
    // The second destination (a directory) is not held back by the first one's outage.
    let second = Backend::File(second_root.join("control"));
    let want_down = content(&control);
    wait_replica(
        &second,
        &want_down,
        &probe,
        Duration::from_secs(60),
        "the second destination during the outage",
    );
    let wal_during = std::fs::metadata(&wal).unwrap().len();
    assert!(
        wal_during > wal_before,
        "the WAL should hold the unshipped commits ({wal_before} -> {wal_during})"
    );
    assert!(wal_during < 1 << 30, "WAL over its bound");
    eprintln!("readiness failed {:?} into the outage", t0.elapsed());

    // Recovery: everything written during the outage reaches the replica, no gap.
    s3.restart();
    create(10, "back");
    let want = content(&control);
    wait_replica(
        &replica,
        &want,
        &probe,
        Duration::from_secs(120),
        "the replica after the outage",
    );
    wait_for(Duration::from_secs(60), "/readyz to recover", || {
        (ready() == 200).then_some(())
    });
    let n: i64 = open_ro(&probe)
        .query_row("SELECT count(*) FROM tenants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 240);
    let l = dir.path().join("l.db");
    litestream_restore(&replica, &[], &l).unwrap();
    assert_eq!(std::fs::read(&probe).unwrap(), std::fs::read(&l).unwrap());
    let metrics = rt.block_on(async {
        client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for name in [
        "gleaner_replication_uploaded_objects_total",
        "gleaner_replication_upload_errors_total",
        "gleaner_replication_lag_seconds",
        "gleaner_replication_last_shipped_txid{db=\"control\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(server.stop().success());
}

#[test]
fn wrong_credentials_and_missing_bucket_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("present");
    let out = dir.path().join("out.db");

    let url = s3.backend("present", "db").gleaner_url();
    let mut c = command();
    c.args(["restore", "-o"])
        .arg(&out)
        .arg(&url)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("access denied") && err.contains("\"present\""),
        "wrong secret: {err}"
    );

    let url = s3.backend("absent-bucket", "db").gleaner_url();
    let mut c = command();
    c.args(["restore", "-o"])
        .arg(&out)
        .arg(&url)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("\"absent-bucket\" does not exist"),
        "missing bucket: {err}"
    );
    assert!(!out.exists());
}

/// `DELETE /v1/tenants/{id}?erase=true` while the tenant's database is open: every object
/// of its replica is gone at both destinations (S3 and a directory), the answer and the
/// audit chain say `done`, and another tenant's replica is untouched.
#[test]
fn tenant_erasure_removes_every_replica_object() {
    use gleaner::replicate::client::ReplicaClient;
    use gleaner::replicate::s3_client::{sdk_client, S3Client};

    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("erase");
    let data = dir.path().join("data");
    let url = s3.backend("erase", "node1").gleaner_url();
    let second_root = dir.path().join("second");
    let second_url = format!("file://{}", second_root.display());
    let env = [
        ("GLEANER_REPLICATE__SECOND_URL", second_url.as_str()),
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN),
        ("GLEANER_REPLICATE__ENABLED", "true"),
        ("GLEANER_REPLICATE__URL", url.as_str()),
        ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "100"),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let server = support::Server::start(&data, &[], &env);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        rt.block_on(async {
            let mut rb = client
                .request(method, server.url(path))
                .bearer_auth(support::ADMIN_TOKEN);
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        })
    };
    for t in ["gone", "kept"] {
        let (s, v) = call(
            reqwest::Method::POST,
            "/v1/tenants",
            Some(serde_json::json!({"id": t})),
        );
        assert_eq!(s, 201, "{v}");
        let (s, v) = call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{t}/records"),
            Some(serde_json::json!({"records": [{"source": "s", "key": "k", "fields": {"x": 1}}]})),
        );
        assert_eq!(s, 200, "{v}");
    }
    let s3_objects = |tenant: &str| -> usize {
        rt.block_on(async {
            let o = s3.options();
            let c = S3Client::new(sdk_client(&o).await, "erase", "node1", &o)
                .at(&format!("tenants/{tenant}"));
            let mut n = 0;
            for level in 0..=9u8 {
                n += c.list(level).await.unwrap().len();
            }
            n
        })
    };
    let file_objects = |tenant: &str| -> usize {
        fn walk(p: &std::path::Path) -> usize {
            std::fs::read_dir(p).map_or(0, |rd| {
                rd.flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() {
                            walk(&p)
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        walk(&second_root.join("tenants").join(tenant))
    };
    for t in ["gone", "kept"] {
        wait_for(Duration::from_secs(60), "the tenant's replica", || {
            (s3_objects(t) > 0 && file_objects(t) > 0).then_some(())
        });
    }
    let kept_before = s3_objects("kept");

    let (s, v) = call(reqwest::Method::DELETE, "/v1/tenants/gone?erase=true", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["erase"]["status"], "done", "{v}");
    assert_eq!(s3_objects("gone"), 0, "S3 objects left after erasure");
    assert_eq!(file_objects("gone"), 0, "files left after erasure");
    // Nothing ships behind the erasure (the database was closed before it). An absence
    // cannot be polled for: this waits out five of the configured 100 ms sync intervals.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s3_objects("gone"), 0, "an upload followed the erasure");
    assert!(
        s3_objects("kept") >= kept_before,
        "another tenant's replica was touched"
    );
    assert!(!data.join("tenants").join("gone.db").exists());

    let (s, v) = call(reqwest::Method::GET, "/v1/admin/audit?limit=1000", None);
    assert_eq!(s, 200, "{v}");
    let finished: Vec<&serde_json::Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "erasure.finished" && e["target"] == "gone")
        .collect();
    assert_eq!(finished.len(), 1, "{v}");
    assert_eq!(finished[0]["detail"]["status"], "done");
}
