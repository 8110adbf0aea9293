//! The harvest HTTP API of `gleaner serve`: sources (validated, errors naming the field),
//! triggered runs, the run log, signed pushes and fetch-now requests, tenant secrets.

use std::time::{Duration, Instant};

use crate::support::{client, json_error, Server, ADMIN_TOKEN};
use serde_json::{json, Value};

fn env() -> [(&'static str, &'static str); 2] {
    [
        ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
        ("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", "true"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_runs_pushes_and_secrets_over_http() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, gleaner::demo::router(120)).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &env());
    let c = client();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = c
        .post(srv.url("/v1/tenants"))
        .header("authorization", &auth)
        .json(&json!({"id": "acme", "quotas": {"sources": 3, "runs_per_day": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let src = |p: &str| srv.url(&format!("/v1/tenants/acme/sources{p}"));

    // Without the admin token: 401.
    let r = c.get(src("")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Invalid definitions: 400 naming each field.
    let bad = json!({"kind": "html", "start_urls": ["ftp://x"], "extract": {"record": "tr", "key": {"field": "nope"}, "fields": {}}});
    let r = c
        .put(src("/registry"))
        .header("authorization", &auth)
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let fields: Vec<&str> = v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert!(fields.iter().any(|f| f.starts_with("start_urls")), "{v}");
    // Node-local secret references are refused over the API.
    let sneaky = json!({"kind": "json", "url": format!("http://{site}/api/v1/standards"),
        "records": "$.items[*]", "key": {"field": "code"},
        "auth": {"type": "bearer", "token": "env:HOME"}});
    let r = c
        .put(src("/api"))
        .header("authorization", &auth)
        .json(&sneaky)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["fields"][0]["field"], "auth.token", "{v}");

    // A good one: created, then read back.
    let def = json!({
        "kind": "html",
        "start_urls": [format!("http://{site}/registry/list.jsp?page=1")],
        "freshness": "1d",
        "scope": {"max_depth": 0},
        "next": {"selector": "a.next"},
        "extract": {"record": "tr.result", "key": {"field": "code"},
            "fields": {"code": {"selector": "td.code"}, "title": {"selector": "td.title"}}}
    });
    let r = c
        .put(src("/registry"))
        .header("authorization", &auth)
        .json(&def)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .put(src("/registry"))
        .header("authorization", &auth)
        .json(&def)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "replacing answers 200");
    let v: Value = c
        .get(src("/registry"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["definition"]["id"], "registry");
    assert_eq!(v["kind"], "html");
    let v: Value = c
        .get(src(""))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["sources"].as_array().unwrap().len(), 1);

    // Trigger a run and poll it to its end.
    let r = c
        .post(src("/registry/runs"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let run_id = v["run_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let v: Value = c
            .get(src(&format!("/registry/runs/{run_id}")))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] != "running" {
            break v;
        }
        assert!(Instant::now() < deadline, "run did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["records_new"], 120);
    let v: Value = c
        .get(src("/registry/runs"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["runs"][0]["id"], run_id);
    let v: Value = c
        .get(src("/registry"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["last_status"], "succeeded");
    assert_eq!(v["stale"], false);
    let (st, code, _) = json_error(
        c.get(src("/registry/runs/999"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code.as_str()), (404, "not_found"));

    // A signed push source: the signature authenticates the sender, no API key.
    let r = c
        .put(srv.url("/v1/tenants/acme/secrets/hook"))
        .header("authorization", &auth)
        .json(&json!({"value": "s3cret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let push_def =
        json!({"kind": "push", "key": {"field": "id"}, "signature": {"secret": "secret:hook"}});
    let r = c
        .put(src("/hook"))
        .header("authorization", &auth)
        .json(&push_def)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = "{\"id\": \"d1\", \"steps\": 10}\n{\"id\": \"d2\", \"steps\": 20}\n";
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = gleaner::harvest::extract::push::sign(b"s3cret", ts, body.as_bytes());
    let send = |sig: String| {
        c.post(src("/hook/push"))
            .header("content-type", "application/x-ndjson")
            .header("x-gleaner-timestamp", ts.to_string())
            .header("x-gleaner-signature", sig)
            .body(body)
            .send()
    };
    let r = send(sig.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["new"], 2, "{v}");
    let r = send(sig.replace('a', "b").replace('1', "2")).await.unwrap();
    assert!(r.status() == 401 || r.status() == 400, "{}", r.status());

    // Fetch-now through the push source: one resource of a json source, with its OAuth2.
    let r = c
        .put(srv.url("/v1/tenants/acme/secrets/demo-client"))
        .header("authorization", &auth)
        .json(&json!({"value": gleaner::demo::CLIENT_SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let api = json!({"kind": "json", "url": format!("http://{site}/api/v1/standards"),
        "records": "$.items[*]", "key": {"field": "code"},
        "auth": {"type": "oauth2_client_credentials", "token_url": format!("http://{site}/oauth/token"),
                 "client_id": "demo", "client_secret": "secret:demo-client"}});
    let r = c
        .put(src("/api"))
        .header("authorization", &auth)
        .json(&api)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let fbody = r#"{"source": "api", "resource": "standards", "params": {"limit": "5"}}"#;
    let sig = gleaner::harvest::extract::push::sign(b"s3cret", ts, fbody.as_bytes());
    let r = c
        .post(src("/hook/push?action=fetch-now"))
        .header("x-gleaner-timestamp", ts.to_string())
        .header("x-gleaner-signature", sig)
        .body(fbody)
        .send()
        .await
        .unwrap();
    let st = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["source"], "api");
    assert_eq!(v["new"], 5, "{v}");

    // Quotas: three sources and one run a day.
    let extra = json!({"kind": "feed", "feeds": [format!("http://{site}/feed.xml")]});
    let (st, code, msg) = json_error(
        c.put(src("/feed"))
            .header("authorization", &auth)
            .json(&extra)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code.as_str()), (403, "quota_exceeded"), "{msg}");
    let (st, code, msg) = json_error(
        c.post(src("/registry/runs"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, code.as_str()), (403, "quota_exceeded"), "{msg}");
    assert!(msg.contains("runs_per_day"), "{msg}");

    // Delete.
    let r = c
        .delete(src("/hook"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .delete(src("/hook"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let m = c
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("gleaner_harvest_fetches_total"),
        "metrics exported"
    );
    assert!(srv.stop().success());
}
