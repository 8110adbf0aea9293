//! Serving the sample site over HTTP (for `gleaner demo` and the harvest tests).
//!
//! Behaves like the sites Gleaner's users harvest: listings set a `JSESSIONID` cookie and
//! detail pages redirect to the first listing without it; HTML is windows-1252; pages carry
//! ETags and answer `If-None-Match` with 304; the JSON API wants an OAuth2 client-credentials
//! token. `POST /_control/revision/{n}` changes the content so re-harvests see changes;
//! `POST /_control/session-pages/{n}` makes each session expire after `n` detail pages (0:
//! never), as the registries whose sessions last seconds do, and
//! `POST /_control/sessions-closed/{0|1}` stops the listings from opening new sessions.
//! `POST /_control/layout/{n}` redesigns the listings (2: rows are `tr.entry`, not
//! `tr.result`, so an extractor written for the old layout finds nothing; 0 or 1: the
//! original), as a site relaunch does.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use super::site::{to_windows_1252, Site, UrlStyle};

/// Client id and secret the demo API accepts.
pub const CLIENT_ID: &str = "demo";
pub const CLIENT_SECRET: &str = "demo-secret";
/// Most live tokens remembered; older ones stop working (bounded memory).
const MAX_TOKENS: usize = 64;
/// Most live sessions remembered when sessions expire; past it every session ends.
const MAX_SESSIONS: usize = 4096;

#[derive(Clone)]
struct SiteState {
    entities: u32,
    revision: Arc<AtomicU32>,
    sessions: Arc<AtomicU64>,
    tokens: Arc<Mutex<VecDeque<String>>>,
    /// Detail pages one session may show (0: unlimited, and any session id is taken).
    session_pages: Arc<AtomicU32>,
    /// Listings open no new session.
    sessions_closed: Arc<AtomicBool>,
    /// The listings' layout (see the module header).
    layout: Arc<AtomicU32>,
    /// Live sessions and the detail pages each has shown (only while pages are limited).
    live: Arc<Mutex<HashMap<String, u32>>>,
}

/// The `JSESSIONID` a request carries.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .flat_map(|c| c.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("JSESSIONID=").map(str::to_owned))
}

impl SiteState {
    fn site(&self) -> Site {
        Site {
            entities: self.entities,
            revision: self.revision.load(Ordering::Relaxed),
        }
    }
}

/// The sample site's router for `entities` registry entries.
pub fn router(entities: u32) -> Router {
    let st = SiteState {
        entities,
        revision: Arc::new(AtomicU32::new(0)),
        sessions: Arc::new(AtomicU64::new(0)),
        tokens: Arc::new(Mutex::new(VecDeque::new())),
        session_pages: Arc::new(AtomicU32::new(0)),
        sessions_closed: Arc::new(AtomicBool::new(false)),
        layout: Arc::new(AtomicU32::new(0)),
        live: Arc::new(Mutex::new(HashMap::new())),
    };
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/registry/list.jsp?page=1") }),
        )
        .route("/robots.txt", get(robots))
        .route("/registry/list.jsp", get(listing))
        .route("/registry/detail.jsp", get(detail))
        .route("/sitemap.xml", get(sitemap_index))
        .route("/sitemaps/{file}", get(sitemap_file))
        .route("/feed.xml", get(feed))
        .route("/oauth/token", post(token))
        .route("/api/v1/standards", get(api))
        .route("/_control/revision/{n}", post(set_revision))
        .route("/_control/session-pages/{n}", post(set_session_pages))
        .route("/_control/sessions-closed/{n}", post(set_sessions_closed))
        .route("/_control/layout/{n}", post(set_layout))
        .with_state(st)
}

fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn etag_for(kind: &str, n: u32, site: &Site) -> String {
    format!("\"{kind}-{n}-r{}\"", site.revision)
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}

fn html_1252(body: String, etag: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/html; charset=windows-1252".to_owned(),
            ),
            (header::ETAG, etag),
        ],
        to_windows_1252(&body),
    )
        .into_response()
}

async fn robots() -> &'static str {
    "User-agent: *\nDisallow: /private/\nDisallow: /_control/\n"
}

#[derive(Deserialize)]
struct PageQ {
    page: Option<u32>,
}

async fn listing(
    State(st): State<SiteState>,
    headers: HeaderMap,
    Query(q): Query<PageQ>,
) -> Response {
    let site = st.site();
    let page = q.page.unwrap_or(1);
    let Some(html) = site.listing_html(page, UrlStyle::Jsp) else {
        return (StatusCode::NOT_FOUND, "no such page").into_response();
    };
    let mut etag = etag_for("list", page, &site);
    let layout = st.layout.load(Ordering::Relaxed);
    let html = if layout >= 2 {
        etag = format!("\"{}-l{layout}\"", etag.trim_matches('"'));
        html.replace("<tr class=\"result\">", "<tr class=\"entry\">")
    } else {
        html
    };
    let mut resp = if not_modified(&headers, &etag) {
        (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
    } else {
        html_1252(html, etag)
    };
    let limited = st.session_pages.load(Ordering::Relaxed) > 0;
    let has_session = match session_id(&headers) {
        Some(id) if limited => st.live.lock().map(|l| l.contains_key(&id)).unwrap_or(false),
        Some(_) => true,
        None => false,
    };
    if !has_session && !st.sessions_closed.load(Ordering::Relaxed) {
        let n = st.sessions.fetch_add(1, Ordering::Relaxed);
        let id = format!("S{n:08X}");
        if limited {
            if let Ok(mut l) = st.live.lock() {
                if l.len() >= MAX_SESSIONS {
                    l.clear();
                }
                l.insert(id.clone(), 0);
            }
        }
        if let Ok(v) = format!("JSESSIONID={id}; Path=/registry; HttpOnly").parse() {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// Whether the request's session may show one more detail page (and counts it).
fn session_allows_detail(st: &SiteState, headers: &HeaderMap) -> bool {
    let Some(id) = session_id(headers).filter(|id| id.starts_with('S')) else {
        return false;
    };
    let limit = st.session_pages.load(Ordering::Relaxed);
    if limit == 0 {
        return true;
    }
    let Ok(mut live) = st.live.lock() else {
        return false;
    };
    match live.get_mut(&id) {
        Some(used) if *used < limit => {
            *used += 1;
            true
        }
        Some(_) => {
            // Expired: the server forgets it, so the listing opens a new one.
            live.remove(&id);
            false
        }
        None => false,
    }
}

#[derive(Deserialize)]
struct IdQ {
    id: Option<u32>,
}

async fn detail(State(st): State<SiteState>, headers: HeaderMap, Query(q): Query<IdQ>) -> Response {
    if !session_allows_detail(&st, &headers) {
        // What the JSP sites do: no session, back to the start.
        return axum::response::Redirect::to("/registry/list.jsp?page=1").into_response();
    }
    let site = st.site();
    let id = q.id.unwrap_or(0);
    let Some(html) = site.detail_html(id) else {
        return (StatusCode::NOT_FOUND, "no such standard").into_response();
    };
    let etag = etag_for("detail", id, &site);
    if not_modified(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    html_1252(html, etag)
}

async fn sitemap_index(State(st): State<SiteState>, headers: HeaderMap) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml")],
        st.site().sitemap_index(&base(&headers)),
    )
        .into_response()
}

async fn sitemap_file(
    State(st): State<SiteState>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let n = file
        .strip_prefix("sitemap-")
        .and_then(|f| f.strip_suffix(".xml.gz"))
        .and_then(|n| n.parse::<u32>().ok());
    match n.and_then(|n| st.site().sitemap_gz(n, &base(&headers), UrlStyle::Jsp)) {
        Some(gz) => ([(header::CONTENT_TYPE, "application/x-gzip")], gz).into_response(),
        None => (StatusCode::NOT_FOUND, "no such sitemap").into_response(),
    }
}

async fn feed(State(st): State<SiteState>, headers: HeaderMap) -> Response {
    (
        [(header::CONTENT_TYPE, "application/rss+xml; charset=utf-8")],
        st.site().feed_xml(&base(&headers), UrlStyle::Jsp),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: String,
    client_secret: String,
}

async fn token(State(st): State<SiteState>, Form(f): Form<TokenForm>) -> Response {
    if f.grant_type != "client_credentials"
        || f.client_id != CLIENT_ID
        || f.client_secret != CLIENT_SECRET
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let n = st.sessions.fetch_add(1, Ordering::Relaxed);
    let tok = format!("demo-token-{n:016x}");
    if let Ok(mut t) = st.tokens.lock() {
        if t.len() >= MAX_TOKENS {
            t.pop_front();
        }
        t.push_back(tok.clone());
    }
    Json(serde_json::json!({"access_token": tok, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

#[derive(Deserialize)]
struct ApiQ {
    limit: Option<u32>,
    next_token: Option<String>,
}

async fn api(State(st): State<SiteState>, headers: HeaderMap, Query(q): Query<ApiQ>) -> Response {
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            st.tokens
                .lock()
                .map(|ts| ts.iter().any(|x| x == t))
                .unwrap_or(false)
        });
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    let after = match q.next_token.as_deref() {
        None => 0,
        Some(t) => match t.strip_prefix('t').and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": "bad next_token"})),
                )
                    .into_response()
            }
        },
    };
    Json(st.site().api_page(after, q.limit.unwrap_or(100))).into_response()
}

async fn set_revision(State(st): State<SiteState>, Path(n): Path<u32>) -> StatusCode {
    st.revision.store(n, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn set_layout(State(st): State<SiteState>, Path(n): Path<u32>) -> StatusCode {
    st.layout.store(n, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

async fn set_session_pages(State(st): State<SiteState>, Path(n): Path<u32>) -> StatusCode {
    st.session_pages.store(n, Ordering::Relaxed);
    if let Ok(mut l) = st.live.lock() {
        l.clear();
    }
    StatusCode::NO_CONTENT
}

async fn set_sessions_closed(State(st): State<SiteState>, Path(n): Path<u32>) -> StatusCode {
    st.sessions_closed.store(n != 0, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

/// Writes the site as static files (link style [`UrlStyle::Static`]) under `dir`, for nginx.
/// Returns the number of HTML pages written.
pub fn export_static(site: &Site, dir: &std::path::Path, base: &str) -> std::io::Result<u32> {
    let list = dir.join("registry/list");
    let detail = dir.join("registry/detail");
    std::fs::create_dir_all(&list)?;
    std::fs::create_dir_all(&detail)?;
    std::fs::create_dir_all(dir.join("sitemaps"))?;
    let mut pages = 0;
    for p in 1..=site.pages() {
        if let Some(h) = site.listing_html(p, UrlStyle::Static) {
            std::fs::write(list.join(format!("{p}.html")), to_windows_1252(&h))?;
            pages += 1;
        }
    }
    for id in 1..=site.live_count() {
        if let Some(h) = site.detail_html(id) {
            std::fs::write(detail.join(format!("{id}.html")), to_windows_1252(&h))?;
            pages += 1;
        }
    }
    std::fs::write(
        dir.join("robots.txt"),
        "User-agent: *\nDisallow: /private/\n",
    )?;
    std::fs::write(dir.join("sitemap.xml"), site.sitemap_index(base))?;
    let mut i = 1;
    while let Some(gz) = site.sitemap_gz(i, base, UrlStyle::Static) {
        std::fs::write(dir.join(format!("sitemaps/sitemap-{i}.xml.gz")), gz)?;
        i += 1;
    }
    std::fs::write(dir.join("feed.xml"), site.feed_xml(base, UrlStyle::Static))?;
    Ok(pages)
}
