//! A plain, uncompressed SQLite copy of a tenant's current records, for tools that cannot
//! read Gleaner's compressed payloads (the Datasette comparison in scripts/bench-api.sh).
//!
//! Rows are read in keyset chunks from a read connection and written in one transaction per
//! chunk, so memory stays flat whatever the size.

use std::path::Path;

use rusqlite::{params, Connection};

use super::base::MAX_RECORD_BYTES;
use super::db::TenantDb;
use super::error::StoreError;

const CHUNK: i64 = 10_000;

type Row = (i64, String, String, i64, i64, i64, i64, bool, Vec<u8>);

impl TenantDb {
    /// Writes `records(id, source, key, version, first_seen_ms, version_since_ms,
    /// last_seen_ms, removed, fields)` with `fields` as JSON text into a new file at `out`.
    pub async fn export_plain_sqlite(&self, out: &Path) -> Result<u64, StoreError> {
        let out = out.to_path_buf();
        let wrap = |source| StoreError::Open {
            path: out.clone(),
            source,
        };
        let _ = std::fs::remove_file(&out);
        let dst = Connection::open(&out).map_err(wrap)?;
        dst.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
             CREATE TABLE records (id INTEGER PRIMARY KEY, source TEXT NOT NULL, key TEXT NOT NULL,
               version INTEGER NOT NULL, first_seen_ms INTEGER NOT NULL,
               version_since_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
               removed INTEGER NOT NULL, fields TEXT NOT NULL);",
        )
        .map_err(wrap)?;
        let dst = std::sync::Arc::new(std::sync::Mutex::new(dst));
        let mut after = 0i64;
        let mut n = 0u64;
        loop {
            let rows: Vec<Row> = self
                .0
                .read(move |c| {
                    let mut st = c
                        .prepare_cached(
                            "SELECT id, source, key, version, first_seen_ms, version_since_ms,
                                    last_seen_ms, removed_run IS NOT NULL, payload
                             FROM records WHERE id > ?1 ORDER BY id LIMIT ?2",
                        )
                        .map_err(StoreError::from_sqlite)?;
                    let rows = st
                        .query_map(params![after, CHUNK], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                                r.get(7)?,
                                r.get(8)?,
                            ))
                        })
                        .map_err(StoreError::from_sqlite)?;
                    let mut rows: Vec<Row> = rows
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(StoreError::from_sqlite)?;
                    // Decode here, next to the dictionaries a payload may need.
                    for r in &mut rows {
                        r.8 = super::dict::decode_stored(c, &r.8, MAX_RECORD_BYTES)?;
                    }
                    Ok(rows)
                })
                .await?;
            let Some(last) = rows.last().map(|r| r.0) else {
                break;
            };
            after = last;
            n += rows.len() as u64;
            let dst = std::sync::Arc::clone(&dst);
            tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                let mut d = dst
                    .lock()
                    .map_err(|_| StoreError::Join("poisoned".into()))?;
                let tx = d.transaction().map_err(StoreError::from_sqlite)?;
                {
                    let mut ins = tx
                        .prepare_cached(
                            "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        )
                        .map_err(StoreError::from_sqlite)?;
                    for r in rows {
                        let fields = String::from_utf8(r.8)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        ins.execute(params![r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, fields])
                            .map_err(StoreError::from_sqlite)?;
                    }
                }
                tx.commit().map_err(StoreError::from_sqlite)
            })
            .await
            .map_err(|e| StoreError::Join(e.to_string()))??;
        }
        Ok(n)
    }
}
