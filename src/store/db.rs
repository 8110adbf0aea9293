//! A handle to one open database: its writer thread and its read pool.
//!
//! Handles are cheap clones of one `Arc`. When the last clone goes, the writer's channel
//! closes and the thread finishes its queue and exits; [`Db::close`] does the same
//! deterministically and waits for it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::conn::open_writer;
use super::error::StoreError;
use super::exclusive::{CheckpointMode, Exclusive, SnapshotHolder};
use super::reader::{ReadPool, ReaderSettings};
use super::schema::{migrate, DbKind, WriterHooks};
use super::writer::{CheckpointPolicy, Command, Op, Writer, WriterStats};
use crate::config::Synchronous;

/// How to open a database.
#[derive(Debug, Clone)]
pub(crate) struct DbOptions {
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) writer_queue: usize,
    pub(crate) max_batch: usize,
    pub(crate) readers: usize,
    pub(crate) reader_mmap_bytes: u64,
    pub(crate) checkpoint: CheckpointPolicy,
}

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    kind: DbKind,
    path: PathBuf,
    tx: mpsc::Sender<Command>,
    readers: Arc<ReadPool>,
    stats: Arc<WriterStats>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    last_used_ms: AtomicU64,
}

/// A handle that does not keep the database open: the registry closes databases that
/// only weak handles refer to.
#[derive(Clone)]
pub struct WeakDb(Weak<Inner>);

impl WeakDb {
    pub fn upgrade(&self) -> Option<Db> {
        self.0.upgrade().map(|inner| Db { inner })
    }
}

/// A tenant's database. The files above `db` that serve tenant data (records, dict,
/// frontier, query, …) each add their methods to it.
#[derive(Clone)]
pub struct TenantDb(pub(crate) Db);

impl TenantDb {
    pub fn db(&self) -> &Db {
        &self.0
    }
}

impl Db {
    /// Opens (creating if needed), migrates, and starts the writer thread. `hooks` are what
    /// the write connection of this kind needs (`fts::TENANT_WRITER` for a tenant database,
    /// `None` for control.db). Blocking: call it from `spawn_blocking`.
    pub(crate) fn open_blocking(
        path: &Path,
        kind: DbKind,
        opts: &DbOptions,
        hooks: Option<WriterHooks>,
    ) -> Result<Db, StoreError> {
        let mut conn: Connection = open_writer(path, opts.synchronous, opts.busy_timeout)?;
        migrate(&mut conn, kind, path, hooks)?;
        let holder = match opts.checkpoint {
            CheckpointPolicy::External => {
                Some(SnapshotHolder::open(path, opts.busy_timeout, false)?)
            }
            CheckpointPolicy::Store { .. } => None,
        };
        let (tx, rx) = mpsc::channel(opts.writer_queue);
        let stats = Arc::new(WriterStats::default());
        let writer = Writer {
            conn,
            rx,
            kind,
            path: path.to_path_buf(),
            max_batch: opts.max_batch,
            policy: opts.checkpoint,
            stats: stats.clone(),
            holder,
            before_commit: hooks.map(|h| h.before_commit),
        };
        let name = format!(
            "gleaner-w-{}",
            path.file_stem().and_then(|s| s.to_str()).unwrap_or("db")
        );
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::DataDir {
                path: path.to_path_buf(),
                reason: format!("cannot start writer thread: {e}"),
            })?;
        Ok(Db {
            inner: Arc::new(Inner {
                kind,
                path: path.to_path_buf(),
                tx,
                readers: ReadPool::new(
                    path.to_path_buf(),
                    opts.readers,
                    ReaderSettings {
                        busy_timeout: opts.busy_timeout,
                        mmap_bytes: opts.reader_mmap_bytes,
                    },
                ),
                stats,
                thread: Mutex::new(Some(thread)),
                last_used_ms: AtomicU64::new(super::base::now_ms() as u64),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A handle that does not keep the database open (for the replicator).
    pub fn downgrade(&self) -> WeakDb {
        WeakDb(Arc::downgrade(&self.inner))
    }

    /// Runs `f` on the writer thread after everything queued before it has committed and
    /// before anything queued after it starts, then the checkpoint `f` returns, if any (the
    /// contract is [`Exclusive`]'s). `f` must not call back into this database (it would
    /// wait for itself).
    pub async fn exclusive<T, F>(&self, f: F) -> Result<Exclusive<T>, StoreError>
    where
        F: FnOnce() -> (T, Option<CheckpointMode>) + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: super::writer::ExclusiveJob = Box::new(move |checkpoint| {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(match out {
                Ok((v, mode)) => Ok((v, mode.map(checkpoint))),
                Err(_) => Err(StoreError::WritePanicked("exclusive job panicked".into())),
            });
        });
        self.inner
            .tx
            .send(Command::Exclusive(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub fn kind(&self) -> DbKind {
        self.inner.kind
    }

    /// Commit and write counters of this database's writer.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    pub(crate) fn touch(&self) {
        self.inner
            .last_used_ms
            .store(super::base::now_ms() as u64, Ordering::Relaxed);
    }

    pub(crate) fn last_used_ms(&self) -> u64 {
        self.inner.last_used_ms.load(Ordering::Relaxed)
    }

    /// How many handles exist (the registry evicts only databases nobody else holds).
    pub(crate) fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Queues `f` for the writer; resolves once its batch has committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.touch();
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Write(Box::new(Op { f, tx })))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read-only connection.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.touch();
        self.inner.readers.read(f).await
    }

    /// Proves the writer is alive and can take the write lock (without writing).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Ping(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Commits everything queued, checkpoints if the store owns checkpoints, stops the
    /// writer thread and waits for it. Later writes fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Command::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}
