//! The bundled sample site: the JSP registry (listing, details behind a session cookie,
//! windows-1252, ETags), its OAuth2 JSON API, sitemap and feed; the scheduler; sessions that
//! expire mid-run.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_registry_unchanged_then_changed_and_removed() {
    let site = sample_site(300).await;
    let e = env(HarvestConfig {
        dictionary_min_records: 100,
        ..test_cfg()
    })
    .await;
    e.put(&registry_detail_toml(site)).await;

    let r1 = e.run("registry").await;
    assert_eq!(r1.status, "succeeded", "{r1:?}");
    assert!(r1.complete);
    assert_eq!(r1.counts.records_new, 300);
    assert_eq!(r1.counts.fetched, 306, "6 listings + 300 details");
    assert_eq!(r1.counts.errors, 0);
    let db = e.db().await;
    let rec = db
        .get_record("registry", "ICT00001")
        .await
        .unwrap()
        .unwrap();
    // Detail fields arrived, so the session cookie from the listing was sent; the fee's
    // euro sign came through windows-1252.
    assert!(rec.fields["sector"].as_str().unwrap().len() > 2, "{rec:?}");
    assert!(
        rec.fields["fee"].as_str().unwrap().starts_with('€'),
        "{rec:?}"
    );
    assert!(rec.fields["title"].as_str().unwrap().len() > 3);

    // Enough records: a zstd dictionary was trained for the source's next runs.
    let dict = db
        .source_dictionary("registry")
        .await
        .unwrap()
        .expect("a dictionary");
    assert!(dict.bytes.len() >= 1024);

    let r2 = e.run("registry").await;
    assert_eq!(r2.status, "succeeded");
    assert_eq!(r2.counts.not_modified, 306, "{r2:?}");
    assert_eq!(r2.counts.fetched, 0);
    assert_eq!(r2.counts.records_unchanged, 300);
    assert_eq!(r2.counts.records_new + r2.counts.records_changed, 0);
    assert_eq!(r2.counts.records_removed, 0);

    control(site, "revision/1").await;
    let r3 = e.run("registry").await;
    assert_eq!(r3.status, "succeeded", "{r3:?}");
    assert!(r3.complete);
    assert_eq!(r3.counts.records_changed, 42, "every 7th of 297: {r3:?}");
    assert_eq!(r3.counts.records_removed, 3);
    assert_eq!(r3.counts.records_unchanged, 297 - 42);
    let changed = db
        .get_record("registry", "ICT00007")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.version, 2);
    // Written with the dictionary, read back through it; old versions stay readable.
    assert_eq!(changed.fields["code"], "ICT00007");
    assert!(changed.fields["title"]
        .as_str()
        .unwrap()
        .contains("revision 1"));
    assert_eq!(
        db.get_record("registry", "ICT00008")
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    let removed = db.removed_records("registry", 10).await.unwrap();
    let keys: Vec<&str> = removed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["ICT00298", "ICT00299", "ICT00300"]);
    assert!(removed.iter().all(|(_, run)| *run == r3.run_id));
    // Listed and exported (both serialize these rows), a removed record names the run that
    // removed it; a present one has none.
    let budget = gleaner::store::ScanBudget {
        deadline: Instant::now() + Duration::from_secs(60),
        max_scan: 100_000,
        timeout_ms: 60_000,
    };
    let filter = |removed| gleaner::store::RecordFilter {
        source: Some("registry".into()),
        removed: Some(removed),
        ..Default::default()
    };
    let gone = db.list_records(filter(true), 0, 10, budget).await.unwrap();
    assert_eq!(gone.rows.len(), 3);
    for r in &gone.rows {
        let v = serde_json::to_value(r).unwrap();
        assert_eq!(v["removed"], true, "{v}");
        assert_eq!(v["removed_run"], r3.run_id, "{v}");
    }
    let here = db.list_records(filter(false), 0, 1, budget).await.unwrap();
    let v = serde_json::to_value(&here.rows[0]).unwrap();
    assert_eq!(
        (v["removed"].clone(), v["removed_run"].clone()),
        (false.into(), serde_json::Value::Null)
    );
    // The run log has all three.
    let runs = db.list_runs("registry", None, 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].id, r3.run_id);
    assert_eq!(runs[0].counts["records_removed"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_api_sitemap_and_feed_of_the_sample_site() {
    let site = sample_site(250).await;
    let e = env(test_cfg()).await;
    e.db()
        .await
        .put_secret("demo-client", gleaner::demo::CLIENT_SECRET)
        .await
        .unwrap();
    e.put(&format!(
        r##"
id = "api"
kind = "json"
url = "http://{site}/api/v1/standards"
records = "$.items[*]"
key = {{ field = "code" }}
params = {{ limit = "100" }}
pagination = {{ type = "cursor", path = "$.next_token", param = "next_token" }}
[auth]
type = "oauth2_client_credentials"
token_url = "http://{site}/oauth/token"
client_id = "demo"
client_secret = "secret:demo-client"
"##
    ))
    .await;
    let r = e.run("api").await;
    assert_eq!(r.status, "succeeded", "{r:?}");
    assert_eq!(r.counts.records_new, 250);
    assert_eq!(r.counts.fetched, 3, "3 pages of 100");

    e.put(&format!(
        r##"
id = "sitemap"
kind = "sitemap"
sitemaps = ["http://{site}/sitemap.xml"]
[extract]
record = "dl.standard"
key = {{ field = "code" }}
[extract.fields.code]
selector = "#code"
[extract.fields.sector]
selector = "#sector"
"##
    ))
    .await;
    // Detail pages need the session cookie, which the sitemap crawl never gets: the site
    // redirects them to the first listing, which has no `dl.standard`.
    let r = e.run("sitemap").await;
    assert!(r.counts.requests > 250, "{r:?}");

    e.put(&format!(
        r##"
id = "feed"
kind = "feed"
feeds = ["http://{site}/feed.xml"]
"##
    ))
    .await;
    let r = e.run("feed").await;
    assert_eq!(r.status, "succeeded", "{r:?}");
    assert_eq!(r.counts.records_new, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_starts_due_sources_and_moves_their_next_run() {
    let site = sample_site(20).await;
    let e = env(test_cfg()).await;
    e.put(&registry_detail_toml(site).replace(
        "kind = \"html\"",
        "kind = \"html\"\nschedule = \"1h\"\nfreshness = \"2h\"",
    ))
    .await;
    let row = e
        .store
        .get_source("acme", "registry")
        .await
        .unwrap()
        .unwrap();
    let first_next = row.next_run_ms.unwrap();
    assert!(first_next > gleaner::harvest::runtime::now_ms() + 3_500_000);
    // Nothing is due yet, and nothing is stale (created just now, fresh for 2h).
    e.h.tick().await;
    assert!(e
        .db()
        .await
        .list_runs("registry", None, 5)
        .await
        .unwrap()
        .is_empty());
    assert!(e
        .store
        .stale_sources(gleaner::harvest::runtime::now_ms(), 10)
        .await
        .unwrap()
        .is_empty());
    // Make it due.
    e.store
        .set_source_next_run(
            "acme",
            "registry",
            Some(gleaner::harvest::runtime::now_ms() - 1),
        )
        .await
        .unwrap();
    e.h.tick().await;
    let runs = crate::support::poll::eventually(
        Duration::from_secs(30),
        "the scheduled run to finish",
        || async {
            let runs = e.db().await.list_runs("registry", None, 5).await.unwrap();
            match runs.first() {
                Some(r) if r.status != "running" => Ok(runs),
                _ => Err(format!("{runs:?}")),
            }
        },
    )
    .await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(runs[0].trigger, "schedule");
    // The run's end is written to the tenant's database first, then to the source's row in
    // control.db: two writes, so the row is awaited, not assumed.
    let row = crate::support::poll::eventually(
        Duration::from_secs(10),
        "the source row to record the run",
        || async {
            let row = e
                .store
                .get_source("acme", "registry")
                .await
                .unwrap()
                .unwrap();
            match row.last_status {
                Some(_) => Ok(row),
                None => Err(format!("{row:?}")),
            }
        },
    )
    .await;
    assert!(row.next_run_ms.unwrap() > gleaner::harvest::runtime::now_ms() + 3_500_000);
    assert_eq!(row.last_status.as_deref(), Some("succeeded"));
    assert!(row.last_success_ms.is_some());
    // Staleness: pretend the freshness window passed.
    let later = gleaner::harvest::runtime::now_ms() + 3 * 3_600_000;
    let stale = e.store.stale_sources(later, 10).await.unwrap();
    assert_eq!(stale.len(), 1);
}

/// Every record of `n` sample-site entities, by key, as stored now (fields and version).
async fn stored_records(
    e: &Env,
    n: u32,
) -> std::collections::BTreeMap<String, (serde_json::Value, i64)> {
    let db = e.db().await;
    let mut out = std::collections::BTreeMap::new();
    for id in 1..=n {
        let key = format!("ICT{id:05}");
        if let Some(r) = db.get_record("registry", &key).await.unwrap() {
            out.insert(key, (r.fields, r.version));
        }
    }
    out
}

/// A store that harvested the 60-entity sample site completely once, with `def`.
async fn harvested_once(def: &str) -> Env {
    let e = env(test_cfg()).await;
    e.put(def).await;
    let r1 = e.run("registry").await;
    assert!(r1.complete && r1.status == "succeeded", "{r1:?}");
    assert_eq!(r1.counts.records_new, 60, "{r1:?}");
    e
}

/// The JSP case: sessions that last a few detail pages. Each detail past that is answered
/// 302 → the start listing; extracted as the detail page it would store records without
/// their detail fields over complete versions. The run must renew the session and store
/// every record exactly as a harvest without expiry does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_lost_mid_run_is_renewed_and_every_record_stays_whole() {
    let site = sample_site(60).await;
    let e = harvested_once(&registry_detail_toml(site)).await;

    // What revision 1 looks like harvested with sessions that never expire.
    control(site, "revision/1").await;
    let reference = env(test_cfg()).await;
    reference.put(&registry_detail_toml(site)).await;
    let rr = reference.run("registry").await;
    assert!(rr.complete && rr.counts.records_new == 57, "{rr:?}");
    let expected = stored_records(&reference, 60).await;

    control(site, "session-pages/4").await;
    let r2 = e.run("registry").await;
    assert_eq!(r2.status, "succeeded", "{r2:?}");
    assert!(r2.complete, "{r2:?}");
    assert_eq!(r2.counts.errors, 0, "{:?}", r2.errors);
    // 57 details at 4 per session: the session ended many times and was renewed.
    assert!(r2.counts.session_renewals >= 1, "{r2:?}");
    assert!(r2.counts.retries >= 10, "{r2:?}");
    assert_eq!(r2.counts.records_removed, 3, "{r2:?}");
    assert_eq!(
        r2.counts.records_changed, 8,
        "every 7th title of 57: {r2:?}"
    );
    let got = stored_records(&e, 60).await;
    let live: std::collections::BTreeMap<_, _> = got
        .iter()
        .filter(|(k, _)| expected.contains_key(*k))
        .map(|(k, (f, _))| (k.clone(), f.clone()))
        .collect();
    let want: std::collections::BTreeMap<_, _> = expected
        .iter()
        .map(|(k, (f, _))| (k.clone(), f.clone()))
        .collect();
    assert_eq!(live, want);
    assert!(live
        .values()
        .all(|f| f["sector"].is_string() && f["fee"].is_string()));
}

/// When the session cannot be renewed, every page that shows it lost fails with kind
/// `session_lost`: no stored version is replaced, and the run, not complete, marks
/// nothing removed although three entities are gone from the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_cannot_be_renewed_fails_its_pages_and_keeps_every_record() {
    let site = sample_site(60).await;
    let e = harvested_once(&registry_detail_toml(site)).await;
    let before = stored_records(&e, 60).await;

    control(site, "revision/1").await;
    control(site, "session-pages/3").await;
    control(site, "sessions-closed/1").await;
    let r2 = e.run("registry").await;
    assert_eq!(r2.status, "partial", "{r2:?}");
    assert!(!r2.complete);
    assert_eq!(r2.counts.errors, 57, "every detail page: {r2:?}");
    assert_eq!(r2.counts.records_removed, 0);
    assert_eq!(r2.counts.records_new + r2.counts.records_changed, 0);
    assert!(!r2.errors.is_empty());
    for err in &r2.errors {
        assert_eq!(err.kind, "session_lost", "{err:?}");
        assert!(
            err.reason.contains("redirected to the start page")
                && err.reason.contains(", then given up"),
            "{err:?}"
        );
    }
    assert_eq!(stored_records(&e, 60).await, before);
    let db = e.db().await;
    assert!(db.removed_records("registry", 10).await.unwrap().is_empty());

    // Sessions open again: the next run completes and catches up.
    control(site, "sessions-closed/0").await;
    let r3 = e.run("registry").await;
    assert!(r3.complete && r3.status == "succeeded", "{r3:?}");
    assert_eq!(r3.counts.records_removed, 3);
}

/// `required = true` on a detail field: with session detection turned off, a detail page
/// answered by the start listing lacks it, so that URL is an error, its stored version
/// stays, and the run marks nothing removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detail_page_without_a_required_field_keeps_the_stored_version() {
    let site = sample_site(60).await;
    let def = registry_detail_toml(site).replace(
        "[extract.detail.fields.sector]\nselector = \"#sector\"\n",
        "[extract.detail.fields.sector]\nselector = \"#sector\"\nrequired = true\n",
    ) + "[session]\nredirect_to_start = false\n";
    assert!(def.contains("required = true"));
    let e = harvested_once(&def).await;
    let before = stored_records(&e, 60).await;

    control(site, "revision/1").await;
    control(site, "session-pages/4").await;
    let r2 = e.run("registry").await;
    assert!(!r2.complete, "{r2:?}");
    assert_eq!(r2.counts.session_renewals, 0);
    assert!(r2.counts.errors >= 5, "about one detail in five: {r2:?}");
    assert_eq!(r2.counts.records_removed, 0);
    for err in &r2.errors {
        assert_eq!(err.kind, "required_missing", "{err:?}");
        assert!(err.reason.contains("required field \"sector\""), "{err:?}");
    }
    let after = stored_records(&e, 60).await;
    assert_eq!(after.len(), 60);
    for (key, (fields, version)) in &after {
        assert!(fields["sector"].is_string(), "{key}: {fields}");
        let id: u32 = key[3..].parse().unwrap();
        let failed = r2
            .errors
            .iter()
            .any(|x| x.url.ends_with(&format!("?id={id}")));
        if failed {
            assert_eq!((fields, version), (&before[key].0, &before[key].1), "{key}");
        }
    }
}
