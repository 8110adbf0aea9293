//! Incremental sync against a changes API on 127.0.0.1 that records every request: a
//! second run asks only from the stored cursor minus its lookback, a partial run does not
//! move the cursor, a provider token is sent back, windows and delays of any length, and a
//! full run that finds nothing says so.

use super::*;

/// A changes API: records `(id, updated_at)` served oldest first, four a page
/// (`page=N`), filtered by `since` (inclusive); every request's query is logged.
#[derive(Clone, Default)]
struct Changes {
    inner: Arc<Mutex<ChangesState>>,
}

#[derive(Default)]
struct ChangesState {
    records: Vec<(String, String)>,
    log: Vec<HashMap<String, String>>,
    /// This page answers 500 (the run ends partial).
    fail_page: Option<usize>,
}

impl Changes {
    fn new(n: u32) -> Changes {
        let c = Changes::default();
        c.inner.lock().unwrap().records = (1..=n)
            .map(|i| (format!("r{i}"), format!("2024-01-01T00:{i:02}:00Z")))
            .collect();
        c
    }

    fn take_log(&self) -> Vec<HashMap<String, String>> {
        std::mem::take(&mut self.inner.lock().unwrap().log)
    }

    fn set(&self, id: &str, updated: &str) {
        let mut st = self.inner.lock().unwrap();
        st.records.retain(|(i, _)| i != id);
        st.records.push((id.into(), updated.into()));
    }
}

fn changes_api(c: Changes) -> Router {
    Router::new()
        .route(
            "/changes",
            get(
                |State(c): State<Changes>, Query(q): Query<HashMap<String, String>>| async move {
                    let mut st = c.inner.lock().unwrap();
                    st.log.push(q.clone());
                    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                    if st.fail_page == Some(page) {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
                    }
                    let mut recs: Vec<_> = st
                        .records
                        .iter()
                        .filter(|(_, u)| q.get("since").is_none_or(|s| u >= s))
                        .cloned()
                        .collect();
                    recs.sort_by(|a, b| a.1.cmp(&b.1));
                    let items: Vec<_> = recs
                        .iter()
                        .skip((page - 1) * 4)
                        .take(4)
                        .map(|(id, u)| serde_json::json!({"id": id, "updated_at": u}))
                        .collect();
                    let sync = format!("sync-{}", st.log.len());
                    Json(serde_json::json!({"data": items, "sync": sync})).into_response()
                },
            ),
        )
        .with_state(c)
}

fn changes_def(site: SocketAddr, incremental: &str) -> String {
    format!(
        r#"
id = "changes"
kind = "json"
url = "http://{site}/changes"
records = "$.data[*]"
key = {{ field = "id" }}
pagination = {{ type = "page", param = "page", size = 4 }}
incremental = {incremental}
"#
    )
}

const MAX_FIELD: &str =
    r#"{ type = "max_field", field = "updated_at", param = "since", lookback = "1m" }"#;

fn params(log: &[HashMap<String, String>], name: &str) -> Vec<Option<String>> {
    log.iter().map(|q| q.get(name).cloned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_asks_only_from_the_cursor_minus_its_lookback() {
    let api = Changes::new(6);
    let site = serve(changes_api(api.clone())).await;
    let e = env(test_cfg()).await;
    e.put(&changes_def(site, MAX_FIELD)).await;

    let r = e.run("changes").await;
    assert_eq!(
        (r.status.as_str(), r.counts.records_new),
        ("succeeded", 6),
        "{r:#?}"
    );
    let log = api.take_log();
    assert_eq!(
        params(&log, "since"),
        [None, None],
        "the first run is a full one"
    );
    let c = e
        .db()
        .await
        .source_cursor("changes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.value, "2024-01-01T00:06:00Z", "the largest updated_at");

    // r6 changes and r7 arrives; r1..r5 stay as they are.
    api.set("r6", "2024-01-01T00:10:00Z");
    api.set("r7", "2024-01-01T00:08:00Z");
    let r = e.run("changes").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    let log = api.take_log();
    assert_eq!(
        params(&log, "since"),
        [Some("2024-01-01T00:05:00Z".to_owned())],
        "one page, from the cursor minus the 1m lookback: {log:?}"
    );
    assert_eq!(params(&log, "page"), [Some("1".to_owned())]);
    let c = &r.counts;
    assert_eq!(
        (
            c.records_new,
            c.records_changed,
            c.records_unchanged,
            c.records_removed
        ),
        (1, 1, 1, 0),
        "r7 new, r6 changed, r5 re-read; r1..r4 not fetched and not taken for removed"
    );
    assert!(
        r.message.is_none(),
        "an incremental run without news is no warning: {r:#?}"
    );
    let c = e
        .db()
        .await
        .source_cursor("changes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.value, "2024-01-01T00:10:00Z");
    assert_eq!(c.run_id, r.run_id);

    // A reset makes the next run a full one again.
    assert!(e.db().await.delete_source_cursor("changes").await.unwrap());
    let r = e.run("changes").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(params(&api.take_log(), "since"), [None, None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_run_does_not_move_the_cursor() {
    let api = Changes::new(6);
    api.inner.lock().unwrap().fail_page = Some(2);
    let site = serve(changes_api(api.clone())).await;
    let e = env(test_cfg()).await;
    e.put(&changes_def(site, MAX_FIELD)).await;

    let r = e.run("changes").await;
    assert_eq!(r.status, "partial", "{r:#?}");
    assert_eq!(r.counts.records_new, 4, "page 1 was stored");
    assert!(
        e.db()
            .await
            .source_cursor("changes")
            .await
            .unwrap()
            .is_none(),
        "page 2 was never stored, so no cursor may pass it"
    );
    api.take_log();

    api.inner.lock().unwrap().fail_page = None;
    let r = e.run("changes").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    let log = api.take_log();
    assert_eq!(
        params(&log, "since"),
        [None, None],
        "still a full run: {log:?}"
    );
    let c = e
        .db()
        .await
        .source_cursor("changes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.value, "2024-01-01T00:06:00Z");

    // A failed run from a cursor leaves it where it was.
    api.set("r9", "2024-01-01T00:30:00Z");
    api.inner.lock().unwrap().fail_page = Some(1);
    let r = e.run("changes").await;
    assert_eq!(r.status, "failed", "{r:#?}");
    let c = e
        .db()
        .await
        .source_cursor("changes")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.value, "2024-01-01T00:06:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_token_is_sent_back_on_the_next_run() {
    let api = Changes::new(3);
    let site = serve(changes_api(api.clone())).await;
    let e = env(test_cfg()).await;
    e.put(&changes_def(
        site,
        r#"{ type = "token", path = "$.sync", param = "sync_token" }"#,
    ))
    .await;
    let r = e.run("changes").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(params(&api.take_log(), "sync_token"), [None]);
    let r = e.run("changes").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    // The first run's only page said sync-1; every page of the second run carries it.
    assert_eq!(
        params(&api.take_log(), "sync_token"),
        [Some("sync-1".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_delays_take_any_length_and_errors_use_the_users_unit() {
    let log: Arc<Mutex<Vec<HashMap<String, String>>>> = Arc::default();
    let l2 = Arc::clone(&log);
    let site = serve(Router::new().route(
        "/window",
        get(move |Query(q): Query<HashMap<String, String>>| {
            let l = Arc::clone(&l2);
            async move {
                l.lock().unwrap().push(q);
                Json(serde_json::json!({"data": [{"id": "a"}]}))
            }
        }),
    ))
    .await;
    let def = format!(
        r#"
id = "long"
kind = "json"
url = "http://{site}/window"
records = "$.data[*]"
key = {{ field = "id" }}
params = {{ from = "{{start}}" }}
window = {{ format = "date", initial_lookback = "400d" }}
politeness = {{ min_delay = "250ms" }}
"#
    );
    let parsed = SourceDef::parse_toml(&def).unwrap();
    assert_eq!(
        parsed.common.politeness.min_delay.unwrap().0,
        Duration::from_millis(250)
    );
    let e = env(test_cfg()).await;
    e.put(&def).await;
    let r = e.run("long").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    let from = log.lock().unwrap()[0]["from"].clone();
    let day = |d: i64| {
        let t = time::OffsetDateTime::now_utc() - time::Duration::days(d);
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    };
    assert!(
        [day(400), day(401), day(399)].contains(&from),
        "the window starts 400 days back: {from}"
    );

    let bad = |from: &str, to: &str| {
        SourceDef::parse_toml(&def.replace(from, to))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("\"400d\"", "\"30s\""),
        "window.initial_lookback: 30s is too short; use at least 60s"
    );
    assert_eq!(
        bad("\"250ms\"", "\"2h\""),
        "politeness.min_delay: 2h is too long; use at most 1h"
    );
    assert_eq!(
        bad("\"250ms\"", "\"3600001ms\""),
        "politeness.min_delay: 3600001ms is too long; use at most 3600000ms"
    );
    assert!(bad("\"250ms\"", "\"1.5s\"").contains("use whole numbers with a unit ms, s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_without_records_is_flagged() {
    let site = serve(Router::new().route(
        "/empty",
        get(|| async { Json(serde_json::json!({"data": []})) }),
    ))
    .await;
    let e = env(test_cfg()).await;
    e.put(&format!(
        "id = \"empty\"\nkind = \"json\"\nurl = \"http://{site}/empty\"\nrecords = \"$.data[*]\"\nkey = {{ field = \"id\" }}\n"
    ))
    .await;
    let r = e.run("empty").await;
    assert_eq!(
        r.status, "succeeded",
        "the status existing consumers read stays"
    );
    let msg = r.message.unwrap_or_default();
    assert!(msg.starts_with("no records: "), "{msg}");
    let row = e
        .db()
        .await
        .get_run("empty", r.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.message.as_deref(),
        Some(msg.as_str()),
        "and the run log says it"
    );
}
