//! OAuth tokens and tenant secrets in the tenant database.
//!
//! A provider that rotates refresh tokens invalidates the old one when it issues a new
//! one, so the new token must be durable before anything else happens: [`TenantDb::put_oauth_token`]
//! is its own write, committed (fsync'd) before the runtime uses the access token it came
//! with. `seed_hash` is the hash of the refresh token configured in the definition: when
//! the operator configures a different one, the stored chain is abandoned for it.

use rusqlite::{params, OptionalExtension};

use super::db::TenantDb;
use super::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthTokenRow {
    pub seed_hash: Vec<u8>,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    pub expires_ms: Option<i64>,
}

/// Most secrets one list call returns.
pub const MAX_SECRET_LIST: usize = 1000;

impl TenantDb {
    pub async fn oauth_token(&self, source: &str) -> Result<Option<OAuthTokenRow>, StoreError> {
        let source = source.to_owned();
        self.0
            .read(move |c| {
                c.query_row(
                    "SELECT seed_hash, refresh_token, access_token, expires_ms
                     FROM oauth_tokens WHERE source = ?1",
                    [source],
                    |r| {
                        Ok(OAuthTokenRow {
                            seed_hash: r.get(0)?,
                            refresh_token: r.get(1)?,
                            access_token: r.get(2)?,
                            expires_ms: r.get(3)?,
                        })
                    },
                )
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    /// Stores the token chain of a source; resolves once committed.
    pub async fn put_oauth_token(&self, source: &str, t: OAuthTokenRow) -> Result<(), StoreError> {
        let source = source.to_owned();
        self.0
            .write(move |c| {
                c.execute(
                    "INSERT INTO oauth_tokens (source, seed_hash, refresh_token, access_token,
                                               expires_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (source) DO UPDATE SET seed_hash = ?2, refresh_token = ?3,
                         access_token = ?4, expires_ms = ?5, updated_ms = ?6",
                    params![
                        source,
                        t.seed_hash,
                        t.refresh_token,
                        t.access_token,
                        t.expires_ms,
                        super::base::now_ms()
                    ],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    pub async fn put_secret(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.0
            .write(move |c| {
                c.execute(
                    "INSERT INTO secrets (name, value, updated_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET value = ?2, updated_ms = ?3",
                    params![name, value, super::base::now_ms()],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    pub async fn secret(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.0
            .read(move |c| {
                c.query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(StoreError::from_sqlite)
            })
            .await
    }

    pub async fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.0
            .write(move |c| {
                c.execute("DELETE FROM secrets WHERE name = ?1", [name])
                    .map(|n| n > 0)
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }

    pub async fn secret_names(&self) -> Result<Vec<String>, StoreError> {
        self.0
            .read(|c| {
                let e = StoreError::from_sqlite;
                let v = c
                    .prepare("SELECT name FROM secrets ORDER BY name LIMIT ?1")
                    .map_err(e)?
                    .query_map([MAX_SECRET_LIST as i64], |r| r.get(0))
                    .map_err(e)?
                    .collect::<Result<Vec<String>, _>>()
                    .map_err(e)?;
                Ok(v)
            })
            .await
    }
}
