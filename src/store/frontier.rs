//! The durable crawl frontier and per-URL fetch state of a tenant's sources.
//!
//! A run's URLs live in `frontier` (one row per source and URL, so a URL is fetched once
//! per run however often it is linked). Fetchers claim pending rows in batches, so memory
//! stays bounded however many URLs a crawl discovers. Everything a fetched page produces —
//! its records, the links it adds, its conditional-GET state and its own `done` mark — is
//! committed by [`TenantDb::commit_page`] in one writer operation: after a crash a page is
//! either wholly stored (and not fetched again) or not at all.

use rusqlite::{params, Connection, OptionalExtension};

use super::db::TenantDb;
use super::error::StoreError;
use super::records::{put_with_id, PutOutcome, RecordWrite};

/// Frontier row states.
pub const PENDING: i64 = 0;
pub const CLAIMED: i64 = 1;
pub const DONE: i64 = 2;
pub const FAILED: i64 = 3;

/// A URL to add to the frontier.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub url: String,
    /// What the runner does with it (`listing`, `detail`, `sitemap`, `page`, `api`, ...).
    pub kind: String,
    pub depth: u32,
    /// Runner data carried with the URL (JSON): a listing record for a detail page,
    /// the paging state of an API request.
    pub data: Option<String>,
}

/// A claimed frontier row.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierEntry {
    pub id: i64,
    pub url: String,
    pub kind: String,
    pub depth: u32,
    pub data: Option<String>,
}

/// Conditional-GET state of one URL, and what it yielded (replayed on 304).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub body_hash: Option<Vec<u8>>,
    /// Runner JSON: the record keys and follow-up URLs of the last full response.
    pub yielded: Option<String>,
}

/// Everything one fetched URL produced.
#[derive(Debug, Clone, Default)]
pub struct PageCommit {
    pub source: String,
    pub run_id: i64,
    pub entry_id: i64,
    /// `DONE` or `FAILED`.
    pub state: i64,
    pub records: Vec<RecordWrite>,
    /// Keys of records known unchanged (304 or same body): their `last_seen` moves.
    pub touch_keys: Vec<String>,
    pub seen_ms: i64,
    pub new_entries: Vec<NewEntry>,
    /// Most rows the source's frontier may hold; links beyond it are dropped and counted.
    pub frontier_cap: u64,
    /// Replaces the URL's fetch state (`None` leaves it).
    pub fetch_state: Option<(String, FetchState)>,
}

/// What [`TenantDb::commit_page`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageCommitted {
    pub outcomes: Vec<PutOutcome>,
    /// New frontier rows (links already present are not counted).
    pub inserted: u64,
    /// Links dropped because the frontier reached its cap.
    pub dropped: u64,
}

/// Counts of a source's frontier by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrontierCounts {
    pub pending: u64,
    pub claimed: u64,
    pub done: u64,
    pub failed: u64,
}

impl FrontierCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.claimed + self.done + self.failed
    }
}

fn counts(c: &Connection, source: &str) -> Result<FrontierCounts, StoreError> {
    let mut st = c
        .prepare_cached("SELECT state, count(*) FROM frontier WHERE source = ?1 GROUP BY state")
        .map_err(StoreError::from_sqlite)?;
    let mut out = FrontierCounts::default();
    let rows = st
        .query_map([source], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .map_err(StoreError::from_sqlite)?;
    for row in rows {
        let (state, n) = row.map_err(StoreError::from_sqlite)?;
        let n = n.max(0) as u64;
        match state {
            PENDING => out.pending = n,
            CLAIMED => out.claimed = n,
            DONE => out.done = n,
            _ => out.failed += n,
        }
    }
    Ok(out)
}

/// Frontier rows of `source` for the page cap, looked up once per writer op that adds
/// links. Counting is a scan of the source's rows, so when even an upper bound (the span of
/// row ids of the whole table) plus every link the op may add (`adding`) stays within `cap`,
/// the bound is returned instead: no link can be dropped in that op either way.
fn frontier_len(c: &Connection, source: &str, cap: u64, adding: u64) -> Result<u64, StoreError> {
    let bound = c
        // Two subqueries: SQLite answers a lone min() or max() from the b-tree's ends, but
        // scans the table for both in one SELECT.
        .prepare_cached(
            "SELECT coalesce((SELECT max(id) FROM frontier) - (SELECT min(id) FROM frontier) + 1, 0)",
        )
        .map_err(StoreError::from_sqlite)?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(StoreError::from_sqlite)?;
    if bound.saturating_add(adding) <= cap {
        return Ok(bound);
    }
    c.prepare_cached("SELECT count(*) FROM frontier WHERE source = ?1")
        .map_err(StoreError::from_sqlite)?
        .query_row([source], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(StoreError::from_sqlite)
}

/// Adds `entries` (URLs already present are skipped) while the frontier holds fewer than
/// `cap` rows; `total` is its current size and is kept up to date. Returns (inserted,
/// dropped at the cap).
fn insert_entries(
    c: &Connection,
    source: &str,
    run_id: i64,
    entries: &[NewEntry],
    cap: u64,
    total: &mut u64,
) -> Result<(u64, u64), StoreError> {
    let e = StoreError::from_sqlite;
    let mut ins = c
        .prepare_cached(
            "INSERT INTO frontier (source, url, run_id, kind, depth, state, data)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6) ON CONFLICT (source, url) DO NOTHING",
        )
        .map_err(e)?;
    let (mut inserted, mut dropped) = (0, 0);
    for n in entries {
        if *total >= cap {
            // At the cap only links not already present count as dropped.
            let known = c
                .prepare_cached("SELECT 1 FROM frontier WHERE source = ?1 AND url = ?2")
                .map_err(e)?
                .query_row(params![source, n.url], |_| Ok(()))
                .optional()
                .map_err(e)?
                .is_some();
            dropped += u64::from(!known);
            continue;
        }
        let k = ins
            .execute(params![source, n.url, run_id, n.kind, n.depth, n.data])
            .map_err(e)? as u64;
        inserted += k;
        *total += k;
    }
    Ok((inserted, dropped))
}

/// Stores one page's results (see [`TenantDb::commit_pages`]); `total` is the source's
/// frontier size when known.
fn commit_one(
    c: &Connection,
    p: &PageCommit,
    total: &mut Option<u64>,
    adding: u64,
) -> Result<PageCommitted, StoreError> {
    let e = StoreError::from_sqlite;
    let mut outcomes = Vec::with_capacity(p.records.len());
    for r in &p.records {
        let w = put_with_id(c, r)?;
        // In this op's savepoint: a change is logged exactly when its record is written.
        super::changes::note(c, p.run_id, &w)?;
        outcomes.push(w.outcome);
    }
    if !p.touch_keys.is_empty() {
        let mut st = c
            .prepare_cached(
                "UPDATE records SET last_seen_ms = max(last_seen_ms, ?3), removed_run = NULL
                 WHERE source = ?1 AND key = ?2",
            )
            .map_err(e)?;
        for k in &p.touch_keys {
            super::changes::note_if_restored(c, p.run_id, &p.source, k)?;
            st.execute(params![p.source, k, p.seen_ms]).map_err(e)?;
        }
    }
    let (inserted, dropped) = if p.new_entries.is_empty() {
        (0, 0)
    } else {
        let t = match total {
            Some(t) => t,
            None => total.insert(frontier_len(c, &p.source, p.frontier_cap, adding)?),
        };
        insert_entries(c, &p.source, p.run_id, &p.new_entries, p.frontier_cap, t)?
    };
    if let Some((url, fs)) = &p.fetch_state {
        c.prepare_cached(
            "INSERT INTO fetch_state (source, url, etag, last_modified, body_hash, yield,
                                      fetched_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (source, url) DO UPDATE SET etag = ?3, last_modified = ?4,
                 body_hash = ?5, yield = ?6, fetched_ms = ?7",
        )
        .map_err(e)?
        .execute(params![
            p.source,
            url,
            fs.etag,
            fs.last_modified,
            fs.body_hash,
            fs.yielded,
            p.seen_ms
        ])
        .map_err(e)?;
    }
    if p.entry_id > 0 {
        c.prepare_cached("UPDATE frontier SET state = ?2 WHERE id = ?1")
            .map_err(e)?
            .execute(params![p.entry_id, p.state])
            .map_err(e)?;
    }
    Ok(PageCommitted {
        outcomes,
        inserted,
        dropped,
    })
}

impl TenantDb {
    /// Starts a fresh frontier for `source`: drops the previous run's rows, adds `starts`.
    pub async fn frontier_reset(
        &self,
        source: &str,
        run_id: i64,
        starts: Vec<NewEntry>,
    ) -> Result<(), StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                c.execute("DELETE FROM frontier WHERE source = ?1", [&source])
                    .map_err(StoreError::from_sqlite)?;
                let mut total = 0;
                insert_entries(c, &source, run_id, &starts, u64::MAX, &mut total)?;
                Ok(())
            })
            .await
    }

    /// Makes the URLs a killed run had in flight pending again; returns the counts after.
    pub async fn frontier_resume(&self, source: &str) -> Result<FrontierCounts, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                c.execute(
                    "UPDATE frontier SET state = 0 WHERE source = ?1 AND state = 1",
                    [&source],
                )
                .map_err(StoreError::from_sqlite)?;
                counts(c, &source)
            })
            .await
    }

    /// Claims up to `n` pending URLs (oldest first) and marks them in flight.
    pub async fn frontier_claim(
        &self,
        source: &str,
        n: usize,
    ) -> Result<Vec<FrontierEntry>, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let rows: Vec<FrontierEntry> = c
                    .prepare_cached(
                        "SELECT id, url, kind, depth, data FROM frontier
                         WHERE source = ?1 AND state = 0 ORDER BY id LIMIT ?2",
                    )
                    .map_err(e)?
                    .query_map(params![source, n as i64], |r| {
                        Ok(FrontierEntry {
                            id: r.get(0)?,
                            url: r.get(1)?,
                            kind: r.get(2)?,
                            depth: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
                            data: r.get(4)?,
                        })
                    })
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                let mut up = c
                    .prepare_cached("UPDATE frontier SET state = 1 WHERE id = ?1")
                    .map_err(e)?;
                for r in &rows {
                    up.execute([r.id]).map_err(e)?;
                }
                Ok(rows)
            })
            .await
    }

    pub async fn frontier_counts(&self, source: &str) -> Result<FrontierCounts, StoreError> {
        let source = source.to_owned();
        self.0.read(move |c| counts(c, &source)).await
    }

    /// URLs of `source` in a given state (tests and diagnostics; at most `limit`).
    pub async fn frontier_urls(
        &self,
        source: &str,
        state: i64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare(
                        "SELECT url FROM frontier WHERE source = ?1 AND state = ?2
                         ORDER BY id LIMIT ?3",
                    )
                    .map_err(e)?
                    .query_map(params![source, state, limit as i64], |r| r.get(0))
                    .map_err(e)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// Whether any URL of `source` has conditional-GET state (a first harvest has none,
    /// and then skips looking it up per URL).
    pub async fn has_fetch_state(&self, source: &str) -> Result<bool, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM fetch_state WHERE source = ?1)",
                    [source],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n != 0)
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// The conditional-GET state of one URL.
    pub async fn fetch_state(
        &self,
        source: &str,
        url: &str,
    ) -> Result<Option<FetchState>, StoreError> {
        let (source, url) = (source.to_owned(), url.to_owned());
        self.0
            .read(move |c| {
                c.prepare_cached(
                    "SELECT etag, last_modified, body_hash, yield FROM fetch_state
                     WHERE source = ?1 AND url = ?2",
                )
                .map_err(StoreError::from_sqlite)?
                .query_row(params![source, url], |r| {
                    Ok(FetchState {
                        etag: r.get(0)?,
                        last_modified: r.get(1)?,
                        body_hash: r.get(2)?,
                        yielded: r.get(3)?,
                    })
                })
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Stores one fetched URL's results and marks it done (or failed), atomically.
    pub async fn commit_page(&self, p: PageCommit) -> Result<PageCommitted, StoreError> {
        let mut v = self.commit_pages(vec![p]).await?;
        v.pop()
            .ok_or_else(|| StoreError::WriteFailed("empty commit".into()))
    }

    /// Stores several URLs' results in one writer operation: each page wholly or not at
    /// all (the operation is one savepoint), fewer operations for the writer.
    pub async fn commit_pages(
        &self,
        pages: Vec<PageCommit>,
    ) -> Result<Vec<PageCommitted>, StoreError> {
        self.0
            .write(move |c| {
                let mut total = None;
                let mut source: Option<&str> = None;
                // Links the whole op may add (all sources): bounds what a cap check can see.
                let adding = pages.iter().map(|p| p.new_entries.len() as u64).sum();
                pages
                    .iter()
                    .map(|p| {
                        if source != Some(p.source.as_str()) {
                            total = None;
                            source = Some(&p.source);
                        }
                        commit_one(c, p, &mut total, adding)
                    })
                    .collect()
            })
            .await
    }

    /// Current fields of a record (for joining a changed listing with an unchanged detail).
    pub async fn record_fields(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, StoreError> {
        Ok(self
            .get_record(source, key)
            .await?
            .and_then(|r| match r.fields {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            }))
    }
}
