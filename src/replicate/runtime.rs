//! The replicator runtime: one sync task per open database, attached through the store's
//! observer hooks (or to an external database), shipping new commits every sync interval
//! to each destination, checkpointing only after everything is shipped, and reporting lag
//! and WAL size for metrics and readiness.
//!
//! A sync: stat the WAL (free; an unchanged WAL costs no request at all), capture new
//! commits into a staged L0 on the blocking pool, upload it under the global upload
//! semaphore. A checkpoint: a store exclusive job captures and uploads any tail that
//! slipped in since the sync (writes are paused only for that tail), and only if every
//! destination has shipped everything does it let the store checkpoint (PASSIVE normally,
//! TRUNCATE past `truncate_wal_bytes`). Before a database closes, the same job ships the
//! tail without checkpointing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::config::ReplicateConfig;
use crate::cpu::CpuPool;
use crate::replicate::capture::DbFiles;
use crate::replicate::client::ReplicaClient;
use crate::replicate::replica::{Replica, ReplicaSettings};
use crate::replicate::runtime_error::ReplicateError;
use crate::replicate::status::watch_while_syncing;
pub use crate::replicate::status::DbStatus;

mod final_ship;
mod positions;
use crate::replicate::url::Destination;
use crate::store::{
    BoxFuture, CheckpointMode, CheckpointResult, Db, DbObserver, ExternalDb, StoreError, WeakDb,
};
use crate::telemetry::metrics as m;
pub use positions::LivePosition;

/// Runtime settings derived from `[replicate]`.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    pub replica: ReplicaSettings,
    pub sync_interval: Duration,
    pub upload_concurrency: usize,
    pub checkpoint_wal_bytes: u64,
    pub checkpoint_interval: Duration,
    pub truncate_wal_bytes: u64,
    pub max_wal_bytes: u64,
    pub max_lag: Duration,
    /// How long a database's close (and so a shutdown) keeps trying to ship its tail.
    pub shutdown_ship_timeout: Duration,
}

impl RuntimeSettings {
    pub fn from_config(c: &ReplicateConfig) -> Self {
        RuntimeSettings {
            replica: ReplicaSettings {
                upload_attempts: c.upload_attempts,
                sync_max_bytes: c.sync_max_bytes,
                level_intervals: c
                    .level_intervals_secs
                    .iter()
                    .map(|&s| Duration::from_secs(s))
                    .collect(),
                snapshot_interval: Duration::from_secs(c.snapshot_interval_secs),
                snapshot_retention: Duration::from_secs(c.snapshot_retention_secs),
                l0_retention: Duration::from_secs(c.l0_retention_secs),
                startup_compact_l0_files: c.startup_compact_l0_files,
            },
            sync_interval: Duration::from_millis(c.sync_interval_ms),
            upload_concurrency: c.upload_concurrency,
            checkpoint_wal_bytes: c.checkpoint_wal_bytes,
            checkpoint_interval: Duration::from_secs(c.checkpoint_interval_secs),
            truncate_wal_bytes: c.truncate_wal_bytes,
            max_wal_bytes: c.max_wal_bytes,
            max_lag: Duration::from_secs(c.max_lag_secs),
            shutdown_ship_timeout: Duration::from_millis(c.shutdown_ship_timeout_ms),
        }
    }
}

/// How the replicator reaches a database's writer.
#[derive(Clone)]
pub enum Target {
    /// A database of this process's store (weak: it does not keep the database open).
    Store(WeakDb),
    /// A database another program writes.
    External(ExternalDb),
}

type Exclusive<T> = (T, Option<Result<CheckpointResult, StoreError>>);

impl Target {
    async fn exclusive<T, F>(&self, f: F) -> Result<Exclusive<T>, ReplicateError>
    where
        F: FnOnce() -> (T, Option<CheckpointMode>) + Send + 'static,
        T: Send + 'static,
    {
        match self {
            Target::Store(w) => {
                let db = w.upgrade().ok_or(ReplicateError::Stopped)?;
                Ok(db.exclusive(f).await?)
            }
            Target::External(e) => Ok(e.exclusive(f).await?),
        }
    }
}

enum Msg {
    /// Ship everything (under the writer's exclusive lock when possible), then stop;
    /// answers whether everything was shipped. No deadline: an idle close while the
    /// destination fails, which must not keep the tenant closing (and its next open
    /// waiting) for the whole timeout; the WAL keeps the frames for the next open.
    Final(Option<Instant>, oneshot::Sender<bool>),
    /// Ship everything now and answer with the TXIDs per destination.
    SyncNow(oneshot::Sender<Result<Vec<u64>, String>>),
}

struct Shared {
    settings: RuntimeSettings,
    dests: Vec<Destination>,
    data_dir: PathBuf,
    cpu: CpuPool,
    uploads: Arc<Semaphore>,
    tasks: Mutex<HashMap<PathBuf, TaskHandle>>,
    /// Databases whose last close left commits unshipped (removed again by a complete
    /// close): what a shutdown reports and exits non-zero for.
    unshipped: Mutex<HashSet<PathBuf>>,
    /// Set when a shutdown begins: one deadline for every database's final ship, so a
    /// shutdown closing many databases is bounded by the timeout once, not per database.
    stop_deadline: Mutex<Option<Instant>>,
    verify_board: Arc<crate::replicate::verify_board::VerifyBoard>,
}

struct TaskHandle {
    tx: mpsc::Sender<Msg>,
    status: Arc<DbStatus>,
    join: tokio::task::JoinHandle<()>,
}

/// Replication health, for `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub databases: usize,
    pub max_lag: Duration,
    pub max_wal_bytes: u64,
    pub failing: usize,
    /// Set when a configured bound is exceeded.
    pub problem: Option<String>,
}

/// The replicator: a [`DbObserver`] for the store, or a driver for one external database.
#[derive(Clone)]
pub struct Replicator {
    shared: Arc<Shared>,
}

impl Replicator {
    /// `dests`: one or two destinations; each database goes to `<dest>/<sub-path>`.
    pub fn new(
        settings: RuntimeSettings,
        dests: Vec<Destination>,
        data_dir: PathBuf,
        cpu: CpuPool,
    ) -> Replicator {
        let uploads = Arc::new(Semaphore::new(settings.upload_concurrency.max(1)));
        Replicator {
            shared: Arc::new(Shared {
                settings,
                dests,
                data_dir,
                cpu,
                uploads,
                tasks: Mutex::new(HashMap::new()),
                unshipped: Mutex::new(HashSet::new()),
                stop_deadline: Mutex::new(None),
                verify_board: Arc::default(),
            }),
        }
    }

    /// Replica sub-path of a store database: `control` or `tenants/<tenant>`.
    fn sub_path(&self, db: &Path) -> String {
        let stem = db
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("db")
            .to_owned();
        if db.parent() == Some(self.shared.data_dir.as_path()) {
            stem
        } else {
            format!("tenants/{stem}")
        }
    }

    /// Local staging directory for one database.
    fn staging_of(&self, sub: &str) -> PathBuf {
        self.shared.data_dir.join(".replicate").join(sub)
    }

    /// Where replicas go (one or two destinations).
    pub(super) fn destinations(&self) -> &[Destination] {
        &self.shared.dests
    }

    /// Local staging directory of the database at replica sub-path `sub`.
    pub(super) fn staging_dir(&self, sub: &str) -> PathBuf {
        self.staging_of(sub)
    }

    /// Starts replicating `db` (idempotent per path).
    pub fn attach(&self, path: &Path, target: Target, sub: String, staging: PathBuf) {
        let mut tasks = match self.shared.tasks.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if let Some(t) = tasks.get(path) {
            if !t.join.is_finished() {
                return;
            }
        }
        let (tx, rx) = mpsc::channel(4);
        let status = Arc::new(DbStatus::default());
        let task = DbTask {
            shared: Arc::clone(&self.shared),
            name: sub.clone(),
            files: DbFiles::new(path),
            target,
            sub,
            staging,
            status: Arc::clone(&status),
            replicas: Vec::new(),
            last_stamp: None,
            last_check: Instant::now(),
            last_checkpoint: Instant::now(),
            shipped_since_checkpoint: false,
            warned_wal: false,
            shipped_stamp: None,
        };
        let join = tokio::spawn(task.run(rx));
        tasks.insert(path.to_path_buf(), TaskHandle { tx, status, join });
        metrics::gauge!(m::REPLICATION_DATABASES).set(tasks.len() as f64);
    }

    /// Replicates a database another program writes; returns once attached.
    pub async fn attach_external(
        &self,
        path: &Path,
        busy_timeout: Duration,
    ) -> Result<(), ReplicateError> {
        let p = path.to_path_buf();
        let ext = tokio::task::spawn_blocking(move || ExternalDb::open_blocking(&p, busy_timeout))
            .await
            .map_err(|e| ReplicateError::Join(e.to_string()))??;
        let name = path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("db")
            .to_owned();
        let staging = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!(".{name}-gleaner"));
        self.attach(path, Target::External(ext), String::new(), staging);
        Ok(())
    }

    /// Whether a store database not open now may hold commits never shipped: its WAL
    /// differs from the one recorded after its last complete ship before close.
    pub fn maybe_unshipped(&self, db: &Path) -> bool {
        let sub = self.sub_path(db);
        let marker = std::fs::read_to_string(marker_path(&self.staging_of(&sub))).ok();
        let now = DbFiles::new(db).wal_stamp().map(stamp_text);
        match (marker, now) {
            (_, None) => false,
            (Some(m), Some(n)) => m != n,
            (None, Some(_)) => true,
        }
    }

    /// Ships everything of `path` now; the TXID reached per destination.
    pub async fn sync_now(&self, path: &Path) -> Result<Vec<u64>, ReplicateError> {
        let tx = {
            let tasks = self
                .shared
                .tasks
                .lock()
                .map_err(|_| ReplicateError::Stopped)?;
            tasks.get(path).map(|t| t.tx.clone())
        };
        let tx = tx.ok_or(ReplicateError::Stopped)?;
        let (rtx, rrx) = oneshot::channel();
        tx.send(Msg::SyncNow(rtx))
            .await
            .map_err(|_| ReplicateError::Stopped)?;
        rrx.await
            .map_err(|_| ReplicateError::Stopped)?
            .map_err(ReplicateError::Join)
    }

    /// Final ship for one database, then its task ends.
    pub async fn detach(&self, path: &Path) {
        let handle = {
            let mut tasks = match self.shared.tasks.lock() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            let h = tasks.remove(path);
            metrics::gauge!(m::REPLICATION_DATABASES).set(tasks.len() as f64);
            h
        };
        let Some(h) = handle else { return };
        let (tx, rx) = oneshot::channel();
        let mut shipped = false;
        let timeout = self.shared.settings.shutdown_ship_timeout;
        let stop = match self.shared.stop_deadline.lock() {
            Ok(d) => *d,
            Err(p) => *p.into_inner(),
        };
        let deadline = match stop {
            Some(d) => Some(d),
            None if h.status.failing.load(Ordering::Relaxed) => None,
            None => Some(Instant::now() + timeout),
        };
        if h.tx.send(Msg::Final(deadline, tx)).await.is_ok() {
            // The task bounds its own attempts by the deadline (at least a short try); the
            // margin only covers a wedged task, which must not hold a shutdown forever.
            let bound = deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            }) + crate::replicate::FINAL_MIN_TRY
                + Duration::from_secs(5);
            match tokio::time::timeout(bound, rx).await {
                Ok(Ok(all)) => shipped = all,
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::error!(db = %path.display(), wal_bytes = h.status.wal_bytes.load(Ordering::Relaxed),
                        "final replication sync did not finish; commits stay unshipped in the WAL")
                }
            }
        }
        h.join.abort();
        let mut set = match self.shared.unshipped.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if shipped {
            set.remove(path);
        } else {
            set.insert(path.to_path_buf());
        }
    }

    /// Databases whose last close left commits unshipped (read after the store closed).
    pub fn unshipped_at_close(&self) -> Vec<PathBuf> {
        let set = match self.shared.unshipped.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut v: Vec<PathBuf> = set.iter().cloned().collect();
        v.sort();
        v
    }

    /// A shutdown begins: from now on every final ship shares one deadline,
    /// `replicate.shutdown_ship_timeout_ms` from here.
    pub fn begin_shutdown(&self) {
        let mut d = match self.shared.stop_deadline.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        d.get_or_insert_with(|| Instant::now() + self.shared.settings.shutdown_ship_timeout);
    }

    /// Final ship for every database (shutdown of `gleaner replicate`).
    pub async fn detach_all(&self) {
        self.begin_shutdown();
        let paths: Vec<PathBuf> = match self.shared.tasks.lock() {
            Ok(t) => t.keys().cloned().collect(),
            Err(p) => p.into_inner().keys().cloned().collect(),
        };
        for p in paths {
            self.detach(&p).await;
        }
    }

    /// Lag, WAL size and bound violations over every database; also updates the gauges.
    pub fn health(&self) -> Health {
        let tasks = match self.shared.tasks.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        let mut h = Health {
            databases: tasks.len(),
            ..Health::default()
        };
        let mut worst_wal: Option<&PathBuf> = None;
        let mut worst_lag: Option<&PathBuf> = None;
        for (p, t) in tasks.iter() {
            let lag = t.status.lag();
            let wal = t.status.wal_bytes.load(Ordering::Relaxed);
            if lag > h.max_lag {
                h.max_lag = lag;
                worst_lag = Some(p);
            }
            if wal > h.max_wal_bytes {
                h.max_wal_bytes = wal;
                worst_wal = Some(p);
            }
            if t.status.failing.load(Ordering::Relaxed) {
                h.failing += 1;
            }
        }
        metrics::gauge!(m::REPLICATION_LAG_SECONDS).set(h.max_lag.as_secs_f64());
        metrics::gauge!(m::REPLICATION_WAL_BYTES).set(h.max_wal_bytes as f64);
        let s = &self.shared.settings;
        if h.max_lag > s.max_lag {
            h.problem = Some(format!(
                "replication lag {:.1}s of {} exceeds replicate.max_lag_secs ({})",
                h.max_lag.as_secs_f64(),
                worst_lag.map_or(String::new(), |p| p.display().to_string()),
                s.max_lag.as_secs()
            ));
        } else if h.max_wal_bytes > s.max_wal_bytes {
            h.problem = Some(format!(
                "WAL of {} is {} bytes, over replicate.max_wal_bytes ({})",
                worst_wal.map_or(String::new(), |p| p.display().to_string()),
                h.max_wal_bytes,
                s.max_wal_bytes
            ));
        }
        h
    }
}

impl DbObserver for Replicator {
    fn opened(&self, db: &Db) {
        let sub = self.sub_path(db.path());
        let staging = self.staging_of(&sub);
        self.attach(db.path(), Target::Store(db.downgrade()), sub, staging);
    }

    fn closing(&self, db: Db) -> BoxFuture<()> {
        let this = self.clone();
        let path = db.path().to_path_buf();
        Box::pin(async move {
            this.detach(&path).await;
            drop(db);
        })
    }
}

struct DbTask {
    shared: Arc<Shared>,
    name: String,
    files: DbFiles,
    target: Target,
    sub: String,
    staging: PathBuf,
    status: Arc<DbStatus>,
    replicas: Vec<Replica>,
    last_stamp: Option<(u64, i128, u64)>,
    last_check: Instant,
    last_checkpoint: Instant,
    shipped_since_checkpoint: bool,
    warned_wal: bool,
    /// WAL stamp when everything was last shipped under the writer's lock.
    shipped_stamp: Option<(u64, i128, u64)>,
}

/// Marker file recording the WAL stamp of a database's last complete ship before close:
/// at start, a database whose WAL differs was written after that (or the process died
/// first) and must be opened once so its tail gets shipped.
fn marker_path(staging: &Path) -> PathBuf {
    staging.join("shipped-wal-stamp")
}

fn stamp_text(s: (u64, i128, u64)) -> String {
    format!("{} {} {}", s.0, s.1, s.2)
}

impl DbTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let interval = self.shared.settings.sync_interval;
        // Attach every destination, retrying while they are unreachable.
        let mut attempt = 0u32;
        while self.replicas.len() < self.shared.dests.len() {
            match self.attach_replicas().await {
                Ok(()) => {}
                Err(e) => {
                    self.status.failing.store(true, Ordering::Relaxed);
                    // An unknown position may hide a backlog (a crash while the store was
                    // down): count as behind since start-up until the position is read.
                    self.status.mark_unshipped(self.last_check);
                    if attempt == 0 {
                        tracing::warn!(db = %self.files.db.display(), error = %e, "cannot read the replica position; retrying");
                    } else {
                        tracing::debug!(db = %self.files.db.display(), error = %e, "cannot read the replica position; retrying");
                    }
                    self.replicas.clear();
                    let wait = crate::replicate::replica::backoff(attempt).max(interval);
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        msg = rx.recv() => match msg {
                            Some(Msg::Final(deadline, done)) => {
                                let all = self.final_sync(deadline).await;
                                let _ = done.send(all);
                                return;
                            }
                            Some(Msg::SyncNow(r)) => { let _ = r.send(Err(e.to_string())); }
                            None => return,
                        }
                    }
                }
            }
        }
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.sync_cycle().await;
                }
                msg = rx.recv() => match msg {
                    Some(Msg::Final(deadline, done)) => {
                        let all = self.final_sync(deadline).await;
                        let _ = done.send(all);
                        return;
                    }
                    Some(Msg::SyncNow(reply)) => {
                        let r = self.ship_all_exclusive(None).await;
                        let _ = reply.send(r.map(|()| self.txids()).map_err(|e| e.to_string()));
                    }
                    None => return,
                },
            }
        }
    }

    fn txids(&self) -> Vec<u64> {
        self.replicas.iter().map(|r| r.next_txid - 1).collect()
    }

    async fn attach_replicas(&mut self) -> Result<(), ReplicateError> {
        for (i, d) in self
            .shared
            .dests
            .iter()
            .enumerate()
            .skip(self.replicas.len())
        {
            let client: Arc<dyn ReplicaClient> = d.at(&self.sub);
            let staging = self.staging.join(i.to_string());
            let mut r = Replica::attach(client, staging, &self.shared.settings.replica).await?;
            r.adopt_resume_mark(crate::replicate::capture::db_inode(&self.files.db));
            tracing::debug!(db = %self.files.db.display(), replica = %r.client.describe(),
                next_txid = r.next_txid, resume = r.pos.is_some(), "replica attached");
            self.replicas.push(r);
        }
        Ok(())
    }

    /// One tick: sync, maybe checkpoint, maybe compaction; update status.
    async fn sync_cycle(&mut self) {
        let now = Instant::now();
        let stamp = {
            let f = self.files.clone();
            tokio::task::spawn_blocking(move || f.wal_stamp())
                .await
                .ok()
                .flatten()
        };
        let idle = stamp == self.last_stamp
            && self
                .replicas
                .iter()
                .all(|r| r.shipped() && r.pos.is_some() && !r.force_full);
        let wal = stamp.map_or(0, |s| s.0);
        self.status.wal_bytes.store(wal, Ordering::Relaxed);
        if !idle {
            self.status.mark_unshipped(self.last_check);
            let watch = watch_while_syncing(
                self.files.clone(),
                Arc::clone(&self.status),
                stamp,
                self.shared.settings.sync_interval,
            );
            let res = tokio::select! {
                r = self.sync() => r,
                () = watch => unreachable!("the WAL watch never ends"),
            };
            match res {
                Ok(shipped_any) => {
                    if self.status.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(db = %self.files.db.display(), "replication recovered");
                    }
                    if shipped_any {
                        self.shipped_since_checkpoint = true;
                        // Everything committed before this capture is out; what came later
                        // is seen (and timed) by the next tick. Under steady writes the lag
                        // therefore stays within about one interval instead of growing.
                        if self.replicas.iter().all(Replica::shipped) {
                            self.status.clear_unshipped();
                        }
                    } else if self.replicas.iter().all(Replica::shipped) {
                        // Nothing new after `stamp` was taken: caught up.
                        self.last_stamp = stamp;
                        self.status.clear_unshipped();
                    }
                }
                Err(e) => {
                    metrics::counter!(m::REPLICATION_SYNC_ERRORS_TOTAL).increment(1);
                    // Loud once per failure streak, not once per interval.
                    if !self.status.failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(db = %self.files.db.display(), error = %e, "replication sync failed; retrying every interval");
                    } else {
                        tracing::debug!(db = %self.files.db.display(), error = %e, "replication sync failed again");
                    }
                }
            }
        }
        self.last_check = now;
        if let Some(r) = self.replicas.first() {
            self.status
                .last_txid
                .store(r.next_txid.saturating_sub(1), Ordering::Relaxed);
            if self.sub == "control" || self.sub.is_empty() {
                let label = if self.sub.is_empty() {
                    "external"
                } else {
                    "control"
                };
                metrics::gauge!(m::REPLICATION_LAST_SHIPPED_TXID, "db" => label)
                    .set(r.next_txid.saturating_sub(1) as f64);
            }
        }
        let s = &self.shared.settings;
        if wal > s.max_wal_bytes && !self.warned_wal {
            self.warned_wal = true;
            tracing::error!(db = %self.files.db.display(), wal_bytes = wal, bound = s.max_wal_bytes,
                "WAL is over replicate.max_wal_bytes: shipping is stuck (destination down?) and nothing can be checkpointed; /readyz now fails");
        } else if wal <= s.max_wal_bytes {
            self.warned_wal = false;
        }
        // Checkpoint once everything is shipped.
        let mode = if wal >= s.truncate_wal_bytes {
            Some(CheckpointMode::Truncate)
        } else if wal >= s.checkpoint_wal_bytes
            || (self.shipped_since_checkpoint
                && self.last_checkpoint.elapsed() >= s.checkpoint_interval)
        {
            Some(CheckpointMode::Passive)
        } else {
            None
        };
        if let Some(mode) = mode {
            if self.replicas.iter().all(Replica::shipped) && !self.replicas.is_empty() {
                if let Err(e) = self.ship_all_exclusive(Some(mode)).await {
                    tracing::warn!(db = %self.files.db.display(), error = %e, "checkpoint skipped");
                }
            }
        }
        // Compaction, snapshots, retention.
        let work = self.staging.join("work");
        let (cpu, uploads) = (self.shared.cpu.clone(), Arc::clone(&self.shared.uploads));
        let settings = self.shared.settings.replica.clone();
        for r in &mut self.replicas {
            if let Err(e) = r.maintain(&settings, &cpu, &uploads, &work).await {
                tracing::warn!(replica = %r.client.describe(), error = %e, "compaction or retention failed; retrying later");
            }
        }
    }

    /// Captures and uploads for every destination. True if anything was uploaded.
    async fn sync(&mut self) -> Result<bool, ReplicateError> {
        let files = self.files.clone();
        let limit = self.shared.settings.replica.sync_max_bytes;
        let mut replicas = std::mem::take(&mut self.replicas);
        let (replicas, res) = tokio::task::spawn_blocking(move || {
            let mut res = Ok(());
            for r in &mut replicas {
                if let Err(e) = r.capture(&files, limit) {
                    res = Err(e);
                    break;
                }
            }
            (replicas, res)
        })
        .await
        .map_err(|e| ReplicateError::Join(e.to_string()))?;
        self.replicas = replicas;
        res?;
        let mut any = false;
        let attempts = self.shared.settings.replica.upload_attempts;
        let mut first_err = None;
        for r in &mut self.replicas {
            match r.upload(&self.shared.uploads, attempts).await {
                Ok(Some(_)) => any = true,
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(replica = %r.client.describe(), error = %e, "upload failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if !any => Err(e),
            _ => Ok(any),
        }
    }

    /// Captures and uploads the tail of every destination inside a store exclusive job
    /// (no write can commit meanwhile), then lets the store checkpoint with `mode` only if
    /// all of it was shipped.
    async fn ship_all_exclusive(
        &mut self,
        mode: Option<CheckpointMode>,
    ) -> Result<(), ReplicateError> {
        // Ship most of it first, outside the exclusive job, so writes pause only for the rest.
        self.sync().await?;
        let files = self.files.clone();
        let attempts = self.shared.settings.replica.upload_attempts;
        let uploads = Arc::clone(&self.shared.uploads);
        let handle = tokio::runtime::Handle::current();
        let replicas = std::mem::take(&mut self.replicas);
        let started = Instant::now();
        let r = self
            .target
            .exclusive(move || {
                let mut replicas = replicas;
                let mut err = None;
                for r in &mut replicas {
                    // The sync cap does not apply here: the whole tail must go before a
                    // checkpoint, and it is small because we just synced.
                    let res = r.capture(&files, u64::MAX);
                    let res = match res {
                        Ok(()) => handle.block_on(r.upload(&uploads, attempts)).map(|_| ()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = res {
                        err.get_or_insert(e);
                    }
                }
                let all = err.is_none() && replicas.iter().all(Replica::shipped);
                // Taken while no write can commit: exactly the WAL that was shipped.
                let stamp = if all { files.wal_stamp() } else { None };
                if all && mode == Some(CheckpointMode::Passive) {
                    // Before the checkpoint, while no write can commit: once the job
                    // returns, a write may restart the WAL before we could write it.
                    // (PASSIVE runs under the write barrier: nothing can slip in.)
                    let ino = crate::replicate::capture::db_inode(&files.db);
                    replicas.iter().for_each(|r| r.write_resume_mark(ino));
                } else if all && mode.is_some() {
                    // TRUNCATE may let writes slip in: no earlier mark for this position
                    // may vouch for it until it is known they did not.
                    replicas.iter().for_each(Replica::clear_resume_mark);
                }
                ((replicas, err, stamp), mode.filter(|_| all))
            })
            .await;
        let ((replicas, err, stamp), ck) = match r {
            Ok(v) => v,
            Err(e) => {
                // The job never ran (database closed) or panicked: re-read positions.
                self.replicas.clear();
                self.attach_replicas().await?;
                return Err(e);
            }
        };
        self.replicas = replicas;
        self.shipped_stamp = stamp;
        if let Some(ck) = ck {
            let ck =
                ck.inspect_err(|_| self.replicas.iter().for_each(Replica::clear_resume_mark))?;
            metrics::histogram!(m::REPLICATION_CHECKPOINT_DURATION_SECONDS, "mode" => ck.mode.as_str())
                .record(ck.duration.as_secs_f64());
            let ino = crate::replicate::capture::db_inode(&self.files.db);
            for r in &mut self.replicas {
                r.checkpointed(ck.writes_may_have_slipped, ino);
            }
            self.last_checkpoint = Instant::now();
            self.shipped_since_checkpoint = false;
            tracing::debug!(db = %self.files.db.display(), mode = ck.mode.as_str(), busy = ck.busy,
                frames = ck.log_frames, copied = ck.checkpointed,
                paused_ms = started.elapsed().as_millis() as u64, "checkpoint after shipping");
        }
        if let Some(e) = err {
            return Err(e);
        }
        self.status.clear_unshipped();
        self.last_stamp = None;
        Ok(())
    }
}
