//! Harvest source definitions in the control database.
//!
//! Definitions are kept as the JSON the harvest layer validated (the store does not parse
//! them), beside the few columns the scheduler queries: when the source is next due, and
//! its last run's outcome for staleness. See the migration for why they live in control.db.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::error::StoreError;
use super::Store;

/// Most sources one list call returns.
pub const MAX_SOURCE_LIST: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRow {
    pub tenant: String,
    pub id: String,
    pub kind: String,
    /// The definition as JSON text.
    #[serde(skip)]
    pub definition: String,
    pub schedule: Option<String>,
    pub freshness_secs: Option<i64>,
    pub next_run_ms: Option<i64>,
    pub last_run_id: Option<i64>,
    pub last_status: Option<String>,
    pub last_success_ms: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A definition to store.
#[derive(Debug, Clone)]
pub struct SourceWrite {
    pub tenant: String,
    pub id: String,
    pub kind: String,
    pub definition: String,
    pub schedule: Option<String>,
    pub freshness_secs: Option<i64>,
    pub next_run_ms: Option<i64>,
}

const COLS: &str = "tenant, id, kind, definition, schedule, freshness_secs, next_run_ms,
    last_run_id, last_status, last_success_ms, created_ms, updated_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRow> {
    Ok(SourceRow {
        tenant: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        definition: r.get(3)?,
        schedule: r.get(4)?,
        freshness_secs: r.get(5)?,
        next_run_ms: r.get(6)?,
        last_run_id: r.get(7)?,
        last_status: r.get(8)?,
        last_success_ms: r.get(9)?,
        created_ms: r.get(10)?,
        updated_ms: r.get(11)?,
    })
}

impl Store {
    /// Creates or replaces a source; returns true when it was created. The tenant must exist.
    pub async fn put_source(&self, s: SourceWrite) -> Result<bool, StoreError> {
        let now = super::base::now_ms();
        self.control
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let tenant_exists = c
                    .query_row("SELECT 1 FROM tenants WHERE id = ?1", [&s.tenant], |_| {
                        Ok(())
                    })
                    .optional()
                    .map_err(e)?
                    .is_some();
                if !tenant_exists {
                    return Err(StoreError::TenantNotFound(s.tenant));
                }
                let existed = c
                    .query_row(
                        "SELECT 1 FROM harvest_sources WHERE tenant = ?1 AND id = ?2",
                        params![s.tenant, s.id],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(e)?
                    .is_some();
                c.execute(
                    "INSERT INTO harvest_sources (tenant, id, kind, definition, schedule,
                         freshness_secs, next_run_ms, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                     ON CONFLICT (tenant, id) DO UPDATE SET kind = ?3, definition = ?4,
                         schedule = ?5, freshness_secs = ?6, next_run_ms = ?7, updated_ms = ?8",
                    params![
                        s.tenant,
                        s.id,
                        s.kind,
                        s.definition,
                        s.schedule,
                        s.freshness_secs,
                        s.next_run_ms,
                        now
                    ],
                )
                .map_err(e)?;
                Ok(!existed)
            })
            .await
    }

    pub async fn get_source(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<SourceRow>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.control
            .read(move |c| {
                c.query_row(
                    &format!("SELECT {COLS} FROM harvest_sources WHERE tenant = ?1 AND id = ?2"),
                    params![tenant, id],
                    row,
                )
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// A tenant's sources ordered by id, after `after` when given.
    pub async fn list_sources(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SourceRow>, StoreError> {
        let (tenant, after) = (tenant.to_owned(), after.unwrap_or("").to_owned());
        let limit = limit.min(MAX_SOURCE_LIST) as i64;
        self.control
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM harvest_sources WHERE tenant = ?1 AND id > ?2
                         ORDER BY id LIMIT ?3"
                    ))
                    .map_err(e)?
                    .query_map(params![tenant, after, limit], row)
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// How many sources a tenant has.
    pub async fn count_sources(&self, tenant: &str) -> Result<i64, StoreError> {
        let tenant = tenant.to_owned();
        self.control
            .read(move |c| {
                c.query_row(
                    "SELECT count(*) FROM harvest_sources WHERE tenant = ?1",
                    [tenant],
                    |r| r.get(0),
                )
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    pub async fn delete_source(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.control
            .write(move |c| {
                c.execute(
                    "DELETE FROM harvest_sources WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id],
                )
                .map(|n| n > 0)
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Sources whose next run is due at `now_ms`, earliest first.
    pub async fn due_sources(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<SourceRow>, StoreError> {
        self.control
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM harvest_sources
                         WHERE next_run_ms IS NOT NULL AND next_run_ms <= ?1
                         ORDER BY next_run_ms LIMIT ?2"
                    ))
                    .map_err(e)?
                    .query_map(params![now_ms, limit as i64], row)
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// Sources with a freshness threshold whose last success is older than it (or absent).
    pub async fn stale_sources(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<SourceRow>, StoreError> {
        self.control
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM harvest_sources WHERE freshness_secs IS NOT NULL
                         AND coalesce(last_success_ms, created_ms) + freshness_secs * 1000 < ?1
                         ORDER BY tenant, id LIMIT ?2"
                    ))
                    .map_err(e)?
                    .query_map(params![now_ms, limit as i64], row)
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// Moves a source's next run (None: unscheduled).
    pub async fn set_source_next_run(
        &self,
        tenant: &str,
        id: &str,
        next_run_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.control
            .write(move |c| {
                c.execute(
                    "UPDATE harvest_sources SET next_run_ms = ?3 WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id, next_run_ms],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    /// Records a finished run's outcome on its source.
    pub async fn set_source_last_run(
        &self,
        tenant: &str,
        id: &str,
        run_id: i64,
        status: &str,
        success_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let (tenant, id, status) = (tenant.to_owned(), id.to_owned(), status.to_owned());
        self.control
            .write(move |c| {
                c.execute(
                    "UPDATE harvest_sources SET last_run_id = ?3, last_status = ?4,
                         last_success_ms = coalesce(?5, last_success_ms)
                     WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id, run_id, status, success_ms],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }
}
