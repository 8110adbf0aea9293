//! A `gleaner harvest` killed with SIGKILL mid-run resumes where it stopped: the rerun
//! fetches no URL whose results were committed, continues the site's session, and ends
//! with the complete result.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gleaner::store::FRONTIER_DONE;
use gleaner::tenant::TenantId;

use crate::support;

const ENTITIES: u32 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_resumes_without_refetching() {
    // (phase, path?query) of every request the site served.
    let seen: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let phase = Arc::new(AtomicU32::new(1));
    let (s2, p2) = (Arc::clone(&seen), Arc::clone(&phase));
    let app = gleaner::demo::router(ENTITIES).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let (seen, phase) = (Arc::clone(&s2), Arc::clone(&p2));
            async move {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                // Slow enough that the kill lands mid-run.
                tokio::time::sleep(Duration::from_millis(3)).await;
                let resp = next.run(req).await;
                seen.lock()
                    .unwrap()
                    .push((phase.load(Ordering::SeqCst), pq));
                resp
            }
        },
    ));
    let addr = support::serve(app).await;

    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("registry.toml");
    // Enough pages for every listing and detail page of the site.
    let source = support::registry_detail_toml(addr)
        .replace("max_depth = 0\n", "max_depth = 0\nmax_pages = 10000\n");
    assert!(source.contains("max_pages = 10000"));
    std::fs::write(&def, source).unwrap();
    let data = dir.path().join("data");
    let harvest = || {
        let mut c = support::command();
        c.args([
            "harvest",
            "--tenant",
            "t1",
            "--allow-private-targets",
            "--json",
            "--quiet",
        ])
        .arg("--source-file")
        .arg(&def)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        c
    };

    let mut child = harvest().spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 400 {
        assert!(Instant::now() < deadline, "the harvest made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the harvest ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    phase.store(2, Ordering::SeqCst);

    // What the killed run committed.
    let store = support::open_store(&data).await;
    let db = store
        .tenant_db(&TenantId::parse("t1").unwrap())
        .await
        .unwrap();
    let done: HashSet<String> = db
        .frontier_urls("registry", FRONTIER_DONE, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.split_once(&addr.to_string()).unwrap().1.to_owned())
        .collect();
    let stored_before = db.count_records().await.unwrap();
    assert!(db.unfinished_run("registry").await.unwrap().is_some());
    store.close().await;
    assert!(
        done.len() >= 100,
        "{} URLs committed before the kill",
        done.len()
    );
    assert!((stored_before as u32) < ENTITIES);

    let out = harvest().output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["resumed"], true);
    assert_eq!(summary["counts"]["errors"], 0);

    let refetched: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, pq)| *p == 2 && done.contains(pq))
        .map(|(_, pq)| pq.clone())
        .collect();
    assert!(
        refetched.is_empty(),
        "refetched after resume: {refetched:?}"
    );

    let store = support::open_store(&data).await;
    let db = store
        .tenant_db(&TenantId::parse("t1").unwrap())
        .await
        .unwrap();
    assert_eq!(db.count_records().await.unwrap(), i64::from(ENTITIES));
    // Every record has its detail fields: the session survived the kill.
    for id in [1, ENTITIES / 2, ENTITIES] {
        let r = db
            .get_record("registry", &format!("ICT{id:05}"))
            .await
            .unwrap()
            .unwrap();
        assert!(r.fields.get("sector").is_some(), "{r:?}");
    }
    store.close().await;
}
