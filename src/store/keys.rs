//! API keys in control.db: rows, never secrets.
//!
//! The store keeps only `HMAC-SHA256(server secret, key secret)` (computed by `auth`), the
//! role, scope (a tenant, or NULL for a global admin key), expiry, rotation state and the
//! last-used time. Every change appends its audit entry inside the same write operation.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::audit::append;
use super::audit_types::{AuditEntry, AuditKey};
use super::error::StoreError;
use super::Store;

/// Most keys one list call returns.
pub const MAX_KEY_LIST: usize = 1000;

/// A key as shown to users (no hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant: Option<String>,
    pub role: String,
    pub name: String,
    pub created_ms: i64,
    pub created_by: String,
    pub rotated_ms: Option<i64>,
    /// Until when the secret replaced by the last rotation is still accepted.
    pub previous_secret_valid_until_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    pub last_used_ms: Option<i64>,
}

/// What authentication needs besides the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHashes {
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

/// A key to insert.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub tenant: Option<String>,
    pub role: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub created_ms: i64,
    pub created_by: String,
    pub expires_ms: Option<i64>,
}

const COLS: &str = "id, tenant, role, name, created_ms, created_by, rotated_ms,
                    prev_valid_until_ms, expires_ms, revoked_ms, last_used_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.get(0)?,
        tenant: r.get(1)?,
        role: r.get(2)?,
        name: r.get(3)?,
        created_ms: r.get(4)?,
        created_by: r.get(5)?,
        rotated_ms: r.get(6)?,
        previous_secret_valid_until_ms: r.get(7)?,
        expires_ms: r.get(8)?,
        revoked_ms: r.get(9)?,
        last_used_ms: r.get(10)?,
    })
}

/// `tenant IS ?` matches NULL to NULL, so one statement serves both scopes.
fn get_scoped(
    c: &Connection,
    tenant: Option<&str>,
    id: &str,
) -> Result<Option<ApiKeyRow>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {COLS} FROM api_keys WHERE id = ?1 AND tenant IS ?2"
    ))
    .map_err(StoreError::from_sqlite)?
    .query_row(params![id, tenant], row)
    .optional()
    .map_err(StoreError::from_sqlite)
}

fn not_found(id: &str) -> StoreError {
    StoreError::KeyNotFound(id.to_owned())
}

impl Store {
    pub async fn insert_api_key(
        &self,
        k: NewApiKey,
        audit_key: &AuditKey,
        audit: AuditEntry,
    ) -> Result<ApiKeyRow, StoreError> {
        let ak = audit_key.clone();
        self.control
            .write(move |c| {
                if let Some(t) = &k.tenant {
                    let exists: Option<i64> = c
                        .query_row("SELECT 1 FROM tenants WHERE id = ?1", [t], |r| r.get(0))
                        .optional()
                        .map_err(StoreError::from_sqlite)?;
                    if exists.is_none() {
                        return Err(StoreError::TenantNotFound(t.clone()));
                    }
                }
                c.execute(
                    "INSERT INTO api_keys (id, tenant, role, name, secret_hash, created_ms,
                                           created_by, expires_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        k.id,
                        k.tenant,
                        k.role,
                        k.name,
                        k.secret_hash,
                        k.created_ms,
                        k.created_by,
                        k.expires_ms
                    ],
                )
                .map_err(StoreError::from_sqlite)?;
                append(c, &ak, &audit)?;
                get_scoped(c, k.tenant.as_deref(), &k.id)?.ok_or_else(|| not_found(&k.id))
            })
            .await
    }

    /// The row and hashes of key `id`, whatever its scope (authentication).
    pub async fn api_key_for_auth(
        &self,
        id: &str,
    ) -> Result<Option<(ApiKeyRow, KeyHashes)>, StoreError> {
        let id = id.to_owned();
        self.control
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT {COLS}, secret_hash, prev_secret_hash FROM api_keys WHERE id = ?1"
                ))
                .map_err(StoreError::from_sqlite)?
                .query_row([id], |r| {
                    Ok((
                        row(r)?,
                        KeyHashes {
                            current: r.get(11)?,
                            previous: r.get(12)?,
                        },
                    ))
                })
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Keys of one scope (a tenant, or `None` for global admin keys) in id order.
    pub async fn list_api_keys(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApiKeyRow>, StoreError> {
        let tenant = tenant.map(str::to_owned);
        let after = after.unwrap_or("").to_owned();
        let limit = limit.min(MAX_KEY_LIST) as i64;
        self.control
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM api_keys WHERE tenant IS ?1 AND id > ?2
                         ORDER BY id LIMIT ?3"
                    ))
                    .map_err(StoreError::from_sqlite)?;
                let rows = st
                    .query_map(params![tenant, after, limit], row)
                    .map_err(StoreError::from_sqlite)?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }

    pub async fn get_api_key(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<ApiKeyRow, StoreError> {
        let (tenant, id) = (tenant.map(str::to_owned), id.to_owned());
        self.control
            .read(move |c| get_scoped(c, tenant.as_deref(), &id)?.ok_or_else(|| not_found(&id)))
            .await
    }

    /// Replaces the secret; the previous one stays valid until `previous_valid_until_ms`.
    /// A revoked key cannot be rotated.
    // Each argument is one fact of the change; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn rotate_api_key(
        &self,
        tenant: Option<&str>,
        id: &str,
        new_hash: Vec<u8>,
        now_ms: i64,
        previous_valid_until_ms: i64,
        audit_key: &AuditKey,
        audit: AuditEntry,
    ) -> Result<ApiKeyRow, StoreError> {
        let (tenant, id, ak) = (tenant.map(str::to_owned), id.to_owned(), audit_key.clone());
        self.control
            .write(move |c| {
                let cur = get_scoped(c, tenant.as_deref(), &id)?.ok_or_else(|| not_found(&id))?;
                if cur.revoked_ms.is_some() {
                    return Err(StoreError::KeyRevoked(id));
                }
                c.execute(
                    "UPDATE api_keys SET prev_secret_hash = secret_hash, prev_valid_until_ms = ?2,
                                         secret_hash = ?3, rotated_ms = ?4
                     WHERE id = ?1",
                    params![id, previous_valid_until_ms, new_hash, now_ms],
                )
                .map_err(StoreError::from_sqlite)?;
                append(c, &ak, &audit)?;
                get_scoped(c, tenant.as_deref(), &id)?.ok_or_else(|| not_found(&id))
            })
            .await
    }

    /// Revokes a key (idempotent: revoking twice keeps the first time).
    pub async fn revoke_api_key(
        &self,
        tenant: Option<&str>,
        id: &str,
        now_ms: i64,
        audit_key: &AuditKey,
        audit: AuditEntry,
    ) -> Result<ApiKeyRow, StoreError> {
        let (tenant, id, ak) = (tenant.map(str::to_owned), id.to_owned(), audit_key.clone());
        self.control
            .write(move |c| {
                get_scoped(c, tenant.as_deref(), &id)?.ok_or_else(|| not_found(&id))?;
                c.execute(
                    "UPDATE api_keys SET revoked_ms = coalesce(revoked_ms, ?2),
                                         prev_secret_hash = NULL, prev_valid_until_ms = NULL
                     WHERE id = ?1",
                    params![id, now_ms],
                )
                .map_err(StoreError::from_sqlite)?;
                append(c, &ak, &audit)?;
                get_scoped(c, tenant.as_deref(), &id)?.ok_or_else(|| not_found(&id))
            })
            .await
    }

    /// Records last-used times gathered in memory, in one write.
    pub async fn touch_api_keys(&self, used: Vec<(String, i64)>) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.control
            .write(move |c| {
                let mut st = c
                    .prepare_cached(
                        "UPDATE api_keys SET last_used_ms = max(coalesce(last_used_ms, 0), ?2)
                         WHERE id = ?1",
                    )
                    .map_err(StoreError::from_sqlite)?;
                for (id, at) in &used {
                    st.execute(params![id, at])
                        .map_err(StoreError::from_sqlite)?;
                }
                Ok(())
            })
            .await
    }
}
