//! Records in a tenant database: upsert-if-changed with version history.
//!
//! A record is identified by (source, key). Writing an unchanged record (same content hash)
//! only moves `last_seen`; a changed one moves the current version into `record_versions`
//! and becomes version n+1. Payloads arrive already compressed (see [`super::codec`]), so
//! the writer thread spends its time on SQLite, not on zstd.

use rusqlite::{params, Connection, OptionalExtension};

use super::codec::EncodedPayload;
use super::db::Db;
use super::error::StoreError;

/// Largest decoded record the store hands out; larger payloads are refused as corrupt input.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// One record to write.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    pub source: String,
    pub key: String,
    pub payload: EncodedPayload,
    pub seen_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    New,
    Changed { version: i64 },
    Unchanged,
}

/// A stored record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub id: i64,
    pub source: String,
    pub key: String,
    pub version: i64,
    pub fields: serde_json::Value,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// A tenant's database.
#[derive(Clone)]
pub struct TenantDb(pub(crate) Db);

impl TenantDb {
    pub fn db(&self) -> &Db {
        &self.0
    }

    /// Writes one record; resolves once it is committed.
    pub async fn put_record(&self, rec: RecordWrite) -> Result<PutOutcome, StoreError> {
        self.0.write(move |c| put(c, &rec)).await
    }

    /// Writes many records in one operation (one savepoint): all or none.
    pub async fn put_records(&self, recs: Vec<RecordWrite>) -> Result<Vec<PutOutcome>, StoreError> {
        self.0
            .write(move |c| recs.iter().map(|r| put(c, r)).collect())
            .await
    }

    pub async fn get_record(
        &self,
        source: &str,
        key: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let (source, key) = (source.to_owned(), key.to_owned());
        self.0
            .read(move |c| {
                let row = c
                    .query_row(
                        "SELECT id, version, payload, first_seen_ms, last_seen_ms
                         FROM records WHERE source = ?1 AND key = ?2",
                        params![source, key],
                        |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Vec<u8>>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, i64>(4)?,
                            ))
                        },
                    )
                    .optional()
                    .map_err(StoreError::from_sqlite)?;
                let Some((id, version, payload, first_seen_ms, last_seen_ms)) = row else {
                    return Ok(None);
                };
                let bytes = super::dict::decode_stored(c, &payload, MAX_RECORD_BYTES)?;
                let fields = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("record {source}/{key}: {e}")))?;
                Ok(Some(StoredRecord {
                    id,
                    source,
                    key,
                    version,
                    fields,
                    first_seen_ms,
                    last_seen_ms,
                }))
            })
            .await
    }

    /// Number of current records (all sources).
    pub async fn count_records(&self) -> Result<i64, StoreError> {
        self.0
            .read(|c| {
                c.query_row("SELECT count(*) FROM records", [], |r| r.get(0))
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }
}

pub(crate) fn put(c: &Connection, rec: &RecordWrite) -> Result<PutOutcome, StoreError> {
    let e = StoreError::from_sqlite;
    let current = c
        .prepare_cached("SELECT id, version, hash FROM records WHERE source = ?1 AND key = ?2")
        .map_err(e)?
        .query_row(params![rec.source, rec.key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()
        .map_err(e)?;
    let Some((id, version, hash)) = current else {
        c.prepare_cached(
            "INSERT INTO records (source, key, version, hash, payload, first_seen_ms,
                                  version_since_ms, last_seen_ms)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?5, ?5)",
        )
        .map_err(e)?
        .execute(params![
            rec.source,
            rec.key,
            &rec.payload.hash[..],
            rec.payload.compressed,
            rec.seen_ms
        ])
        .map_err(e)?;
        return Ok(PutOutcome::New);
    };
    if hash == rec.payload.hash {
        c.prepare_cached("UPDATE records SET last_seen_ms = max(last_seen_ms, ?2), removed_run = NULL WHERE id = ?1")
            .map_err(e)?
            .execute(params![id, rec.seen_ms])
            .map_err(e)?;
        return Ok(PutOutcome::Unchanged);
    }
    c.prepare_cached(
        "INSERT INTO record_versions (record_id, version, hash, payload, since_ms, until_ms)
         SELECT id, version, hash, payload, version_since_ms, ?2 FROM records WHERE id = ?1",
    )
    .map_err(e)?
    .execute(params![id, rec.seen_ms])
    .map_err(e)?;
    let next = version + 1;
    c.prepare_cached(
        "UPDATE records SET version = ?2, hash = ?3, payload = ?4, version_since_ms = ?5,
                            last_seen_ms = ?5, removed_run = NULL
         WHERE id = ?1",
    )
    .map_err(e)?
    .execute(params![
        id,
        next,
        &rec.payload.hash[..],
        rec.payload.compressed,
        rec.seen_ms
    ])
    .map_err(e)?;
    Ok(PutOutcome::Changed { version: next })
}
