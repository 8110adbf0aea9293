//! The harvest runtime against local servers on 127.0.0.1: the bundled sample site (JSP
//! listings with session cookies and windows-1252, ETags, sitemaps, RSS, an OAuth2 JSON
//! API) and small axum servers that misbehave on purpose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use gleaner::config::HarvestConfig;
use gleaner::cpu::CpuPool;
use gleaner::harvest::runtime::{Harvester, RunSummary};
use gleaner::harvest::source::SourceDef;
use gleaner::store::Store;
use gleaner::tenant::TenantId;
use serde::Deserialize;

use crate::support::{control, open_store, registry_detail_toml, sample_site, serve};

struct Env {
    _dir: Option<tempfile::TempDir>,
    store: Arc<Store>,
    h: Arc<Harvester>,
    tenant: TenantId,
}

fn test_cfg() -> HarvestConfig {
    HarvestConfig {
        allow_private_targets: true,
        retry_base_ms: 10,
        retry_max_ms: 3000,
        max_attempts: 3,
        request_timeout_ms: 5000,
        ..HarvestConfig::default()
    }
}

async fn env(cfg: HarvestConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut e = env_in(dir.path(), cfg).await;
    e._dir = Some(dir);
    e
}

async fn env_in(dir: &std::path::Path, cfg: HarvestConfig) -> Env {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()))
        .with_test_writer()
        .try_init();
    let store = Arc::new(open_store(dir).await);
    let tenant = TenantId::parse("acme").unwrap();
    let _ = store.create_tenant(&tenant, "Acme").await;
    let cpu = CpuPool::new(&Default::default()).unwrap();
    let h = Harvester::new(cfg, Arc::clone(&store), cpu).unwrap();
    Env {
        _dir: None,
        store,
        h,
        tenant,
    }
}

impl Env {
    async fn put(&self, toml: &str) {
        let def = SourceDef::parse_toml(toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        self.h.put_source(&self.tenant, &def).await.unwrap();
    }

    async fn run(&self, source: &str) -> RunSummary {
        self.h
            .run_source(&self.tenant, source, "test")
            .await
            .unwrap()
    }

    async fn db(&self) -> gleaner::store::TenantDb {
        self.store.tenant_db(&self.tenant).await.unwrap()
    }
}

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

/// A misbehaving site: each path fails in its own way.
fn bad_site(hits: Arc<Mutex<HashMap<String, Vec<Instant>>>>) -> Router {
    let bomb = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..40 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap()
    };
    let flaky = Arc::new(AtomicU32::new(0));
    let limited = Arc::new(AtomicU32::new(0));
    let page = |body: &'static str| {
        move || async move {
            (
                [(header::CONTENT_TYPE, "text/html; charset=windows-1252")],
                body,
            )
        }
    };
    let hits2 = Arc::clone(&hits);
    Router::new()
        .route("/robots.txt", get(|| async { "User-agent: *\nDisallow: /private/\n" }))
        .route(
            "/ok",
            get(page("<table><tr class=r><td class=k>ok1</td><td class=v>fine</td></tr></table>")),
        )
        .route("/private/x", get(page("<p>secret</p>")))
        .route("/loop1", get(|| async { axum::response::Redirect::to("/loop2") }))
        .route("/loop2", get(|| async { axum::response::Redirect::to("/loop1") }))
        .route(
            "/bomb",
            get(move || {
                let b = bomb.clone();
                async move { ([(header::CONTENT_ENCODING, "gzip"), (header::CONTENT_TYPE, "text/html")], b) }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                let s = futures_util::stream::unfold(0u32, |n| async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"<")), n + 1))
                });
                ([(header::CONTENT_TYPE, "text/html")], axum::body::Body::from_stream(s))
            }),
        )
        .route(
            "/flaky",
            get(move || {
                let n = flaky.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
                    } else {
                        "<table><tr class=r><td class=k>flaky1</td><td class=v>late</td></tr></table>"
                            .into_response()
                    }
                }
            }),
        )
        .route(
            "/limited",
            get(move || {
                let n = limited.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down")
                            .into_response()
                    } else {
                        "<table><tr class=r><td class=k>lim1</td><td class=v>ok</td></tr></table>"
                            .into_response()
                    }
                }
            }),
        )
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "gone") }))
        .route(
            "/latin",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=windows-1252")],
                    b"<table><tr class=r><td class=k>caf\xe9</td><td class=v>\x80 5</td></tr></table>"
                        .to_vec(),
                )
            }),
        )
        .route("/bad.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{\"items\": [1, 2") }))
        .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let hits = Arc::clone(&hits2);
            async move {
                hits.lock()
                    .unwrap()
                    .entry(req.uri().path().to_owned())
                    .or_default()
                    .push(Instant::now());
                next.run(req).await
            }
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_end_as_per_url_errors_and_the_run_goes_on() {
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let site = serve(bad_site(Arc::clone(&hits))).await;
    let e = env(HarvestConfig {
        max_body_bytes: 1 << 20,
        request_timeout_ms: 1500,
        ..test_cfg()
    })
    .await;
    let urls: Vec<String> = [
        "ok",
        "private/x",
        "loop1",
        "bomb",
        "slow",
        "flaky",
        "limited",
        "missing",
        "latin",
    ]
    .iter()
    .map(|p| format!("\"http://{site}/{p}\""))
    .collect();
    e.put(&format!(
        r##"
id = "bad"
kind = "html"
start_urls = [{}]
[scope]
max_depth = 0
[extract]
record = "tr.r"
key = {{ field = "k" }}
[extract.fields.k]
selector = "td.k"
[extract.fields.v]
selector = "td.v"
"##,
        urls.join(", ")
    ))
    .await;
    let r = e.run("bad").await;
    assert_eq!(r.status, "partial", "{r:#?}");
    assert!(!r.complete);
    assert_eq!(r.counts.robots_blocked, 1);
    let kinds: HashMap<String, String> = r
        .errors
        .iter()
        .map(|e| (e.url.rsplit('/').next().unwrap().to_owned(), e.kind.clone()))
        .collect();
    assert_eq!(
        kinds.get("loop1").map(String::as_str),
        Some("redirect"),
        "{r:#?}"
    );
    assert_eq!(
        kinds.get("bomb").map(String::as_str),
        Some("too_large"),
        "{r:#?}"
    );
    assert_eq!(
        kinds.get("slow").map(String::as_str),
        Some("timeout"),
        "{r:#?}"
    );
    assert_eq!(
        kinds.get("missing").map(String::as_str),
        Some("status"),
        "{r:#?}"
    );
    assert_eq!(r.counts.errors, 4, "{r:#?}");
    let db = e.db().await;
    for k in ["ok1", "flaky1", "lim1", "café"] {
        assert!(
            db.get_record("bad", k).await.unwrap().is_some(),
            "record {k} missing: {r:#?}"
        );
    }
    let latin = db.get_record("bad", "café").await.unwrap().unwrap();
    assert_eq!(latin.fields["v"], "€ 5");
    let hits = hits.lock().unwrap().clone();
    assert!(
        !hits.contains_key("/private/x"),
        "robots.txt must keep us out"
    );
    assert_eq!(hits["/missing"].len(), 1, "404 is never retried");
    assert_eq!(hits["/flaky"].len(), 3, "two 500s retried");
    let lim = &hits["/limited"];
    assert_eq!(lim.len(), 2);
    assert!(
        lim[1] - lim[0] >= Duration::from_millis(900),
        "Retry-After: 1 honoured"
    );
    assert!(r.counts.retries >= 3);

    // A JSON source on a body that is not JSON: an extract error naming the URL.
    e.put(&format!(
        r##"
id = "badjson"
kind = "json"
url = "http://{site}/bad.json"
records = "$.items[*]"
key = {{ field = "id" }}
"##
    ))
    .await;
    let r = e.run("badjson").await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.errors[0].kind, "extract");
    assert!(r.errors[0].reason.contains("not valid JSON"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_blocked_unless_allowed() {
    let site = sample_site(10).await;
    let e = env(HarvestConfig {
        allow_private_targets: false,
        ..test_cfg()
    })
    .await;
    e.put(&registry_detail_toml(site)).await;
    let r = e.run("registry").await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.errors[0].kind, "blocked", "{r:?}");
    let e = env(HarvestConfig {
        allow_private_targets: false,
        ..test_cfg()
    })
    .await;
    e.put(&registry_detail_toml(site).replace("127.0.0.1", "localhost"))
        .await;
    let r = e.run("registry").await;
    assert_eq!(
        r.errors[0].kind, "blocked",
        "names resolving to loopback too: {r:?}"
    );
}

/// A listener on 127.0.0.1 that only counts the connections it accepts.
async fn counting_listener() -> (u16, Arc<AtomicU32>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicU32::new(0));
    let n = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_forms_of_loopback_are_refused_before_connecting() {
    let (port, accepted) = counting_listener().await;
    let e = env(HarvestConfig {
        allow_private_targets: false,
        max_attempts: 1,
        ..test_cfg()
    })
    .await;
    // IPv4-compatible, NAT64 (well-known and local-use prefix), 6to4, Teredo, site-local:
    // each reaches 127.0.0.1 or space outside the public Internet.
    for (i, host) in [
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::]",
        "[2001:0:7f00:1::1]",
        "[fec0::1]",
        "[::ffff:0:7f00:1]",
    ]
    .iter()
    .enumerate()
    {
        let id = format!("v6form{i}");
        e.put(&format!(
            "id = \"{id}\"\nkind = \"html\"\nstart_urls = [\"http://{host}:{port}/list\"]\n\
             [extract]\nrecord = \"li\"\nkey = {{ field = \"k\" }}\n\
             [extract.fields.k]\nselector = \"a\"\n"
        ))
        .await;
        let r = e.run(&id).await;
        assert_eq!(r.status, "failed", "{host}: {r:?}");
        assert!(!r.errors.is_empty(), "{host}: {r:?}");
        for err in &r.errors {
            assert_eq!(err.kind, "blocked", "{host}: {r:?}");
            assert!(
                err.reason.contains("not a public address"),
                "{host}: {}",
                err.reason
            );
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing may connect");

    // The same listener does count a connection when private targets are allowed, so the
    // zero above is the guard's doing.
    let open = env(HarvestConfig {
        max_attempts: 1,
        ..test_cfg()
    })
    .await;
    open.put(&format!(
        "id = \"loop\"\nkind = \"html\"\nstart_urls = [\"http://127.0.0.1:{port}/list\"]\n\
         [extract]\nrecord = \"li\"\nkey = {{ field = \"k\" }}\n\
         [extract.fields.k]\nselector = \"a\"\n"
    ))
    .await;
    let r = open.run("loop").await;
    assert_eq!(r.status, "failed", "the listener answers nothing: {r:?}");
    assert!(
        r.errors.iter().all(|e| e.kind != "blocked"),
        "allowed: {r:?}"
    );
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}

/// An API whose refresh tokens rotate (each one works once) and whose access tokens are
/// revoked after page 3, so a 401 arrives mid-run.
#[derive(Clone, Default)]
struct Rotating {
    inner: Arc<Mutex<RotState>>,
}

#[derive(Default)]
struct RotState {
    refresh: String,
    access: Option<String>,
    issued: u32,
    served: u32,
    unauthorized: u32,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    refresh_token: String,
    client_id: String,
}

#[derive(Deserialize)]
struct PageQ {
    page: u32,
}

fn rotating_api(state: Rotating) -> Router {
    Router::new()
        .route(
            "/token",
            post(|State(s): State<Rotating>, Form(f): Form<TokenForm>| async move {
                let mut st = s.inner.lock().unwrap();
                if f.grant_type != "refresh_token" || f.client_id != "watch" || f.refresh_token != st.refresh {
                    return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid_grant"})))
                        .into_response();
                }
                st.issued += 1;
                st.refresh = format!("r{}", st.issued);
                let access = format!("a{}", st.issued);
                st.access = Some(access.clone());
                Json(serde_json::json!({"access_token": access, "token_type": "Bearer",
                    "expires_in": 3600, "refresh_token": st.refresh}))
                .into_response()
            }),
        )
        .route(
            "/data",
            get(|State(s): State<Rotating>, headers: HeaderMap, Query(q): Query<PageQ>| async move {
                let mut st = s.inner.lock().unwrap();
                let ok = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| st.access.as_deref().is_some_and(|a| v == format!("Bearer {a}")));
                if !ok {
                    st.unauthorized += 1;
                    return (StatusCode::UNAUTHORIZED, "expired").into_response();
                }
                st.served += 1;
                if st.served == 3 {
                    st.access = None; // revoked: the next request gets 401
                }
                let items: Vec<_> = if q.page <= 5 {
                    (0..10).map(|i| serde_json::json!({"id": format!("p{}-{i}", q.page), "steps": i * 100})).collect()
                } else {
                    vec![]
                };
                Json(serde_json::json!({"data": items})).into_response()
            }),
        )
        .with_state(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_refresh_tokens_survive_a_401_and_a_restart() {
    let api = Rotating::default();
    api.inner.lock().unwrap().refresh = "r0".into();
    let site = serve(rotating_api(api.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let def = format!(
        r##"
id = "watch"
kind = "json"
url = "http://{site}/data"
records = "$.data[*]"
key = {{ field = "id" }}
pagination = {{ type = "page", param = "page", size = 10 }}
[auth]
type = "oauth2_refresh_token"
token_url = "http://{site}/token"
client_id = "watch"
refresh_token = "secret:watch-refresh"
"##
    );
    let e = env_in(&path, test_cfg()).await;
    e.db()
        .await
        .put_secret("watch-refresh", "r0")
        .await
        .unwrap();
    e.put(&def).await;
    let r = e.run("watch").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(r.counts.records_new, 50);
    {
        let st = api.inner.lock().unwrap();
        assert_eq!(st.unauthorized, 1, "one 401 mid-run");
        assert_eq!(st.issued, 2, "refreshed at start and after the 401");
    }
    let stored = e.db().await.oauth_token("watch").await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token.as_deref(),
        Some("r2"),
        "the rotated token is stored"
    );
    e.store.close().await;
    drop(e);
    // A new process: the configured seed r0 is spent, the stored r2 goes on; the stored
    // access token was revoked, so the first request gets 401 and a refresh follows.
    api.inner.lock().unwrap().access = None;
    let e = env_in(&path, test_cfg()).await;
    let r = e.run("watch").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(r.counts.records_unchanged, 50);
    {
        let st = api.inner.lock().unwrap();
        assert_eq!(st.issued, 3);
        assert_eq!(st.refresh, "r3");
    }
    let stored = e.db().await.oauth_token("watch").await.unwrap().unwrap();
    assert_eq!(stored.refresh_token.as_deref(), Some("r3"));
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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = e.db().await.list_runs("registry", None, 5).await.unwrap();
        if runs.first().is_some_and(|r| r.status != "running") {
            assert_eq!(runs.len(), 1);
            assert_eq!(runs[0].status, "succeeded");
            assert_eq!(runs[0].trigger, "schedule");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = e
        .store
        .get_source("acme", "registry")
        .await
        .unwrap()
        .unwrap();
    assert!(row.next_run_ms.unwrap() > gleaner::harvest::runtime::now_ms() + 3_500_000);
    assert_eq!(row.last_status.as_deref(), Some("succeeded"));
    assert!(row.last_success_ms.is_some());
    // Staleness: pretend the freshness window passed.
    let later = gleaner::harvest::runtime::now_ms() + 3 * 3_600_000;
    let stale = e.store.stale_sources(later, 10).await.unwrap();
    assert_eq!(stale.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_calendar_stops_at_the_page_cap() {
    // Every day links to the next one, forever.
    let app = Router::new().route(
        "/cal/{day}",
        get(|axum::extract::Path(day): axum::extract::Path<u64>| async move {
            axum::response::Html(format!(
                "<div class=ev><span class=d>{day}</span></div><a class=next href=\"/cal/{}\">next</a>",
                day + 1
            ))
        }),
    );
    let site = serve(app).await;
    let e = env(test_cfg()).await;
    e.put(&format!(
        r##"
id = "calendar"
kind = "html"
start_urls = ["http://{site}/cal/1"]
[scope]
max_pages = 20
[next]
selector = "a.next"
[extract]
record = "div.ev"
key = {{ field = "d" }}
[extract.fields.d]
selector = "span.d"
"##
    ))
    .await;
    let r = e.run("calendar").await;
    assert_eq!(r.status, "succeeded", "{r:?}");
    assert!(!r.complete, "a capped crawl does not mark removals");
    assert_eq!(r.counts.fetched, 20);
    assert_eq!(r.counts.records_new, 20);
    assert!(r.counts.links_dropped >= 1);
    assert!(
        r.message.as_deref().unwrap_or("").contains("max_pages"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_bearer_and_header_auth_are_sent() {
    let app = Router::new().route(
        "/items",
        get(|headers: HeaderMap| async move {
            let a = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let k = headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // "user:pw" in base64 is dXNlcjpwdw==
            if a == "Basic dXNlcjpwdw==" || a == "Bearer tok-123" || k == "k-9" {
                Json(serde_json::json!({"items": [{"id": 1, "auth": a, "key": k}]})).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "no").into_response()
            }
        }),
    );
    let site = serve(app).await;
    let e = env(test_cfg()).await;
    let db = e.db().await;
    db.put_secret("pw", "pw").await.unwrap();
    db.put_secret("tok", "tok-123").await.unwrap();
    db.put_secret("key", "k-9").await.unwrap();
    for (id, auth) in [
        ("basic", "type = \"basic\"\nusername = \"user\"\npassword = \"secret:pw\""),
        ("bearer", "type = \"bearer\"\ntoken = \"secret:tok\""),
        ("headers", "type = \"headers\"\nheaders = { Accept = \"application/json\" }\nsecret_headers = { X-Api-Key = \"secret:key\" }"),
    ] {
        e.put(&format!(
            "id = \"{id}\"\nkind = \"json\"\nurl = \"http://{site}/items\"\nrecords = \"$.items[*]\"\nkey = {{ field = \"id\" }}\n[auth]\n{auth}\n"
        ))
        .await;
        let r = e.run(id).await;
        assert_eq!(r.status, "succeeded", "{id}: {r:?}");
        assert_eq!(r.counts.records_new, 1, "{id}");
    }
    // A missing secret fails the run with a message saying how to set it.
    e.put(&format!(
        "id = \"nosecret\"\nkind = \"json\"\nurl = \"http://{site}/items\"\nrecords = \"$.items[*]\"\nkey = {{ field = \"id\" }}\n[auth]\ntype = \"bearer\"\ntoken = \"secret:absent\"\n"
    ))
    .await;
    let r = e.run("nosecret").await;
    assert_eq!(r.status, "failed");
    assert!(r
        .message
        .unwrap()
        .contains("PUT /v1/tenants/acme/secrets/absent"));
}

/// A listing of `n` entries under `/{name}/`, each with a detail page that answers slowly
/// while counting how many requests are in flight at once (across every path).
fn counting_site(
    names: &'static [&'static str],
    n: usize,
    now: Arc<AtomicU32>,
    peak: Arc<AtomicU32>,
) -> Router {
    let mut app = Router::new();
    for name in names {
        let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
        app = app
            .route(
                &format!("/{name}/list"),
                get(move || async move {
                    let items: String = (0..n)
                        .map(|i| {
                            format!("<li><a class=k href=\"/{name}/item/{i}\">{name}{i}</a></li>")
                        })
                        .collect();
                    axum::response::Html(format!("<ul>{items}</ul>"))
                }),
            )
            .route(
                &format!("/{name}/item/{{i}}"),
                get(move |axum::extract::Path(i): axum::extract::Path<u32>| {
                    let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
                    async move {
                        let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(in_flight, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(40)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        axum::response::Html(format!("<p id=v>value {i}</p>"))
                    }
                }),
            );
    }
    app
}

fn counting_source(site: SocketAddr, name: &str, limit: u32) -> String {
    format!(
        r##"
id = "{name}"
kind = "html"
start_urls = ["http://{site}/{name}/list"]
[politeness]
per_host_concurrency = {limit}
[scope]
max_depth = 0
[extract]
record = "li"
key = {{ field = "k" }}
[extract.fields.k]
selector = "a.k"
[extract.detail]
link = "a.k"
[extract.detail.fields.v]
selector = "#v"
"##
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_host_concurrency_holds_across_sources_on_one_host() {
    let (now, peak) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let site = serve(counting_site(
        &["one", "two"],
        24,
        Arc::clone(&now),
        Arc::clone(&peak),
    ))
    .await;
    // The node allows 8 per host; both sources ask for 2 on the one host they share.
    let e = env(HarvestConfig {
        per_host_concurrency: 8,
        fetch_concurrency: 16,
        ..test_cfg()
    })
    .await;
    e.put(&counting_source(site, "one", 2)).await;
    e.put(&counting_source(site, "two", 2)).await;
    let a = e.h.start_run(&e.tenant, "one", "test").await.unwrap();
    let b = e.h.start_run(&e.tenant, "two", "test").await.unwrap();
    let (a, b) = (a.task.await.unwrap(), b.task.await.unwrap());
    for r in [&a, &b] {
        assert_eq!(r.status, "succeeded", "{r:?}");
        assert_eq!(r.counts.records_new, 24, "{r:?}");
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} requests in flight to one host, limit 2");
    assert!(peak >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_robots_txt_disallows_the_host() {
    // 200 at first, then 503: the 503 must keep every page of the host unfetched.
    let robots_status = Arc::new(AtomicU32::new(200));
    let pages = Arc::new(AtomicU32::new(0));
    let app = {
        let (st, pages) = (Arc::clone(&robots_status), Arc::clone(&pages));
        Router::new()
            .route(
                "/robots.txt",
                get(move || {
                    let st = st.load(Ordering::SeqCst) as u16;
                    async move {
                        (
                            StatusCode::from_u16(st).unwrap(),
                            "User-agent: *\nAllow: /\n",
                        )
                    }
                }),
            )
            .route(
                "/list",
                get(move || {
                    pages.fetch_add(1, Ordering::SeqCst);
                    async {
                        axum::response::Html(
                            "<ul><li><b class=k>a</b></li><li><b class=k>b</b></li></ul>",
                        )
                    }
                }),
            )
    };
    let site = serve(app).await;
    // A zero TTL makes every run ask for robots.txt again.
    let e = env(HarvestConfig {
        robots_ttl_secs: 0,
        ..test_cfg()
    })
    .await;
    e.put(&list_source("guarded", &site.to_string())).await;
    let r = e.run("guarded").await;
    assert_eq!(r.status, "succeeded", "{r:?}");
    assert_eq!(r.counts.records_new, 2);
    assert_eq!(pages.load(Ordering::SeqCst), 1);

    robots_status.store(503, Ordering::SeqCst);
    let r = e.run("guarded").await;
    assert_eq!(pages.load(Ordering::SeqCst), 1, "no page fetched: {r:?}");
    assert_eq!(r.status, "failed", "{r:?}");
    assert!(!r.complete, "nothing may be marked removed");
    assert_eq!(r.counts.records_removed, 0);
    assert_eq!(r.errors.len(), 1, "{r:?}");
    assert_eq!(r.errors[0].kind, "robots_unreachable", "{r:?}");
    assert!(r.errors[0].reason.contains("503"), "{r:?}");
    let db = e.db().await;
    assert!(db.get_record("guarded", "a").await.unwrap().is_some());

    // A 4xx robots.txt ("unavailable") allows everything. The 503 above is remembered for
    // a minute, so a new host name (same server) shows it.
    robots_status.store(404, Ordering::SeqCst);
    let other = format!("localhost:{}", site.port());
    e.put(&list_source("open", &other)).await;
    let r = e.run("open").await;
    assert_eq!(r.status, "succeeded", "{r:?}");
    assert_eq!(pages.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_day_budget_pauses_the_run_and_the_next_day_resumes_it() {
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = {
        let (h1, h2) = (Arc::clone(&hits), Arc::clone(&hits));
        Router::new()
            .route(
                "/list",
                get(move || {
                    h1.lock().unwrap().push("/list".into());
                    async {
                        let items: String = (0..6)
                            .map(|i| format!("<li><a class=k href=\"/item/{i}\">k{i}</a></li>"))
                            .collect();
                        axum::response::Html(format!("<ul>{items}</ul>"))
                    }
                }),
            )
            .route(
                "/item/{i}",
                get(move |axum::extract::Path(i): axum::extract::Path<u32>| {
                    h2.lock().unwrap().push(format!("/item/{i}"));
                    async move { axum::response::Html(format!("<p id=v>value {i}</p>")) }
                }),
            )
    };
    let site = serve(app).await;
    let e = env(test_cfg()).await;
    e.put(&format!(
        r##"
id = "budgeted"
kind = "html"
start_urls = ["http://{site}/list"]
[politeness]
obey_robots = false
requests_per_day = 4
[extract]
record = "li"
key = {{ field = "k" }}
[extract.fields.k]
selector = "a.k"
[extract.detail]
link = "a.k"
[extract.detail.fields.v]
selector = "#v"
"##
    ))
    .await;
    let r1 = e.run("budgeted").await;
    assert_eq!(r1.status, "paused", "{r1:?}");
    assert!(!r1.complete);
    assert_eq!(r1.counts.requests, 4, "{r1:?}");
    assert!(
        r1.message.as_deref().unwrap_or("").contains("resumes"),
        "{r1:?}"
    );
    assert_eq!(hits.lock().unwrap().len(), 4);

    // The same day: the run is resumed, but the budget is still spent.
    let r2 = e.run("budgeted").await;
    assert!(r2.resumed, "{r2:?}");
    assert_eq!(r2.run_id, r1.run_id);
    assert_eq!(r2.status, "paused", "{r2:?}");
    assert_eq!(hits.lock().unwrap().len(), 4, "no request over the budget");

    // The next day (the run's requests moved to yesterday): it resumes where it stopped.
    {
        let c = rusqlite::Connection::open(e.store.tenant_db_path(&e.tenant)).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute(
            "UPDATE harvest_runs SET budget_day = budget_day - 1, started_ms = started_ms - 86400000",
            [],
        )
        .unwrap();
    }
    let r3 = e.run("budgeted").await;
    assert!(r3.resumed, "{r3:?}");
    assert_eq!(r3.run_id, r1.run_id);
    assert_eq!(r3.status, "succeeded", "{r3:?}");
    assert!(r3.complete);
    assert_eq!(
        r3.counts.requests, 7,
        "4 yesterday + the 3 detail pages left"
    );
    let hits = hits.lock().unwrap().clone();
    let unique: std::collections::HashSet<&String> = hits.iter().collect();
    assert_eq!(hits.len(), 7, "nothing fetched twice: {hits:?}");
    assert_eq!(unique.len(), 7);
    let db = e.db().await;
    for i in 0..6 {
        let rec = db
            .get_record("budgeted", &format!("k{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.fields["v"], format!("value {i}"));
    }
}

/// An html source listing `<li><b class="k">…</b></li>` records from `http://{host}/list`.
fn list_source(id: &str, host: &str) -> String {
    format!(
        r##"
id = "{id}"
kind = "html"
start_urls = ["http://{host}/list"]
[extract]
record = "li"
key = {{ field = "k" }}
[extract.fields.k]
selector = "b.k"
"##
    )
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
