//! What changed: the per-run change log (`run_changes`) and pairs of record versions for diffs.
//!
//! A harvest run's record writes ([`note`], called by the page commit) and its removal marks
//! ([`note_removals`]) log one row per record in the same savepoint as the write itself, so
//! the log never names a write that did not commit, nor misses one that did. A record
//! written twice by one run keeps one row: `added` stays `added`, the version moves on.
//!
//! Bounded by run: starting a run drops the log of that source's runs older than the newest
//! [`KEEP_CHANGES_RUNS`] ([`prune`]), so the table holds at most that many runs' changes per
//! source. Runs themselves are never pruned; an older run still answers, with
//! `retained: false` and no changes.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::base::MAX_RECORD_BYTES;
use super::db::TenantDb;
use super::error::StoreError;
use super::records::{PutOutcome, Written};

/// Runs of each source whose changes are kept (counting the newest).
pub const KEEP_CHANGES_RUNS: i64 = 20;

const ADDED: i64 = 1;
const CHANGED: i64 = 2;
const REMOVED: i64 = 3;

/// How a run changed one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

impl ChangeKind {
    fn from_code(n: i64) -> Result<ChangeKind, StoreError> {
        match n {
            ADDED => Ok(ChangeKind::Added),
            CHANGED => Ok(ChangeKind::Changed),
            REMOVED => Ok(ChangeKind::Removed),
            other => Err(StoreError::Corrupt(format!(
                "run_changes: change code {other}"
            ))),
        }
    }
}

/// One logged change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeRow {
    pub record_id: i64,
    pub key: String,
    pub change: ChangeKind,
    /// The record's version after the change (for `removed`, the version it had).
    pub version: i64,
}

/// One page of a run's changes, in record id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesPage {
    pub run_id: i64,
    pub source: String,
    /// False once the run is older than the newest [`KEEP_CHANGES_RUNS`] of its source.
    pub retained: bool,
    pub changes: Vec<ChangeRow>,
    /// The record id the next page starts after (`None` at the end).
    pub next_after: Option<i64>,
}

/// Logs a record write of run `run_id` (`0`: not a run, e.g. a push; nothing logged). A
/// record marked removed that is present again is `added` back, changed or not: whoever
/// follows the log saw it go.
pub(crate) fn note(c: &Connection, run_id: i64, w: &Written) -> Result<(), StoreError> {
    let code = match (w.outcome, w.restored) {
        (PutOutcome::New, _) | (_, true) => ADDED,
        (PutOutcome::Changed { .. }, false) => CHANGED,
        (PutOutcome::Unchanged, false) => return Ok(()),
    };
    if run_id <= 0 {
        return Ok(());
    }
    let (record_id, version) = (w.id, w.version);
    c.prepare_cached(
        "INSERT INTO run_changes (run_id, record_id, change, version) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (run_id, record_id) DO UPDATE SET version = excluded.version,
             change = CASE WHEN change = 1 THEN 1 ELSE excluded.change END",
    )
    .and_then(|mut st| st.execute(params![run_id, record_id, code, version]))
    .map(drop)
    .map_err(StoreError::from_sqlite)
}

/// Logs `key` of `source` as added back by run `run_id` if it is marked removed: called
/// before a page's unchanged records (304, same body) are touched, which clears the mark.
pub(crate) fn note_if_restored(
    c: &Connection,
    run_id: i64,
    source: &str,
    key: &str,
) -> Result<(), StoreError> {
    if run_id <= 0 {
        return Ok(());
    }
    c.prepare_cached(
        "INSERT INTO run_changes (run_id, record_id, change, version)
         SELECT ?1, id, 1, version FROM records
         WHERE source = ?2 AND key = ?3 AND removed_run IS NOT NULL
         ON CONFLICT (run_id, record_id) DO UPDATE SET change = 1, version = excluded.version",
    )
    .and_then(|mut st| st.execute(params![run_id, source, key]))
    .map(drop)
    .map_err(StoreError::from_sqlite)
}

/// Logs the removals `runs::mark_removed` is about to mark (same selection, same op).
pub(crate) fn note_removals(
    c: &Connection,
    source: &str,
    run_id: i64,
    since_ms: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO run_changes (run_id, record_id, change, version)
         SELECT ?2, id, 3, version FROM records
         WHERE source = ?1 AND last_seen_ms < ?3 AND removed_run IS NULL
         ON CONFLICT (run_id, record_id) DO UPDATE SET change = 3, version = excluded.version",
    )
    .and_then(|mut st| st.execute(params![source, run_id, since_ms]))
    .map(drop)
    .map_err(StoreError::from_sqlite)
}

/// Drops the change log of `source`'s runs older than its newest [`KEEP_CHANGES_RUNS`].
pub(crate) fn prune(c: &Connection, source: &str) -> Result<(), StoreError> {
    c.prepare_cached(
        "DELETE FROM run_changes WHERE run_id IN (
           SELECT id FROM harvest_runs WHERE source = ?1 AND id <= (
             SELECT id FROM harvest_runs WHERE source = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2))",
    )
    .and_then(|mut st| st.execute(params![source, KEEP_CHANGES_RUNS]))
    .map(drop)
    .map_err(StoreError::from_sqlite)
}

fn changes_page(
    c: &Connection,
    run_id: i64,
    after: i64,
    limit: usize,
) -> Result<ChangesPage, StoreError> {
    let e = StoreError::from_sqlite;
    let source: String = c
        .prepare_cached("SELECT source FROM harvest_runs WHERE id = ?1")
        .map_err(e)?
        .query_row([run_id], |r| r.get(0))
        .optional()
        .map_err(e)?
        .ok_or(StoreError::RunNotFound(run_id))?;
    let newer: i64 = c
        .prepare_cached("SELECT count(*) FROM harvest_runs WHERE source = ?1 AND id > ?2")
        .map_err(e)?
        .query_row(params![source, run_id], |r| r.get(0))
        .map_err(e)?;
    let mut rows = c
        .prepare_cached(
            "SELECT c.record_id, r.key, c.change, c.version FROM run_changes c
               JOIN records r ON r.id = c.record_id
             WHERE c.run_id = ?1 AND c.record_id > ?2 ORDER BY c.record_id LIMIT ?3",
        )
        .map_err(e)?
        .query_map(params![run_id, after, limit as i64 + 1], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(e)?
        .map(|row| {
            let (record_id, key, code, version) = row.map_err(e)?;
            Ok(ChangeRow {
                record_id,
                key,
                change: ChangeKind::from_code(code)?,
                version,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let next_after = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        rows.last().map_or(after, |r| r.record_id)
    });
    Ok(ChangesPage {
        run_id,
        source,
        retained: newer < KEEP_CHANGES_RUNS,
        changes: rows,
        next_after,
    })
}

/// The fields of version `version` of record `id` (current or superseded).
fn version_fields(
    c: &Connection,
    id: i64,
    current: i64,
    version: i64,
) -> Result<Value, StoreError> {
    let e = StoreError::from_sqlite;
    let payload: Option<Vec<u8>> = if version == current {
        c.prepare_cached("SELECT payload FROM records WHERE id = ?1")
            .map_err(e)?
            .query_row([id], |r| r.get(0))
            .optional()
            .map_err(e)?
    } else {
        c.prepare_cached(
            "SELECT payload FROM record_versions WHERE record_id = ?1 AND version = ?2",
        )
        .map_err(e)?
        .query_row(params![id, version], |r| r.get(0))
        .optional()
        .map_err(e)?
    };
    let payload = payload.ok_or(StoreError::VersionNotFound { id, version })?;
    let bytes = super::dict::decode_stored(c, &payload, MAX_RECORD_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|err| StoreError::Corrupt(format!("record {id}: {err}")))
}

/// Two versions of one record, resolved (`to` absent: the current version).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionPair {
    pub from: i64,
    pub to: i64,
    pub old: Value,
    pub new: Value,
}

impl TenantDb {
    /// A page of run `run_id`'s changes after record id `after`.
    pub async fn run_changes(
        &self,
        run_id: i64,
        after: i64,
        limit: usize,
    ) -> Result<ChangesPage, StoreError> {
        self.0
            .read(move |c| changes_page(c, run_id, after, limit))
            .await
    }

    /// Versions `from` and `to` (default: the current one) of record `id`.
    pub async fn record_versions_pair(
        &self,
        id: i64,
        from: i64,
        to: Option<i64>,
    ) -> Result<VersionPair, StoreError> {
        self.0
            .read(move |c| {
                let current: i64 = c
                    .prepare_cached("SELECT version FROM records WHERE id = ?1")
                    .map_err(StoreError::from_sqlite)?
                    .query_row([id], |r| r.get(0))
                    .optional()
                    .map_err(StoreError::from_sqlite)?
                    .ok_or(StoreError::RecordNotFound(id))?;
                let to = to.unwrap_or(current);
                Ok(VersionPair {
                    from,
                    to,
                    old: version_fields(c, id, current, from)?,
                    new: version_fields(c, id, current, to)?,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{put_with_id, RecordWrite};
    use crate::store::schema::{migrate, DbKind};
    use serde_json::json;

    fn rec(key: &str, v: Value, seen_ms: i64) -> RecordWrite {
        RecordWrite {
            source: "s".into(),
            key: key.into(),
            payload: crate::store::codec::encode(&v).unwrap(),
            seen_ms,
        }
    }

    fn log(c: &Connection, run: i64) -> Vec<(String, ChangeKind, i64)> {
        changes_page(c, run, 0, 100)
            .unwrap()
            .changes
            .into_iter()
            .map(|r| (r.key, r.change, r.version))
            .collect()
    }

    #[test]
    fn writes_and_removals_are_logged_once_per_record_and_pruned_by_run() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.db");
        let mut c = Connection::open(&p).unwrap();
        migrate(
            &mut c,
            DbKind::Tenant,
            &p,
            Some(crate::store::fts::TENANT_WRITER),
        )
        .unwrap();
        let run = |c: &Connection| {
            c.execute(
                "INSERT INTO harvest_runs (source, trigger, status, started_ms) VALUES ('s', 't', 'running', 0)",
                [],
            )
            .unwrap();
            let id = c.last_insert_rowid();
            prune(c, "s").unwrap();
            id
        };
        let put = |c: &Connection, run: i64, r: RecordWrite| {
            let w = put_with_id(c, &r).unwrap();
            note(c, run, &w).unwrap();
        };
        let r1 = run(&c);
        put(&c, r1, rec("a", json!({"n": 1}), 10));
        put(&c, r1, rec("a", json!({"n": 2}), 10));
        put(&c, r1, rec("b", json!({"n": 1}), 10));
        let r2 = run(&c);
        put(&c, r2, rec("a", json!({"n": 3}), 20));
        put(&c, r2, rec("a", json!({"n": 3}), 20));
        note_removals(&c, "s", r2, 20).unwrap();
        use ChangeKind::*;
        let s = |k: &str| k.to_owned();
        assert_eq!(log(&c, r1), [(s("a"), Added, 2), (s("b"), Added, 1)]);
        assert_eq!(log(&c, r2), [(s("a"), Changed, 3), (s("b"), Removed, 1)]);
        // A write rolled back (its writer op failed) takes its log row with it.
        c.execute_batch("SAVEPOINT op").unwrap();
        put(&c, r2, rec("z", json!({}), 20));
        c.execute_batch("ROLLBACK TO op; RELEASE op").unwrap();
        assert_eq!(log(&c, r2).len(), 2);
        // A write that is not part of a run is not logged.
        put(&c, 0, rec("c", json!({}), 30));
        assert_eq!(
            c.query_row("SELECT count(*) FROM run_changes", [], |r| r
                .get::<_, i64>(0))
                .unwrap(),
            4
        );
        assert!(matches!(
            changes_page(&c, 99, 0, 10),
            Err(StoreError::RunNotFound(99))
        ));
        // Pages: limit 1 over run 2.
        let p1 = changes_page(&c, r2, 0, 1).unwrap();
        assert_eq!(p1.changes.len(), 1);
        let p2 = changes_page(&c, r2, p1.next_after.unwrap(), 1).unwrap();
        assert_eq!((p2.changes[0].change, p2.next_after), (Removed, None));
        // A record marked removed that is present again is added back, whether it is
        // written (here unchanged) or only touched (a 304 or an unchanged page).
        c.execute(
            "UPDATE records SET removed_run = ?1 WHERE key IN ('b', 'c')",
            [r2],
        )
        .unwrap();
        let r3 = run(&c);
        put(&c, r3, rec("b", json!({"n": 1}), 40));
        for k in ["a", "c"] {
            note_if_restored(&c, r3, "s", k).unwrap();
        }
        assert_eq!(log(&c, r3), [(s("b"), Added, 1), (s("c"), Added, 1)]);
        // Only the newest KEEP_CHANGES_RUNS runs keep their log.
        for _ in 0..KEEP_CHANGES_RUNS - 2 {
            run(&c);
        }
        let old = changes_page(&c, r1, 0, 10).unwrap();
        assert!(!old.retained && old.changes.is_empty());
        let kept = changes_page(&c, r2, 0, 10).unwrap();
        assert!(kept.retained && kept.changes.len() == 2);
    }
}
