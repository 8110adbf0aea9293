//! Records through the API: push, filtered keyset pages with signed cursors, projection,
//! versions, NDJSON/CSV export, quotas, usage, bad input, and tenant deletion.

use std::collections::BTreeSet;

use crate::support::*;
use serde_json::{json, Value};

async fn all_pages(api: &Api, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let sep = if query.is_empty() { "" } else { "&" };
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/t1/records?{query}{sep}cursor={c}"),
            None => format!("/v1/tenants/t1/records?{query}"),
        };
        let v = api.ok("GET", &path, ADMIN_TOKEN, None).await;
        out.extend(v["records"].as_array().unwrap().iter().cloned());
        match v["next"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

fn ids(v: &[Value]) -> Vec<i64> {
    v.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_list_filter_page_export_quota_delete() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "[http]\nmax_body_bytes = 200000\n");
    let api = Api::new(&srv);
    api.create_tenant("t1").await;

    // 250 records in two sources, pushed in batches.
    for batch in 0..5 {
        let recs: Vec<Value> = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                json!({"source": if n % 2 == 0 { "even" } else { "odd" }, "key": format!("k{n:04}"),
                       "fields": {"title": format!("item number {n}"), "n": n, "group": {"g": n % 5},
                                  "tags": if n == 7 { json!(["zebra", "lucky"]) } else { json!(["plain"]) }}})
            })
            .collect();
        let v = api
            .ok(
                "POST",
                "/v1/tenants/t1/records",
                ADMIN_TOKEN,
                Some(json!({"records": recs})),
            )
            .await;
        assert!(v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "new"));
    }
    // One change, one no-op.
    let v = api
        .ok(
            "POST",
            "/v1/tenants/t1/records",
            ADMIN_TOKEN,
            Some(json!({"records": [
                {"source": "odd", "key": "k0007", "fields": {"title": "changed seven", "n": 7, "group": {"g": 2}, "tags": ["zebra"]}},
                {"source": "even", "key": "k0000", "fields": {"title": "item number 0", "n": 0, "group": {"g": 0}, "tags": ["plain"]}}
            ]})),
        )
        .await;
    assert_eq!(v["results"][0]["outcome"], "changed");
    assert_eq!(v["results"][0]["version"], 2);
    assert_eq!(v["results"][1]["outcome"], "unchanged");

    // Keyset pages cover everything exactly once, in id order.
    let all = all_pages(&api, "limit=37").await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 250);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]));

    // Filters, each checked against the full list.
    let even = all_pages(&api, "source=even&limit=20").await;
    assert_eq!(even.len(), 125);
    assert!(even.iter().all(|r| r["source"] == "even"));
    let pre = all_pages(&api, "key_prefix=k001").await;
    assert_eq!(ids(&pre).len(), 10);
    let g3 = all_pages(&api, "field=group.g&equals=3").await;
    assert_eq!(g3.len(), 50);
    assert!(g3.iter().all(|r| r["fields"]["group"]["g"] == 3));
    let zebra = all_pages(&api, "q=zebra").await;
    assert_eq!(ids(&zebra).len(), 1);
    assert_eq!(zebra[0]["key"], "k0007");
    assert_eq!(zebra[0]["version"], 2);
    assert_eq!(
        all_pages(&api, "q=number%20item&limit=1000").await.len(),
        249
    );
    assert_eq!(all_pages(&api, "q=chang*").await.len(), 1);
    assert_eq!(all_pages(&api, "removed=true").await.len(), 0);
    assert_eq!(all_pages(&api, "removed=false&source=odd").await.len(), 125);
    let since = zebra[0]["version_since_ms"].as_i64().unwrap();
    let changed = all_pages(&api, &format!("changed_since={since}")).await;
    assert!(changed.iter().any(|r| r["key"] == "k0007"));
    assert!(changed.len() < 250);

    // Projection.
    let v = api
        .ok(
            "GET",
            "/v1/tenants/t1/records?limit=1&fields=title,group.g",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let f = &v["records"][0]["fields"];
    assert_eq!(
        f.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        ["group.g".to_owned(), "title".to_owned()].into()
    );

    // Cursors are bound to their query and cannot be edited.
    let v = api
        .ok(
            "GET",
            "/v1/tenants/t1/records?source=even&limit=5",
            ADMIN_TOKEN,
            None,
        )
        .await;
    let c = v["next"].as_str().unwrap().to_owned();
    let (s, e) = api
        .call(
            "GET",
            &format!("/v1/tenants/t1/records?source=odd&cursor={c}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("cursor"));
    let mut bad = c.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let (s, _) = api
        .call(
            "GET",
            &format!("/v1/tenants/t1/records?source=even&cursor={bad}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 400);

    // Bad input: each a 400 naming the problem.
    for (q, needle) in [
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("limit=abc", "limit"),
        ("bogus=1", "bogus"),
        ("removed=maybe", "removed"),
        ("field=a", "equals"),
        ("cursor=%21%21", "cursor"),
        ("format=csv", "format"),
    ] {
        let (s, e) = api
            .call(
                "GET",
                &format!("/v1/tenants/t1/records?{q}"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
        assert_eq!(s, 400, "{q}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{q}: {e}"
        );
    }
    for (body, needle) in [
        (json!({"records": []}), "records"),
        (
            json!({"records": [{"source": "s", "key": "k", "fields": []}]}),
            "fields",
        ),
        (
            json!({"records": [{"source": "s", "key": "k", "fields": {}, "extra": 1}]}),
            "extra",
        ),
        (
            json!({"records": [{"source": "", "key": "k", "fields": {}}]}),
            "source",
        ),
        (json!({"recs": []}), "recs"),
    ] {
        let (s, e) = api
            .call(
                "POST",
                "/v1/tenants/t1/records",
                Some(ADMIN_TOKEN),
                Some(&body),
            )
            .await;
        assert_eq!(s, 400, "{body}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
    }
    let r = api
        .c
        .post(format!("{}/v1/tenants/t1/records", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"records\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big =
        json!({"records": [{"source": "s", "key": "k", "fields": {"x": "y".repeat(300_000)}}]});
    let (s, _) = api
        .call(
            "POST",
            "/v1/tenants/t1/records",
            Some(ADMIN_TOKEN),
            Some(&big),
        )
        .await;
    assert_eq!(s, 413);
    let (s, _) = api
        .call("GET", "/v1/tenants/nobody/records", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call(
            "GET",
            "/v1/tenants/Bad..Id/records",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 400);

    // One record with its versions.
    let id7 = zebra[0]["id"].as_i64().unwrap();
    let v = api
        .ok(
            "GET",
            &format!("/v1/tenants/t1/records/{id7}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(v["record"]["fields"]["title"], "changed seven");
    assert_eq!(v["versions_total"], 1);
    assert_eq!(v["versions"][0]["version"], 1);
    assert_eq!(v["versions"][0]["fields"]["title"], "item number 7");
    let (s, _) = api
        .call(
            "GET",
            "/v1/tenants/t1/records/999999",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = api
        .call("GET", "/v1/tenants/t1/records/abc", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 400);

    // Export: NDJSON of everything, CSV of a query with projection.
    let r = api
        .c
        .get(format!("{}/v1/tenants/t1/export", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let body = r.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&lines), all_ids);
    let r = api
        .c
        .get(format!(
            "{}/v1/tenants/t1/export?format=csv&source=odd&fields=title,n",
            api.base
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows[0],
        "id,source,key,version,first_seen_ms,version_since_ms,last_seen_ms,removed,removed_run,title,n"
    );
    assert_eq!(rows.len(), 126);
    assert!(
        rows[1].contains(",odd,k0001,1,") && rows[1].ends_with(",false,,item number 1,1"),
        "{}",
        rows[1]
    );

    // Quotas: a push that would pass the record quota is refused whole.
    api.ok(
        "PATCH",
        "/v1/tenants/t1",
        ADMIN_TOKEN,
        Some(json!({"quotas": {"records": 260}})),
    )
    .await;
    let recs: Vec<Value> = (0..20)
        .map(|i| json!({"source": "q", "key": format!("q{i}"), "fields": {}}))
        .collect();
    let (s, e) = api
        .call(
            "POST",
            "/v1/tenants/t1/records",
            Some(ADMIN_TOKEN),
            Some(&json!({"records": recs})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("quota_exceeded")),
        "{e}"
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("records"));
    assert_eq!(all_pages(&api, "source=q").await.len(), 0);
    api.ok(
        "PATCH",
        "/v1/tenants/t1",
        ADMIN_TOKEN,
        Some(json!({"quotas": {"storage_bytes": 4096}})),
    )
    .await;
    let (s, e) = api
        .call(
            "POST",
            "/v1/tenants/t1/records",
            Some(ADMIN_TOKEN),
            Some(&json!({"records": [{"source": "q", "key": "x", "fields": {}}]})),
        )
        .await;
    assert_eq!(s, 403);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("storage_bytes"),
        "{e}"
    );
    api.ok(
        "PATCH",
        "/v1/tenants/t1",
        ADMIN_TOKEN,
        Some(json!({"quotas": {}})),
    )
    .await;
    let (s, _) = api
        .call(
            "PATCH",
            "/v1/tenants/t1",
            Some(ADMIN_TOKEN),
            Some(&json!({"quotas": {"records": -1}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = api
        .call(
            "PATCH",
            "/v1/tenants/t1",
            Some(ADMIN_TOKEN),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 400);

    // Usage.
    let v = api
        .ok("GET", "/v1/tenants/t1/usage", ADMIN_TOKEN, None)
        .await;
    assert_eq!(v["records"], 250);
    assert!(v["storage_bytes"].as_i64().unwrap() > 0);
    assert!(v["days"][0]["api_requests"].as_i64().unwrap() > 10, "{v}");

    // Audit saw the export and the tenant changes.
    let actions = api.audit_actions("/v1/tenants/t1/audit", ADMIN_TOKEN).await;
    assert!(
        actions.iter().any(|a| a == "export") && actions.iter().any(|a| a == "tenant.updated"),
        "{actions:?}"
    );

    // Delete with erasure: files gone, erasure recorded as pending, id not reusable yet.
    let db = srv.data_dir.join("tenants/t1.db");
    assert!(db.exists());
    let v = api
        .ok("DELETE", "/v1/tenants/t1?erase=true", ADMIN_TOKEN, None)
        .await;
    assert_eq!(v["erase"]["status"], "pending");
    assert!(!db.exists());
    let (s, _) = api
        .call("GET", "/v1/tenants/t1/records", Some(ADMIN_TOKEN), None)
        .await;
    assert_eq!(s, 404);
    let (s, e) = api
        .call(
            "POST",
            "/v1/tenants",
            Some(ADMIN_TOKEN),
            Some(&json!({"id": "t1"})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let actions = api
        .audit_actions("/v1/admin/audit?limit=1000", ADMIN_TOKEN)
        .await;
    assert!(
        actions.iter().any(|a| a == "tenant.deleted")
            && actions.iter().any(|a| a == "erasure.requested"),
        "{actions:?}"
    );
    assert_eq!(
        api.ok("GET", "/v1/admin/audit/verify", ADMIN_TOKEN, None)
            .await["ok"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_headers_and_cors_is_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        dir.path(),
        "key_requests_per_second = 1\nkey_burst = 3\n[http]\ncors_allowed_origins = [\"https://app.example\"]\n",
    );
    let api = Api::new(&srv);
    api.create_tenant("r1").await;
    let (_, tok) = api.key("r1", "reader", json!({})).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let r = api
            .c
            .get(format!("{}/v1/tenants/r1/records", api.base))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[5], 429, "{statuses:?}");
    let r = last.unwrap();
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(r.headers()["ratelimit-limit"], "3");
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Another credential is not affected.
    let r = api
        .c
        .get(format!("{}/v1/tenants/r1/records", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("ratelimit-remaining"));

    // CORS preflight for the configured origin, nothing for others.
    let pre = |origin: &'static str| {
        api.c
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/tenants/r1/records", api.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = pre("https://app.example").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let r = pre("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_security_headers_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), "");
    let r = client()
        .get(srv.url("/v1/tenants"))
        .header("origin", "https://app.example")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert!(!h.contains_key("access-control-allow-origin"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
}
