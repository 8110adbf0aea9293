//! The one bounded CPU pool and the one async bridge into it.
//!
//! Parsing, extraction, compression and LTX encoding run here, never on the tokio runtime.
//! The pool is a named rayon pool; a semaphore bounds how many jobs are queued or running,
//! so a fast producer waits instead of growing a queue. A panic in a job becomes
//! [`CpuError::Panicked`] for its caller, and a job whose caller has gone away (the future
//! was dropped) is skipped before it starts.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::{oneshot, Semaphore};

use crate::config::CpuConfig;
use crate::error::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    #[error("CPU pool could not start: {0}")]
    Build(String),
    #[error("CPU job panicked: {0}")]
    Panicked(String),
    #[error("CPU pool is shut down")]
    Closed,
}

impl CpuError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CpuError::Build(_) => ErrorKind::Environment,
            CpuError::Panicked(_) => ErrorKind::Internal,
            CpuError::Closed => ErrorKind::ShuttingDown,
        }
    }
}

/// Cheap to clone; all clones share the same threads and bound.
#[derive(Clone)]
pub struct CpuPool {
    pool: Arc<rayon::ThreadPool>,
    permits: Arc<Semaphore>,
    threads: usize,
}

impl CpuPool {
    pub fn new(cfg: &CpuConfig) -> Result<Self, CpuError> {
        let threads = if cfg.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("gleaner-cpu-{i}"))
            .build()
            .map_err(|e| CpuError::Build(e.to_string()))?;
        Ok(CpuPool {
            pool: Arc::new(pool),
            permits: Arc::new(Semaphore::new(cfg.max_queued)),
            threads,
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on the pool and waits for its result without blocking the runtime.
    pub async fn run<T, F>(&self, f: F) -> Result<T, CpuError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CpuError::Closed)?;
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            let _permit = permit;
            if tx.is_closed() {
                return;
            }
            let out = catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                CpuError::Panicked(msg)
            });
            let _ = tx.send(out);
        });
        rx.await.map_err(|_| CpuError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn pool(threads: usize, max_queued: usize) -> CpuPool {
        CpuPool::new(&CpuConfig {
            threads,
            max_queued,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn runs_work_and_returns_value() {
        let p = pool(2, 4);
        let v = p.run(|| (1..=10u64).product::<u64>()).await.unwrap();
        assert_eq!(v, 3_628_800);
        let name = p
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap()
            .unwrap();
        assert!(name.starts_with("gleaner-cpu-"), "{name}");
    }

    #[tokio::test]
    async fn panic_becomes_error() {
        let p = pool(1, 4);
        let e = p.run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(e, CpuError::Panicked(ref m) if m == "boom"), "{e}");
        // The pool keeps working after a panic.
        assert_eq!(p.run(|| 5).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn abandoned_jobs_are_skipped() {
        let p = pool(1, 8);
        let ran = Arc::new(AtomicUsize::new(0));
        // Occupy the single worker so the next job waits in the queue.
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let p = p.clone();
            async move { p.run(move || hold_rx.recv().ok()).await }
        });
        let r = ran.clone();
        let abandoned = tokio::spawn({
            let p = p.clone();
            async move {
                p.run(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        hold_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        // A later job runs, proving the queue drained past the abandoned one.
        p.run(|| ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn queue_is_bounded() {
        let p = pool(1, 2);
        assert_eq!(p.permits.available_permits(), 2);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut jobs = Vec::new();
        for _ in 0..2 {
            let (p, rx) = (p.clone(), rx.clone());
            jobs.push(tokio::spawn(async move {
                p.run(move || rx.lock().unwrap().recv().ok()).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(p.permits.available_permits(), 0);
        let third = tokio::time::timeout(Duration::from_millis(100), p.run(|| 1)).await;
        assert!(
            third.is_err(),
            "a third job must wait while two are queued or running"
        );
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        for j in jobs {
            j.await.unwrap().unwrap();
        }
    }
}
