//! The store: SQLite databases, their writers and readers.
//!
//! `DATA_DIR/control.db` holds tenants (and later keys, sources, audit);
//! `DATA_DIR/tenants/<tenant>.db` holds one tenant's records. Each open database has one
//! writer thread ([`writer`]) fed by a bounded channel and a small read-only pool
//! ([`reader`]). The API is async and never blocks the tokio runtime. Only this module
//! touches rusqlite. It records its metrics under names from `telemetry::metrics` (a leaf
//! module), which is the one dependency it has beyond rusqlite and zstd.
//!
//! Durability: both database classes default to `synchronous=FULL`. Group commit makes that
//! cheap (one fsync per batch), and it means an acknowledged write survives power loss
//! without relying on replication. `normal` is offered for tenants whose data can be
//! re-harvested.
//!
//! Layering: each file uses only files of earlier layers (or of its own layer, to its left),
//! never one above; `scripts/check-structure.py` refuses a cycle. One-way like Litestream's
//! db.go → replica.go → replica_client.go:
//!
//! 1. leaves: error, base (clock, record cap), text, stored_frame, audit_types
//! 2. fsmode, codec
//! 3. conn → exclusive (the one exclusive contract), reader
//! 4. schema (a kind's write-connection hooks are passed in, never called up) → writer →
//!    db (Db, WeakDb, TenantDb) → hooks (replicator surface)
//! 5. dict → fts (fts::TENANT_WRITER, the tenant hooks) → records (and schema_tests) →
//!    frontier, plain, oauth_tokens, cursors, connections
//! 6. tenant_files (builds tenant databases, sweeps orphans) → registry (opens tenants with
//!    fts::TENANT_WRITER) → this file (Store; its own code uses
//!    only conn, db, fsmode, fts, registry, schema; shared items live in base, re-exported)
//! 7. `impl Store` files above it: tenants, sources, audit_anchor → audit → keys,
//!    tenant_admin, runs → query → export

mod audit;
mod audit_anchor;
mod audit_types;
mod base;
mod changes;
mod codec;
mod conn;
mod connections;
mod cursors;
mod db;
mod dict;
mod error;
mod exclusive;
pub mod export;
mod frontier;
mod fsmode;
mod fts;
mod hooks;
mod keys;
mod oauth_tokens;
mod plain;
mod query;
mod reader;
mod records;
mod registry;
mod run_guard;
mod runs;
mod schema;
#[cfg(test)]
mod schema_tests;
mod sources;
mod stored_frame;
mod tenant_admin;
mod tenant_files;
mod tenants;
mod text;
mod writer;

pub(crate) use base::now_ms;
pub use base::MAX_RECORD_BYTES;
pub use changes::{ChangeKind, ChangeRow, ChangesPage, VersionPair, KEEP_CHANGES_RUNS};
pub use codec::{
    canonical_json, decode as decode_payload, encode as encode_payload,
    encode_canonical as encode_canonical_payload, EncodedPayload,
};
pub use connections::{ConnectionPut, ConnectionRow, MAX_CONNECTIONS};
pub use cursors::{CursorRow, MAX_CURSOR_BYTES};
pub use db::{Db, TenantDb, WeakDb};
pub use dict::{
    decode_with as decode_payload_with, dict_id_of, encode_value_with as encode_value_payload_with,
    encode_with as encode_payload_with, train as train_dictionary, Dictionary,
    MAX_SAMPLES as MAX_DICT_SAMPLES,
};
pub use error::StoreError;
pub use exclusive::{CheckpointMode, CheckpointResult, Exclusive};
pub use frontier::{
    FetchState, FrontierCounts, FrontierEntry, NewEntry, PageCommit, PageCommitted,
    CLAIMED as FRONTIER_CLAIMED, DONE as FRONTIER_DONE, FAILED as FRONTIER_FAILED,
    PENDING as FRONTIER_PENDING,
};
pub use hooks::{BoxFuture, DbObserver, ExternalDb};
pub use oauth_tokens::{OAuthTokenRow, MAX_SECRET_LIST};
pub use records::{PutOutcome, RecordWrite, StoredRecord};
pub use run_guard::AcceptOutcome;
pub use runs::{RunEnd, RunRow, MAX_RUN_LIST};
pub use schema::DbKind;
pub use sources::{SourceRow, SourceWrite, MAX_SOURCE_LIST};
pub use tenant_files::Sweep as OrphanSweep;
pub use tenants::{TenantRow, MAX_LIST as MAX_TENANT_LIST};
pub use writer::{CheckpointPolicy, WriterStats};
// The API's view of the store (keys, audit, queries, tenant administration, usage).
pub use audit_types::{
    AnchorView, AuditEntry, AuditKey, AuditRecord, CheckpointReport, VerifyReport, GLOBAL_CHAIN,
};
pub use fsmode::create_private_dir;
pub use fts::{match_expression, MAX_QUERY_TERMS};
pub use keys::{ApiKeyRow, KeyHashes, NewApiKey, MAX_KEY_LIST};
pub use query::{lookup, Page, RecordFilter, RecordRow, RowRef, RowSink, ScanBudget, VersionRow};
pub use tenant_admin::{
    EraseStatus, PendingEraser, Quotas, ReplicaEraser, TenantDetails, TenantPatch, TenantSize,
    UsageDay,
};
pub use text::{record_text, MAX_TEXT_BYTES};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::StoreConfig;
use crate::tenant::TenantId;
use db::DbOptions;
use registry::Registry;

/// For benchmarks only: a plain connection to an existing tenant database with exactly the
/// writer's settings and SQL functions (the FTS triggers call one), so a baseline loop does
/// the same work as the writer. Blocking. The one place a rusqlite type leaves this module,
/// and only for `benches/store.rs`.
#[doc(hidden)]
pub fn bench_plain_tenant_connection(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let mut c = conn::open_writer(
        path,
        crate::config::Synchronous::Full,
        Duration::from_secs(5),
    )?;
    schema::migrate(&mut c, DbKind::Tenant, path, Some(fts::TENANT_WRITER))?;
    Ok(c)
}

/// Runs `PRAGMA integrity_check` on a database file (read-only); "ok" alone means healthy.
/// Blocking. Used by `gleaner verify` on restored images, which are not open in the store.
pub fn integrity_check(path: &Path) -> Result<Vec<String>, StoreError> {
    let conn = conn::open_reader(path, Duration::from_secs(5), 0)?;
    let mut st = conn
        .prepare("PRAGMA integrity_check")
        .map_err(StoreError::from_sqlite)?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(StoreError::from_sqlite)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::from_sqlite)?;
    Ok(rows)
}

/// All databases of this node.
pub struct Store {
    data_dir: PathBuf,
    control: Db,
    tenants: Arc<Registry>,
    sweeper: tokio::task::JoinHandle<()>,
    observer: Option<Arc<dyn DbObserver>>,
}

impl Store {
    /// Checks the data dir, opens and migrates control.db, and starts the idle sweeper.
    pub async fn open(
        cfg: &StoreConfig,
        checkpoint: CheckpointPolicy,
    ) -> Result<Store, StoreError> {
        Self::open_with(cfg, checkpoint, None).await
    }

    /// [`Store::open`] with an observer told about every database opened and about to be
    /// closed (control.db included). A replicator passes itself here with
    /// [`CheckpointPolicy::External`].
    pub async fn open_with(
        cfg: &StoreConfig,
        checkpoint: CheckpointPolicy,
        observer: Option<Arc<dyn DbObserver>>,
    ) -> Result<Store, StoreError> {
        let data_dir = cfg.data_dir.clone();
        let tenants_dir = data_dir.join("tenants");
        let opts = |sync| DbOptions {
            synchronous: sync,
            busy_timeout: Duration::from_millis(cfg.busy_timeout_ms),
            writer_queue: cfg.writer_queue,
            max_batch: cfg.max_batch,
            readers: cfg.readers_per_db,
            reader_mmap_bytes: cfg.reader_mmap_bytes,
            checkpoint,
        };
        let control_opts = opts(cfg.control_synchronous);
        let control_path = data_dir.join("control.db");
        let (d, t) = (data_dir.clone(), tenants_dir.clone());
        let control = tokio::task::spawn_blocking(move || {
            fsmode::create_private_dir(&d, true)?;
            conn::ensure_writable_dir(&d)?;
            fsmode::own_private_dir(&t)?;
            conn::ensure_writable_dir(&t)?;
            Db::open_blocking(&control_path, DbKind::Control, &control_opts, None)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))??;
        let idle = Duration::from_secs(cfg.idle_close_secs);
        let tenants = Arc::new(Registry::new(
            tenants_dir,
            opts(cfg.tenant_synchronous),
            cfg.max_open_tenants,
            idle,
            observer.clone(),
        ));
        if let Some(o) = &observer {
            o.opened(&control);
        }
        let sweeper = tokio::spawn({
            let tenants = Arc::clone(&tenants);
            let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let n = tenants.sweep().await;
                    if n > 0 {
                        tracing::debug!(closed = n, "closed idle tenant databases");
                    }
                }
            }
        });
        Ok(Store {
            data_dir,
            control,
            tenants,
            sweeper,
            observer,
        })
    }

    /// Path of a tenant's database file (whether or not it exists).
    pub fn tenant_db_path(&self, id: &TenantId) -> PathBuf {
        self.tenants.path_of(id)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn control(&self) -> &Db {
        &self.control
    }

    /// The database of an existing tenant.
    pub async fn tenant_db(&self, id: &TenantId) -> Result<TenantDb, StoreError> {
        self.tenants.open(id).await.map(TenantDb)
    }

    pub async fn open_tenant_count(&self) -> usize {
        self.tenants.open_count().await
    }

    /// Readiness: control.db's writer is alive and can take the write lock.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.control.ping().await
    }

    /// Flushes and closes every database. Queued writes commit first.
    pub async fn close(&self) {
        self.sweeper.abort();
        self.tenants.close_all().await;
        if let Some(o) = &self.observer {
            o.closing(self.control.clone()).await;
        }
        self.control.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_write_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            ..StoreConfig::default()
        };
        let store = Store::open(&cfg, CheckpointPolicy::External).await.unwrap();
        let db = store.control().clone();
        db.write(|c| {
            c.execute_batch("CREATE TABLE t (v INTEGER PRIMARY KEY)")
                .map_err(StoreError::from_sqlite)
        })
        .await
        .unwrap();
        // Hold the writer busy so the 300 writes below queue up and share one batch
        // (otherwise batching depends on scheduling); every third one fails after writing,
        // every seventh panics. The writes are queued only once the writer is inside the
        // blocker: were the blocker still in flight, it could run after them and the batch
        // sizes would again be left to the scheduler.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (entered, inside) = tokio::sync::oneshot::channel::<()>();
        let blocker = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(move |_| {
                    let _ = entered.send(());
                    let _ = hold.recv_timeout(std::time::Duration::from_secs(30));
                    Ok(())
                })
                .await
            }
        });
        inside.await.expect("the writer runs the blocker");
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..300i64 {
            let db = db.clone();
            let queued = queued.clone();
            tasks.push(tokio::spawn(async move {
                queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                db.write(move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [i])
                        .map_err(StoreError::from_sqlite)?;
                    if i % 7 == 0 {
                        panic!("op {i} panics");
                    }
                    if i % 3 == 0 {
                        return Err(StoreError::Corrupt(format!("op {i} fails")));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while queued.load(std::sync::atomic::Ordering::SeqCst) < 300 {
            assert!(
                std::time::Instant::now() < deadline,
                "writes were not queued"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Each task sends right after counting itself; give the sends a moment to land.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        let mut ok = 0;
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, i as i64);
                    ok += 1;
                }
                Err(StoreError::WritePanicked(m)) => assert!(i % 7 == 0, "{m}"),
                Err(StoreError::Corrupt(m)) => assert!(i % 3 == 0 && i % 7 != 0, "{m}"),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let rows: Vec<i64> = db
            .read(|c| {
                let mut st = c
                    .prepare("SELECT v FROM t ORDER BY v")
                    .map_err(StoreError::from_sqlite)?;
                let v = st
                    .query_map([], |r| r.get(0))
                    .map_err(StoreError::from_sqlite)?
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(StoreError::from_sqlite)?;
                Ok(v)
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), ok);
        assert!(rows.iter().all(|v| v % 3 != 0 && v % 7 != 0));
        assert!(
            db.writer_stats()
                .largest_batch
                .load(std::sync::atomic::Ordering::Relaxed)
                > 1
        );
        // The writer survived the panics and still answers.
        db.ping().await.unwrap();
        store.close().await;
        assert!(matches!(db.ping().await, Err(StoreError::Closed)));
    }

    #[tokio::test]
    async fn reader_connections_map_what_store_reader_mmap_bytes_says() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [0u64, 1 << 20] {
            let cfg = StoreConfig {
                data_dir: dir.path().join(bytes.to_string()),
                reader_mmap_bytes: bytes,
                ..StoreConfig::default()
            };
            let store = Store::open(&cfg, CheckpointPolicy::External).await.unwrap();
            let mapped: i64 = store
                .control()
                .read(|c| {
                    c.query_row("PRAGMA mmap_size", [], |r| r.get(0))
                        .map_err(StoreError::from_sqlite)
                })
                .await
                .unwrap();
            assert_eq!(mapped, bytes as i64);
            store.close().await;
        }
    }
}
