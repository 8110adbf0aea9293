//! Record endpoints (tenant `reader`; push needs `editor`): filtered keyset pages, one record
//! with its versions, push within quota, and streamed NDJSON/CSV export.
//!
//! Export streams in constant memory: a task reads one chunk of rows at a time (each chunk
//! its own short read transaction, so a long export never pins the WAL), serializes it and
//! sends it through a bounded channel into the response body. A slow client slows the
//! reader down; a client that disconnects stops it.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cursor;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery, ReadRecords, Tenant, WriteRecords};
use super::record_json;
use super::AppState;
use crate::auth::now_ms;
use crate::store::export::{
    self, field_path, project, ExportCursor, ExportFormat, ExportLimits, Projection,
};
use crate::store::{
    encode_payload, match_expression, PutOutcome, RecordFilter, RecordRow, RecordWrite, RowRef,
    RowSink, ScanBudget, StoreError, VersionRow,
};

const MAX_SOURCE_CHARS: usize = 256;
const MAX_KEY_CHARS: usize = 1024;
const MAX_VALUE_CHARS: usize = 1024;
const MAX_QUERY_CHARS: usize = 256;
const MAX_VERSIONS: usize = 100;

/// Query parameters of list (with `limit`, `cursor`) and export (with `format`). One flat
/// type, because serde's `flatten` cannot be combined with `deny_unknown_fields` or with
/// typed values from a query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    source: Option<String>,
    key_prefix: Option<String>,
    changed_since: Option<i64>,
    removed: Option<bool>,
    field: Option<String>,
    equals: Option<String>,
    q: Option<String>,
    fields: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    format: Option<Format>,
    neutralize_formulas: Option<bool>,
}

fn path_of(name: &str, s: &str) -> Result<Vec<String>, ApiError> {
    field_path(name, s).map_err(ApiError::invalid)
}

fn check_len(name: &str, v: &Option<String>, max: usize) -> Result<(), ApiError> {
    match v {
        Some(s) if s.chars().count() > max || s.chars().any(char::is_control) => {
            Err(ApiError::invalid(format!(
                "`{name}`: at most {max} characters, no control characters"
            )))
        }
        _ => Ok(()),
    }
}

/// A validated query: the store filter, the projection, and a fingerprint for cursors.
struct Parsed {
    filter: RecordFilter,
    projection: Projection,
    fingerprint: Vec<u8>,
}

fn parse_filters(tenant: &str, f: Filters) -> Result<Parsed, ApiError> {
    check_len("source", &f.source, MAX_SOURCE_CHARS)?;
    check_len("key_prefix", &f.key_prefix, MAX_KEY_CHARS)?;
    check_len("equals", &f.equals, MAX_VALUE_CHARS)?;
    check_len("q", &f.q, MAX_QUERY_CHARS)?;
    if f.changed_since.is_some_and(|t| t < 0) {
        return Err(ApiError::invalid(
            "`changed_since`: milliseconds since 1970, not negative",
        ));
    }
    let field_equals = match (&f.field, &f.equals) {
        (Some(p), Some(v)) => Some((path_of("field", p)?, v.clone())),
        (None, None) => None,
        _ => return Err(ApiError::invalid("`field` and `equals` go together")),
    };
    let text_match = match &f.q {
        Some(q) => Some(
            match_expression(q).ok_or_else(|| ApiError::invalid("`q`: give at least one word"))?,
        ),
        None => None,
    };
    let projection = f
        .fields
        .as_deref()
        .map(|list| export::projection("fields", list))
        .transpose()
        .map_err(ApiError::invalid)?;
    let filter = RecordFilter {
        source: f.source.clone(),
        key_prefix: f.key_prefix.clone(),
        changed_since_ms: f.changed_since,
        removed: f.removed,
        field_equals,
        text_match,
    };
    // The projection does not change which rows a page holds, so it is not part of the
    // fingerprint; everything else is.
    let fingerprint = serde_json::to_vec(&json!([
        tenant,
        f.source,
        f.key_prefix,
        f.changed_since,
        f.removed,
        f.field,
        f.equals,
        f.q
    ]))
    .unwrap_or_default();
    Ok(Parsed {
        filter,
        projection,
        fingerprint,
    })
}

fn budget(st: &AppState) -> ScanBudget {
    let l = &st.api.limits;
    ScanBudget {
        deadline: Instant::now() + Duration::from_millis(l.statement_timeout_ms),
        max_scan: l.max_scan_rows as i64,
        timeout_ms: l.statement_timeout_ms,
    }
}

pub async fn list(
    t: Tenant<ReadRecords>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<Filters>,
) -> Result<Response, ApiError> {
    if q.format.is_some() || q.neutralize_formulas.is_some() {
        return Err(ApiError::invalid(
            "`format` and `neutralize_formulas` belong to the export endpoint",
        ));
    }
    let max = st.api.limits.max_page_size;
    let limit = q.limit.unwrap_or(st.api.limits.default_page_size);
    if limit == 0 || limit > max {
        return Err(ApiError::invalid(format!("`limit` must be 1 to {max}")));
    }
    let cursor_param = q.cursor.clone();
    let p = parse_filters(t.id.as_str(), q)?;
    let key = &st.auth.derived.cursor;
    let after = match &cursor_param {
        Some(c) => cursor::decode(key, c, &p.fingerprint)?,
        None => 0,
    };
    let sink = PageWriter::new(limit, p.projection);
    let (w, next_after) =
        t.db.list_records_into(p.filter, after, limit, budget(&st), sink)
            .await?;
    let next = next_after.map(|id| cursor::encode(key, id, &p.fingerprint));
    Ok(w.finish(next))
}

/// Writes a list page's JSON (`{"records":[...],"next":...}`, the OpenAPI `RecordPage`) on
/// the reader thread, one record at a time, from the store's borrowed rows into one buffer
/// sized up front (axum's `Json` starts at 128 bytes and regrows).
struct PageWriter {
    buf: Vec<u8>,
    projection: Projection,
    rows: usize,
}

impl PageWriter {
    fn new(limit: usize, projection: Projection) -> Self {
        let mut buf = Vec::with_capacity(64 + limit.min(1000) * 320);
        buf.extend_from_slice(b"{\"records\":[");
        PageWriter {
            buf,
            projection,
            rows: 0,
        }
    }

    fn finish(mut self, next: Option<String>) -> Response {
        self.buf.extend_from_slice(b"],\"next\":");
        // An `Option<String>` always serializes.
        let _ = serde_json::to_writer(&mut self.buf, &next);
        self.buf.push(b'}');
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.buf,
        )
            .into_response()
    }
}

impl RowSink for PageWriter {
    fn row(&mut self, r: &RowRef<'_>) -> Result<(), StoreError> {
        if self.rows > 0 {
            self.buf.push(b',');
        }
        self.rows += 1;
        match &self.projection {
            None => record_json::write_row(&mut self.buf, r),
            Some(_) => {
                let fields = project(r.fields.to_owned(), &self.projection);
                record_json::write_row(
                    &mut self.buf,
                    &RowRef {
                        fields: &fields,
                        ..*r
                    },
                );
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    versions: Option<usize>,
}

pub async fn get(
    t: Tenant<ReadRecords>,
    ApiPath((_, id)): ApiPath<(String, i64)>,
    ApiQuery(q): ApiQuery<GetQuery>,
) -> Result<Response, ApiError> {
    if id < 1 {
        return Err(ApiError::invalid("record id must be a positive integer"));
    }
    let n = q.versions.unwrap_or(20);
    if n > MAX_VERSIONS {
        return Err(ApiError::invalid(format!(
            "`versions` must be 0 to {MAX_VERSIONS}"
        )));
    }
    let (record, versions, versions_total) = t.db.record_with_versions(id, n).await?;
    Ok(Json(RecordBody {
        record,
        versions,
        versions_total,
    })
    .into_response())
}

/// Typed rather than `json!`: building a `Value` would re-parse the stored JSON that a
/// `RecordRow` passes through untouched.
#[derive(Serialize)]
struct RecordBody {
    record: RecordRow,
    versions: Vec<VersionRow>,
    versions_total: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRecord {
    source: String,
    key: String,
    fields: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    records: Vec<PushRecord>,
}

pub async fn push(
    t: Tenant<WriteRecords>,
    State(st): State<AppState>,
    ApiJson(body): ApiJson<PushBody>,
) -> Result<Response, ApiError> {
    let max = st.api.limits.max_push_records;
    if body.records.is_empty() || body.records.len() > max {
        return Err(ApiError::invalid(format!("`records`: 1 to {max} records")));
    }
    for (i, r) in body.records.iter().enumerate() {
        let ok = |s: &str, max: usize| {
            !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
        };
        if !ok(&r.source, MAX_SOURCE_CHARS) || !ok(&r.key, MAX_KEY_CHARS) {
            return Err(ApiError::invalid(format!(
                "`records[{i}]`: `source` must be 1-{MAX_SOURCE_CHARS} and `key` 1-{MAX_KEY_CHARS} characters, no control characters"
            )));
        }
    }
    let now = now_ms();
    let recs = st
        .cpu
        .run(move || {
            body.records
                .into_iter()
                .map(|r| {
                    let payload = encode_payload(&Value::Object(r.fields))?;
                    Ok(RecordWrite {
                        source: r.source,
                        key: r.key,
                        payload,
                        seen_ms: now,
                    })
                })
                .collect::<Result<Vec<_>, crate::store::StoreError>>()
        })
        .await??;
    let keys: Vec<(String, String)> = recs
        .iter()
        .map(|r| (r.source.clone(), r.key.clone()))
        .collect();
    let outcomes =
        t.db.put_records_within_quota(t.id.to_string(), recs, t.details.quotas)
            .await?;
    let results: Vec<Value> = keys
        .into_iter()
        .zip(outcomes)
        .map(|((source, key), o)| {
            let (outcome, version) = match o {
                PutOutcome::New => ("new", Some(1)),
                PutOutcome::Changed { version } => ("changed", Some(version)),
                PutOutcome::Unchanged => ("unchanged", None),
            };
            json!({"source": source, "key": key, "outcome": outcome, "version": version})
        })
        .collect();
    Ok((StatusCode::OK, Json(json!({"results": results}))).into_response())
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Ndjson,
    Csv,
}

impl From<Format> for ExportFormat {
    fn from(f: Format) -> ExportFormat {
        match f {
            Format::Ndjson => ExportFormat::Ndjson,
            Format::Csv => ExportFormat::Csv,
        }
    }
}

pub async fn export(
    t: Tenant<ReadRecords>,
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<Filters>,
) -> Result<Response, ApiError> {
    if q.limit.is_some() || q.cursor.is_some() {
        return Err(ApiError::invalid(
            "`limit` and `cursor` belong to the list endpoint; an export streams every match",
        ));
    }
    let format = q.format.unwrap_or(Format::Ndjson);
    let neutralize = q
        .neutralize_formulas
        .unwrap_or(st.api.csv_neutralize_formulas);
    let detail = json!({
        "format": if format == Format::Csv { "csv" } else { "ndjson" },
        "source": q.source, "key_prefix": q.key_prefix, "changed_since": q.changed_since,
        "removed": q.removed, "field": q.field, "equals": q.equals, "q": q.q,
        "fields": q.fields, "neutralize_formulas": neutralize,
    });
    let p = parse_filters(t.id.as_str(), q)?;
    st.store
        .append_audit(
            st.auth.audit_key(),
            super::audit_entry(
                &t.principal,
                &t.remote,
                t.id.as_str(),
                "export",
                t.id.as_str(),
                detail,
            ),
        )
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let l = &st.api.limits;
    let limits = ExportLimits {
        chunk_rows: l.export_chunk_rows,
        timeout_ms: l.statement_timeout_ms,
        max_scan: l.max_scan_rows as i64,
    };
    let Parsed {
        filter, projection, ..
    } = p;
    let mut cursor = ExportCursor::new(t.db.clone(), filter, format.into(), projection, limits)
        .neutralize_formulas(neutralize);
    tokio::spawn(async move {
        loop {
            match cursor.next().await {
                Ok(Some((text, _))) => {
                    if !text.is_empty() && tx.send(Ok(Bytes::from(text))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "export stopped by a read error");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    // Fused: the compression layer may poll again after the end.
    let stream =
        futures_util::StreamExt::fuse(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
    let (ctype, ext) = match format {
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    Ok((
        [
            (http::header::CONTENT_TYPE, ctype.to_owned()),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-records.{ext}\"", t.id),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_validated() {
        let f = |q: Value| parse_filters("t", serde_json::from_value::<Filters>(q).unwrap());
        assert!(f(json!({"field": "a.b", "equals": "1"})).is_ok());
        assert!(f(json!({"field": "a"})).is_err());
        assert!(f(json!({"field": "a..b", "equals": "1"})).is_err());
        assert!(f(json!({"q": "  "})).is_err());
        assert!(f(json!({"changed_since": -5})).is_err());
        assert!(f(json!({"source": "x".repeat(300)})).is_err());
        let a = f(json!({"source": "a"})).unwrap().fingerprint;
        let b = f(json!({"source": "b"})).unwrap().fingerprint;
        assert_ne!(a, b);
        assert_eq!(
            a,
            f(json!({"source": "a", "fields": "x"}))
                .unwrap()
                .fingerprint
        );
    }
}
