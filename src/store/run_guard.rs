//! The store's part of the anomaly guard: the baseline runs, the removals a run would
//! make, and accepting a run held as `anomalous`.
//!
//! A held run stores no list of keys: the keys it would have removed are recomputed at
//! acceptance with the same predicate [`TenantDb::mark_removed`] uses (not seen since the
//! run started, not already removed). `last_seen_ms` only ever grows, so the recomputed
//! set is the run's set minus the records some later run or push has seen again — records
//! that are present, which removing would be wrong. Nothing to bound, and nothing that can
//! go stale.

use rusqlite::{params, OptionalExtension};

use super::db::TenantDb;
use super::error::StoreError;

/// Statuses whose complete runs form a source's baseline.
const BASELINE_STATUSES: &str = "('succeeded', 'accepted')";

/// What accepting a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// The removals were applied (how many records were marked) and the run is `accepted`.
    Accepted {
        removed: u64,
    },
    NotFound,
    /// The run is not held (its status).
    NotAnomalous(String),
}

impl TenantDb {
    /// The counts of `source`'s last `window` complete runs that succeeded or were
    /// accepted, newest first.
    pub async fn guard_baseline(
        &self,
        source: &str,
        window: u32,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare_cached(&format!(
                        "SELECT counts FROM harvest_runs
                         WHERE source = ?1 AND complete = 1 AND status IN {BASELINE_STATUSES}
                         ORDER BY id DESC LIMIT ?2"
                    ))
                    .map_err(e)?
                    .query_map(params![source, i64::from(window.min(50))], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(e)?
                    .map(|s| s.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// How many records of `source` [`TenantDb::mark_removed`] would mark for a run that
    /// started at `since_ms`.
    pub async fn would_remove(&self, source: &str, since_ms: i64) -> Result<u64, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM records
                     WHERE source = ?1 AND last_seen_ms < ?2 AND removed_run IS NULL",
                    params![source, since_ms],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as u64)
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Applies the removals of `source`'s run `id` held as `anomalous` (if it held any)
    /// and marks it `accepted`, in one transaction (a second accept finds it accepted).
    pub async fn accept_run(
        &self,
        source: &str,
        id: i64,
        note: String,
    ) -> Result<AcceptOutcome, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let run: Option<(String, i64, i64)> = c
                    .query_row(
                        "SELECT status, started_ms, coalesce(json_extract(counts, '$.removals_held'), 0)
                         FROM harvest_runs WHERE source = ?1 AND id = ?2",
                        params![source, id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()
                    .map_err(e)?;
                let Some((status, started_ms, held)) = run else {
                    return Ok(AcceptOutcome::NotFound);
                };
                if status != "anomalous" {
                    return Ok(AcceptOutcome::NotAnomalous(status));
                }
                // A run held for a drop in records seen (a feed) held no removals: its
                // source never marks any, so accepting it only accepts the run.
                let removed = if held > 0 {
                    super::changes::note_removals(c, &source, id, started_ms)?;
                    c.execute(
                        "UPDATE records SET removed_run = ?2
                         WHERE source = ?1 AND last_seen_ms < ?3 AND removed_run IS NULL",
                        params![source, id, started_ms],
                    )
                    .map_err(e)? as u64
                } else {
                    0
                };
                c.execute(
                    "UPDATE harvest_runs SET status = 'accepted',
                         counts = json_set(counts, '$.records_removed', ?2, '$.removals_held', 0),
                         message = CASE WHEN message IS NULL THEN ?3 ELSE message || '; ' || ?3 END
                     WHERE id = ?1",
                    params![id, removed as i64, note],
                )
                .map_err(e)?;
                Ok(AcceptOutcome::Accepted { removed })
            })
            .await
    }

    /// Dismisses `source`'s run `id` held as `anomalous`: it stays out of the baseline and
    /// its removals are never applied (the site was broken, not the data gone).
    pub async fn dismiss_run(
        &self,
        source: &str,
        id: i64,
        note: String,
    ) -> Result<AcceptOutcome, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let status: Option<String> = c
                    .query_row(
                        "SELECT status FROM harvest_runs WHERE source = ?1 AND id = ?2",
                        params![source, id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(e)?;
                match status {
                    None => Ok(AcceptOutcome::NotFound),
                    Some(s) if s != "anomalous" => Ok(AcceptOutcome::NotAnomalous(s)),
                    Some(_) => {
                        c.execute(
                            "UPDATE harvest_runs SET status = 'dismissed',
                                 message = CASE WHEN message IS NULL THEN ?2 ELSE message || '; ' || ?2 END
                             WHERE id = ?1",
                            params![id, note],
                        )
                        .map_err(e)?;
                        Ok(AcceptOutcome::Accepted { removed: 0 })
                    }
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::AcceptOutcome;
    use crate::config::StoreConfig;
    use crate::store::{encode_payload, CheckpointPolicy, RecordWrite, RunEnd, Store};
    use crate::tenant::TenantId;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accepting_applies_held_removals_only_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        };
        let store = Store::open(&cfg, CheckpointPolicy::External).await.unwrap();
        let t = TenantId::parse("acme").unwrap();
        store.create_tenant(&t, "Acme").await.unwrap();
        let db = store.tenant_db(&t).await.unwrap();
        for (source, key, seen) in [("a", "old", 1000), ("a", "new", 3000), ("f", "old", 1000)] {
            db.put_record(RecordWrite {
                source: source.into(),
                key: key.into(),
                payload: encode_payload(&serde_json::json!({ "k": key })).unwrap(),
                seen_ms: seen,
            })
            .await
            .unwrap();
        }
        let held = |source: &'static str, n: u64| {
            let db = db.clone();
            async move {
                let id = db.start_run(source, "test", 2000).await.unwrap();
                let end = RunEnd {
                    status: "anomalous".into(),
                    complete: true,
                    counts: format!("{{\"removals_held\": {n}}}"),
                    errors: "[]".into(),
                    message: None,
                    ended_ms: 2500,
                };
                db.finish_run(id, end).await.unwrap();
                id
            }
        };
        let a = held("a", 1).await;
        assert_eq!(db.would_remove("a", 2000).await.unwrap(), 1);
        assert_eq!(
            db.accept_run("a", a, "ok".into()).await.unwrap(),
            AcceptOutcome::Accepted { removed: 1 }
        );
        assert_eq!(
            db.removed_records("a", 10).await.unwrap(),
            vec![("old".into(), a)]
        );
        let run = db.get_run("a", a).await.unwrap().unwrap();
        assert_eq!(run.status, "accepted");
        assert_eq!(run.counts["records_removed"], 1);
        assert_eq!(
            db.accept_run("a", a, "again".into()).await.unwrap(),
            AcceptOutcome::NotAnomalous("accepted".into())
        );
        assert_eq!(
            db.accept_run("a", 999, "x".into()).await.unwrap(),
            AcceptOutcome::NotFound
        );
        // The baseline takes accepted runs.
        assert_eq!(db.guard_baseline("a", 5).await.unwrap().len(), 1);
        // A run held for a drop (a feed) held no removals: accepting it removes nothing.
        let f = held("f", 0).await;
        assert_eq!(
            db.accept_run("f", f, "ok".into()).await.unwrap(),
            AcceptOutcome::Accepted { removed: 0 }
        );
        assert!(db.removed_records("f", 10).await.unwrap().is_empty());
    }
}
