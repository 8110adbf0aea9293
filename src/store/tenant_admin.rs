//! Tenant administration beyond create/list/get: quotas, settings, audited changes,
//! deletion (with a replica-erasure request) and usage counters.
//!
//! Deleting a tenant removes its control rows (tenant, keys) and its database files. The
//! open-database registry has no per-tenant eviction yet, so a database that is still open
//! when it is deleted is unlinked under its writer (SQLite then refuses further writes with
//! `SQLITE_READONLY_DBMOVED`) and closed by the idle sweeper; re-creating the same tenant id
//! is refused until that has surely happened (see [`Store::create_tenant_audited`]).

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::audit::append;
use super::audit_types::{AuditEntry, AuditKey};
use super::error::StoreError;
use super::Store;
use crate::tenant::TenantId;

/// Per-tenant limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    pub storage_bytes: Option<i64>,
    pub records: Option<i64>,
    pub sources: Option<i64>,
    pub runs_per_day: Option<i64>,
}

/// A tenant with its quotas and settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantDetails {
    pub id: String,
    pub display_name: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub quotas: Quotas,
    pub settings: serde_json::Value,
}

/// A change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub display_name: Option<String>,
    /// Replaces all four quotas.
    pub quotas: Option<Quotas>,
    /// Replaces the settings object.
    pub settings: Option<serde_json::Value>,
}

/// Replica erasure as recorded at deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseStatus {
    NotRequested,
    /// Recorded; the replicator has not confirmed it (or is not built yet).
    Pending,
    Done,
    Failed,
}

impl EraseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EraseStatus::NotRequested => "not_requested",
            EraseStatus::Pending => "pending",
            EraseStatus::Done => "done",
            EraseStatus::Failed => "failed",
        }
    }
}

const COLS: &str = "id, display_name, created_ms, updated_ms, quota_storage_bytes, quota_records,
                    quota_sources, quota_runs_per_day, settings";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TenantDetails> {
    let settings: String = r.get(8)?;
    Ok(TenantDetails {
        id: r.get(0)?,
        display_name: r.get(1)?,
        created_ms: r.get(2)?,
        updated_ms: r.get(3)?,
        quotas: Quotas {
            storage_bytes: r.get(4)?,
            records: r.get(5)?,
            sources: r.get(6)?,
            runs_per_day: r.get(7)?,
        },
        settings: serde_json::from_str(&settings).unwrap_or(serde_json::Value::Null),
    })
}

fn get(c: &Connection, id: &str) -> Result<Option<TenantDetails>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLS} FROM tenants WHERE id = ?1"))
        .map_err(StoreError::from_sqlite)?
        .query_row([id], row)
        .optional()
        .map_err(StoreError::from_sqlite)
}

/// Usage of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageDay {
    pub day: String,
    pub api_requests: i64,
    pub runs: i64,
}

/// Size and record count of a tenant's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TenantSize {
    /// Database file plus WAL, in bytes.
    pub storage_bytes: i64,
    pub records: i64,
}

impl Store {
    fn tenant_files(&self, id: &TenantId) -> Vec<PathBuf> {
        let db = self.tenants.path_of(id);
        let mut v = vec![db.clone()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            v.push(PathBuf::from(p));
        }
        v
    }

    /// Creates a tenant (database file first, then its row and audit entry in one write,
    /// then the open; see [`Store::create_tenant`]).
    /// Refused while a deletion of the same id is younger than `reuse_after_ms`.
    // Each argument is one fact of the change; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_tenant_audited(
        &self,
        id: &TenantId,
        display_name: &str,
        quotas: Quotas,
        settings: serde_json::Value,
        reuse_after_ms: i64,
        audit_key: &AuditKey,
        audit: AuditEntry,
    ) -> Result<TenantDetails, StoreError> {
        let tid = id.to_string();
        let now = super::base::now_ms();
        let recent: Option<i64> = {
            let tid = tid.clone();
            self.control
                .read(move |c| {
                    c.query_row(
                        "SELECT max(deleted_ms) FROM tenant_deletions WHERE tenant = ?1",
                        [tid],
                        |r| r.get(0),
                    )
                    .map_err(StoreError::from_sqlite)
                })
                .await?
        };
        if let Some(at) = recent {
            if now - at < reuse_after_ms {
                return Err(StoreError::TenantRecentlyDeleted {
                    tenant: tid,
                    secs_ago: (now - at) / 1000,
                    retry_secs: (reuse_after_ms - (now - at)) / 1000 + 1,
                });
            }
        }
        // An existing row means the file exists too: refuse before touching the registry.
        if self.get_tenant_details(id).await.is_ok() {
            return Err(StoreError::TenantExists(tid));
        }
        if recent.is_some() {
            // A deleted tenant's files should be gone; if removing them failed back then,
            // never let the new tenant of the same id open the old data.
            let files = self.tenant_files(id);
            tokio::task::spawn_blocking(move || {
                for f in files {
                    let _ = std::fs::remove_file(f);
                }
            })
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?;
        }
        self.tenants.create_file(id).await?;
        let (name, ak) = (display_name.to_owned(), audit_key.clone());
        let settings = serde_json::to_string(&settings).unwrap_or_else(|_| "{}".into());
        let row = self
            .control
            .write(move |c| {
                let n = c
                    .execute(
                        "INSERT INTO tenants (id, display_name, created_ms, updated_ms,
                             quota_storage_bytes, quota_records, quota_sources,
                             quota_runs_per_day, settings)
                         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
                        params![
                            tid,
                            name,
                            now,
                            quotas.storage_bytes,
                            quotas.records,
                            quotas.sources,
                            quotas.runs_per_day,
                            settings
                        ],
                    )
                    .map_err(StoreError::from_sqlite)?;
                if n == 0 {
                    return Err(StoreError::TenantExists(tid));
                }
                append(c, &ak, &audit)?;
                get(c, &tid)?.ok_or(StoreError::TenantNotFound(tid))
            })
            .await;
        self.finish_create(id, row).await
    }

    pub async fn get_tenant_details(&self, id: &TenantId) -> Result<TenantDetails, StoreError> {
        let tid = id.to_string();
        self.control
            .read(move |c| get(c, &tid)?.ok_or(StoreError::TenantNotFound(tid)))
            .await
    }

    /// Tenants in id order after `after`, at most `limit` (≤ 1000).
    pub async fn list_tenant_details(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TenantDetails>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        let limit = limit.min(super::MAX_TENANT_LIST) as i64;
        self.control
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLS} FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2"
                    ))
                    .map_err(StoreError::from_sqlite)?;
                let rows = st
                    .query_map(params![after, limit], row)
                    .map_err(StoreError::from_sqlite)?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }

    pub async fn update_tenant(
        &self,
        id: &TenantId,
        patch: TenantPatch,
        audit_key: &AuditKey,
        audit: AuditEntry,
    ) -> Result<TenantDetails, StoreError> {
        let (tid, ak) = (id.to_string(), audit_key.clone());
        let now = super::base::now_ms();
        self.control
            .write(move |c| {
                let cur = get(c, &tid)?.ok_or_else(|| StoreError::TenantNotFound(tid.clone()))?;
                let name = patch.display_name.unwrap_or(cur.display_name);
                let q = patch.quotas.unwrap_or(cur.quotas);
                let settings = patch.settings.unwrap_or(cur.settings);
                let settings = serde_json::to_string(&settings).unwrap_or_else(|_| "{}".into());
                c.execute(
                    "UPDATE tenants SET display_name = ?2, updated_ms = ?3,
                        quota_storage_bytes = ?4, quota_records = ?5, quota_sources = ?6,
                        quota_runs_per_day = ?7, settings = ?8
                     WHERE id = ?1",
                    params![
                        tid,
                        name,
                        now,
                        q.storage_bytes,
                        q.records,
                        q.sources,
                        q.runs_per_day,
                        settings
                    ],
                )
                .map_err(StoreError::from_sqlite)?;
                append(c, &ak, &audit)?;
                get(c, &tid)?.ok_or(StoreError::TenantNotFound(tid))
            })
            .await
    }

    /// Deletes a tenant: its row and keys and a deletion record with the erase request and
    /// every audit entry commit together, then its database files are removed. Audit
    /// entries of the tenant's chain are kept.
    pub async fn delete_tenant(
        &self,
        id: &TenantId,
        erase: bool,
        audit_key: &AuditKey,
        audits: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        let (tid, ak) = (id.to_string(), audit_key.clone());
        let now = super::base::now_ms();
        let status = if erase {
            EraseStatus::Pending
        } else {
            EraseStatus::NotRequested
        };
        self.control
            .write(move |c| {
                let n = c
                    .execute("DELETE FROM tenants WHERE id = ?1", [&tid])
                    .map_err(StoreError::from_sqlite)?;
                if n == 0 {
                    return Err(StoreError::TenantNotFound(tid));
                }
                c.execute("DELETE FROM api_keys WHERE tenant = ?1", [&tid])
                    .map_err(StoreError::from_sqlite)?;
                c.execute(
                    "INSERT OR REPLACE INTO tenant_deletions (tenant, deleted_ms, erase, erase_status)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![tid, now, erase, status.as_str()],
                )
                .map_err(StoreError::from_sqlite)?;
                for a in &audits {
                    append(c, &ak, a)?;
                }
                Ok(())
            })
            .await?;
        // An open database is closed first (whoever still holds it), so no writer keeps
        // appending to unlinked files and the replicator has stopped before an erasure.
        let files = self.tenant_files(id);
        self.tenants
            .evict(id, || async move {
                tokio::task::spawn_blocking(move || {
                    for f in files {
                        match std::fs::remove_file(&f) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => {
                                return Err(StoreError::DataDir {
                                    path: f,
                                    reason: format!("cannot remove deleted tenant's file: {e}"),
                                })
                            }
                        }
                    }
                    Ok(())
                })
                .await
                .map_err(|e| StoreError::Join(e.to_string()))?
            })
            .await
    }

    /// Records the outcome of a replica erasure requested at deletion.
    pub async fn set_erase_status(
        &self,
        tenant: &str,
        status: EraseStatus,
    ) -> Result<(), StoreError> {
        let tid = tenant.to_owned();
        self.control
            .write(move |c| {
                c.execute(
                    "UPDATE tenant_deletions SET erase_status = ?2
                     WHERE tenant = ?1 AND deleted_ms = (SELECT max(deleted_ms) FROM tenant_deletions WHERE tenant = ?1)",
                    params![tid, status.as_str()],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(())
            })
            .await
    }

    /// Adds API request and run counts per (tenant, day), in one write.
    pub async fn add_usage(&self, rows: Vec<(String, String, i64, i64)>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.control
            .write(move |c| {
                let mut st = c
                    .prepare_cached(
                        "INSERT INTO usage_daily (tenant, day, api_requests, runs)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (tenant, day) DO UPDATE SET
                            api_requests = api_requests + excluded.api_requests,
                            runs = runs + excluded.runs",
                    )
                    .map_err(StoreError::from_sqlite)?;
                for (t, d, a, r) in &rows {
                    st.execute(params![t, d, a, r])
                        .map_err(StoreError::from_sqlite)?;
                }
                Ok(())
            })
            .await
    }

    /// Counts one harvest run for `tenant` on `day` (YYYY-MM-DD), refused with
    /// [`StoreError::QuotaExceeded`] (`runs_per_day`) if the tenant's quota is reached. The
    /// check and the count are one write, so concurrent runs cannot both pass the last slot.
    /// For the harvest engine to call before it starts a run.
    pub async fn start_run(&self, tenant: &TenantId, day: &str) -> Result<i64, StoreError> {
        let (tid, day) = (tenant.to_string(), day.to_owned());
        self.control
            .write(move |c| {
                let quota: Option<i64> = c
                    .query_row("SELECT quota_runs_per_day FROM tenants WHERE id = ?1", [&tid], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(StoreError::from_sqlite)?
                    .ok_or_else(|| StoreError::TenantNotFound(tid.clone()))?;
                let runs: i64 = c
                    .query_row(
                        "SELECT coalesce((SELECT runs FROM usage_daily WHERE tenant = ?1 AND day = ?2), 0)",
                        params![tid, day],
                        |r| r.get(0),
                    )
                    .map_err(StoreError::from_sqlite)?;
                if let Some(limit) = quota {
                    if runs + 1 > limit {
                        return Err(StoreError::QuotaExceeded {
                            tenant: tid,
                            quota: "runs_per_day",
                            limit,
                            would_be: runs + 1,
                        });
                    }
                }
                c.execute(
                    "INSERT INTO usage_daily (tenant, day, api_requests, runs) VALUES (?1, ?2, 0, 1)
                     ON CONFLICT (tenant, day) DO UPDATE SET runs = runs + 1",
                    params![tid, day],
                )
                .map_err(StoreError::from_sqlite)?;
                Ok(runs + 1)
            })
            .await
    }

    /// Refuses a new source when the tenant already has `current` sources and its `sources`
    /// quota allows no more. For the harvest engine's source creation.
    pub async fn check_sources_quota(
        &self,
        tenant: &TenantId,
        current: i64,
    ) -> Result<(), StoreError> {
        let d = self.get_tenant_details(tenant).await?;
        match d.quotas.sources {
            Some(limit) if current + 1 > limit => Err(StoreError::QuotaExceeded {
                tenant: tenant.to_string(),
                quota: "sources",
                limit,
                would_be: current + 1,
            }),
            _ => Ok(()),
        }
    }

    /// Usage rows of a tenant from `from_day` (YYYY-MM-DD) on, oldest first.
    pub async fn usage_days(
        &self,
        tenant: &str,
        from_day: &str,
    ) -> Result<Vec<UsageDay>, StoreError> {
        let (t, d) = (tenant.to_owned(), from_day.to_owned());
        self.control
            .read(move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT day, api_requests, runs FROM usage_daily
                         WHERE tenant = ?1 AND day >= ?2 ORDER BY day LIMIT 400",
                    )
                    .map_err(StoreError::from_sqlite)?;
                let rows = st
                    .query_map(params![t, d], |r| {
                        Ok(UsageDay {
                            day: r.get(0)?,
                            api_requests: r.get(1)?,
                            runs: r.get(2)?,
                        })
                    })
                    .map_err(StoreError::from_sqlite)?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(StoreError::from_sqlite)
            })
            .await
    }
}

/// Erasure of a deleted tenant's replica objects, implemented by the replicator.
///
/// Called after the tenant's row and files are gone, when the deletion asked for
/// `erase=true`. The request is already recorded (`tenant_deletions.erase_status =
/// pending`, and an `erasure.requested` audit entry); the returned status is stored and
/// audited. The replicator implements it (`replicate::erase`); a node without replication
/// uses [`PendingEraser`], which leaves requests pending.
pub trait ReplicaEraser: Send + Sync + 'static {
    fn erase<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<EraseStatus, String>> + Send + 'a>>;
}

/// Records erasure requests without acting on them (replication is off on this node).
pub struct PendingEraser;

impl ReplicaEraser for PendingEraser {
    fn erase<'a>(
        &'a self,
        _tenant: &'a TenantId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<EraseStatus, String>> + Send + 'a>>
    {
        Box::pin(async { Ok(EraseStatus::Pending) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::store::CheckpointPolicy;

    fn entry() -> AuditEntry {
        AuditEntry {
            tenant: String::new(),
            at_ms: 0,
            actor: "t".into(),
            action: "tenant.created".into(),
            target: "t".into(),
            remote: "local".into(),
            outcome: "success".into(),
            detail: serde_json::json!({}),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_and_sources_quotas() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        };
        let store = Store::open(&cfg, CheckpointPolicy::External).await.unwrap();
        let key = AuditKey([1; 32]);
        let t = TenantId::parse("q").unwrap();
        let quotas = Quotas {
            runs_per_day: Some(2),
            sources: Some(1),
            ..Quotas::default()
        };
        store
            .create_tenant_audited(&t, "q", quotas, serde_json::json!({}), 0, &key, entry())
            .await
            .unwrap();
        assert_eq!(store.start_run(&t, "2026-01-01").await.unwrap(), 1);
        assert_eq!(store.start_run(&t, "2026-01-01").await.unwrap(), 2);
        let e = store.start_run(&t, "2026-01-01").await.unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::QuotaExceeded {
                    quota: "runs_per_day",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(store.start_run(&t, "2026-01-02").await.unwrap(), 1);
        let days = store.usage_days("q", "2026-01-01").await.unwrap();
        assert_eq!(days[0].runs, 2);
        store.check_sources_quota(&t, 0).await.unwrap();
        assert!(store.check_sources_quota(&t, 1).await.is_err());
        store.close().await;
    }
}
