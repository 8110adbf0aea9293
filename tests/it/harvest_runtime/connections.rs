//! Connections: four sources sharing one rotating OAuth2 grant against a provider that
//! revokes the whole grant when a refresh token is used twice, with 2 s access tokens and
//! 429s whose Retry-After pause outlasts them; and the same sources with inline (per-source)
//! credentials, which replay the rotated token and lose the grant.

use std::collections::HashSet;

use axum::extract::Path;
use gleaner::harvest::source::{ConnectionDef, ConnectionName};

use super::*;

/// Seconds an access token lives.
const LIFE: u64 = 2;
/// Retry-After of a 429: longer than a token lives, so a token taken before the pause
/// is dead after it.
const PAUSE: u64 = 2;
const SOURCES: [&str; 4] = ["sleep", "recovery", "cycles", "workouts"];
/// Pages of 10 records per source (page 5 is empty).
const PAGES: u32 = 4;

#[derive(Clone, Default)]
struct Provider {
    inner: Arc<Mutex<Grant>>,
}

#[derive(Default)]
struct Grant {
    /// The one refresh token that works now.
    refresh: String,
    spent: HashSet<String>,
    revoked: bool,
    /// Refreshes with an already-spent token (each revokes the grant).
    reuses: u32,
    issued: u32,
    /// Access token → when it expires; old ones stay valid until then.
    access: HashMap<String, Instant>,
    /// Requests that came with an expired access token.
    expired: u32,
    throttled: u32,
    /// Authorized requests per (source, page).
    seen: HashMap<(String, u32), u32>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    refresh_token: String,
}

fn invalid_grant(why: &str) -> axum::response::Response {
    let body = serde_json::json!({"error": "invalid_grant", "error_description": why});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn provider_api(p: Provider) -> Router {
    Router::new()
        .route(
            "/token",
            post(|State(p): State<Provider>, Form(f): Form<TokenForm>| async move {
                let mut g = p.inner.lock().unwrap();
                if g.revoked || f.grant_type != "refresh_token" {
                    return invalid_grant("the grant is revoked");
                }
                if f.refresh_token != g.refresh {
                    if g.spent.contains(&f.refresh_token) {
                        // Reuse of a rotated token: the whole grant is revoked.
                        g.reuses += 1;
                        g.revoked = true;
                        g.access.clear();
                        return invalid_grant("refresh token already used (rotated)");
                    }
                    return invalid_grant("unknown refresh token");
                }
                let old = std::mem::take(&mut g.refresh);
                g.spent.insert(old);
                g.issued += 1;
                g.refresh = format!("r{}", g.issued);
                let access = format!("a{}", g.issued);
                g.access
                    .insert(access.clone(), Instant::now() + Duration::from_secs(LIFE));
                Json(serde_json::json!({"access_token": access, "token_type": "Bearer",
                    "expires_in": LIFE, "refresh_token": g.refresh}))
                .into_response()
            }),
        )
        .route(
            "/v2/{src}",
            get(|State(p): State<Provider>, Path(src): Path<String>, headers: HeaderMap, Query(q): Query<PageQ>| async move {
                let mut g = p.inner.lock().unwrap();
                let bearer = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                match g.access.get(bearer) {
                    Some(exp) if Instant::now() < *exp => {}
                    Some(_) => {
                        g.expired += 1;
                        return (StatusCode::UNAUTHORIZED, "token expired").into_response();
                    }
                    None => return (StatusCode::UNAUTHORIZED, "unknown token").into_response(),
                }
                let n = g.seen.entry((src.clone(), q.page)).or_insert(0);
                *n += 1;
                // Page 2 is throttled twice: the second retry waits out a pause longer than
                // a token lives, after a token was taken for it.
                if q.page == 2 && *n <= 2 {
                    g.throttled += 1;
                    return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, PAUSE.to_string())], "slow down")
                        .into_response();
                }
                let items: Vec<_> = if q.page <= PAGES {
                    (0..10).map(|i| serde_json::json!({"id": format!("{src}-{}-{i}", q.page), "score": i})).collect()
                } else {
                    vec![]
                };
                Json(serde_json::json!({"records": items})).into_response()
            }),
        )
        .with_state(p)
}

#[derive(Deserialize)]
struct PageQ {
    page: u32,
}

fn source_toml(site: SocketAddr, id: &str, auth: &str) -> String {
    format!(
        "id = \"{id}\"\nkind = \"json\"\nurl = \"http://{site}/v2/{id}\"\nrecords = \"$.records[*]\"\n\
         key = {{ field = \"id\" }}\npagination = {{ type = \"page\", param = \"page\", size = 10 }}\n{auth}"
    )
}

fn inline_auth(site: SocketAddr) -> String {
    format!(
        "[auth]\ntype = \"oauth2_refresh_token\"\ntoken_url = \"http://{site}/token\"\n\
         client_id = \"gleaner\"\nrefresh_token = \"secret:whoop-refresh\"\n"
    )
}

/// Sets up the provider and four sources with `auth` (from the site's address), runs them
/// all at once, and returns their summaries.
async fn four_runs(auth: impl Fn(SocketAddr) -> String) -> (Env, Provider, Vec<RunSummary>) {
    let provider = Provider::default();
    provider.inner.lock().unwrap().refresh = "r0".into();
    let site = serve(provider_api(provider.clone())).await;
    let e = env(test_cfg()).await;
    e.db()
        .await
        .put_secret("whoop-refresh", "r0")
        .await
        .unwrap();
    let conn = serde_json::json!({"auth": {"type": "oauth2_refresh_token",
        "token_url": format!("http://{site}/token"), "client_id": "gleaner",
        "refresh_token": "secret:whoop-refresh"}});
    let conn = ConnectionDef::parse_untrusted(conn.to_string().as_bytes()).unwrap();
    let name = ConnectionName::parse("whoop").unwrap();
    assert!(e.h.put_connection(&e.tenant, &name, &conn).await.unwrap());
    for id in SOURCES {
        e.put(&source_toml(site, id, &auth(site))).await;
    }
    let mut handles = Vec::new();
    for id in SOURCES {
        handles.push(e.h.start_run(&e.tenant, id, "test").await.unwrap());
    }
    let mut runs = Vec::new();
    for h in handles {
        runs.push(h.task.await.unwrap());
    }
    (e, provider, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sources_share_one_rotating_grant_through_a_connection() {
    let (e, provider, runs) = four_runs(|_| "connection = \"whoop\"\n".into()).await;
    for r in &runs {
        assert_eq!(r.status, "succeeded", "{r:#?}");
        assert_eq!(r.counts.records_new, 10 * PAGES as u64, "{r:#?}");
    }
    let refresh = {
        let g = provider.inner.lock().unwrap();
        assert_eq!(g.reuses, 0, "no refresh token was replayed");
        assert!(!g.revoked);
        assert_eq!(g.throttled, 2 * SOURCES.len() as u32);
        // The runs outlast a token: it was refreshed (and rotated) mid-run.
        assert!(g.issued >= 2, "issued {}", g.issued);
        eprintln!(
            "provider: {} tokens issued, {} requests with an expired token, {} throttled",
            g.issued, g.expired, g.throttled
        );
        g.refresh.clone()
    };
    let db = e.db().await;
    assert_eq!(
        db.count_records().await.unwrap(),
        (SOURCES.len() as u32 * PAGES * 10) as i64
    );
    for id in SOURCES {
        for page in 1..=PAGES {
            let key = format!("{id}-{page}-9");
            assert!(db.get_record(id, &key).await.unwrap().is_some(), "{key}");
        }
        assert!(
            db.oauth_token(id).await.unwrap().is_none(),
            "{id} has no token of its own"
        );
    }
    let stored = db.oauth_token("connection:whoop").await.unwrap().unwrap();
    assert_eq!(
        stored.refresh_token.as_deref(),
        Some(refresh.as_str()),
        "the newest token is stored"
    );
    // A later run goes on from the stored chain (the configured seed r0 is spent), through
    // a slot the finished runs no longer hold.
    let r = e.run("sleep").await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(r.counts.records_unchanged, 10 * PAGES as u64, "{r:#?}");
    assert_eq!(provider.inner.lock().unwrap().reuses, 0);
}

/// The old way: each source keeps its own token chain from the same configured refresh
/// token, so the second refresh replays a rotated token and the provider revokes the grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_tokens_replay_the_rotated_refresh_token() {
    let (_e, provider, runs) = four_runs(inline_auth).await;
    let g = provider.inner.lock().unwrap();
    assert!(g.reuses >= 1 && g.revoked, "reuses {}", g.reuses);
    let failed = runs.iter().filter(|r| r.status != "succeeded").count();
    assert!(failed >= 1, "{runs:#?}");
}
