//! Source authentication: rotating OAuth2 refresh tokens across a 401 and a restart;
//! basic, bearer and header credentials from tenant secrets.

use super::*;

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
