//! Tenant database files that no control.db row owns (issue 20, item 5): what a kill during
//! tenant creation leaves behind is removed at start-up, a file that holds records is kept
//! and reported, and the ids of removed files can be created again.

use std::path::Path;

use gleaner::store::{encode_payload, RecordWrite};
use gleaner::tenant::TenantId;
use serde_json::{json, Value};

use crate::support::db::open_store;
use crate::support::http::Api;
use crate::support::server::{Server, ADMIN_TOKEN};

/// A migrated tenant database built in a scratch data dir (`records` records in it),
/// copied into `into` as `<name>.db`: a tenant file exactly as the store makes it.
async fn tenant_file(scratch: &Path, into: &Path, name: &str, records: usize) {
    let store = open_store(scratch).await;
    let id = TenantId::parse(name).unwrap();
    store.create_tenant(&id, name).await.unwrap();
    let db = store.tenant_db(&id).await.unwrap();
    for i in 0..records {
        db.put_record(RecordWrite {
            source: "s".into(),
            key: format!("k{i}"),
            payload: encode_payload(&json!({ "i": i })).unwrap(),
            seen_ms: 1_700_000_000_000,
        })
        .await
        .unwrap();
    }
    drop(db);
    store.close().await;
    let from = scratch.join("tenants");
    for suffix in [".db", ".db-wal"] {
        let src = from.join(format!("{name}{suffix}"));
        if src.exists() {
            std::fs::copy(&src, into.join(format!("{name}{suffix}"))).unwrap();
        }
    }
}

fn log_lines(srv: &Server) -> Vec<Value> {
    srv.startup_log()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_tenant_files_are_swept_at_start_up_unless_they_hold_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A first start makes the data dir and control.db; one real tenant is created.
    let srv = Server::start_admin(&data);
    Api::new(&srv).create_tenant("owned").await;
    assert!(srv.stop().success());
    let tenants = data.join("tenants");

    // What a kill in the middle of creating a tenant leaves: the database file SQLite had
    // just created (empty) with its rollback journal, no control.db row.
    std::fs::write(tenants.join("ghost.db"), b"").unwrap();
    std::fs::write(tenants.join("ghost.db-journal"), b"").unwrap();
    // A kill after the file was migrated but before its row was committed.
    let scratch = dir.path().join("scratch-blank");
    tenant_file(&scratch, &tenants, "blank", 0).await;
    // A file with records and no row (a control.db restored from an older backup, say):
    // never deleted.
    let scratch = dir.path().join("scratch-stray");
    tenant_file(&scratch, &tenants, "stray", 3).await;
    let stray_before = crate::support::db::content(&tenants.join("stray.db"));

    let srv = Server::start_admin(&data);
    for f in [
        "ghost.db",
        "ghost.db-journal",
        "blank.db",
        "blank.db-wal",
        "blank.db-shm",
    ] {
        assert!(!tenants.join(f).exists(), "orphan {f} still there");
    }
    assert!(
        tenants.join("owned.db").exists(),
        "owned tenant's file removed"
    );
    assert!(
        tenants.join("stray.db").exists(),
        "a file with records was removed"
    );
    assert_eq!(
        crate::support::db::content(&tenants.join("stray.db")),
        stray_before,
        "the kept file changed"
    );
    let log = log_lines(&srv);
    let mentions = |v: &Value, what: &str| v.to_string().contains(what);
    assert!(
        log.iter()
            .any(|v| mentions(v, "ghost.db") && mentions(v, "orphan")),
        "no log line about removing ghost.db: {log:?}"
    );
    assert!(
        log.iter()
            .any(|v| v["level"] == "ERROR" && mentions(v, "stray.db") && mentions(v, "records")),
        "no error about the kept stray.db: {log:?}"
    );

    // The removed ids are free again, and work; the kept one is not silently adopted.
    let api = Api::new(&srv);
    api.create_tenant("ghost").await;
    api.create_tenant("blank").await;
    let (s, v) = api
        .call("GET", "/v1/tenants/ghost", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = api
        .call(
            "POST",
            "/v1/tenants",
            Some(ADMIN_TOKEN),
            Some(&json!({"id": "stray"})),
        )
        .await;
    assert_eq!(s, 409, "creating over a kept file with records: {v}");
    assert_eq!(
        crate::support::db::content(&tenants.join("stray.db")),
        stray_before,
        "the kept file changed"
    );
    assert!(srv.stop().success());
}

/// The same for real: tenants are created over HTTP as fast as the server takes them and the
/// server is SIGKILLed at varying moments; after each restart every tenant file belongs to a
/// tenant the API lists (and no temporary file is left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_tenant_creation_leaves_no_orphan_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tenants = data.join("tenants");
    let mut orphans_seen = Vec::new();
    for round in 0..8u64 {
        let srv = Server::start_admin(&data);
        let (s, _) = Api::new(&srv)
            .call("GET", "/v1/tenants?limit=1", Some(ADMIN_TOKEN), None)
            .await;
        assert_eq!(s, 200);
        orphans_seen.extend(orphans(&tenants, &srv).await);
        let base = srv.url("");
        let load = tokio::spawn(async move {
            let c = crate::support::http::client();
            for i in 0.. {
                let r = c
                    .post(format!("{base}/v1/tenants"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({ "id": format!("t{round}-{i}") }))
                    .send()
                    .await;
                if r.is_err() {
                    break;
                }
            }
        });
        // The kill moment is the point of the test, not a wait for a condition.
        tokio::time::sleep(std::time::Duration::from_millis(40 + 53 * round)).await;
        srv.signal(libc::SIGKILL);
        let _ = load.await;
        drop(srv);
    }
    let srv = Server::start_admin(&data);
    orphans_seen.extend(orphans(&tenants, &srv).await);
    let (_, v) = Api::new(&srv)
        .call("GET", "/v1/tenants?limit=1000", Some(ADMIN_TOKEN), None)
        .await;
    let created = v["tenants"].as_array().map_or(0, Vec::len);
    assert!(
        created >= 8,
        "the kills left only {created} tenants created"
    );
    assert!(
        orphans_seen.is_empty(),
        "tenant files without a tenant after a restart: {orphans_seen:?}"
    );
    assert!(srv.stop().success());
}

/// Files in `tenants` that are not the database of a tenant the API lists.
async fn orphans(tenants: &Path, srv: &Server) -> Vec<String> {
    let (s, v) = Api::new(srv)
        .call("GET", "/v1/tenants?limit=1000", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let listed: std::collections::HashSet<String> = v["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("no tenants in {v}"))
        .iter()
        .map(|t| format!("{}.db", t["id"].as_str().unwrap()))
        .collect();
    std::fs::read_dir(tenants)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    let db = ["-wal", "-shm", "-journal"]
                        .iter()
                        .find_map(|s| n.strip_suffix(s))
                        .unwrap_or(n);
                    !listed.contains(db)
                })
                .collect()
        })
        .unwrap_or_default()
}
