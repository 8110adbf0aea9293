//! What a fetched URL yields, per source kind: runs on the CPU pool, never on the runtime.
//!
//! Input is a frontier entry and what fetching it gave (a body, a 304, a block, an error);
//! output is everything [`crate::store::TenantDb::commit_page`] stores for it: encoded
//! records, keys seen unchanged, new frontier entries and the conditional-GET state. A 304
//! (or a body identical to the last one) replays what the URL yielded last time, so an
//! unchanged listing still leads to its next page and keeps its records from being marked
//! removed.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::counts::RunError;
use super::fetch::{FetchError, Response};
use crate::harvest::charset::decode_html;
use crate::harvest::extract::html::{
    extract_detail, extract_page, extract_records, PageExtract, Rejected,
};
use crate::harvest::extract::json::cursor::CursorSeen;
use crate::harvest::extract::json::{extract_json_page, PageState, TimeWindow};
use crate::harvest::extract::sitemap::{parse_sitemap, SitemapKind};
use crate::harvest::extract::{csv::extract_csv, feed::extract_feed};
use crate::harvest::source::{
    DetailSpec, HtmlSource, JsonSource, SitemapSource, SourceDef, SourceSpec,
};
use crate::harvest::ExtractedRecord;
use crate::store::{
    encode_payload, encode_value_payload_with, Dictionary, FetchState, FrontierEntry, NewEntry,
    RecordWrite,
};

/// Frontier kinds.
pub const LISTING: &str = "listing";
pub const DETAIL: &str = "detail";
pub const SITEMAP: &str = "sitemap";
pub const PAGE: &str = "page";
pub const FEED: &str = "feed";
pub const CSV: &str = "csv";
pub const API: &str = "api";

/// A detail page's pending record: its key and (when the listing was fetched in this run)
/// the listing's fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetailData {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Map<String, Value>>,
}

/// Paging state of an API request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApiData {
    pub page: u32,
    pub offset: u64,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Window start and end, Unix seconds.
    #[serde(default)]
    pub window: Option<(i64, i64)>,
    /// The incremental cursor's parameter value the run started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

impl ApiData {
    pub fn from_state(s: &PageState) -> ApiData {
        ApiData {
            page: s.page,
            offset: s.offset,
            cursor: s.cursor.clone(),
            window: s
                .window
                .map(|w| (w.start.unix_timestamp(), w.end.unix_timestamp())),
            since: s.since.clone(),
        }
    }

    fn to_state(&self, url: Url) -> PageState {
        let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).ok();
        PageState {
            url,
            page: self.page,
            offset: self.offset,
            cursor: self.cursor.clone(),
            window: self.window.and_then(|(a, b)| {
                Some(TimeWindow {
                    start: t(a)?,
                    end: t(b)?,
                })
            }),
            since: self.since.clone(),
        }
    }
}

/// What a URL yielded, kept in its fetch state and replayed on 304.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Yielded {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    pub kind: String,
    pub depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Link {
    fn entry(&self) -> NewEntry {
        NewEntry {
            url: self.url.clone(),
            kind: self.kind.clone(),
            depth: self.depth,
            data: self.data.clone(),
        }
    }
}

/// How fetching went.
pub enum Fetched {
    Body(Box<Response>),
    NotModified,
    RobotsBlocked,
    Failed(FetchError),
    /// Not fetched (the run is stopping or its budget is spent); goes back to pending.
    Deferred,
}

/// One URL's work for the CPU pool.
pub struct Job {
    pub entry: FrontierEntry,
    pub fetched: Fetched,
    /// The URL's previous fetch state.
    pub prior: Option<FetchState>,
    /// The stored record of a detail page's key (fetched before the job when needed).
    pub stored: Option<Map<String, Value>>,
}

/// Everything to commit for one URL.
#[derive(Debug, Default)]
pub struct Output {
    pub records: Vec<RecordWrite>,
    pub touch_keys: Vec<String>,
    pub new_entries: Vec<NewEntry>,
    pub fetch_state: Option<(String, FetchState)>,
    pub error: Option<RunError>,
    pub warnings: u64,
    pub replayed: bool,
    /// What the page showed of the source's incremental cursor (json sources).
    pub cursor: Option<CursorSeen>,
}

/// Source-wide context of the jobs of a run.
pub struct Ctx {
    pub def: Arc<SourceDef>,
    pub source: String,
    pub max_body: usize,
    /// The source's zstd dictionary, when one was trained.
    pub dict: Option<Dictionary>,
}

fn err(url: &str, kind: &str, reason: impl Into<String>) -> RunError {
    RunError {
        url: url.to_owned(),
        kind: kind.to_owned(),
        reason: reason.into(),
    }
}

/// Does a job's CPU work.
pub fn process(ctx: &Ctx, job: Job, seen_ms: i64) -> Output {
    let mut out = Output::default();
    let Job {
        entry,
        fetched,
        prior,
        stored,
    } = job;
    match fetched {
        Fetched::Failed(e) => {
            out.error = Some(err(&entry.url, e.label(), e.to_string()));
            keep_stored_detail(&mut out, &entry);
        }
        Fetched::RobotsBlocked => {
            // A detail page robots.txt forbids: keep what the listing said.
            if entry.kind == DETAIL {
                if let Some(d) = parse_data::<DetailData>(&entry) {
                    match d.fields {
                        Some(f) => push_record(ctx, &mut out, &entry.url, d.key, f, seen_ms),
                        None => out.touch_keys.push(d.key),
                    }
                }
            }
        }
        Fetched::Deferred => {}
        Fetched::NotModified => replay(ctx, &mut out, &entry, prior, stored, seen_ms),
        Fetched::Body(resp) => {
            let hash = blake3::hash(&resp.body).as_bytes().to_vec();
            let same = prior
                .as_ref()
                .is_some_and(|p| p.body_hash.as_deref() == Some(&hash[..]) && p.yielded.is_some());
            if same {
                out.replayed = true;
                replay(ctx, &mut out, &entry, prior, stored, seen_ms);
                return out;
            }
            let mut y = Yielded::default();
            if let Err(e) = extract(ctx, &mut out, &mut y, &entry, &resp, stored, seen_ms) {
                out.error = Some(e);
            }
            if out.error.is_some() {
                keep_stored_detail(&mut out, &entry);
                // No fetch state: the next run must extract this body again, not replay
                // what this one yielded without its failed records.
                return out;
            }
            let state = FetchState {
                etag: resp.header("etag").map(str::to_owned),
                last_modified: resp.header("last-modified").map(str::to_owned),
                body_hash: Some(hash),
                yielded: serde_json::to_string(&y).ok(),
            };
            out.fetch_state = Some((entry.url.clone(), state));
        }
    }
    out
}

/// A detail page that failed: its record's stored version stays as it is, and is not
/// taken for removed (the run is not complete anyway).
fn keep_stored_detail(out: &mut Output, entry: &FrontierEntry) {
    if entry.kind == DETAIL {
        if let Some(d) = parse_data::<DetailData>(entry) {
            out.touch_keys.push(d.key);
        }
    }
}

fn parse_data<T: for<'de> Deserialize<'de>>(e: &FrontierEntry) -> Option<T> {
    e.data.as_deref().and_then(|d| serde_json::from_str(d).ok())
}

/// Encodes a record for the writer. One that cannot be encoded (too large) is an error
/// for the URL, never a silent skip: skipped, it would look removed to a complete run.
fn push_record(
    ctx: &Ctx,
    out: &mut Output,
    url: &str,
    key: String,
    fields: Map<String, Value>,
    seen_ms: i64,
) {
    let fields = Value::Object(fields);
    let encoded = match &ctx.dict {
        Some(d) => encode_value_payload_with(&fields, d),
        None => encode_payload(&fields),
    };
    match encoded {
        Ok(payload) => out.records.push(RecordWrite {
            source: ctx.source.clone(),
            key,
            payload,
            seen_ms,
        }),
        Err(e) => {
            if out.error.is_none() {
                out.error = Some(err(url, "encode", format!("record {key:?}: {e}")));
            }
            out.touch_keys.push(key);
        }
    }
}

/// A page some of whose records were not read: an error for the page.
fn incomplete(out: &mut Output, url: &str, why: Option<String>) {
    if let Some(why) = why {
        out.error.get_or_insert_with(|| err(url, "incomplete", why));
    }
}

/// Records a page yielded that could not be read whole: an error for the page; their
/// stored versions stay as they are.
fn reject(out: &mut Output, url: &str, rejected: Vec<Rejected>) {
    let Some(first) = rejected.first() else {
        return;
    };
    let what = match (&first.record, &first.key) {
        (_, Some(k)) => format!("record {k:?}"),
        (Some(i), None) => format!("record #{}", i + 1),
        (None, None) => "the page".to_owned(),
    };
    let more = match rejected.len() {
        1 => String::new(),
        n => format!(" ({} more records rejected)", n - 1),
    };
    if out.error.is_none() {
        out.error = Some(err(
            url,
            "required_missing",
            format!("{what}: {}; not stored{more}", first.reason),
        ));
    }
    out.touch_keys
        .extend(rejected.into_iter().filter_map(|r| r.key));
}

fn replay(
    ctx: &Ctx,
    out: &mut Output,
    entry: &FrontierEntry,
    prior: Option<FetchState>,
    stored: Option<Map<String, Value>>,
    seen_ms: i64,
) {
    let y: Yielded = prior
        .and_then(|p| p.yielded)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    if entry.kind == DETAIL {
        if let Some(d) = parse_data::<DetailData>(entry) {
            match (d.fields, stored) {
                // The listing was refetched: its fields over the stored record.
                (Some(listing), Some(mut base)) => {
                    base.extend(listing);
                    push_record(ctx, out, &entry.url, d.key, base, seen_ms);
                }
                _ => out.touch_keys.push(d.key),
            }
            return;
        }
    }
    out.touch_keys.extend(y.keys);
    out.new_entries.extend(y.links.iter().map(Link::entry));
}

fn link(url: &Url, kind: &str, depth: u32, data: Option<String>) -> Link {
    Link {
        url: url.to_string(),
        kind: kind.to_owned(),
        depth,
        data,
    }
}

/// Records of a page: those with a detail page wait for it (as frontier entries), the
/// rest are written now.
fn records_and_details(
    ctx: &Ctx,
    out: &mut Output,
    y: &mut Yielded,
    entry: &FrontierEntry,
    page: PageExtract,
    has_detail: bool,
    seen_ms: i64,
) {
    reject(out, &entry.url, page.rejected);
    let depth = entry.depth;
    let mut details: std::collections::HashMap<String, Url> = page
        .detail_links
        .into_iter()
        .map(|d| (d.key, d.url))
        .collect();
    for r in page.records {
        match details.remove(&r.key).filter(|_| has_detail) {
            Some(u) => {
                let pending = DetailData {
                    key: r.key.clone(),
                    fields: Some(r.fields),
                };
                out.new_entries.push(NewEntry {
                    url: u.to_string(),
                    kind: DETAIL.into(),
                    depth,
                    data: serde_json::to_string(&pending).ok(),
                });
                let replayed = DetailData {
                    key: r.key,
                    fields: None,
                };
                y.links.push(link(
                    &u,
                    DETAIL,
                    depth,
                    serde_json::to_string(&replayed).ok(),
                ));
            }
            None => {
                y.keys.push(r.key.clone());
                push_record(ctx, out, &entry.url, r.key, r.fields, seen_ms);
            }
        }
    }
}

fn detail_spec(def: &SourceDef) -> Option<&DetailSpec> {
    match &def.spec {
        SourceSpec::Html(s) => s.extract.detail.as_ref(),
        SourceSpec::Sitemap(s) => s.extract.detail.as_ref(),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn extract(
    ctx: &Ctx,
    out: &mut Output,
    y: &mut Yielded,
    entry: &FrontierEntry,
    resp: &Response,
    stored: Option<Map<String, Value>>,
    seen_ms: i64,
) -> Result<(), RunError> {
    let url = &resp.url;
    let ct = resp.header("content-type");
    let ex = |e: String| err(&entry.url, "extract", e);
    match (&ctx.def.spec, entry.kind.as_str()) {
        (SourceSpec::Html(src), LISTING) => listing(ctx, out, y, entry, resp, src, seen_ms)?,
        (SourceSpec::Html(_) | SourceSpec::Sitemap(_), DETAIL) => {
            detail(ctx, out, y, entry, resp, stored, seen_ms)?
        }
        (SourceSpec::Sitemap(src), SITEMAP) => sitemap(ctx, out, y, entry, resp, src)?,
        (SourceSpec::Sitemap(src), PAGE) => {
            let text = decode_html(&resp.body, ct).text;
            let page = extract_records(url, &text, &src.extract).map_err(|e| ex(e.to_string()))?;
            out.warnings += page.warnings.len() as u64;
            records_and_details(
                ctx,
                out,
                y,
                entry,
                page,
                src.extract.detail.is_some(),
                seen_ms,
            );
        }
        (SourceSpec::Feed(src), FEED) => {
            let f = extract_feed(url, &resp.body, ct, src).map_err(|e| ex(e.to_string()))?;
            out.warnings += f.warnings.len() as u64;
            for r in f.records {
                y.keys.push(r.key.clone());
                push_record(ctx, out, &entry.url, r.key, r.fields, seen_ms);
            }
        }
        (SourceSpec::Csv(src), CSV) => {
            let f = extract_csv(url, &resp.body, ct, src).map_err(|e| ex(e.to_string()))?;
            out.warnings += f.warnings.len() as u64;
            incomplete(out, &entry.url, f.incomplete);
            for r in f.records {
                y.keys.push(r.key.clone());
                push_record(ctx, out, &entry.url, r.key, r.fields, seen_ms);
            }
        }
        (SourceSpec::Json(src), API) => api(ctx, out, y, entry, resp, src, seen_ms)?,
        (_, kind) => {
            return Err(ex(format!(
                "frontier entry of kind {kind:?} does not fit this source"
            )))
        }
    }
    Ok(())
}

/// An html listing page: its records (or their detail pages), next pages and, within
/// `scope.max_depth`, the listings it links to.
fn listing(
    ctx: &Ctx,
    out: &mut Output,
    y: &mut Yielded,
    entry: &FrontierEntry,
    resp: &Response,
    src: &HtmlSource,
    seen_ms: i64,
) -> Result<(), RunError> {
    let url = &resp.url;
    let ct = resp.header("content-type");
    let ex = |e: String| err(&entry.url, "extract", e);
    let text = decode_html(&resp.body, ct).text;
    let page = extract_page(url, &text, src).map_err(|e| ex(e.to_string()))?;
    out.warnings += page.warnings.len() as u64;
    let depth = entry.depth;
    let nexts = page.next_links.clone();
    let discovered = page.discovered_links.clone();
    records_and_details(
        ctx,
        out,
        y,
        entry,
        page,
        src.extract.detail.is_some(),
        seen_ms,
    );
    for u in &nexts {
        y.links.push(link(u, LISTING, depth, None));
    }
    if depth < src.scope.max_depth {
        for u in &discovered {
            y.links.push(link(u, LISTING, depth + 1, None));
        }
    }
    // Detail entries carrying listing fields were pushed by records_and_details;
    // the rest of the links are the same as those replayed.
    out.new_entries
        .extend(y.links.iter().filter(|l| l.kind != DETAIL).map(Link::entry));
    Ok(())
}

/// A detail page: its fields over the listing's (or, when the listing was replayed, over
/// the stored record's).
fn detail(
    ctx: &Ctx,
    out: &mut Output,
    y: &mut Yielded,
    entry: &FrontierEntry,
    resp: &Response,
    stored: Option<Map<String, Value>>,
    seen_ms: i64,
) -> Result<(), RunError> {
    let url = &resp.url;
    let ct = resp.header("content-type");
    let x = |kind: &str, e: String| err(&entry.url, kind, e);
    let ex = |e: String| x("extract", e);
    let Some(spec) = detail_spec(&ctx.def) else {
        return Err(ex("the source has no detail spec".into()));
    };
    let d: DetailData = parse_data(entry).ok_or_else(|| ex("detail entry without a key".into()))?;
    let text = decode_html(&resp.body, ct).text;
    let page = extract_detail(url, &text, spec).map_err(|e| x(e.label(), e.to_string()))?;
    out.warnings += page.warnings.len() as u64;
    let mut rec = ExtractedRecord {
        key: d.key.clone(),
        fields: d.fields.or(stored).unwrap_or_default(),
    };
    if rec.fields.is_empty() {
        rec.fields = page.fields;
    } else {
        for (k, v) in page.fields {
            rec.fields.insert(k, v);
        }
    }
    y.keys.push(d.key.clone());
    push_record(ctx, out, &entry.url, rec.key, rec.fields, seen_ms);
    Ok(())
}

/// A sitemap: an index leads to more sitemaps (up to `max_index_depth`), a URL set to the
/// pages the source accepts.
fn sitemap(
    ctx: &Ctx,
    out: &mut Output,
    y: &mut Yielded,
    entry: &FrontierEntry,
    resp: &Response,
    src: &SitemapSource,
) -> Result<(), RunError> {
    let url = &resp.url;
    let ct = resp.header("content-type");
    let ex = |e: String| err(&entry.url, "extract", e);
    let sm = parse_sitemap(url, &resp.body, ct, ctx.max_body).map_err(|e| ex(e.to_string()))?;
    out.warnings += sm.warnings.len() as u64;
    incomplete(out, &entry.url, sm.incomplete);
    match sm.kind {
        SitemapKind::Index => {
            if entry.depth >= src.max_index_depth {
                out.warnings += 1;
            } else {
                for e in &sm.entries {
                    y.links.push(link(&e.loc, SITEMAP, entry.depth + 1, None));
                }
            }
        }
        SitemapKind::UrlSet => {
            for e in sm.entries.iter().filter(|e| src.accepts(&e.loc)) {
                y.links.push(link(&e.loc, PAGE, entry.depth + 1, None));
            }
        }
    }
    out.new_entries.extend(y.links.iter().map(Link::entry));
    Ok(())
}

/// One page of a JSON API: its records and, below `max_pages`, the request for the next.
fn api(
    ctx: &Ctx,
    out: &mut Output,
    y: &mut Yielded,
    entry: &FrontierEntry,
    resp: &Response,
    src: &JsonSource,
    seen_ms: i64,
) -> Result<(), RunError> {
    let url = &resp.url;
    let ex = |e: String| err(&entry.url, "extract", e);
    let data: ApiData = parse_data(entry).unwrap_or_default();
    let state = data.to_state(url.clone());
    let headers: Vec<(&str, &str)> = resp
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let page =
        extract_json_page(&resp.body, &headers, src, &state).map_err(|e| ex(e.to_string()))?;
    out.warnings += page.warnings.len() as u64;
    out.cursor = page.cursor;
    incomplete(out, &entry.url, page.incomplete);
    for r in page.records {
        y.keys.push(r.key.clone());
        push_record(ctx, out, &entry.url, r.key, r.fields, seen_ms);
    }
    if let Some(n) = page.next {
        if n.state.page < src.max_pages {
            let d = ApiData::from_state(&n.state);
            y.links.push(link(
                &n.url,
                API,
                entry.depth,
                serde_json::to_string(&d).ok(),
            ));
        }
    }
    out.new_entries.extend(y.links.iter().map(Link::entry));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/harvest");

    fn ctx() -> Ctx {
        let text = std::fs::read_to_string(format!("{DIR}/sources/registry.toml")).unwrap();
        Ctx {
            def: Arc::new(SourceDef::parse_toml(&text).unwrap()),
            source: "company-registry".into(),
            max_body: 1 << 20,
            dict: None,
        }
    }

    fn body_job(kind: &str, url: &str, data: Option<String>, file: &str) -> Job {
        let mut headers = HeaderMap::new();
        headers.insert("etag", "\"v1\"".parse().unwrap());
        Job {
            entry: FrontierEntry {
                id: 1,
                url: url.into(),
                kind: kind.into(),
                depth: 0,
                data,
            },
            fetched: Fetched::Body(Box::new(Response {
                status: StatusCode::OK,
                url: Url::parse(url).unwrap(),
                redirected_from: Vec::new(),
                headers,
                body: Bytes::from(std::fs::read(format!("{DIR}/registry/{file}")).unwrap()),
            })),
            prior: None,
            stored: None,
        }
    }

    #[test]
    fn a_listing_with_a_rejected_record_is_an_error_and_saves_no_fetch_state() {
        let url = "http://registre.example/app/list.jsp?sector=all";
        let out = process(&ctx(), body_job(LISTING, url, None, "list_p1.html"), 1);
        let e = out.error.expect("an error for the page");
        assert_eq!(e.kind, "required_missing");
        assert!(
            e.reason.contains("record #4") && e.reason.contains("reg_no"),
            "{e:?}"
        );
        // The whole records still go on to their detail pages; the page's fetch state is
        // not saved, so the next run extracts it again instead of replaying it.
        let details = out.new_entries.iter().filter(|n| n.kind == DETAIL).count();
        assert_eq!(details, 3);
        assert!(out.fetch_state.is_none());
    }

    #[test]
    fn a_detail_page_missing_a_required_field_keeps_the_stored_record() {
        let mut c = ctx();
        let mut def = (*c.def).clone();
        let SourceSpec::Html(h) = &mut def.spec else {
            unreachable!()
        };
        let d = h.extract.detail.as_mut().unwrap();
        d.fields.get_mut("address").unwrap().required = true;
        d.root = None;
        c.def = Arc::new(def);
        let data = serde_json::to_string(&DetailData {
            key: "100234".into(),
            fields: Some(Map::from_iter([("name".to_owned(), Value::from("X"))])),
        })
        .ok();
        // A listing page served where the detail page was asked for.
        let url = "http://registre.example/app/fiche.jsp?id=100234";
        let out = process(&c, body_job(DETAIL, url, data, "list_p2.html"), 1);
        assert_eq!(
            out.error.as_ref().map(|e| e.kind.as_str()),
            Some("required_missing")
        );
        assert!(
            out.records.is_empty(),
            "nothing replaces the stored version"
        );
        assert_eq!(out.touch_keys, ["100234"], "and it is not marked removed");
        assert!(out.fetch_state.is_none());
        // The real detail page is stored.
        let data = serde_json::to_string(&DetailData {
            key: "100234".into(),
            fields: None,
        })
        .ok();
        let out = process(&c, body_job(DETAIL, url, data, "detail_100234.html"), 1);
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.records.len(), 1);
        assert!(out.fetch_state.is_some());
    }
}
