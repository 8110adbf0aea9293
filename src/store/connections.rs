//! Connections in the tenant database: named credential definitions (JSON, secret
//! references only) that sources use by name.
//!
//! A connection's token chain (rotated refresh token, access token) lives in
//! `oauth_tokens` under the key `connection:NAME` (see `oauth_tokens`); deleting the
//! connection deletes that chain in the same transaction, so a connection created again
//! under the same name starts from its configured refresh token.

use rusqlite::{params, OptionalExtension};

use super::db::TenantDb;
use super::error::StoreError;

/// Most connections one list call returns (and the most a tenant may have).
pub const MAX_CONNECTIONS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRow {
    pub name: String,
    /// The definition as JSON text.
    pub definition: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectionRow> {
    Ok(ConnectionRow {
        name: r.get(0)?,
        definition: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
    })
}

/// What [`TenantDb::put_connection`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionPut {
    Created,
    Replaced,
    /// A new connection would exceed [`MAX_CONNECTIONS`].
    Full,
}

impl TenantDb {
    pub async fn connection(&self, name: &str) -> Result<Option<ConnectionRow>, StoreError> {
        let name = name.to_owned();
        self.0
            .read(move |c| {
                c.query_row(
                    "SELECT name, definition, created_ms, updated_ms FROM connections
                     WHERE name = ?1",
                    [name],
                    row,
                )
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Connections by name, after `after`, at most `limit` (capped at [`MAX_CONNECTIONS`]).
    pub async fn list_connections(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ConnectionRow>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        let limit = limit.min(MAX_CONNECTIONS) as i64;
        self.0
            .read(move |c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare(
                        "SELECT name, definition, created_ms, updated_ms FROM connections
                         WHERE name > ?1 ORDER BY name LIMIT ?2",
                    )
                    .map_err(e)?
                    .query_map(params![after, limit], row)
                    .map_err(e)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }

    /// Creates or replaces a connection's definition; its token chain is kept (the
    /// runtime abandons it when the configured refresh token changes).
    pub async fn put_connection(
        &self,
        name: &str,
        definition: &str,
    ) -> Result<ConnectionPut, StoreError> {
        let (name, definition) = (name.to_owned(), definition.to_owned());
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let exists: bool = c
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM connections WHERE name = ?1)",
                        [&name],
                        |r| r.get(0),
                    )
                    .map_err(e)?;
                if !exists {
                    let n: i64 = c
                        .query_row("SELECT count(*) FROM connections", [], |r| r.get(0))
                        .map_err(e)?;
                    if n as usize >= MAX_CONNECTIONS {
                        return Ok(ConnectionPut::Full);
                    }
                }
                let now = super::base::now_ms();
                c.execute(
                    "INSERT INTO connections (name, definition, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (name) DO UPDATE SET definition = ?2, updated_ms = ?3",
                    params![name, definition, now],
                )
                .map_err(e)?;
                Ok(if exists {
                    ConnectionPut::Replaced
                } else {
                    ConnectionPut::Created
                })
            })
            .await
    }

    /// Deletes a connection and its token chain (`token_key`); false when it did not exist.
    pub async fn delete_connection(&self, name: &str, token_key: &str) -> Result<bool, StoreError> {
        let (name, key) = (name.to_owned(), token_key.to_owned());
        self.0
            .write(move |c| {
                let e = StoreError::from_sqlite;
                let n = c
                    .execute("DELETE FROM connections WHERE name = ?1", [&name])
                    .map_err(e)?;
                c.execute("DELETE FROM oauth_tokens WHERE source = ?1", [&key])
                    .map_err(e)?;
                Ok(n > 0)
            })
            .await
    }
}
