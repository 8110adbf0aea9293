//! The bounded set of open tenant databases.
//!
//! At most `max_open` tenant databases are open; a database unused for `idle` is closed by
//! the sweeper, and when the set is full the least recently used database that nobody holds
//! is closed to make room. A database some caller still holds is never closed under it, so
//! there is never a second writer thread for one file. This is also the one place a
//! tenant's database handle is obtained, so tenant scoping checks belong here.
//!
//! An optional [`DbObserver`] hears about every open and, before every close, gets to
//! finish its work (the replicator ships the WAL tail). Until that and the close are done
//! the tenant stays in `closing`, and an `open` of it waits, so a re-open can never start a
//! second writer while the old one is still shutting down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};

use super::db::{Db, DbOptions};
use super::error::StoreError;
use super::fts;
use super::hooks::DbObserver;
use super::schema::DbKind;
use super::tenant_files::{self, Sweep};
use crate::telemetry::metrics as m;
use crate::tenant::TenantId;

pub(crate) struct Registry {
    dir: PathBuf,
    opts: DbOptions,
    max_open: usize,
    idle: Duration,
    observer: Option<Arc<dyn DbObserver>>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    dbs: HashMap<TenantId, Db>,
    /// Tenants whose close is in progress; the sender is dropped when it is done.
    closing: HashMap<TenantId, watch::Receiver<()>>,
}

impl Registry {
    pub(crate) fn new(
        dir: PathBuf,
        opts: DbOptions,
        max_open: usize,
        idle: Duration,
        observer: Option<Arc<dyn DbObserver>>,
    ) -> Self {
        Registry {
            dir,
            opts,
            max_open,
            idle,
            observer,
            open: Mutex::new(Open::default()),
        }
    }

    /// Tells the observer, then closes the database.
    async fn close_db(&self, db: Db) {
        if let Some(o) = &self.observer {
            o.closing(db.clone()).await;
        }
        db.close().await;
    }

    /// The registry's lock, taken once no close of `id` is in progress (a close in
    /// progress must finish before anyone opens or evicts the same database).
    async fn lock_unless_closing(&self, id: &TenantId) -> tokio::sync::MutexGuard<'_, Open> {
        loop {
            let open = self.open.lock().await;
            match open.closing.get(id) {
                Some(rx) => {
                    let mut rx = rx.clone();
                    drop(open);
                    // Err means the closer is done (its sender was dropped).
                    while rx.changed().await.is_ok() {}
                }
                None => return open,
            }
        }
    }

    pub(crate) fn path_of(&self, id: &TenantId) -> PathBuf {
        self.dir.join(id.db_file_name())
    }

    /// Returns the open database of `id`, opening it if needed; [`StoreError::TenantNotFound`]
    /// when its file does not exist. Files are created only by `tenant_files` (under a
    /// temporary name, moved into place finished), never here: opening attaches the
    /// replicator, which must not see a database no control.db row owns yet.
    pub(crate) async fn open(&self, id: &TenantId) -> Result<Db, StoreError> {
        let mut open = self.lock_unless_closing(id).await;
        if let Some(db) = open.dbs.get(id) {
            db.touch();
            return Ok(db.clone());
        }
        let path = self.path_of(id);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(StoreError::TenantNotFound(id.to_string()));
        }
        if open.dbs.len() >= self.max_open {
            let victim = open
                .dbs
                .iter()
                .filter(|(_, db)| db.handle_count() == 1)
                .min_by_key(|(_, db)| db.last_used_ms())
                .map(|(k, _)| k.clone());
            // Closed under the lock: nobody can re-open the victim meanwhile.
            match victim.and_then(|k| open.dbs.remove(&k)) {
                Some(db) => self.close_db(db).await,
                None => return Err(StoreError::TooManyOpen(self.max_open)),
            }
        }
        let opts = self.opts.clone();
        let db = tokio::task::spawn_blocking(move || {
            Db::open_blocking(&path, DbKind::Tenant, &opts, Some(fts::TENANT_WRITER))
                .map_err(StoreError::disk_full_on_open)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))??;
        if let Some(o) = &self.observer {
            o.opened(&db);
        }
        open.dbs.insert(id.clone(), db.clone());
        metrics::gauge!(m::STORE_OPEN_TENANT_DBS).set(open.dbs.len() as f64);
        Ok(db)
    }

    /// Builds `id`'s database file (see `tenant_files`) without opening it.
    pub(crate) async fn create_file(&self, id: &TenantId) -> Result<(), StoreError> {
        let (dir, id, opts) = (self.dir.clone(), id.clone(), self.opts.clone());
        tokio::task::spawn_blocking(move || {
            tenant_files::build_blocking(&dir, &id, opts.synchronous, opts.busy_timeout)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
        .map(|_| ())
    }

    /// Removes the file [`Registry::create_file`] made when its row could not be committed.
    pub(crate) async fn discard_new_file(&self, id: &TenantId) {
        let path = self.path_of(id);
        let _ = tokio::task::spawn_blocking(move || tenant_files::remove_db_files(&path)).await;
    }

    /// The start-up sweep of tenant files no row in `owned` owns (see `tenant_files`).
    pub(crate) async fn sweep_orphans(&self, owned: std::collections::HashSet<String>) -> Sweep {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || tenant_files::sweep_blocking(&dir, &owned))
            .await
            .unwrap_or_else(|e| {
                // A sweep that died part-way: say so rather than report a clean sweep.
                tracing::error!(error = %e, "the orphan tenant sweep failed part-way; orphans may remain until the next start");
                Sweep::default()
            })
    }

    /// Closes databases idle for longer than the idle limit and held by nobody.
    pub(crate) async fn sweep(&self) -> usize {
        let now = super::base::now_ms() as u64;
        let idle_ms = self.idle.as_millis() as u64;
        let closing: Vec<(TenantId, Db, watch::Sender<()>)> = {
            let mut open = self.open.lock().await;
            let keys: Vec<TenantId> = open
                .dbs
                .iter()
                .filter(|(_, db)| {
                    db.handle_count() == 1 && now.saturating_sub(db.last_used_ms()) >= idle_ms
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(db) = open.dbs.remove(&k) {
                    let (tx, rx) = watch::channel(());
                    open.closing.insert(k.clone(), rx);
                    out.push((k, db, tx));
                }
            }
            metrics::gauge!(m::STORE_OPEN_TENANT_DBS).set(open.dbs.len() as f64);
            out
        };
        let n = closing.len();
        for (k, db, done) in closing {
            self.close_db(db).await;
            self.open.lock().await.closing.remove(&k);
            drop(done);
        }
        n
    }

    /// Closes `id`'s database now, even while requests or runs still hold handles to it
    /// (they get [`StoreError::Closed`] from then on), and runs `after` — removing the
    /// files of a deleted tenant — before anyone can open it again. The observer sees the
    /// close first, so the replicator ships the last frames and stops watching the file
    /// before it disappears (and before any erasure of its replica starts).
    pub(crate) async fn evict<F, Fut, T>(&self, id: &TenantId, after: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let (db, done) = {
            let mut open = self.lock_unless_closing(id).await;
            let db = open.dbs.remove(id);
            let (tx, rx) = watch::channel(());
            open.closing.insert(id.clone(), rx);
            metrics::gauge!(m::STORE_OPEN_TENANT_DBS).set(open.dbs.len() as f64);
            (db, tx)
        };
        if let Some(db) = db {
            self.close_db(db).await;
        }
        let out = after().await;
        self.open.lock().await.closing.remove(id);
        drop(done);
        out
    }

    pub(crate) async fn open_count(&self) -> usize {
        self.open.lock().await.dbs.len()
    }

    pub(crate) async fn close_all(&self) {
        let mut open = self.open.lock().await;
        let all: Vec<Db> = open.dbs.drain().map(|(_, db)| db).collect();
        // Held to the end: nothing may re-open a tenant during shutdown.
        for db in all {
            self.close_db(db).await;
        }
        metrics::gauge!(m::STORE_OPEN_TENANT_DBS).set(0.0);
    }
}
