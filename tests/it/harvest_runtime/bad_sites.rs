//! Sites that misbehave on purpose (redirect loops, gzip bombs, slow bodies, 5xx and 429,
//! robots.txt rules and outages) and targets the address guard must refuse.

use super::*;

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
                    // A slow server on purpose: a byte every 200 ms outlasts the timeout.
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
