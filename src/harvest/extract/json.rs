//! JSON APIs: records at a JSONPath, keys, and the next request to make.
//!
//! Pure and stateless: the caller keeps a [`PageState`] per request. A run starts with
//! [`first_request`], fetches `next.url`, calls [`extract_json_page`] with the body, the
//! response headers and `next.state`, stores the records and repeats while `next` is
//! `Some`. Loops (a next link or cursor that repeats) and runs longer than `max_pages`
//! end with a warning. Next links must stay on the source's origin: the fetch stage
//! attaches the source's credentials to every request, and a response must not be able to
//! send them elsewhere.

use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::error::ErrorKind;
use crate::harvest::charset::{decode_text, from_content_type};
use crate::harvest::convert::rfc3339_utc;
use crate::harvest::limits::{MAX_JSON_BYTES, MAX_RECORDS_PER_PAGE};
use crate::harvest::link_header;
use crate::harvest::record::{key_from_fields, ExtractedRecord, Warning, Warnings};
use crate::harvest::source::{JsonSource, OnEmpty, Pagination, TimeFormat, WindowSpec, END, START};
use crate::harvest::urls;

pub mod cursor;

use self::cursor::{observe_page, CursorSeen};

/// The time range a run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

impl TimeWindow {
    /// From the last successful run (minus the overlap) to `now`; a first run looks back
    /// `initial_lookback`. A last run in the future (clock skew) is treated as `now`.
    pub fn since_last_run(
        spec: &WindowSpec,
        last_success: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> TimeWindow {
        let back = |d: std::time::Duration, from: OffsetDateTime| {
            time::Duration::try_from(d)
                .ok()
                .and_then(|d| from.checked_sub(d))
                .unwrap_or(from)
        };
        let start = match last_success {
            Some(t) => back(
                spec.overlap.map_or(std::time::Duration::ZERO, |o| o.0),
                t.min(now),
            ),
            None => back(spec.initial_lookback.0, now),
        };
        TimeWindow { start, end: now }
    }
}

/// Where a run is: what was requested and what paging state it was requested with.
#[derive(Debug, Clone, PartialEq)]
pub struct PageState {
    /// The URL the response came from (after redirects), for resolving relative links.
    pub url: Url,
    /// Pages fetched before this one in the run (0 for the first).
    pub page: u32,
    /// Record offset of this page (offset pagination).
    pub offset: u64,
    /// The cursor this page was requested with (cursor pagination).
    pub cursor: Option<String>,
    pub window: Option<TimeWindow>,
    /// The incremental cursor's parameter value for this run (`incremental.param`).
    pub since: Option<String>,
}

/// The next request of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NextRequest {
    pub url: Url,
    /// Hand this back with the response (set `url` to the final URL after redirects).
    pub state: PageState,
}

/// What one response yields.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPage {
    pub records: Vec<ExtractedRecord>,
    pub next: Option<NextRequest>,
    pub warnings: Vec<Warning>,
    /// Why some records of the page were not read (past the per-page cap): the page is an
    /// error, so a complete run cannot take the unread records for removed.
    pub incomplete: Option<String>,
    /// What this page shows of the source's incremental cursor.
    pub cursor: Option<CursorSeen>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("{url}: response is {size} bytes; the limit is {limit}")]
    TooLarge {
        url: String,
        size: usize,
        limit: usize,
    },
    #[error("{url}: response is not valid JSON: {reason}")]
    Parse { url: String, reason: String },
    #[error("{url}: records path {path} matched nothing (the source is set to on_empty = \"error\"); check the path against the response")]
    NoRecords { url: String, path: String },
    #[error("{url}: the source uses {{start}}/{{end}} parameters but no time window was given")]
    MissingWindow { url: String },
}

impl JsonError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            JsonError::TooLarge { .. } => ErrorKind::TooLarge,
            JsonError::Parse { .. } | JsonError::NoRecords { .. } => ErrorKind::InvalidInput,
            // The caller did not compute a window the definition requires: our bug.
            JsonError::MissingWindow { .. } => ErrorKind::Internal,
        }
    }
}

/// The first request of a run. `window` is required when the source has one.
pub fn first_request(
    src: &JsonSource,
    window: Option<TimeWindow>,
) -> Result<NextRequest, JsonError> {
    first_request_from(src, window, None)
}

/// [`first_request`] resuming from an incremental cursor: `since` is the parameter value
/// ([`cursor::resume_value`]). A token for the cursor pagination's own parameter starts
/// the chain at that cursor.
pub fn first_request_from(
    src: &JsonSource,
    window: Option<TimeWindow>,
    since: Option<String>,
) -> Result<NextRequest, JsonError> {
    if src.window.is_some() && window.is_none() {
        return Err(JsonError::MissingWindow {
            url: src.url.to_string(),
        });
    }
    let state = PageState {
        url: src.url.url().clone(),
        page: 0,
        offset: 0,
        cursor: None,
        window,
        since: None,
    };
    let mut state = state;
    if let (Some(inc), Some(v)) = (&src.incremental, since) {
        match &src.pagination {
            Pagination::Cursor { param, .. } if param == inc.param() => state.cursor = Some(v),
            _ => state.since = Some(v),
        }
    }
    let url = request_url(src, &state);
    Ok(NextRequest {
        state: PageState {
            url: url.clone(),
            ..state
        },
        url,
    })
}

/// The URL for a page-, offset- or cursor-driven request in `state`.
fn request_url(src: &JsonSource, state: &PageState) -> Url {
    let mut u = src.url.url().clone();
    let fmt = src
        .window
        .as_ref()
        .map_or(TimeFormat::Rfc3339, |w| w.format);
    for (k, v) in &src.params {
        let v = match state.window {
            Some(w) => v
                .replace(START, &format_time(w.start, fmt))
                .replace(END, &format_time(w.end, fmt)),
            None => v.clone(),
        };
        set_param(&mut u, k, &v);
    }
    if let (Some(inc), Some(v)) = (&src.incremental, &state.since) {
        set_param(&mut u, inc.param(), v);
    }
    match &src.pagination {
        Pagination::Page {
            param,
            start,
            size_param,
            size,
        } => {
            set_param(&mut u, param, &(start + u64::from(state.page)).to_string());
            if let (Some(p), Some(s)) = (size_param, size) {
                set_param(&mut u, p, &s.to_string());
            }
        }
        Pagination::Offset {
            param,
            limit_param,
            limit,
        } => {
            set_param(&mut u, param, &state.offset.to_string());
            if let Some(p) = limit_param {
                set_param(&mut u, p, &limit.to_string());
            }
        }
        Pagination::Cursor { param, .. } => {
            if let Some(c) = &state.cursor {
                set_param(&mut u, param, c);
            }
        }
        Pagination::None | Pagination::NextLink { .. } | Pagination::LinkHeader => {}
    }
    u
}

fn format_time(t: OffsetDateTime, fmt: TimeFormat) -> String {
    match fmt {
        TimeFormat::Rfc3339 => rfc3339_utc(t),
        TimeFormat::Unix => t.unix_timestamp().to_string(),
        TimeFormat::UnixMs => (t.unix_timestamp_nanos() / 1_000_000).to_string(),
        TimeFormat::Date => {
            let d = t.to_offset(time::UtcOffset::UTC).date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
    }
}

/// Sets query parameter `name` to `value`, replacing any existing values.
fn set_param(u: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = u.query_pairs_mut();
    q.clear();
    for (k, v) in &kept {
        q.append_pair(k, v);
    }
    q.append_pair(name, value);
}

fn header<'a>(headers: &'a [(&str, &str)], name: &str) -> impl Iterator<Item = &'a str> {
    let name = name.to_owned();
    headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(&name))
        .map(|(_, v)| *v)
}

/// Parses the body: UTF-8 (BOM tolerated) by default; a body with a UTF-16 BOM or a
/// non-UTF-8 Content-Type charset (old APIs send ISO-8859-1) is decoded first.
fn parse_body(body: &[u8], headers: &[(&str, &str)], url: &Url) -> Result<Value, JsonError> {
    let parse_err = |e: serde_json::Error| JsonError::Parse {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let ct = header(headers, "content-type").next();
    let legacy = ct
        .and_then(from_content_type)
        .is_some_and(|e| e != encoding_rs::UTF_8);
    if legacy || body.starts_with(b"\xff\xfe") || body.starts_with(b"\xfe\xff") {
        let d = decode_text(body, ct, None);
        return serde_json::from_str(&d.text).map_err(parse_err);
    }
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    serde_json::from_slice(body).map_err(parse_err)
}

/// Extracts the records of one response and works out the next request.
pub fn extract_json_page(
    body: &[u8],
    headers: &[(&str, &str)],
    src: &JsonSource,
    state: &PageState,
) -> Result<JsonPage, JsonError> {
    if body.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLarge {
            url: state.url.to_string(),
            size: body.len(),
            limit: MAX_JSON_BYTES,
        });
    }
    let doc = parse_body(body, headers, &state.url)?;
    let mut warnings = Warnings::default();

    let nodes = src.records.get().query(&doc).all();
    // "$.data" selecting one array means its elements, which is what people mean.
    let nodes: Vec<&Value> = match nodes.as_slice() {
        [Value::Array(items)] => items.iter().collect(),
        _ => nodes,
    };
    if nodes.is_empty() && state.page == 0 && src.on_empty == OnEmpty::Error {
        return Err(JsonError::NoRecords {
            url: state.url.to_string(),
            path: src.records.as_str().to_owned(),
        });
    }
    let count = nodes.len();
    let mut records = Vec::with_capacity(count.min(MAX_RECORDS_PER_PAGE));
    let mut incomplete = None;
    for (i, node) in nodes.into_iter().enumerate() {
        if i >= MAX_RECORDS_PER_PAGE {
            incomplete = Some(format!(
                "more than {MAX_RECORDS_PER_PAGE} records; the rest were not read"
            ));
            break;
        }
        let Value::Object(fields) = node else {
            warnings.push(
                Some(i),
                format!("record is a {}, not an object; skipped", type_name(node)),
            );
            continue;
        };
        match key_from_fields(fields, &src.key) {
            Ok(key) => records.push(ExtractedRecord {
                key,
                fields: fields.clone(),
            }),
            Err(why) => warnings.push(Some(i), format!("{why}; record skipped")),
        }
    }

    let mut cut = false;
    let next = next_request(&doc, headers, src, state, count, &mut warnings, &mut cut);
    let cursor = src.incremental.as_ref().map(|inc| {
        let mut seen = observe_page(inc, &doc, &records, state.page, &mut warnings);
        seen.cut = cut;
        seen
    });
    Ok(JsonPage {
        records,
        incomplete,
        next,
        warnings: warnings.finish(),
        cursor,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn next_request(
    doc: &Value,
    headers: &[(&str, &str)],
    src: &JsonSource,
    state: &PageState,
    count: usize,
    warnings: &mut Warnings,
    cut: &mut bool,
) -> Option<NextRequest> {
    let mut next = PageState {
        url: state.url.clone(),
        page: state.page + 1,
        offset: state.offset,
        cursor: None,
        window: state.window,
        since: state.since.clone(),
    };
    let url = match &src.pagination {
        Pagination::None => return None,
        Pagination::NextLink { path } => {
            let target = match path.get().query(doc).first() {
                None | Some(Value::Null) => return None,
                Some(Value::String(s)) if s.trim().is_empty() => return None,
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    warnings.push(
                        None,
                        format!(
                            "next link at {} is a {}, not a URL; paging stopped",
                            path.as_str(),
                            type_name(other)
                        ),
                    );
                    return None;
                }
            };
            let Some(u) = checked_link(src, state, &target, warnings) else {
                *cut = true;
                return None;
            };
            u
        }
        Pagination::LinkHeader => {
            let target = link_header::next_target(header(headers, "link"))?;
            let Some(u) = checked_link(src, state, &target, warnings) else {
                *cut = true;
                return None;
            };
            u
        }
        Pagination::Cursor { path, .. } => {
            let token = match path.get().query(doc).first() {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return None,
            };
            if state.cursor.as_deref() == Some(token.as_str()) {
                warnings.push(
                    None,
                    format!("the API returned the same cursor {token:?} twice; paging stopped"),
                );
                return None;
            }
            next.cursor = Some(token);
            request_url(src, &next)
        }
        Pagination::Page { size, .. } => {
            if count == 0 || size.is_some_and(|s| (count as u64) < s) {
                return None;
            }
            request_url(src, &next)
        }
        Pagination::Offset { limit, .. } => {
            if count == 0 || (count as u64) < *limit {
                return None;
            }
            next.offset = state.offset + count as u64;
            request_url(src, &next)
        }
    };
    if url == state.url {
        warnings.push(
            None,
            "the next page is this page; paging stopped".to_owned(),
        );
        return None;
    }
    if next.page >= src.max_pages {
        *cut = true;
        warnings.push(
            None,
            format!("stopped after max_pages = {} pages", src.max_pages),
        );
        return None;
    }
    next.url = url.clone();
    Some(NextRequest { url, state: next })
}

/// A next link resolved against the current URL, if it stays on the source's origin.
fn checked_link(
    src: &JsonSource,
    state: &PageState,
    target: &str,
    warnings: &mut Warnings,
) -> Option<Url> {
    let Some(u) = urls::resolve(&state.url, target) else {
        warnings.push(
            None,
            format!("next link {target:?} is not an http(s) URL; paging stopped"),
        );
        return None;
    };
    if !urls::same_origin(&u, src.url.url()) {
        warnings.push(
            None,
            format!("next link {u} leaves the source's origin; paging stopped"),
        );
        return None;
    }
    Some(u)
}

#[cfg(test)]
mod tests;
