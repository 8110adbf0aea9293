//! The caps a run obeys: the page cap of an endless crawl, per-host concurrency across
//! sources, and a day's request budget that pauses a run until the next day.

use super::*;

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
                        // Slow on purpose, so requests overlap if the limit lets them.
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
