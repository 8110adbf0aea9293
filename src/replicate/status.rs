//! The live replication status of one database, shared between its sync task (which
//! writes it) and the health check and metrics (which read it): how long the oldest
//! unshipped commit has waited, the WAL size, the last shipped TXID, whether syncs fail.
//! Also the watch that keeps lag and WAL size current while a sync is stuck on a
//! destination that does not answer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::replicate::capture::DbFiles;

/// The process's time origin: status times are milliseconds after it (plus one, so that
/// zero can mean "nothing unshipped"), monotonic and storable in an atomic.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn to_ms(t: Instant) -> u64 {
    t.saturating_duration_since(base()).as_millis() as u64 + 1
}

/// Live numbers of one database, read by the health check and the metrics updater.
#[derive(Debug, Default)]
pub struct DbStatus {
    /// When the oldest commit not yet shipped to every destination was first seen (see
    /// [`to_ms`]); 0 when everything is shipped. Lag is computed from it when read, so it
    /// grows by itself while a sync hangs.
    unshipped_since: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub last_txid: AtomicU64,
    pub failing: AtomicBool,
}

impl DbStatus {
    /// Something committed at or after `t` is unshipped; keeps an earlier mark.
    pub fn mark_unshipped(&self, t: Instant) {
        let _ = self.unshipped_since.compare_exchange(
            0,
            to_ms(t),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Everything seen so far is shipped.
    pub fn clear_unshipped(&self) {
        self.unshipped_since.store(0, Ordering::Relaxed);
    }

    pub fn is_unshipped(&self) -> bool {
        self.unshipped_since.load(Ordering::Relaxed) != 0
    }

    /// How long the oldest unshipped commit has waited (zero when none).
    pub fn lag(&self) -> Duration {
        match self.unshipped_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(to_ms(Instant::now()).saturating_sub(since)),
        }
    }
}

/// Runs beside a sync (never returns; dropped when the sync ends): every `interval`,
/// stats the WAL so its gauge stays current and a commit that lands while the sync is
/// stuck starts the lag clock at once instead of when the sync gives up.
pub async fn watch_while_syncing(
    files: DbFiles,
    status: std::sync::Arc<DbStatus>,
    mut stamp: Option<(u64, i128, u64)>,
    interval: Duration,
) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        let f = files.clone();
        let now_stamp = tokio::task::spawn_blocking(move || f.wal_stamp())
            .await
            .ok()
            .flatten();
        status
            .wal_bytes
            .store(now_stamp.map_or(0, |s| s.0), Ordering::Relaxed);
        if now_stamp != stamp {
            status.mark_unshipped(last);
            stamp = now_stamp;
        }
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_mark_wins_until_cleared() {
        let s = DbStatus::default();
        assert_eq!(s.lag(), Duration::ZERO);
        let early = Instant::now();
        s.mark_unshipped(early);
        s.mark_unshipped(early + Duration::from_secs(3600));
        // A later mark does not move the clock forward: lag still counts from `early`.
        assert!(s.lag() < Duration::from_secs(3600));
        assert!(s.is_unshipped());
        s.clear_unshipped();
        assert!(!s.is_unshipped());
        assert_eq!(s.lag(), Duration::ZERO);
    }
}
