//! The harvest HTTP API of `gleaner serve`: sources (validated, errors naming the field),
//! triggered runs, the run log, signed pushes and fetch-now requests, tenant secrets.

use crate::support::{json_error, registry_json, sample_site, Api, Server, ADMIN_TOKEN};
use serde_json::{json, Value};

fn env() -> [(&'static str, &'static str); 2] {
    [
        ("GLEANER_HTTP__ADMIN_TOKEN", ADMIN_TOKEN),
        ("GLEANER_HARVEST__ALLOW_PRIVATE_TARGETS", "true"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_runs_pushes_and_secrets_over_http() {
    let site = sample_site(120).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &env());
    let api = Api::new(&srv);
    api.create_tenant_with(json!({"id": "acme", "quotas": {"sources": 3, "runs_per_day": 1}}))
        .await;
    let src = |p: &str| format!("/v1/tenants/acme/sources{p}");

    // Without the admin token: 401.
    let r = api.send("GET", &src(""), None, None).await;
    assert_eq!(r.status(), 401);

    // Invalid definitions: 400 naming each field.
    let bad = json!({"kind": "html", "start_urls": ["ftp://x"], "extract": {"record": "tr", "key": {"field": "nope"}, "fields": {}}});
    let r = api.admin("PUT", &src("/registry"), Some(&bad)).await;
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
    let r = api.admin("PUT", &src("/api"), Some(&sneaky)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["fields"][0]["field"], "auth.token", "{v}");

    // A good one: created, then read back.
    let mut def = registry_json(site);
    def["freshness"] = "1d".into();
    let r = api.admin("PUT", &src("/registry"), Some(&def)).await;
    assert_eq!(r.status(), 201);
    let r = api.admin("PUT", &src("/registry"), Some(&def)).await;
    assert_eq!(r.status(), 200, "replacing answers 200");
    let v = api.admin_json(&src("/registry")).await;
    assert_eq!(v["definition"]["id"], "registry");
    assert_eq!(v["kind"], "html");
    let v = api.admin_json(&src("")).await;
    assert_eq!(v["sources"].as_array().unwrap().len(), 1);

    // Trigger a run and poll it to its end.
    let v = api.start_run("acme", "registry").await;
    let run_id = v["run_id"].as_i64().unwrap();
    let run = api
        .wait_run(&src(&format!("/registry/runs/{run_id}")))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["records_new"], 120);
    let v = api.admin_json(&src("/registry/runs")).await;
    assert_eq!(v["runs"][0]["id"], run_id);
    let v = api.admin_json(&src("/registry")).await;
    assert_eq!(v["last_status"], "succeeded");
    assert_eq!(v["stale"], false);
    let (st, code, _) = json_error(api.admin("GET", &src("/registry/runs/999"), None).await).await;
    assert_eq!((st, code.as_str()), (404, "not_found"));

    // A signed push source: the signature authenticates the sender, no API key.
    let r = api
        .admin(
            "PUT",
            "/v1/tenants/acme/secrets/hook",
            Some(&json!({"value": "s3cret"})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let push_def =
        json!({"kind": "push", "key": {"field": "id"}, "signature": {"secret": "secret:hook"}});
    let r = api.admin("PUT", &src("/hook"), Some(&push_def)).await;
    assert_eq!(r.status(), 201);
    let body = "{\"id\": \"d1\", \"steps\": 10}\n{\"id\": \"d2\", \"steps\": 20}\n";
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = gleaner::harvest::extract::push::sign(b"s3cret", ts, body.as_bytes());
    let send = |sig: String| {
        api.request("POST", &src("/hook/push"), None, None)
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
    let r = api
        .admin(
            "PUT",
            "/v1/tenants/acme/secrets/demo-client",
            Some(&json!({"value": gleaner::demo::CLIENT_SECRET})),
        )
        .await;
    assert_eq!(r.status(), 204);
    let json_def = json!({"kind": "json", "url": format!("http://{site}/api/v1/standards"),
        "records": "$.items[*]", "key": {"field": "code"},
        "auth": {"type": "oauth2_client_credentials", "token_url": format!("http://{site}/oauth/token"),
                 "client_id": "demo", "client_secret": "secret:demo-client"}});
    let r = api.admin("PUT", &src("/api"), Some(&json_def)).await;
    assert_eq!(r.status(), 201);
    let fbody = r#"{"source": "api", "resource": "standards", "params": {"limit": "5"}}"#;
    let sig = gleaner::harvest::extract::push::sign(b"s3cret", ts, fbody.as_bytes());
    let r = api
        .request("POST", &src("/hook/push?action=fetch-now"), None, None)
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
    let (st, code, msg) = json_error(api.admin("PUT", &src("/feed"), Some(&extra)).await).await;
    assert_eq!((st, code.as_str()), (403, "quota_exceeded"), "{msg}");
    let (st, code, msg) = json_error(api.admin("POST", &src("/registry/runs"), None).await).await;
    assert_eq!((st, code.as_str()), (403, "quota_exceeded"), "{msg}");
    assert!(msg.contains("runs_per_day"), "{msg}");

    // Delete.
    let r = api.admin("DELETE", &src("/hook"), None).await;
    assert_eq!(r.status(), 204);
    let r = api.admin("DELETE", &src("/hook"), None).await;
    assert_eq!(r.status(), 404);
    let m = api.text("/metrics").await;
    assert!(
        m.contains("gleaner_harvest_fetches_total"),
        "metrics exported"
    );
    assert!(srv.stop().success());
}

/// The incremental cursor over HTTP: read after a run, reset, read back as null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_cursor_is_read_and_reset_over_http() {
    let items = axum::Router::new().route(
        "/items",
        axum::routing::get(|| async {
            axum::Json(json!({"data": [{"id": "a", "updated_at": "2024-05-01T12:00:00Z"}]}))
        }),
    );
    let site = crate::support::serve(items).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), &[], &env());
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let def = json!({"kind": "json", "url": format!("http://{site}/items"), "records": "$.data[*]",
        "key": {"field": "id"},
        "incremental": {"type": "max_field", "field": "updated_at", "param": "since", "lookback": "2w"}});
    let r = api
        .admin("PUT", "/v1/tenants/acme/sources/items", Some(&def))
        .await;
    assert_eq!(r.status(), 201);
    let path = "/v1/tenants/acme/sources/items/cursor";
    let v = api.admin_json(path).await;
    assert_eq!(
        (v["incremental"].clone(), v["cursor"].clone()),
        (json!(true), Value::Null),
        "{v}"
    );
    let run = api.start_run("acme", "items").await;
    let run = api.wait_run(run["url"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let v = api.admin_json(path).await;
    assert_eq!(v["cursor"]["value"], "2024-05-01T12:00:00Z", "{v}");
    assert_eq!(v["cursor"]["run_id"], run["id"], "{v}");
    let r = api.admin("DELETE", path, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(api.admin_json(path).await["cursor"], Value::Null);
    let (st, code, _) = json_error(
        api.admin("DELETE", "/v1/tenants/acme/sources/nope/cursor", None)
            .await,
    )
    .await;
    assert_eq!((st, code.as_str()), (404, "not_found"));
    assert!(srv.stop().success());
}
