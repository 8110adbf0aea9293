//! Every backup verified (issue 18, item 4): with control.db and two tenant databases
//! replicated to a file replica and a budget of one database per pass, the scheduled
//! verifier reaches all three over passes; flipping bytes in one tenant's LTX files makes
//! that database, and only it, fail (metric, `/readyz` detail) while the others keep
//! verifying. On S3, an object-store outage counts as `unavailable`, records no failure
//! and leaves `/readyz` at 200.

use std::path::Path;
use std::time::Duration;

use crate::support::{self, eventually, Api, Server};
use serde_json::{json, Value};

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn verify_detail(api: &Api) -> Value {
    let v: Value = api
        .send("GET", "/readyz", None, None)
        .await
        .json()
        .await
        .unwrap();
    v["checks"]["replica_verify"].clone()
}

/// Flips one byte in the middle of every LTX file under `dir` (all levels).
fn corrupt_ltx_files(dir: &Path) -> usize {
    let mut n = 0;
    for level in std::fs::read_dir(dir.join("ltx")).unwrap() {
        for f in std::fs::read_dir(level.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            let mut b = std::fs::read(&p).unwrap();
            let at = b.len() / 2;
            b[at] ^= 0xff;
            std::fs::write(&p, b).unwrap();
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_database_verified_in_rotation_and_a_corrupt_one_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (data, replica) = (dir.path().join("data"), dir.path().join("replica"));
    let url = format!("file://{}", replica.display());
    let mut env: Vec<(&str, &str)> = vec![
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN),
        ("GLEANER_REPLICATE__ENABLED", "true"),
        ("GLEANER_REPLICATE__URL", &url),
        ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "100"),
        ("GLEANER_REPLICATE__VERIFY_INTERVAL_SECS", "1"),
        // One database per pass: three passes for control.db and both tenants.
        ("GLEANER_REPLICATE__VERIFY_MAX_DATABASES", "1"),
    ];
    env.extend(support::NO_RATE_LIMITS);
    let server = Server::start(&data, &[], &env);
    let api = Api::new(&server);
    for t in ["verify-a", "verify-b"] {
        api.create_tenant(t).await;
        let recs: Vec<_> = (0..20)
            .map(|j| json!({"source": "s", "key": format!("{t}-{j}"), "fields": {"j": j}}))
            .collect();
        api.ok(
            "POST",
            &format!("/v1/tenants/{t}/records"),
            support::ADMIN_TOKEN,
            Some(json!({ "records": recs })),
        )
        .await;
    }
    let d = eventually(
        Duration::from_secs(20),
        "control.db and both tenants to be verified",
        || async {
            let d = verify_detail(&api).await;
            if d["verified"] == 3 {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        },
    )
    .await;
    assert_eq!(d["failed_count"], 0, "{d}");
    let m = api.text("/metrics").await;
    assert!(
        metric(&m, "gleaner_replication_verify_total{outcome=\"ok\"}") >= 3.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "gleaner_replication_verify_failed_databases"),
        0.0
    );
    let ok_before = metric(&m, "gleaner_replication_verify_total{outcome=\"ok\"}");

    assert!(corrupt_ltx_files(&replica.join("tenants").join("verify-b")) > 0);
    let d = eventually(
        Duration::from_secs(20),
        "the corrupt tenant replica to be reported",
        || async {
            let d = verify_detail(&api).await;
            if d["failed_count"] == 1 {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        },
    )
    .await;
    assert_eq!(d["failed"][0]["db"], "tenants/verify-b", "{d}");
    // The other two keep verifying good after the corruption (a whole rotation later).
    let m = eventually(
        Duration::from_secs(20),
        "control.db and the other tenant to verify again",
        || async {
            let m = api.text("/metrics").await;
            if metric(&m, "gleaner_replication_verify_total{outcome=\"ok\"}") >= ok_before + 2.0 {
                Ok(m)
            } else {
                Err(m)
            }
        },
    )
    .await;
    assert_eq!(
        metric(&m, "gleaner_replication_verify_failed_databases"),
        1.0,
        "{m}"
    );
    assert!(metric(&m, "gleaner_replication_verify_total{outcome=\"failed\"}") >= 1.0);
    let d = verify_detail(&api).await;
    assert_eq!(d["failed_count"], 1, "{d}");
    assert_eq!(d["failed"][0]["db"], "tenants/verify-b", "{d}");
    assert!(server.stop().success());
}

/// On S3: both databases verify; with the object store gone the verifier counts
/// `unavailable`, records no failure and `/readyz` stays 200 (no flapping on store errors).
#[test]
fn s3_outage_is_unavailable_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = support::S3Server::start(&dir.path().join("s3"));
    s3.create_bucket("verify");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(s3_outage(&mut s3, dir.path()));
}

async fn s3_outage(s3: &mut support::S3Server, dir: &Path) {
    let url = s3.backend("verify", "node1").gleaner_url();
    let mut env: Vec<(&str, &str)> = vec![
        ("GLEANER_HTTP__ADMIN_TOKEN", support::ADMIN_TOKEN),
        ("GLEANER_REPLICATE__ENABLED", "true"),
        ("GLEANER_REPLICATE__URL", &url),
        ("GLEANER_REPLICATE__SYNC_INTERVAL_MS", "100"),
        ("GLEANER_REPLICATE__VERIFY_INTERVAL_SECS", "1"),
        ("GLEANER_REPLICATE__UPLOAD_ATTEMPTS", "1"),
        ("AWS_ACCESS_KEY_ID", support::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", support::SECRET_KEY),
    ];
    env.extend(support::NO_RATE_LIMITS);
    let server = Server::start(&dir.join("data"), &[], &env);
    let api = Api::new(&server);
    api.create_tenant("verify-s3").await;
    eventually(
        Duration::from_secs(20),
        "both databases verified on S3",
        || async {
            let d = verify_detail(&api).await;
            if d["verified"] == 2 {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    )
    .await;
    s3.stop();
    eventually(
        Duration::from_secs(30),
        "a verification to find S3 gone",
        || async {
            let m = api.text("/metrics").await;
            if metric(
                &m,
                "gleaner_replication_verify_total{outcome=\"unavailable\"}",
            ) >= 1.0
            {
                Ok(())
            } else {
                Err(m)
            }
        },
    )
    .await;
    let r = api.send("GET", "/readyz", None, None).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let d = &v["checks"]["replica_verify"];
    assert_eq!(d["failed_count"], 0, "{d}");
    let m = api.text("/metrics").await;
    assert_eq!(
        metric(&m, "gleaner_replication_verify_total{outcome=\"failed\"}"),
        0.0
    );
    drop(server);
}
