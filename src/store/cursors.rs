//! Incremental cursors of a tenant's sources (`source_cursors`): read at a run's start,
//! written at the end of a run that succeeded completely, deleted to make the next run
//! start over. What a value means is the harvest runtime's; the store keeps it verbatim.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::db::TenantDb;
use super::error::StoreError;

/// Longest cursor value kept (a provider token is opaque, but bounded here).
pub const MAX_CURSOR_BYTES: usize = 4096;

/// A source's stored cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CursorRow {
    pub source: String,
    pub basis: String,
    pub value: String,
    pub run_id: i64,
    pub updated_ms: i64,
}

impl TenantDb {
    pub async fn source_cursor(&self, source: &str) -> Result<Option<CursorRow>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                c.query_row(
                    "SELECT source, basis, value, run_id, updated_ms
                     FROM source_cursors WHERE source = ?1",
                    [source],
                    |r| {
                        Ok(CursorRow {
                            source: r.get(0)?,
                            basis: r.get(1)?,
                            value: r.get(2)?,
                            run_id: r.get(3)?,
                            updated_ms: r.get(4)?,
                        })
                    },
                )
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Stores `source`'s cursor; resolves once committed. The caller keeps values within
    /// [`MAX_CURSOR_BYTES`].
    pub async fn put_source_cursor(
        &self,
        source: &str,
        basis: &str,
        value: &str,
        run_id: i64,
    ) -> Result<(), StoreError> {
        let (source, basis, value) = (source.to_owned(), basis.to_owned(), value.to_owned());
        self.0
            .write(move |c| {
                c.execute(
                    "INSERT INTO source_cursors (source, basis, value, run_id, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (source) DO UPDATE SET basis = ?2, value = ?3, run_id = ?4,
                         updated_ms = ?5",
                    params![source, basis, value, run_id, super::base::now_ms()],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    /// Deletes `source`'s cursor; whether there was one.
    pub async fn delete_source_cursor(&self, source: &str) -> Result<bool, StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                c.execute("DELETE FROM source_cursors WHERE source = ?1", [source])
                    .map(|n| n > 0)
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }
}
