//! What the store offers a replicator, without the replicator touching rusqlite.
//!
//! - [`Db::exclusive`]: run a closure on a database's writer thread between batches, then
//!   (if the closure asks) a checkpoint. No write can commit while it runs, so "capture the
//!   WAL tail, ship it, then checkpoint" cannot lose a frame. The contract, its result type
//!   and the read-snapshot holder (with [`CheckpointPolicy::External`](super::CheckpointPolicy)
//!   the writer thread keeps a read transaction open so no other process's checkpoint can
//!   overwrite frames the replicator has not captured) are in [`super::exclusive`].
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
//!
//! Sits above `db` (an observer is handed [`Db`]s); `db` and `writer` never use it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::db::Db;
use super::error::StoreError;
use super::exclusive::{run_checkpoint, CheckpointMode, Exclusive, SnapshotHolder};

/// A boxed future, as returned by [`DbObserver::closing`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Told about database lifecycles. Implementations must be quick in `opened` (it runs
/// under the registry lock); `closing` may take its time (a final sync and upload): the
/// database's writer is still running and a re-open of the same file waits for it.
pub trait DbObserver: Send + Sync + 'static {
    fn opened(&self, db: &Db);
    fn closing(&self, db: Db) -> BoxFuture<()>;
}

fn data_version(c: &Connection) -> Option<i64> {
    c.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
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
    pub async fn exclusive<T, F>(&self, f: F) -> Result<Exclusive<T>, StoreError>
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
