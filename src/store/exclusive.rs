//! The one exclusive contract, shared by [`Db::exclusive`](super::Db::exclusive) (this
//! process's databases, run on the writer thread) and
//! [`ExternalDb::exclusive`](super::ExternalDb::exclusive) (a database another program
//! writes): what the closure may ask for ([`CheckpointMode`]), what the caller gets back
//! ([`Exclusive`]), the one checkpoint call ([`run_checkpoint`]), and the read-snapshot
//! holder that makes "capture, ship, then checkpoint" safe.
//!
//! The holder: with [`CheckpointPolicy::External`](super::CheckpointPolicy) the writer thread
//! keeps a second connection with an open read transaction, released only around its own
//! checkpoints and re-taken right after. While it exists no other process's checkpoint can
//! copy frames past it or restart the WAL, so frames the replicator has not captured are
//! never overwritten.
//!
//! Below `writer`, `db` and `hooks`, which use it; it uses only `conn` and `error`.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::error::StoreError;

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
    /// checkpoint (only for [`ExternalDb`](super::ExternalDb) TRUNCATE, which cannot hold the barrier while it
    /// waits for the write lock). A replicator must not assume it captured everything.
    pub writes_may_have_slipped: bool,
}

/// What an exclusive job returns: the closure's value, and the result of the checkpoint it
/// asked for, if it asked for one.
///
/// Both `exclusive` methods run the closure with no write able to commit (the writer thread
/// between batches, or a barrier write transaction for an external database), then run the
/// checkpoint the closure returns, if any. So "capture the WAL tail, ship it, then
/// checkpoint" cannot lose a frame. The closure blocks every write to the database while it
/// runs: keep it short.
pub type Exclusive<T> = (T, Option<Result<CheckpointResult, StoreError>>);

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

/// A read connection holding a read transaction open (see the module header).
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
