//! Record queries for the API: filtered keyset pages, one record with its versions, pushes
//! within quota, and a tenant's size.
//!
//! Pages are keyset pages on `records.id` (never OFFSET). Filters that SQL can evaluate
//! (source, key prefix, changed since, removed) go into the statement; a field-equals filter
//! is evaluated on the decoded payload. Every page is bounded twice: a filtered scan walks
//! id windows and stops after `max_scan` ids or at the deadline, returning a cursor at the
//! last id examined (so a page may be short, even empty, with a `next`; clients follow
//! `next` until it is absent); and a progress handler interrupts any statement that runs past
//! the deadline (full-text queries, which walk the FTS index instead of id windows).

use std::time::Instant;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::value::RawValue;

use super::base::MAX_RECORD_BYTES;
use super::db::TenantDb;
use super::error::StoreError;
use super::records::RecordWrite;
use super::tenant_admin::{Quotas, TenantSize};
use super::PutOutcome;

/// Filters of a record query. All given filters must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    pub source: Option<String>,
    pub key_prefix: Option<String>,
    /// Records whose current version started at or after this time (ms since epoch).
    pub changed_since_ms: Option<i64>,
    /// `Some(true)`: only records marked removed; `Some(false)`: only present ones.
    pub removed: Option<bool>,
    /// A field (dotted path into the JSON object) equal to a value: a string field equals
    /// the text, any other field's JSON text equals it (`42`, `true`, `null`).
    pub field_equals: Option<(Vec<String>, String)>,
    /// An FTS5 MATCH expression built by `fts::match_expression`.
    pub text_match: Option<String>,
}

/// Bounds of one page's work.
#[derive(Debug, Clone, Copy)]
pub struct ScanBudget {
    pub deadline: Instant,
    /// Most record ids one page may walk past when filters are selective.
    pub max_scan: i64,
    /// The statement limit in ms, for the error message.
    pub timeout_ms: u64,
}

/// One record as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordRow {
    pub id: i64,
    pub source: String,
    pub key: String,
    pub version: i64,
    pub first_seen_ms: i64,
    pub version_since_ms: i64,
    pub last_seen_ms: i64,
    pub removed: bool,
    /// The harvest run that marked the record removed (`null` while it is present).
    pub removed_run: Option<i64>,
    /// The record's JSON object as stored (canonical JSON, passed through unparsed).
    pub fields: Box<RawValue>,
}

/// One record borrowed from the read connection's row and a reused decode buffer: what a
/// [`RowSink`] sees. Serializes exactly as [`RecordRow`] does.
#[derive(Debug, Serialize)]
pub struct RowRef<'a> {
    pub id: i64,
    pub source: &'a str,
    pub key: &'a str,
    pub version: i64,
    pub first_seen_ms: i64,
    pub version_since_ms: i64,
    pub last_seen_ms: i64,
    pub removed: bool,
    pub removed_run: Option<i64>,
    pub fields: &'a RawValue,
}

impl RowRef<'_> {
    pub fn to_owned_row(&self) -> RecordRow {
        RecordRow {
            id: self.id,
            source: self.source.to_owned(),
            key: self.key.to_owned(),
            version: self.version,
            first_seen_ms: self.first_seen_ms,
            version_since_ms: self.version_since_ms,
            last_seen_ms: self.last_seen_ms,
            removed: self.removed,
            removed_run: self.removed_run,
            fields: self.fields.to_owned(),
        }
    }
}

/// Receives a page's records one at a time on the reader thread, so a caller can write its
/// output there without an allocation per record (the list endpoint writes JSON; profiled,
/// per-record `RecordRow`s allocated on one thread and freed on another were a tenth of a
/// list request's CPU).
pub trait RowSink: Send + 'static {
    fn row(&mut self, r: &RowRef<'_>) -> Result<(), StoreError>;
}

/// Collects owned rows: [`TenantDb::list_records`].
impl RowSink for Vec<RecordRow> {
    fn row(&mut self, r: &RowRef<'_>) -> Result<(), StoreError> {
        self.push(r.to_owned_row());
        Ok(())
    }
}

/// A page and where the next one starts (`None` at the end).
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<RecordRow>,
    pub next_after: Option<i64>,
}

/// A superseded version of a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRow {
    pub version: i64,
    pub since_ms: i64,
    pub until_ms: i64,
    pub fields: serde_json::Value,
}

/// Ids walked per window when filters are present.
const WINDOW: i64 = 8192;

// Payloads go through `dict::decode_stored`: harvested records may be compressed with a
// per-source dictionary that lives in the same database.
fn decode_fields(c: &Connection, id: i64, payload: &[u8]) -> Result<serde_json::Value, StoreError> {
    let bytes = super::dict::decode_stored(c, payload, MAX_RECORD_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("record {id}: {e}")))
}

/// The payload's JSON text, checked to be JSON but not turned into a tree.
fn decode_raw(c: &Connection, id: i64, payload: &[u8]) -> Result<Box<RawValue>, StoreError> {
    let bytes = super::dict::decode_stored(c, payload, MAX_RECORD_BYTES)?;
    let text =
        String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(format!("record {id}: {e}")))?;
    RawValue::from_string(text).map_err(|e| StoreError::Corrupt(format!("record {id}: {e}")))
}

/// The JSON text of `bytes` (a decoded payload), checked to be one JSON value.
fn raw_json(id: i64, bytes: &[u8]) -> Result<&RawValue, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("record {id}: {e}")))
}

thread_local! {
    /// The reader thread's payload buffer, reused across records.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Looks up a dotted path in a JSON value.
pub fn lookup<'a>(v: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(v, |v, k| match v {
        serde_json::Value::Object(o) => o.get(k),
        serde_json::Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn field_matches(fields: &serde_json::Value, path: &[String], want: &str) -> bool {
    match lookup(fields, path) {
        Some(serde_json::Value::String(s)) => s == want,
        Some(other) => {
            let text = other.to_string();
            text.as_str() == want
        }
        None => false,
    }
}

struct Guard<'c>(&'c Connection);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.progress_handler(0, None::<fn() -> bool>);
    }
}

fn is_interrupt(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted)
}

/// One page of records after id `after` (synchronous; runs on a read connection).
pub(crate) fn page(
    c: &Connection,
    f: &RecordFilter,
    after: i64,
    limit: usize,
    budget: ScanBudget,
) -> Result<Page, StoreError> {
    let mut rows = Vec::with_capacity(limit.min(1024));
    let next_after = page_into(c, f, after, limit, budget, &mut rows)?;
    Ok(Page { rows, next_after })
}

/// Largest decode buffer a reader thread keeps between pages.
const KEEP_SCRATCH: usize = 256 * 1024;

/// The reader thread's decode buffer, borrowed for one page and handed back on every
/// return path (unless a large record grew it past [`KEEP_SCRATCH`]).
struct Scratch(Vec<u8>);

impl Scratch {
    fn take() -> Self {
        Scratch(
            SCRATCH
                .with(|b| b.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)))
                .unwrap_or_default(),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.capacity() <= KEEP_SCRATCH {
            SCRATCH.with(|b| {
                if let Ok(mut b) = b.try_borrow_mut() {
                    *b = std::mem::take(&mut self.0);
                }
            });
        }
    }
}

/// A page's statement: the filters SQL can evaluate, the cursor bounds, and whether it walks
/// id windows.
struct PageQuery {
    sql: String,
    /// Arguments of the filters; the cursor bounds and the limit follow them.
    args: Vec<SqlValue>,
    windowed: bool,
}

fn page_query(f: &RecordFilter) -> PageQuery {
    let mut sql = String::from(
        "SELECT r.id, r.source, r.key, r.version, r.first_seen_ms, r.version_since_ms,
                r.last_seen_ms, r.removed_run, r.payload FROM records r",
    );
    let mut conds: Vec<&str> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(m) = &f.text_match {
        sql.push_str(" JOIN records_fts ON records_fts.rowid = r.id");
        conds.push("records_fts MATCH ?");
        args.push(SqlValue::Text(m.clone()));
    }
    if let Some(s) = &f.source {
        conds.push("r.source = ?");
        args.push(SqlValue::Text(s.clone()));
    }
    if let Some(p) = &f.key_prefix {
        conds.push("substr(r.key, 1, ?) = ?");
        args.push(SqlValue::Integer(p.chars().count() as i64));
        args.push(SqlValue::Text(p.clone()));
    }
    if let Some(t) = f.changed_since_ms {
        conds.push("r.version_since_ms >= ?");
        args.push(SqlValue::Integer(t));
    }
    match f.removed {
        Some(true) => conds.push("r.removed_run IS NOT NULL"),
        Some(false) => conds.push("r.removed_run IS NULL"),
        None => {}
    }
    let filtered = !conds.is_empty() || f.field_equals.is_some();
    // Full-text queries walk the index's own rowid order; other filtered queries walk id
    // windows so the work per page is bounded by `max_scan`.
    let windowed = filtered && f.text_match.is_none();
    conds.push("r.id > ?");
    if windowed {
        conds.push("r.id <= ?");
    }
    sql.push_str(" WHERE ");
    sql.push_str(&conds.join(" AND "));
    sql.push_str(" ORDER BY r.id LIMIT ?");
    PageQuery {
        sql,
        args,
        windowed,
    }
}

/// One page of records after id `after`, handed to `sink`; returns where the next page
/// starts (`None` at the end).
pub(crate) fn page_into<S: RowSink>(
    c: &Connection,
    f: &RecordFilter,
    after: i64,
    limit: usize,
    budget: ScanBudget,
    sink: &mut S,
) -> Result<Option<i64>, StoreError> {
    let mut scratch = Scratch::take();
    let buf = &mut scratch.0;
    let deadline = budget.deadline;
    c.progress_handler(4000, Some(move || Instant::now() > deadline));
    let _guard = Guard(c);
    let map_err = |e: rusqlite::Error| {
        if is_interrupt(&e) {
            StoreError::QueryTimeout(budget.timeout_ms)
        } else {
            StoreError::from_sqlite(e)
        }
    };
    let PageQuery {
        sql,
        args,
        windowed,
    } = page_query(f);
    let max_id: i64 = if windowed {
        c.prepare_cached("SELECT coalesce(max(id), 0) FROM records")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(map_err)?
    } else {
        i64::MAX
    };
    let mut st = c.prepare_cached(&sql).map_err(map_err)?;
    let mut emitted = 0usize;
    let mut last_emitted = after;
    let mut cursor = after;
    let mut scanned = 0i64;
    loop {
        let hi = if windowed {
            cursor.saturating_add(WINDOW)
        } else {
            i64::MAX
        };
        let mut a = args.clone();
        a.push(SqlValue::Integer(cursor));
        if windowed {
            a.push(SqlValue::Integer(hi));
        }
        let need = limit - emitted;
        // With a field filter some rows are dropped after decoding: fetch a window's worth.
        let fetch = if f.field_equals.is_some() {
            WINDOW
        } else {
            need as i64
        };
        a.push(SqlValue::Integer(fetch));
        let mut q = st.query(params_from_iter(a.iter())).map_err(map_err)?;
        let mut last_seen_id = None;
        let mut got = 0i64;
        let mut full = false;
        while let Some(r) = q.next().map_err(map_err)? {
            let id: i64 = r.get(0).map_err(map_err)?;
            last_seen_id = Some(id);
            got += 1;
            // Borrowed from SQLite's row buffer: no copy of the compressed payload.
            let payload = r.get_ref(8).map_err(map_err)?.as_blob().map_err(|e| {
                StoreError::Corrupt(format!("record {id}: payload is not a blob: {e}"))
            })?;
            super::dict::decode_stored_into(c, payload, MAX_RECORD_BYTES, buf)?;
            let fields = raw_json(id, buf)?;
            if let Some((path, want)) = &f.field_equals {
                let v: serde_json::Value = serde_json::from_str(fields.get())
                    .map_err(|e| StoreError::Corrupt(format!("record {id}: {e}")))?;
                if !field_matches(&v, path, want) {
                    continue;
                }
            }
            let removed_run: Option<i64> = r.get(7).map_err(map_err)?;
            let text = |i: usize| -> Result<&str, StoreError> {
                r.get_ref(i)
                    .and_then(|v| v.as_str().map_err(Into::into))
                    .map_err(map_err)
            };
            sink.row(&RowRef {
                id,
                source: text(1)?,
                key: text(2)?,
                version: r.get(3).map_err(map_err)?,
                first_seen_ms: r.get(4).map_err(map_err)?,
                version_since_ms: r.get(5).map_err(map_err)?,
                last_seen_ms: r.get(6).map_err(map_err)?,
                removed: removed_run.is_some(),
                removed_run,
                fields,
            })?;
            emitted += 1;
            last_emitted = id;
            if emitted == limit {
                full = true;
                break;
            }
        }
        if full {
            return Ok(Some(last_emitted));
        }
        if windowed {
            cursor = hi;
            scanned += WINDOW;
            if cursor >= max_id {
                return Ok(None);
            }
        } else {
            // The statement ran dry: that is the end.
            if got < fetch {
                return Ok(None);
            }
            cursor = last_seen_id.unwrap_or(cursor);
            scanned += got;
        }
        if scanned >= budget.max_scan || Instant::now() >= deadline {
            return Ok(Some(cursor));
        }
    }
}

impl TenantDb {
    /// One page of records matching `f`, after id `after`, handed to `sink` on the reader
    /// thread; returns the sink and where the next page starts.
    pub async fn list_records_into<S: RowSink>(
        &self,
        f: RecordFilter,
        after: i64,
        limit: usize,
        budget: ScanBudget,
        mut sink: S,
    ) -> Result<(S, Option<i64>), StoreError> {
        self.0
            .read(move |c| {
                let next = page_into(c, &f, after, limit, budget, &mut sink)?;
                Ok((sink, next))
            })
            .await
    }

    /// One page of records matching `f`, after id `after`.
    pub async fn list_records(
        &self,
        f: RecordFilter,
        after: i64,
        limit: usize,
        budget: ScanBudget,
    ) -> Result<Page, StoreError> {
        self.0
            .read(move |c| page(c, &f, after, limit, budget))
            .await
    }

    /// One record by id with up to `max_versions` of its newest superseded versions, and the
    /// total number of superseded versions.
    pub async fn record_with_versions(
        &self,
        id: i64,
        max_versions: usize,
    ) -> Result<(RecordRow, Vec<VersionRow>, i64), StoreError> {
        self.0
            .read(move |c| {
                let row = c
                    .prepare_cached(
                        "SELECT id, source, key, version, first_seen_ms, version_since_ms,
                                last_seen_ms, removed_run, payload
                         FROM records WHERE id = ?1",
                    )
                    .map_err(StoreError::from_sqlite)?
                    .query_row([id], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, i64>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, Option<i64>>(7)?,
                            r.get::<_, Vec<u8>>(8)?,
                        ))
                    })
                    .optional()
                    .map_err(StoreError::from_sqlite)?
                    .ok_or(StoreError::RecordNotFound(id))?;
                let record = RecordRow {
                    id: row.0,
                    source: row.1,
                    key: row.2,
                    version: row.3,
                    first_seen_ms: row.4,
                    version_since_ms: row.5,
                    last_seen_ms: row.6,
                    removed: row.7.is_some(),
                    removed_run: row.7,
                    fields: decode_raw(c, id, &row.8)?,
                };
                let total: i64 = c
                    .prepare_cached("SELECT count(*) FROM record_versions WHERE record_id = ?1")
                    .and_then(|mut st| st.query_row([id], |r| r.get(0)))
                    .map_err(StoreError::from_sqlite)?;
                let mut st = c
                    .prepare_cached(
                        "SELECT version, since_ms, until_ms, payload FROM record_versions
                         WHERE record_id = ?1 ORDER BY version DESC LIMIT ?2",
                    )
                    .map_err(StoreError::from_sqlite)?;
                let raw = st
                    .query_map(params![id, max_versions as i64], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, Vec<u8>>(3)?,
                        ))
                    })
                    .map_err(StoreError::from_sqlite)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from_sqlite)?;
                let versions = raw
                    .into_iter()
                    .map(|(version, since_ms, until_ms, p)| {
                        Ok(VersionRow {
                            version,
                            since_ms,
                            until_ms,
                            fields: decode_fields(c, id, &p)?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok((record, versions, total))
            })
            .await
    }

    /// Writes records in one operation, refused whole if it would pass the records or
    /// storage quota (checked inside the write, after the rows are in, so the check sees
    /// exactly what would commit).
    pub async fn put_records_within_quota(
        &self,
        tenant: String,
        recs: Vec<RecordWrite>,
        quotas: Quotas,
    ) -> Result<Vec<PutOutcome>, StoreError> {
        self.0
            .write(move |c| {
                let out = recs
                    .iter()
                    .map(|r| super::records::put(c, r))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(limit) = quotas.records {
                    let n = record_count(c)?;
                    if n > limit {
                        return Err(StoreError::QuotaExceeded {
                            tenant,
                            quota: "records",
                            limit,
                            would_be: n,
                        });
                    }
                }
                if let Some(limit) = quotas.storage_bytes {
                    let n = db_bytes(c)?;
                    if n > limit {
                        return Err(StoreError::QuotaExceeded {
                            tenant,
                            quota: "storage_bytes",
                            limit,
                            would_be: n,
                        });
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Database plus WAL bytes and the record count.
    pub async fn size(&self) -> Result<TenantSize, StoreError> {
        let path = self.0.path().to_path_buf();
        self.0
            .read(move |c| {
                let mut wal = path.into_os_string();
                wal.push("-wal");
                let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len() as i64);
                Ok(TenantSize {
                    storage_bytes: db_bytes(c)? + wal_bytes,
                    records: record_count(c)?,
                })
            })
            .await
    }
}

fn record_count(c: &Connection) -> Result<i64, StoreError> {
    c.query_row("SELECT records FROM record_stats WHERE id = 1", [], |r| {
        r.get(0)
    })
    .map_err(StoreError::from_sqlite)
}

fn db_bytes(c: &Connection) -> Result<i64, StoreError> {
    let pages: i64 = c
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(StoreError::from_sqlite)?;
    let size: i64 = c
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(StoreError::from_sqlite)?;
    Ok(pages * size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_row_serializes_exactly_as_an_owned_one() {
        let fields = RawValue::from_string(r#"{"a":[1,"x\"y"],"b":null}"#.into()).unwrap();
        let r = RowRef {
            id: 3,
            source: "s\"1",
            key: "k/ü",
            version: 2,
            first_seen_ms: 10,
            version_since_ms: 20,
            last_seen_ms: 30,
            removed: true,
            removed_run: Some(7),
            fields: &fields,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(&r.to_owned_row()).unwrap()
        );
    }
}
