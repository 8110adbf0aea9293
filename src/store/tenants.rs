//! Tenants in the control database.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::error::StoreError;
use super::Store;
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
    /// Creates the tenant's database file, then its row. Creating the file first means a
    /// row never points at a missing database; a crash in between leaves only an empty file
    /// that the next create reuses.
    pub async fn create_tenant(
        &self,
        id: &TenantId,
        display_name: &str,
    ) -> Result<TenantRow, StoreError> {
        self.tenants.open(id, true).await?;
        let (tid, name) = (id.to_string(), display_name.to_owned());
        let now = super::base::now_ms();
        self.control
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
            .await
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
