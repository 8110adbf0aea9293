//! What changed, through `gleaner serve`: a run's added, changed and removed records in
//! cursor pages (`/runs/{run}/changes`), and the JSON Patch between two versions of a record
//! (`/records/{id}/diff`), against a JSON API on loopback whose answer the test changes
//! between runs.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use serde_json::{json, Value};

use crate::support::{json_error, serve, Api, Server, ADMIN_TOKEN};

fn env() -> [(&'static str, &'static str); 2] {
    [
        ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
        ("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", "true"),
    ]
}

type Items = Arc<Mutex<Value>>;

/// The provider: `GET /items` answers whatever the test last set.
async fn provider(items: Items) -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route(
            "/items",
            get(|State(items): State<Items>| async move {
                axum::Json(json!({"items": items.lock().unwrap().clone()}))
            }),
        )
        .with_state(items);
    serve(app).await
}

async fn run(api: &Api) -> i64 {
    let v = api.start_run("acme", "items").await;
    let done = api.wait_run(v["url"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    done["id"].as_i64().unwrap()
}

/// Every change of run `run`, following `next` with pages of `limit`; also the page count.
async fn all_changes(api: &Api, run: i64, limit: usize) -> (Vec<(String, String, i64)>, usize) {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..100 {
        let mut path = format!("/v1/tenants/acme/runs/{run}/changes?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let v = api.ok("GET", &path, ADMIN_TOKEN, None).await;
        assert_eq!(
            (v["run"].as_i64(), v["retained"].as_bool()),
            (Some(run), Some(true))
        );
        assert_eq!(v["source"], "items");
        for c in v["changes"].as_array().unwrap() {
            out.push((
                c["key"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            ));
        }
        match v["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (out, pages),
        }
    }
    panic!("paging did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_lists_what_it_added_changed_and_removed_and_versions_diff_as_json_patch() {
    let item = |id: &str, title: &str, tags: Value| json!({"id": id, "title": title, "tags": tags, "n": 1});
    let items: Items = Arc::new(Mutex::new(json!([
        item("a", "alpha", json!(["x"])),
        item("b", "bravo", json!([])),
        item("c", "charlie", json!([])),
    ])));
    let site = provider(items.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &env());
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let def = json!({"kind": "json", "url": format!("http://{site}/items"), "records": "$.items[*]",
                     "key": {"field": "id"}, "politeness": {"obey_robots": false}});
    let (s, v) = api
        .call(
            "PUT",
            "/v1/tenants/acme/sources/items",
            Some(ADMIN_TOKEN),
            Some(&def),
        )
        .await;
    assert!(s == 200 || s == 201, "{v}");

    let r1 = run(&api).await;
    let (first, _) = all_changes(&api, r1, 100).await;
    let added = |k: &str| (k.to_owned(), "added".to_owned(), 1);
    assert_eq!(first, [added("a"), added("b"), added("c")]);

    // The second run: a changes, b stays, c goes, d, e and f are new.
    let a2 = json!({"id": "a", "title": "alpha two", "tags": ["x", "y"], "extra": {"k": true}});
    *items.lock().unwrap() = json!([
        a2.clone(),
        item("b", "bravo", json!([])),
        item("d", "delta", json!([])),
        item("e", "echo", json!([])),
        item("f", "foxtrot", json!([])),
    ]);
    let r2 = run(&api).await;
    let (mut second, pages) = all_changes(&api, r2, 2).await;
    assert_eq!(pages, 3, "5 changes in pages of 2");
    second.sort();
    assert_eq!(
        second,
        [
            ("a".to_owned(), "changed".to_owned(), 2),
            ("c".to_owned(), "removed".to_owned(), 1),
            added("d"),
            added("e"),
            added("f"),
        ]
    );
    // The first run's log is unchanged by the second.
    assert_eq!(all_changes(&api, r1, 1).await.0.len(), 3);
    // A third run: c is back as it was, so it is added back; nothing else changed.
    items
        .lock()
        .unwrap()
        .as_array_mut()
        .unwrap()
        .push(item("c", "charlie", json!([])));
    let r3 = run(&api).await;
    assert_eq!(all_changes(&api, r3, 10).await.0, [added("c")]);

    // The diff of a's versions: a JSON Patch that turns version 1 into version 2.
    let list = api
        .ok(
            "GET",
            "/v1/tenants/acme/records?source=items&key_prefix=a",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let id = list["records"][0]["id"].as_i64().unwrap();
    let d = api
        .ok(
            "GET",
            &format!("/v1/tenants/acme/records/{id}/diff?from=1&to=2"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(
        (
            d["record_id"].as_i64(),
            d["from"].as_i64(),
            d["to"].as_i64()
        ),
        (Some(id), Some(1), Some(2))
    );
    let patch: json_patch::Patch = serde_json::from_value(d["patch"].clone()).unwrap();
    assert!(!patch.0.is_empty());
    let mut doc = item("a", "alpha", json!(["x"]));
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc, a2);
    // `to` defaults to the current version; the reverse patch undoes it.
    let back = api
        .ok(
            "GET",
            &format!("/v1/tenants/acme/records/{id}/diff?from=2&to=1"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let fwd = api
        .ok(
            "GET",
            &format!("/v1/tenants/acme/records/{id}/diff?from=1"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(fwd["patch"], d["patch"]);
    let patch: json_patch::Patch = serde_json::from_value(back["patch"].clone()).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc, item("a", "alpha", json!(["x"])));

    // Unknown run, record or version: 404; bad parameters and cursors: 400 saying what to fix.
    for (path, want, says) in [
        (
            "/v1/tenants/acme/runs/999/changes".to_owned(),
            404,
            "run 999",
        ),
        (
            format!("/v1/tenants/acme/records/{id}/diff?from=7"),
            404,
            "no version 7",
        ),
        (
            "/v1/tenants/acme/records/99999/diff?from=1".to_owned(),
            404,
            "record 99999",
        ),
        (
            format!("/v1/tenants/acme/records/{id}/diff"),
            400,
            "`from` is required",
        ),
        (
            format!("/v1/tenants/acme/records/{id}/diff?from=0"),
            400,
            "1 or more",
        ),
        (
            format!("/v1/tenants/acme/runs/{r2}/changes?limit=0"),
            400,
            "`limit` must be",
        ),
        (
            format!("/v1/tenants/acme/runs/{r2}/changes?cursor=AAAA"),
            400,
            "`cursor`",
        ),
        (
            format!("/v1/tenants/acme/runs/{r2}/changes?after=1"),
            400,
            "after",
        ),
    ] {
        let r = api.send("GET", &path, Some(ADMIN_TOKEN), None).await;
        let (status, _, message) = json_error(r).await;
        assert_eq!(status, want, "{path}: {message}");
        assert!(message.contains(says), "{path}: {message}");
    }
    // A cursor of one run's pages is refused for another run's.
    let v = api
        .ok(
            "GET",
            &format!("/v1/tenants/acme/runs/{r2}/changes?limit=1"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let c = v["next"].as_str().unwrap();
    let r = api
        .send(
            "GET",
            &format!("/v1/tenants/acme/runs/{r1}/changes?cursor={c}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(r.status(), 400);
}
