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

    /// Applies the removals of `source`'s run `id` held as `anomalous` and marks it
    /// `accepted`, in one transaction (a second accept finds it accepted).
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
                let run: Option<(String, i64)> = c
                    .query_row(
                        "SELECT status, started_ms FROM harvest_runs WHERE source = ?1 AND id = ?2",
                        params![source, id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(e)?;
                let Some((status, started_ms)) = run else {
                    return Ok(AcceptOutcome::NotFound);
                };
                if status != "anomalous" {
                    return Ok(AcceptOutcome::NotAnomalous(status));
                }
                super::changes::note_removals(c, &source, id, started_ms)?;
                let removed = c
                    .execute(
                        "UPDATE records SET removed_run = ?2
                         WHERE source = ?1 AND last_seen_ms < ?3 AND removed_run IS NULL",
                        params![source, id, started_ms],
                    )
                    .map_err(e)? as u64;
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
}
