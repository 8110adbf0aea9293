//! The audit log's anchors against the real binary: an untouched log verifies (API and
//! `gleaner audit verify`); deleting a chain's newest entries, or a whole chain, is reported
//! as broken with a reason by the verify endpoints and makes the CLI exit 1 naming it; the
//! checkpoint is published in the log at shutdown.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{self, *};
use serde_json::{json, Value};

const SECRET: (&str, &str) = (
    "GLEANER_AUTH__SECRET",
    "test-server-secret-0123456789abcdef",
);

fn audit_verify(data: &Path, extra: &[&str], secret: &str) -> Output {
    support::command()
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .args(extra)
        .env(SECRET.0, secret)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs SQL on control.db as someone with the file would, guards dropped.
fn tamper(data: &Path, sql: &str) {
    let c = rusqlite::Connection::open(data.join("control.db")).unwrap();
    c.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS audit_log_no_delete; {sql}"
    ))
    .unwrap();
}

/// Stops the server and returns its log lines up to "stopped" (read with a deadline).
fn stop_and_log(mut srv: Server) -> Vec<Value> {
    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(30)).success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    loop {
        lines.extend(
            srv.drain_log()
                .into_iter()
                .filter_map(|l| serde_json::from_str::<Value>(&l).ok()),
        );
        if lines.iter().any(|v| v["message"] == "stopped") || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_removed_chains_are_reported_by_api_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    for t in ["t1", "t2"] {
        api.create_tenant(t).await;
        for role in ["reader", "editor", "tenant-admin"] {
            api.key(t, role, json!({})).await;
        }
    }
    let v = api
        .ok("GET", "/v1/tenants/t1/audit/verify", ADMIN_TOKEN, None)
        .await;
    assert_eq!(v["ok"], true, "{v}");
    let n = v["entries"].as_u64().unwrap();
    assert!(n >= 3, "{v}");
    assert_eq!(v["anchor"]["seq"], v["head"]["seq"], "{v}");
    assert_eq!(v["anchor"]["entries"], n, "{v}");
    let g = api
        .ok("GET", "/v1/admin/audit/verify", ADMIN_TOKEN, None)
        .await;
    assert_eq!(g["ok"], true, "{g}");
    let last_seq = g["checkpoint"]["last_seq"].as_i64().unwrap();
    assert!(last_seq >= 2 * n as i64, "{g}");
    // The checkpoint goes out in the log, as an anchor outside the database.
    let log = stop_and_log(srv);
    let cp = log
        .iter()
        .find(|v| v["message"] == "audit checkpoint" && v["at"] == "shutdown")
        .unwrap_or_else(|| panic!("no checkpoint line in {log:?}"));
    assert_eq!(cp["last_seq"], last_seq, "{cp}");
    assert_eq!(cp["mac"], g["checkpoint"]["mac"], "{cp}");

    // Untouched: the CLI agrees, for every chain and for one.
    let out = audit_verify(&data, &[], SECRET.1);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("ok      chain t1: {n} entries")),
        "{stdout}"
    );
    assert!(stdout.contains("ok      checkpoint:"), "{stdout}");
    let out = audit_verify(&data, &["--tenant", "t1", "--json"], SECRET.1);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["chains"][0]["chain"], "t1", "{j}");
    assert_eq!(j["chains"][0]["entries"], n, "{j}");
    // A different secret cannot verify anything.
    let out = audit_verify(&data, &[], "another-secret-0123456789abcdefghij");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    // The newest two entries of t1 go; what is left still links.
    tamper(
        &data,
        "DELETE FROM audit_log WHERE seq IN
           (SELECT seq FROM audit_log WHERE tenant = 't1' ORDER BY seq DESC LIMIT 2);",
    );
    let out = audit_verify(&data, &["--tenant", "t1"], SECRET.1);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("the audit log does not verify: chain t1 is broken at seq")
            && err.contains("truncated"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("BROKEN  chain t1"));
    // Another tenant's chain is still whole; the full run also reports the checkpoint.
    let out = audit_verify(&data, &["--tenant", "t2"], SECRET.1);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = audit_verify(&data, &[], SECRET.1);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ok      chain t2") && stdout.contains("BROKEN  checkpoint: "),
        "{stdout}"
    );

    // A whole chain goes, t2's, with its anchor.
    tamper(
        &data,
        "DELETE FROM audit_log WHERE tenant = 't2'; DELETE FROM audit_anchor WHERE tenant = 't2';",
    );
    let out = audit_verify(&data, &["--tenant", "t2"], SECRET.1);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("chain t2 is broken at seq 0") && err.contains("removed with its anchor"),
        "{err}"
    );

    let srv = start(dir.path(), "");
    let api = Api::new(&srv);
    let v = api
        .ok("GET", "/v1/tenants/t1/audit/verify", ADMIN_TOKEN, None)
        .await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["entries"], n - 2, "{v}");
    let reason = v["first_broken"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("truncated"), "{v}");
    let v = api
        .ok("GET", "/v1/tenants/t2/audit/verify", ADMIN_TOKEN, None)
        .await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["entries"], 0, "{v}");
    let g = api
        .ok("GET", "/v1/admin/audit/verify", ADMIN_TOKEN, None)
        .await;
    assert_eq!(g["ok"], false, "{g}");
    assert_eq!(g["checkpoint"]["ok"], false, "{g}");
    drop(srv);
}

#[test]
fn audit_verify_refuses_without_a_log_or_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = audit_verify(dir.path(), &[], SECRET.1);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("control.db does not exist"),
        "{}",
        text(&out.stderr)
    );
    let out = support::command()
        .args([
            "bench-seed",
            "--tenant",
            "s",
            "--records",
            "1",
            "--data-dir",
        ])
        .arg(dir.path())
        .env(SECRET.0, SECRET.1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = support::command()
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no server secret"),
        "{}",
        text(&out.stderr)
    );
    let out = audit_verify(dir.path(), &["--tenant", "s"], SECRET.1);
    assert!(
        out.status.success(),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = audit_verify(dir.path(), &["--tenant", "../x"], SECRET.1);
    assert_eq!(out.status.code(), Some(2));
}
