//! Harvest runs of a tenant's sources: the run log, removal marks and history pruning.
//!
//! The store keeps a run's counts and first errors as JSON documents the harvest runtime
//! defines; it only owns where they live and the queries over them.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::db::TenantDb;
use super::error::StoreError;

/// Most runs one list call returns.
pub const MAX_RUN_LIST: usize = 500;

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub source: String,
    pub trigger: String,
    pub status: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    /// The run reached the end of its frontier without errors (removals were marked, or,
    /// for an `anomalous` run, held until it is accepted).
    pub complete: bool,
    pub counts: serde_json::Value,
    pub errors: serde_json::Value,
    pub message: Option<String>,
}

const COLS: &str =
    "id, source, trigger, status, started_ms, ended_ms, complete, counts, errors, message";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let json = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
    Ok(RunRow {
        id: r.get(0)?,
        source: r.get(1)?,
        trigger: r.get(2)?,
        status: r.get(3)?,
        started_ms: r.get(4)?,
        ended_ms: r.get(5)?,
        complete: r.get::<_, i64>(6)? != 0,
        counts: json(r.get(7)?),
        errors: json(r.get(8)?),
        message: r.get(9)?,
    })
}

fn one(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Option<RunRow>, StoreError> {
    c.prepare_cached(sql)
        .map_err(StoreError::from_sqlite)?
        .query_row(p, row)
        .optional()
        .map_err(StoreError::from_sqlite)
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct RunEnd {
    pub status: String,
    pub complete: bool,
    pub counts: String,
    pub errors: String,
    pub message: Option<String>,
    pub ended_ms: i64,
}

impl TenantDb {
    /// Records a new run as `running`; returns its id.
    pub async fn start_run(
        &self,
        source: &str,
        trigger: &str,
        started_ms: i64,
    ) -> Result<i64, StoreError> {
        let (source, trigger) = (source.to_owned(), trigger.to_owned());
        self.0
            .write(move |c| {
                c.execute(
                    "INSERT INTO harvest_runs (source, trigger, status, started_ms, budget_day)
                     VALUES (?1, ?2, 'running', ?3, ?3 / 86400000)",
                    params![source, trigger, started_ms],
                )
                .map_err(StoreError::from_sqlite)?;
                let id = c.last_insert_rowid();
                super::changes::prune(c, &source)?;
                Ok(id)
            })
            .await
    }

    /// The source's run still `running` (its process died), `interrupted` (shut down) or
    /// `paused` (its daily request budget ran out), if any: the next run resumes it.
    pub async fn unfinished_run(&self, source: &str) -> Result<Option<RunRow>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                one(
                    c,
                    &format!(
                        "SELECT {COLS} FROM harvest_runs WHERE source = ?1 AND status IN ('running', 'interrupted', 'paused')
                         ORDER BY id DESC LIMIT 1"
                    ),
                    [source],
                )
            })
            .await
    }

    /// Saves a running run's counts so far (progress survives a crash).
    pub async fn run_progress(
        &self,
        id: i64,
        counts: String,
        errors: String,
    ) -> Result<(), StoreError> {
        self.0
            .write(move |c| {
                c.execute(
                    "UPDATE harvest_runs SET counts = ?2, errors = ?3 WHERE id = ?1",
                    params![id, counts, errors],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    /// Saves the run's cookie jar (JSON), for a resumed run to continue the session.
    pub async fn save_run_cookies(&self, id: i64, cookies: String) -> Result<(), StoreError> {
        self.0
            .write(move |c| {
                c.execute(
                    "UPDATE harvest_runs SET cookies = ?2 WHERE id = ?1",
                    params![id, cookies],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    pub async fn run_cookies(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.0
            .read(move |c| {
                c.query_row(
                    "SELECT cookies FROM harvest_runs WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map(Option::flatten)
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    pub async fn finish_run(&self, id: i64, end: RunEnd) -> Result<(), StoreError> {
        self.0
            .write(move |c| {
                c.execute(
                    "UPDATE harvest_runs SET status = ?2, complete = ?3, counts = ?4,
                            errors = ?5, message = ?6, ended_ms = ?7 WHERE id = ?1",
                    params![
                        id,
                        end.status,
                        end.complete as i64,
                        end.counts,
                        end.errors,
                        end.message,
                        end.ended_ms
                    ],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    pub async fn get_run(&self, source: &str, id: i64) -> Result<Option<RunRow>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                one(
                    c,
                    &format!("SELECT {COLS} FROM harvest_runs WHERE source = ?1 AND id = ?2"),
                    params![source, id],
                )
            })
            .await
    }

    /// Runs of a source, newest first, with ids below `before` when given.
    pub async fn list_runs(
        &self,
        source: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        let source = source.to_owned();
        let limit = limit.min(MAX_RUN_LIST) as i64;
        self.0
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM harvest_runs WHERE source = ?1 AND id < ?2
                         ORDER BY id DESC LIMIT ?3"
                    ))
                    .map_err(e)?
                    .query_map(params![source, before.unwrap_or(i64::MAX), limit], row)
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// Requests `source` made on `day` (days since the Unix epoch, UTC), for its
    /// `requests_per_day` budget; first moves run `run_id` to `day` if it began on an
    /// earlier one (a resumed run: what it made before counts against that day).
    pub async fn requests_on_day(
        &self,
        source: &str,
        run_id: i64,
        day: i64,
    ) -> Result<u64, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                c.execute(
                    "UPDATE harvest_runs SET budget_day = ?2,
                         budget_day_base = coalesce(json_extract(counts, '$.requests'), 0)
                     WHERE id = ?1 AND coalesce(budget_day, started_ms / 86400000) <> ?2",
                    params![run_id, day],
                )
                .map_err(e)?;
                c.query_row(
                    "SELECT coalesce(sum(coalesce(json_extract(counts, '$.requests'), 0)
                                         - budget_day_base), 0)
                     FROM harvest_runs
                     WHERE source = ?1 AND coalesce(budget_day, started_ms / 86400000) = ?2",
                    params![source, day],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(e)
            })
            .await
    }

    /// Marks records of `source` not seen since `since_ms` as removed by `run_id`; returns
    /// how many were newly marked. Records are kept, so history and the API still see them.
    /// The run's change log gets the same records in the same operation.
    pub async fn mark_removed(
        &self,
        source: &str,
        run_id: i64,
        since_ms: i64,
    ) -> Result<u64, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                super::changes::note_removals(c, &source, run_id, since_ms)?;
                c.execute(
                    "UPDATE records SET removed_run = ?2
                     WHERE source = ?1 AND last_seen_ms < ?3 AND removed_run IS NULL",
                    params![source, run_id, since_ms],
                )
                .map(|n| n as u64)
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Records of `source` currently marked removed, with the run that removed them.
    pub async fn removed_records(
        &self,
        source: &str,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare(
                        "SELECT key, removed_run FROM records
                         WHERE source = ?1 AND removed_run IS NOT NULL ORDER BY key LIMIT ?2",
                    )
                    .map_err(e)?
                    .query_map(params![source, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// Drops old versions of `source`'s records: beyond the newest `keep_versions`
    /// (counting the current one) and those superseded before `older_than_ms`.
    pub async fn prune_history(
        &self,
        source: &str,
        keep_versions: Option<u32>,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let mut n = 0;
                if let Some(k) = keep_versions {
                    n += c
                        .execute(
                            // record_versions is WITHOUT ROWID: rows are named by
                            // their key.
                            "DELETE FROM record_versions WHERE (record_id, version) IN (
                               SELECT v.record_id, v.version FROM record_versions v
                                 JOIN records r ON r.id = v.record_id
                               WHERE r.source = ?1 AND v.version <= r.version - ?2)",
                            params![source, i64::from(k)],
                        )
                        .map_err(e)?;
                }
                if let Some(t) = older_than_ms {
                    n += c
                        .execute(
                            "DELETE FROM record_versions WHERE record_id IN
                               (SELECT id FROM records WHERE source = ?1) AND until_ms < ?2",
                            params![source, t],
                        )
                        .map_err(e)?;
                }
                Ok(n as u64)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use crate::config::StoreConfig;
    use crate::store::{encode_payload, CheckpointPolicy, RecordWrite, Store};
    use crate::tenant::TenantId;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_is_pruned_by_count_and_by_age_per_source() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        };
        let store = Store::open(&cfg, CheckpointPolicy::External).await.unwrap();
        let t = TenantId::parse("acme").unwrap();
        store.create_tenant(&t, "Acme").await.unwrap();
        let db = store.tenant_db(&t).await.unwrap();
        // Versions 1..=6 of one record in each of two sources, version n seen at n*1000.
        for source in ["a", "b"] {
            for n in 1..=6i64 {
                db.put_record(RecordWrite {
                    source: source.into(),
                    key: "k".into(),
                    payload: encode_payload(&serde_json::json!({ "n": n })).unwrap(),
                    seen_ms: n * 1000,
                })
                .await
                .unwrap();
            }
        }
        let versions = |source: &'static str| {
            let db = db.clone();
            async move {
                db.0.read(move |c| {
                    let mut st = c
                        .prepare(
                            "SELECT v.version, v.until_ms FROM record_versions v
                             JOIN records r ON r.id = v.record_id
                             WHERE r.source = ?1 ORDER BY v.version",
                        )
                        .map_err(super::StoreError::from_sqlite)?;
                    let rows = st
                        .query_map([source], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                        .map_err(super::StoreError::from_sqlite)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(super::StoreError::from_sqlite)?;
                    Ok(rows)
                })
                .await
                .unwrap()
            }
        };
        assert_eq!(
            versions("a").await.len(),
            5,
            "versions 1-5 in history, 6 current"
        );
        // Keep 3 versions counting the current one: 4 and 5 stay in history.
        assert_eq!(db.prune_history("a", Some(3), None).await.unwrap(), 3);
        assert_eq!(versions("a").await, vec![(4, 5000), (5, 6000)]);
        // By age: versions superseded before 4500 go (1: until 2000 ... 3: until 4000).
        assert_eq!(db.prune_history("b", None, Some(4500)).await.unwrap(), 3);
        assert_eq!(
            versions("b").await.iter().map(|v| v.0).collect::<Vec<_>>(),
            vec![4, 5]
        );
        // Each prune touched its own source only; the current versions are untouched.
        assert_eq!(versions("a").await.len(), 2);
        for source in ["a", "b"] {
            let r = db.get_record(source, "k").await.unwrap().unwrap();
            assert_eq!((r.version, r.fields["n"].as_i64()), (6, Some(6)));
        }
        // Keeping 1 leaves no history at all.
        assert_eq!(db.prune_history("a", Some(1), None).await.unwrap(), 2);
        assert!(versions("a").await.is_empty());
    }
}
