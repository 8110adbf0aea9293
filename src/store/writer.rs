//! The writer thread: one per open database, owning its only write connection.
//!
//! Callers send boxed write operations over a bounded channel (a full channel makes them
//! wait: back-pressure, not memory growth). The thread takes every operation waiting, up to
//! `max_batch`, and runs them in one `BEGIN IMMEDIATE` transaction — one fsync for the whole
//! batch (group commit). Each operation runs inside its own SAVEPOINT, so one failing or
//! panicking operation is rolled back alone and its caller gets the error while the rest of
//! the batch commits. A caller's result is released only after COMMIT returns, so an
//! acknowledged write is durable (to the configured `synchronous` level).
//!
//! After each commit the checkpoint policy runs on this same thread: checkpoints need the
//! write connection's view of the WAL, and running them here means they never race a batch.
//! With [`CheckpointPolicy::External`] the thread also owns the replicator's snapshot holder
//! and runs its exclusive jobs (see `exclusive`) between batches.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::error::StoreError;
use super::exclusive::{run_checkpoint, CheckpointMode, CheckpointResult, SnapshotHolder};
use super::schema::DbKind;
use crate::telemetry::metrics as m;

/// Who runs checkpoints for a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointPolicy {
    /// The store runs a PASSIVE checkpoint after a commit once the WAL passes this size.
    Store { wal_bytes: u64 },
    /// Someone else (the replicator) owns checkpoints; the store never runs one.
    External,
}

/// What the writer does with a caller's result once the batch's fate is known.
pub(crate) type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write operation queued for the writer thread.
pub(crate) trait WriteOp: Send {
    /// Runs inside a savepoint. `Some(deliver)` keeps the changes and waits for the commit;
    /// `None` means the operation failed (or panicked), has told its caller, and its changes
    /// must be rolled back.
    fn run(self: Box<Self>, conn: &Connection) -> Option<Deliver>;
    /// The operation will not run; tell its caller why.
    fn fail(self: Box<Self>, e: StoreError);
}

pub(crate) type Job = Box<dyn WriteOp>;

/// The one implementation of [`WriteOp`]: a closure and its caller's result channel.
pub(crate) struct Op<F, T> {
    pub(crate) f: F,
    pub(crate) tx: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> WriteOp for Op<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Option<Deliver> {
        let Op { f, tx } = *self;
        match catch_unwind(AssertUnwindSafe(|| f(conn))) {
            Ok(Ok(v)) => Some(Box::new(move |r: Result<(), StoreError>| {
                let _ = tx.send(r.map(|()| v));
            })),
            Ok(Err(e)) => {
                let _ = tx.send(Err(e));
                None
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let _ = tx.send(Err(StoreError::WritePanicked(msg)));
                None
            }
        }
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.tx.send(Err(e));
    }
}

pub(crate) enum Command {
    Write(Job),
    /// Takes and releases the write lock without writing: proves the database is writable.
    Ping(oneshot::Sender<Result<(), StoreError>>),
    /// Finishes everything queued before it, runs a final checkpoint if the store owns
    /// them, and stops the thread.
    Close(oneshot::Sender<()>),
    /// Commits what is queued, then runs the job with nothing else writing; the job may
    /// call the checkpoint function it is given.
    Exclusive(ExclusiveJob),
}

/// Runs a checkpoint of the given mode on the writer connection.
pub(crate) type CheckpointFn<'a> =
    &'a mut dyn FnMut(CheckpointMode) -> Result<CheckpointResult, StoreError>;
pub(crate) type ExclusiveJob = Box<dyn for<'a> FnOnce(CheckpointFn<'a>) + Send>;

/// Counters a test or the readiness check can read without going through the channel.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
    pub largest_batch: AtomicU64,
    pub checkpoints: AtomicU64,
}

thread_local! {
    // Frames in the WAL after the last commit, set by SQLite's wal hook. Thread-local is
    // enough because exactly one connection lives on each writer thread.
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

fn record_wal_frames(
    _: &rusqlite::hooks::Wal,
    frames: std::os::raw::c_int,
) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|c| c.set(frames));
    Ok(())
}

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) rx: mpsc::Receiver<Command>,
    pub(crate) kind: DbKind,
    pub(crate) path: PathBuf,
    pub(crate) max_batch: usize,
    pub(crate) policy: CheckpointPolicy,
    pub(crate) stats: Arc<WriterStats>,
    /// The replicator's read transaction (External policy only).
    pub(crate) holder: Option<SnapshotHolder>,
    /// Runs after a batch's operations, before COMMIT, outside their savepoints (tenant
    /// databases: folding staged full-text rows into the index, see `fts`). Failing rolls
    /// the whole batch back.
    pub(crate) before_commit: Option<fn(&Connection) -> rusqlite::Result<()>>,
}

impl Writer {
    pub(crate) fn run(mut self) {
        self.conn.wal_hook(Some(record_wal_frames));
        let page_size: u64 = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .map(|p| p as u64)
            .unwrap_or(4096);
        let mut batch: Vec<Job> = Vec::with_capacity(self.max_batch);
        while let Some(cmd) = self.rx.blocking_recv() {
            let mut next = Some(cmd);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Write(job) => batch.push(job),
                    Command::Ping(reply) => {
                        self.commit_batch(&mut batch, page_size);
                        let _ = reply.send(self.ping());
                    }
                    Command::Exclusive(job) => {
                        self.commit_batch(&mut batch, page_size);
                        let this = &mut self;
                        job(&mut |mode| this.external_checkpoint(mode));
                    }
                    Command::Close(done) => {
                        self.commit_batch(&mut batch, page_size);
                        self.holder = None;
                        if let CheckpointPolicy::Store { .. } = self.policy {
                            self.checkpoint("TRUNCATE");
                        }
                        let _ = done.send(());
                        return;
                    }
                }
                if batch.len() < self.max_batch {
                    next = self.rx.try_recv().ok();
                }
            }
            self.commit_batch(&mut batch, page_size);
        }
        // Every handle is gone: finish like a Close.
        if let CheckpointPolicy::Store { .. } = self.policy {
            self.checkpoint("TRUNCATE");
        }
    }

    /// Savepoint statements run once per write: keep them prepared.
    fn exec_cached(&self, sql: &str) -> rusqlite::Result<usize> {
        self.conn.prepare_cached(sql)?.execute([])
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(StoreError::from_sqlite)
    }

    fn commit_batch(&mut self, batch: &mut Vec<Job>, page_size: u64) {
        if batch.is_empty() {
            return;
        }
        let started = Instant::now();
        let size = batch.len();
        let label = self.kind.label();
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let e = StoreError::from_sqlite(e);
            tracing::warn!(db = %self.path.display(), error = %e, "cannot begin write transaction");
            for job in batch.drain(..) {
                job.fail(e.for_each_caller());
            }
            metrics::counter!(m::STORE_WRITES_TOTAL, "db" => label, "outcome" => "error")
                .increment(size as u64);
            return;
        }
        let mut pending: Vec<Deliver> = Vec::with_capacity(size);
        for job in batch.drain(..) {
            if let Err(e) = self.exec_cached("SAVEPOINT op") {
                job.fail(StoreError::from_sqlite(e));
                continue;
            }
            match job.run(&self.conn) {
                Some(deliver) => {
                    let _ = self.exec_cached("RELEASE op");
                    pending.push(deliver);
                }
                None => {
                    let _ = self.exec_cached("ROLLBACK TO op");
                    let _ = self.exec_cached("RELEASE op");
                }
            }
        }
        let committed = match self.before_commit {
            Some(f) if !pending.is_empty() => f(&self.conn),
            _ => Ok(()),
        }
        .and_then(|()| self.conn.execute_batch("COMMIT"))
        .map_err(StoreError::from_sqlite);
        let ok = committed.is_ok();
        if !ok {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let n = pending.len() as u64;
        // Counted before the callers hear of it: whoever has seen a write commit must find
        // it in the stats (a test reading them right after its writes raced this).
        if ok {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.stats.writes.fetch_add(n, Ordering::Relaxed);
            self.stats
                .largest_batch
                .fetch_max(size as u64, Ordering::Relaxed);
        }
        for deliver in pending {
            deliver(match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(e.for_each_caller()),
            });
        }
        let elapsed = started.elapsed().as_secs_f64();
        metrics::histogram!(m::STORE_WRITER_BATCH_SIZE, "db" => label).record(size as f64);
        metrics::histogram!(m::STORE_COMMIT_DURATION_SECONDS, "db" => label).record(elapsed);
        let outcome = if ok { "committed" } else { "error" };
        metrics::counter!(m::STORE_WRITES_TOTAL, "db" => label, "outcome" => outcome).increment(n);
        if ok {
            if let CheckpointPolicy::Store { wal_bytes } = self.policy {
                let frames = WAL_FRAMES.with(Cell::get).max(0) as u64;
                if frames * (page_size + 24) > wal_bytes {
                    self.checkpoint("PASSIVE");
                }
            }
        } else if let Err(e) = committed {
            tracing::warn!(db = %self.path.display(), error = %e, "commit failed; batch rolled back");
        }
    }

    /// A checkpoint the replicator asked for: the holder's read transaction is released
    /// for it (else it would stop the copy at the holder's snapshot) and re-taken after,
    /// when everything before it has been captured.
    fn external_checkpoint(
        &mut self,
        mode: CheckpointMode,
    ) -> Result<CheckpointResult, StoreError> {
        if let Some(h) = self.holder.as_mut() {
            h.release();
        }
        let r = run_checkpoint(&self.conn, mode);
        if let Some(h) = self.holder.as_mut() {
            if let Err(e) = h.hold() {
                tracing::warn!(db = %self.path.display(), error = %e, "cannot re-take the replication read transaction");
            }
        }
        if let Ok(r) = &r {
            self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::STORE_CHECKPOINTS_TOTAL, "db" => self.kind.label(), "mode" => mode.as_str())
                .increment(1);
            tracing::debug!(db = %self.path.display(), mode = mode.as_str(), busy = r.busy,
                log = r.log_frames, done = r.checkpointed, "replication checkpoint");
        }
        r
    }

    fn checkpoint(&self, mode: &str) {
        let started = Instant::now();
        let r = self
            .conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            });
        match r {
            Ok((busy, log, done)) => {
                self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(m::STORE_CHECKPOINTS_TOTAL, "db" => self.kind.label(), "mode" => mode.to_owned())
                    .increment(1);
                tracing::debug!(db = %self.path.display(), mode, busy, log, done,
                    ms = started.elapsed().as_millis() as u64, "checkpoint");
            }
            Err(e) => {
                tracing::warn!(db = %self.path.display(), mode, error = %e, "checkpoint failed")
            }
        }
    }
}
