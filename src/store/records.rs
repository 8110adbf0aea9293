//! Records in a tenant database: upsert-if-changed with version history.
//!
//! A record is identified by (source, key). Writing an unchanged record (same content hash)
//! only moves `last_seen`; a changed one moves the current version into `record_versions`
//! and becomes version n+1. Payloads arrive already compressed, with their full-text index
//! text extracted (see [`super::codec`]), so the writer thread spends its time on SQLite,
//! not on zstd or JSON.
//!
//! [`put`] is the only code that inserts `records` rows or changes their payload: it stages
//! their `records_fts` rows in the same savepoint (see [`super::fts`]).

use rusqlite::{params, Connection, OptionalExtension};

use super::base::MAX_RECORD_BYTES;
use super::codec::EncodedPayload;
use super::db::TenantDb;
use super::error::StoreError;

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

impl TenantDb {
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

/// What [`put_with_id`] did, for the run's change log (see [`super::changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    pub(crate) id: i64,
    /// The record's version after the write.
    pub(crate) version: i64,
    pub(crate) outcome: PutOutcome,
    /// The record was marked removed and is present again.
    pub(crate) restored: bool,
}

pub(crate) fn put(c: &Connection, rec: &RecordWrite) -> Result<PutOutcome, StoreError> {
    put_with_id(c, rec).map(|w| w.outcome)
}

/// [`put`], also saying which row it wrote and whether that row was marked removed.
pub(crate) fn put_with_id(c: &Connection, rec: &RecordWrite) -> Result<Written, StoreError> {
    let e = StoreError::from_sqlite;
    let current = c
        .prepare_cached(
            "SELECT id, version, hash, removed_run IS NOT NULL FROM records
             WHERE source = ?1 AND key = ?2",
        )
        .map_err(e)?
        .query_row(params![rec.source, rec.key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })
        .optional()
        .map_err(e)?;
    let restored = current.as_ref().is_some_and(|c| c.3);
    let written = |id, version, outcome| Written {
        id,
        version,
        outcome,
        restored,
    };
    let Some((id, version, hash, _)) = current else {
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
        let id = c.last_insert_rowid();
        super::fts::stage(c, id, &rec.payload.text, false).map_err(e)?;
        return Ok(written(id, 1, PutOutcome::New));
    };
    if hash == rec.payload.hash {
        c.prepare_cached("UPDATE records SET last_seen_ms = max(last_seen_ms, ?2), removed_run = NULL WHERE id = ?1")
            .map_err(e)?
            .execute(params![id, rec.seen_ms])
            .map_err(e)?;
        return Ok(written(id, version, PutOutcome::Unchanged));
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
    super::fts::stage(c, id, &rec.payload.text, true).map_err(e)?;
    Ok(written(id, next, PutOutcome::Changed { version: next }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::schema::{migrate, DbKind};
    use serde_json::json;

    /// Asserts that `records_fts` holds exactly the text of every current record: for each
    /// term of any current or past version, the index finds the same records as an index
    /// rebuilt from the payloads.
    pub(crate) fn assert_index_exact(c: &Connection) {
        super::super::fts::flush(c).unwrap();
        c.execute_batch(
            "DROP TABLE IF EXISTS temp.want_fts; DROP TABLE IF EXISTS temp.terms_fts;
             DROP TABLE IF EXISTS temp.terms;
             CREATE VIRTUAL TABLE temp.want_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
             CREATE VIRTUAL TABLE temp.terms_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
             CREATE VIRTUAL TABLE temp.terms USING fts5vocab(temp, terms_fts, row);",
        )
        .unwrap();
        let text_of = |payload: Vec<u8>| {
            let bytes = super::super::dict::decode_stored(c, &payload, MAX_RECORD_BYTES).unwrap();
            super::super::text::record_text(&serde_json::from_slice(&bytes).unwrap())
        };
        let current: Vec<(i64, Vec<u8>)> = c
            .prepare("SELECT id, payload FROM records")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let past: Vec<Vec<u8>> = c
            .prepare("SELECT payload FROM record_versions")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (id, p) in current {
            let t = text_of(p);
            c.execute(
                "INSERT INTO temp.want_fts (rowid, text) VALUES (?1, ?2)",
                params![id, t],
            )
            .unwrap();
            c.execute("INSERT INTO temp.terms_fts (text) VALUES (?1)", [t])
                .unwrap();
        }
        for p in past {
            c.execute(
                "INSERT INTO temp.terms_fts (text) VALUES (?1)",
                [text_of(p)],
            )
            .unwrap();
        }
        let terms: Vec<String> = c
            .prepare("SELECT term FROM temp.terms")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!terms.is_empty());
        let hits = |table: &str, term: &str| -> Vec<i64> {
            c.prepare(&format!(
                "SELECT rowid FROM {table} WHERE {table} MATCH ?1 ORDER BY rowid"
            ))
            .unwrap()
            .query_map([format!("\"{}\"", term.replace('"', "\"\""))], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        for t in &terms {
            assert_eq!(hits("records_fts", t), hits("want_fts", t), "term {t:?}");
        }
    }

    fn rec(key: &str, v: serde_json::Value) -> RecordWrite {
        RecordWrite {
            source: "s".into(),
            key: key.into(),
            payload: super::super::codec::encode(&v).unwrap(),
            seen_ms: 1,
        }
    }

    #[test]
    fn the_index_follows_inserts_changes_removals_and_rollbacks() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.db");
        let mut c = Connection::open(&p).unwrap();
        migrate(
            &mut c,
            DbKind::Tenant,
            &p,
            Some(super::super::fts::TENANT_WRITER),
        )
        .unwrap();
        // Searches what a commit would make visible (the writer flushes before COMMIT).
        let search = |c: &Connection, q: &str| -> Vec<i64> {
            super::super::fts::flush(c).unwrap();
            c.prepare("SELECT rowid FROM records_fts WHERE records_fts MATCH ?1 ORDER BY rowid")
                .unwrap()
                .query_map([super::super::fts::match_expression(q).unwrap()], |r| {
                    r.get(0)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            put(&c, &rec("a", json!({"t": "alpha zebra"}))).unwrap(),
            PutOutcome::New
        );
        assert_eq!(
            put(&c, &rec("b", json!({"t": "bravo", "n": ["zebra café"]}))).unwrap(),
            PutOutcome::New
        );
        assert_eq!(search(&c, "zebra"), vec![1, 2]);
        assert_eq!(search(&c, "cafe"), vec![2], "diacritics are folded");
        // Unchanged: no second index row.
        assert_eq!(
            put(&c, &rec("a", json!({"t": "alpha zebra"}))).unwrap(),
            PutOutcome::Unchanged
        );
        assert_eq!(search(&c, "alpha"), vec![1]);
        // Changed: the old words leave the index, the new ones enter it.
        assert_eq!(
            put(&c, &rec("a", json!({"t": "charlie"}))).unwrap(),
            PutOutcome::Changed { version: 2 }
        );
        assert_eq!(search(&c, "zebra"), vec![2]);
        assert!(search(&c, "alpha").is_empty());
        assert_eq!(search(&c, "charlie"), vec![1]);
        assert_index_exact(&c);
        // A write rolled back (a failed operation's savepoint) leaves the index as it was.
        c.execute_batch("SAVEPOINT op").unwrap();
        put(&c, &rec("a", json!({"t": "delta"}))).unwrap();
        put(&c, &rec("c", json!({"t": "delta echo"}))).unwrap();
        assert_eq!(search(&c, "delta"), vec![1, 3]);
        c.execute_batch("ROLLBACK TO op; RELEASE op").unwrap();
        assert!(search(&c, "delta").is_empty());
        assert_eq!(search(&c, "charlie"), vec![1]);
        assert_index_exact(&c);
        // A removed row (however it is deleted) leaves the index with it.
        c.execute("DELETE FROM records WHERE key = 'b'", [])
            .unwrap();
        assert!(search(&c, "zebra").is_empty());
        assert_index_exact(&c);
        // Changed back and forth many times, the index still matches exactly.
        for i in 0..20 {
            put(&c, &rec("a", json!({"t": format!("word{} shared", i % 3)}))).unwrap();
            put(
                &c,
                &rec(
                    &format!("k{i}"),
                    json!({"t": format!("word{} shared", i % 4)}),
                ),
            )
            .unwrap();
        }
        assert_eq!(search(&c, "shared").len(), 21);
        assert_index_exact(&c);
    }
}
