//! Tenants in the control database.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::error::StoreError;
use super::{OrphanSweep, Store};
use crate::tenant::TenantId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRow {
    pub id: String,
    pub display_name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(0)?,
        display_name: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
    })
}

/// Most tenants one list call returns.
pub const MAX_LIST: usize = 1000;

impl Store {
    /// Creates the tenant's database file (built under a temporary name, see
    /// `tenant_files`), then its row, then opens it (which attaches the replicator). A row
    /// never points at a missing file, the replicator never sees a file without a row, and
    /// what a kill in between leaves is removed by [`Store::sweep_orphan_tenants`].
    pub async fn create_tenant(
        &self,
        id: &TenantId,
        display_name: &str,
    ) -> Result<TenantRow, StoreError> {
        if self.get_tenant(id).await.is_ok() {
            return Err(StoreError::TenantExists(id.to_string()));
        }
        self.tenants.create_file(id).await?;
        let (tid, name) = (id.to_string(), display_name.to_owned());
        let now = super::base::now_ms();
        let row = self
            .control
            .write(move |c| {
                let n = c
                    .execute(
                        "INSERT INTO tenants (id, display_name, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?3) ON CONFLICT (id) DO NOTHING",
                        params![tid, name, now],
                    )
                    .map_err(StoreError::from_sqlite)?;
                if n == 0 {
                    return Err(StoreError::TenantExists(tid));
                }
                Ok(TenantRow {
                    id: tid,
                    display_name: name,
                    created_ms: now,
                    updated_ms: now,
                })
            })
            .await;
        self.finish_create(id, row).await
    }

    /// After a creation's row write: opens the new database, or removes the file the
    /// creation made when the row was not committed (nobody else can own it: the file did
    /// not exist before and the registry opens only existing files).
    pub(crate) async fn finish_create<T>(
        &self,
        id: &TenantId,
        row: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match row {
            Ok(v) => {
                // The tenant exists either way; a failed open is retried by its first use.
                if let Err(e) = self.tenants.open(id).await {
                    tracing::warn!(tenant = %id, error = %e, "created a tenant but cannot open its database yet");
                }
                Ok(v)
            }
            Err(e) => {
                self.tenants.discard_new_file(id).await;
                Err(e)
            }
        }
    }

    /// Removes the tenant files an interrupted creation left (no control.db row, no data)
    /// and reports, at error level, those without a row that hold data (kept). For the
    /// server's start-up, before any tenant database is opened: a creation in progress in
    /// another process at that moment could lose its file.
    pub async fn sweep_orphan_tenants(&self) -> Result<OrphanSweep, StoreError> {
        let owned: HashSet<String> = self
            .control
            .read(|c| {
                let mut st = c
                    .prepare("SELECT id FROM tenants")
                    .map_err(StoreError::from_sqlite)?;
                let ids = st
                    .query_map([], |r| r.get(0))
                    .map_err(StoreError::from_sqlite)?
                    .collect::<Result<HashSet<String>, _>>()
                    .map_err(StoreError::from_sqlite)?;
                Ok(ids)
            })
            .await?;
        Ok(self.tenants.sweep_orphans(owned).await)
    }

    pub async fn get_tenant(&self, id: &TenantId) -> Result<TenantRow, StoreError> {
        let tid = id.to_string();
        self.control
            .read(move |c| {
                c.query_row(
                    "SELECT id, display_name, created_ms, updated_ms FROM tenants WHERE id = ?1",
                    params![tid],
                    row,
                )
                .optional()
                .map_err(StoreError::from_sqlite)?
                .ok_or(StoreError::TenantNotFound(tid))
            })
            .await
    }

    /// Tenants in id order, after `after` (keyset pagination), at most `limit` (≤ MAX_LIST).
    pub async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TenantRow>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        let limit = limit.min(MAX_LIST) as i64;
        self.control
            .read(move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT id, display_name, created_ms, updated_ms FROM tenants
                         WHERE id > ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(StoreError::from_sqlite)?;
                let rows = st
                    .query_map(params![after, limit], row)
                    .map_err(StoreError::from_sqlite)?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }
}
