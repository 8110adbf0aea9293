//! What the store offers a replicator, without the replicator touching rusqlite.
//!
//! - [`Db::exclusive`](super::Db::exclusive): run a closure on a database's writer thread
//!   between batches, then (if the closure asks) a checkpoint. No write can commit while
//!   it runs, so "capture the WAL tail, ship it, then checkpoint" cannot lose a frame.
//! - A read-snapshot holder: with [`CheckpointPolicy::External`](super::CheckpointPolicy)
//!   the writer thread keeps a second connection with an open read transaction, released
//!   only around its own checkpoints and re-taken right after. While it exists no other
//!   process's checkpoint can copy frames past it or restart the WAL, so frames the
//!   replicator has not captured are never overwritten.
//! - [`DbObserver`]: told when a database is opened and *before* it is closed (idle close,
//!   eviction, shutdown), so a replicator can attach, and ship the tail before the writer
//!   goes away. The registry keeps a database in a "closing" state until the observer has
//!   finished, so a re-open waits and there is never a second writer for one file.
//! - Writer connections set `SQLITE_FCNTL_PERSIST_WAL`: SQLite would otherwise delete the
//!   -wal file when the last connection closes, and with it the position a replicator
//!   resumes from after a restart. Frames are shipped before close anyway; persisting the
//!   WAL keeps the resume check (same salts, same frame chain) cheap instead of forcing a
//!   full snapshot after every idle close.
//! - [`ExternalDb`]: the same exclusive hook for a database another program writes
//!   (`gleaner replicate --db`), done Litestream's way: a barrier write transaction on one
//!   connection, a long-lived read transaction on another.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::db::{Db, Inner};
use super::error::StoreError;

/// A boxed future, as returned by [`DbObserver::closing`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Checkpoint mode a replicator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Copies what it can without waiting for readers or writers.
    Passive,
    /// Waits for readers, copies everything and truncates the WAL to 0 bytes.
    Truncate,
}

impl CheckpointMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PASSIVE",
            CheckpointMode::Truncate => "TRUNCATE",
        }
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointResult {
    pub mode: CheckpointMode,
    /// SQLite could not finish (a reader or writer was in the way).
    pub busy: bool,
    /// Frames in the WAL, and frames copied into the database.
    pub log_frames: i64,
    pub checkpointed: i64,
    pub duration: Duration,
    /// Commits by other connections may have happened between the closure and the
    /// checkpoint (only for [`ExternalDb`] TRUNCATE, which cannot hold the barrier while it
    /// waits for the write lock). A replicator must not assume it captured everything.
    pub writes_may_have_slipped: bool,
}

/// Told about database lifecycles. Implementations must be quick in `opened` (it runs
/// under the registry lock); `closing` may take its time (a final sync and upload): the
/// database's writer is still running and a re-open of the same file waits for it.
pub trait DbObserver: Send + Sync + 'static {
    fn opened(&self, db: &Db);
    fn closing(&self, db: Db) -> BoxFuture<()>;
}

/// A handle that does not keep the database open: the registry closes databases that
/// only weak handles refer to.
#[derive(Clone)]
pub struct WeakDb(pub(crate) Weak<Inner>);

impl WeakDb {
    pub fn upgrade(&self) -> Option<Db> {
        self.0.upgrade().map(Db::from_inner)
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)` on `conn`.
pub(crate) fn run_checkpoint(
    conn: &Connection,
    mode: CheckpointMode,
) -> Result<CheckpointResult, StoreError> {
    let started = Instant::now();
    let (busy, log, done) = conn
        .query_row(
            &format!("PRAGMA wal_checkpoint({})", mode.as_str()),
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .map_err(StoreError::from_sqlite)?;
    Ok(CheckpointResult {
        mode,
        busy: busy != 0,
        log_frames: log,
        checkpointed: done,
        duration: started.elapsed(),
        writes_may_have_slipped: false,
    })
}

fn data_version(c: &Connection) -> Option<i64> {
    c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

/// A read connection holding a read transaction open (see the module doc).
pub(crate) struct SnapshotHolder {
    conn: Connection,
    open: bool,
}

impl SnapshotHolder {
    /// Opens the connection and takes the read transaction. `writable` is needed only
    /// when this connection must also run checkpoints (a read-only connection cannot).
    pub(crate) fn open(
        path: &Path,
        busy_timeout: Duration,
        writable: bool,
    ) -> Result<Self, StoreError> {
        let conn = if writable {
            super::conn::open_aux(path, busy_timeout)?
        } else {
            // It only holds a snapshot and reads no pages: nothing to map.
            super::conn::open_reader(path, busy_timeout, 0)?
        };
        let mut h = SnapshotHolder { conn, open: false };
        h.hold()?;
        Ok(h)
    }

    /// Takes the read transaction (a SELECT is needed: BEGIN alone takes no snapshot).
    pub(crate) fn hold(&mut self) -> Result<(), StoreError> {
        if !self.open {
            self.conn
                .execute_batch("BEGIN")
                .map_err(StoreError::from_sqlite)?;
            self.open = true;
            self.conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(StoreError::from_sqlite)?;
        }
        Ok(())
    }

    pub(crate) fn release(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.open = false;
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// A database written by another program, replicated by this one (`gleaner replicate`).
/// Holds a read transaction between calls, like Litestream.
#[derive(Clone)]
pub struct ExternalDb {
    path: PathBuf,
    inner: Arc<Mutex<ExternalConns>>,
}

struct ExternalConns {
    barrier: Connection,
    holder: SnapshotHolder,
}

impl ExternalDb {
    /// Opens two connections to an existing WAL-mode database. Blocking: call it from
    /// `spawn_blocking`.
    pub fn open_blocking(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::DataDir {
                path: path.to_path_buf(),
                reason: "no such database file".into(),
            });
        }
        let barrier = super::conn::open_aux(path, busy_timeout)?;
        let mode: String = barrier
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(StoreError::from_sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::DataDir {
                path: path.to_path_buf(),
                reason: format!(
                    "the database is in journal mode {mode}; replication needs WAL mode \
                     (PRAGMA journal_mode=WAL)"
                ),
            });
        }
        let holder = SnapshotHolder::open(path, busy_timeout, true)?;
        Ok(ExternalDb {
            path: path.to_path_buf(),
            inner: Arc::new(Mutex::new(ExternalConns { barrier, holder })),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Like [`Db::exclusive`]: takes the write lock as a barrier (BEGIN IMMEDIATE, never
    /// committed), runs `f`, then the checkpoint it asks for. PASSIVE runs while the
    /// barrier holds; TRUNCATE needs the write lock itself, so the barrier is dropped first
    /// and the result says writes may have slipped in.
    pub async fn exclusive<T, F>(
        &self,
        f: F,
    ) -> Result<(T, Option<Result<CheckpointResult, StoreError>>), StoreError>
    where
        F: FnOnce() -> (T, Option<CheckpointMode>) + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut c = inner
                .lock()
                .map_err(|_| StoreError::Join("external db lock poisoned".into()))?;
            c.barrier
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(StoreError::from_sqlite)?;
            let (v, mode) = f();
            let ck = match mode {
                None => None,
                Some(CheckpointMode::Passive) => {
                    c.holder.release();
                    let r = run_checkpoint(c.holder.conn(), CheckpointMode::Passive);
                    let _ = c.holder.hold();
                    Some(r)
                }
                Some(CheckpointMode::Truncate) => {
                    // `data_version` on the holder changes only if another connection
                    // commits: comparing it across the unguarded window tells whether
                    // anything slipped in between dropping the barrier and the checkpoint.
                    // Read outside the holder's snapshot but while the barrier still holds.
                    c.holder.release();
                    let before = data_version(c.holder.conn());
                    let _ = c.barrier.execute_batch("ROLLBACK");
                    let r = run_checkpoint(c.holder.conn(), CheckpointMode::Truncate);
                    let after = data_version(c.holder.conn());
                    let r = r.map(|mut r| {
                        r.writes_may_have_slipped = before.is_none() || before != after;
                        r
                    });
                    let _ = c.holder.hold();
                    Some(r)
                }
            };
            if !c.barrier.is_autocommit() {
                let _ = c.barrier.execute_batch("ROLLBACK");
            }
            Ok((v, ck))
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }
}
