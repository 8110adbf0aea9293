//! A database's readers: up to `size` threads, each with its own read-only connection,
//! taking jobs from one bounded queue.
//!
//! Reads block on disk I/O, so they never run on the async workers. They used to go
//! through tokio's blocking pool behind a semaphore: under load every read then cost a
//! chain of cross-thread wake-ups (permit released, waiter woken, blocking task spawned,
//! blocking thread woken), profiled at a fifth of a list request's CPU. Here a busy reader
//! thread takes the next job straight from the queue without sleeping; the only wake-up is
//! the caller's, when its result is ready.
//!
//! Threads and connections start lazily, as concurrent reads need them, and end when the
//! pool is dropped (the database closed). A semaphore bounds the jobs queued or running,
//! so callers beyond that wait asynchronously instead of growing the queue.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rusqlite::Connection;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::conn::open_reader;
use super::error::StoreError;

/// Jobs queued or running per reader thread before callers wait.
const QUEUE_PER_READER: usize = 64;

type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) + Send>;

/// How each reader's connection is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReaderSettings {
    pub(crate) busy_timeout: Duration,
    /// SQLite `mmap_size` of each reader connection; 0 = pages are read with `pread`.
    pub(crate) mmap_bytes: u64,
}

pub(crate) struct ReadPool {
    path: PathBuf,
    settings: ReaderSettings,
    size: usize,
    permits: Arc<Semaphore>,
    jobs: Sender<Job>,
    queue: Receiver<Job>,
    /// Reader threads started, and those waiting for a job.
    live: Arc<AtomicUsize>,
    idle: Arc<AtomicUsize>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, size: usize, settings: ReaderSettings) -> Arc<Self> {
        let depth = size.max(1) * QUEUE_PER_READER;
        let (jobs, queue) = crossbeam_channel::bounded(depth);
        Arc::new(ReadPool {
            path,
            settings,
            size: size.max(1),
            permits: Arc::new(Semaphore::new(depth)),
            jobs,
            queue,
            live: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _permit: OwnedSemaphorePermit = permit;
            let out = match conn {
                Ok(c) => catch_unwind(AssertUnwindSafe(|| f(c)))
                    .unwrap_or_else(|_| Err(StoreError::Join("a read panicked".into()))),
                Err(e) => Err(e),
            };
            let _ = tx.send(out);
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            // Cannot happen while the permit is held: the queue is as deep as the permits.
            Err(TrySendError::Full(_)) => return Err(StoreError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        self.ensure_reader()?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Starts another reader thread when none is waiting and the pool is not full.
    fn ensure_reader(&self) -> Result<(), StoreError> {
        if self.idle.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        let mut n = self.live.load(Ordering::Acquire);
        loop {
            if n >= self.size {
                return Ok(());
            }
            match self
                .live
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        let queue = self.queue.clone();
        let (path, settings) = (self.path.clone(), self.settings);
        let idle = Arc::clone(&self.idle);
        let spawned = std::thread::Builder::new()
            .name("gleaner-read".into())
            .spawn(move || reader_loop(&queue, &path, settings, &idle));
        if let Err(e) = spawned {
            self.live.fetch_sub(1, Ordering::AcqRel);
            // Jobs already queued still run on the threads that exist.
            if self.live.load(Ordering::Acquire) == 0 {
                return Err(StoreError::Join(format!(
                    "cannot start a reader thread: {e}"
                )));
            }
        }
        Ok(())
    }
}

fn reader_loop(
    queue: &Receiver<Job>,
    path: &std::path::Path,
    settings: ReaderSettings,
    idle: &AtomicUsize,
) {
    let mut conn: Option<Connection> = None;
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let next = queue.recv();
        idle.fetch_sub(1, Ordering::AcqRel);
        // Disconnected: the pool was dropped with the database; the connection closes here.
        let Ok(job) = next else { return };
        if conn.is_none() {
            match open_reader(path, settings.busy_timeout, settings.mmap_bytes) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    job(Err(e));
                    continue;
                }
            }
        }
        if let Some(c) = &conn {
            job(Ok(c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mmap_bytes: u64) -> ReaderSettings {
        ReaderSettings {
            busy_timeout: Duration::from_secs(1),
            mmap_bytes,
        }
    }

    fn pool(size: usize) -> (tempfile::TempDir, Arc<ReadPool>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (7);")
            .unwrap();
        (d, ReadPool::new(p, size, settings(0)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_read_fails_alone_and_the_pool_keeps_serving() {
        let (_d, p) = pool(2);
        let e = p
            .read(|_| -> Result<(), StoreError> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Join(_)), "{e:?}");
        let x: i64 = p
            .read(|c| Ok(c.query_row("SELECT x FROM t", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(x, 7);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_reads_all_answer_on_at_most_size_threads() {
        let (_d, p) = pool(3);
        let threads = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let mut tasks = Vec::new();
        // More than the queue holds, so some callers wait for permits.
        for i in 0..1000i64 {
            let (p, threads) = (Arc::clone(&p), Arc::clone(&threads));
            tasks.push(tokio::spawn(async move {
                p.read(move |c| {
                    threads.lock().unwrap().insert(std::thread::current().id());
                    Ok(c.query_row("SELECT x + ?1 FROM t", [i], |r| r.get::<_, i64>(0))?)
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), 7 + i as i64);
        }
        let n = threads.lock().unwrap().len();
        assert!((1..=3).contains(&n), "{n} reader threads");
    }

    #[tokio::test]
    async fn an_unopenable_database_is_an_error_not_a_hang() {
        let d = tempfile::tempdir().unwrap();
        let p = ReadPool::new(d.path().join("missing.db"), 2, settings(0));
        let e = p.read(|_| Ok(())).await.unwrap_err();
        assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
    }
}
