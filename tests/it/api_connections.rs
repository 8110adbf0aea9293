//! The connections API of `gleaner serve`: create, replace, read (secret references only),
//! list and delete; a source naming a missing connection is refused at definition time, a
//! connection in use cannot be deleted (409 naming its sources), and bad definitions are
//! 400 naming the field.

use crate::support::{Api, Server, ADMIN_TOKEN};
use serde_json::{json, Value};

fn whoop() -> Value {
    json!({"auth": {"type": "oauth2_refresh_token",
        "token_url": "https://auth.example/oauth/oauth2/token", "client_id": "gleaner",
        "client_secret": "secret:whoop-client", "refresh_token": "secret:whoop-refresh",
        "scopes": ["read:sleep", "offline"]}})
}

fn source(id: &str) -> Value {
    json!({"kind": "json", "url": format!("https://api.example/v2/{id}"),
        "records": "$.records[*]", "key": {"field": "id"}, "connection": "whoop"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_managed_referenced_and_protected() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_admin(dir.path());
    let api = Api::new(&srv);
    api.create_tenant("acme").await;
    let conn = |p: &str| format!("/v1/tenants/acme/connections{p}");
    let src = |p: &str| format!("/v1/tenants/acme/sources/{p}");
    let call = |m: &'static str, p: String, b: Option<Value>| {
        let api = &api;
        async move { api.call(m, &p, Some(ADMIN_TOKEN), b.as_ref()).await }
    };

    // A source naming a connection that does not exist: 400 on `connection`.
    let (s, v) = call("PUT", src("sleep"), Some(source("sleep"))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["fields"][0]["field"], "connection", "{v}");
    let msg = v["error"]["fields"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("PUT /v1/tenants/acme/connections/whoop"),
        "{v}"
    );

    // Bad definitions name the field; node-local secrets are refused over the API.
    let mut env_ref = whoop();
    env_ref["auth"]["refresh_token"] = "env:HOME".into();
    let (s, v) = call("PUT", conn("/whoop"), Some(env_ref)).await;
    assert_eq!(
        (s, &v["error"]["fields"][0]["field"]),
        (400, &json!("auth.refresh_token")),
        "{v}"
    );
    let mut extra = whoop();
    extra["colour"] = "red".into();
    let (s, v) = call("PUT", conn("/whoop"), Some(extra)).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
    let (s, _) = call("PUT", conn("/Bad_Name"), Some(whoop())).await;
    assert_eq!(s, 400);

    // Created, replaced, read back (references, not values), listed.
    let (s, v) = call("PUT", conn("/whoop"), Some(whoop())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["auth"]["refresh_token"], "secret:whoop-refresh");
    let (s, _) = call("PUT", conn("/whoop"), Some(whoop())).await;
    assert_eq!(s, 200);
    let (s, v) = call("GET", conn("/whoop"), None).await;
    assert_eq!((s, &v["name"]), (200, &json!("whoop")), "{v}");
    assert_eq!(v["auth"]["type"], "oauth2_refresh_token");
    let (_, v) = call("GET", conn(""), None).await;
    assert_eq!(v["connections"].as_array().unwrap().len(), 1, "{v}");

    // Two sources use it; deleting it is refused, naming them.
    for id in ["sleep", "recovery"] {
        let (s, v) = call("PUT", src(id), Some(source(id))).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = call("DELETE", conn("/whoop"), None).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "conflict");
    assert_eq!(v["error"]["sources"], json!(["recovery", "sleep"]), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("recovery, sleep"));

    // Once no source uses it, it goes; then it is 404.
    for id in ["sleep", "recovery"] {
        let (s, _) = call("DELETE", src(id), None).await;
        assert_eq!(s, 204);
    }
    let (s, _) = call("DELETE", conn("/whoop"), None).await;
    assert_eq!(s, 204);
    let (s, v) = call("GET", conn("/whoop"), None).await;
    assert_eq!((s, &v["error"]["code"]), (404, &json!("not_found")), "{v}");
    let (s, _) = call("DELETE", conn("/whoop"), None).await;
    assert_eq!(s, 404);

    let (_, v) = call("GET", "/v1/tenants/acme/audit".into(), None).await;
    let actions: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("connection."))
        .collect();
    assert_eq!(
        actions,
        [
            "connection.created",
            "connection.replaced",
            "connection.deleted"
        ]
    );
}
