//! The last ship before a database closes (idle close, or shutdown): bounded by
//! `replicate.shutdown_ship_timeout_ms` but not skipped because the destination was
//! failing a moment ago, and loud (error level, counted for the exit code) when commits
//! stay unshipped.

use std::time::{Duration, Instant};

use super::{marker_path, stamp_text, DbTask};
use crate::replicate::replica::Replica;
use crate::replicate::runtime_error::ReplicateError;

impl DbTask {
    /// The last ship before the database closes: keeps trying until `deadline` (at least
    /// briefly) even while the destination fails (it may just have come back), then says
    /// at error level what stayed unshipped. True if everything shipped. Without a
    /// deadline (idle close during an outage) it does not try.
    pub(super) async fn final_sync(&mut self, deadline: Option<Instant>) -> bool {
        let Some(deadline) = deadline else {
            tracing::warn!(db = %self.files.db.display(),
                "closing with unshipped frames (destination unreachable); they ship on the next open");
            return self.replicas.len() == self.shared.dests.len() && !self.status.is_unshipped();
        };
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .max(crate::replicate::FINAL_MIN_TRY);
        let deadline = Instant::now() + bound;
        let _ = std::fs::remove_file(marker_path(&self.staging));
        let shipped = tokio::time::timeout(bound, self.final_attempts(deadline))
            .await
            .unwrap_or(false);
        if shipped {
            tracing::debug!(db = %self.name, txids = ?self.txids(), "replication detached");
        } else {
            self.report_unshipped(bound);
        }
        shipped
    }

    async fn final_attempts(&mut self, deadline: Instant) -> bool {
        let mut attempt = 0u32;
        loop {
            let res = if self.replicas.len() < self.shared.dests.len() {
                self.attach_replicas().await
            } else {
                self.ship_all_exclusive(None).await
            };
            match res {
                Ok(()) if self.replicas.len() < self.shared.dests.len() => continue,
                Ok(()) => {
                    if let Some(st) = self.shipped_stamp {
                        let m = marker_path(&self.staging);
                        if let Err(e) = std::fs::create_dir_all(&self.staging)
                            .and_then(|()| std::fs::write(&m, stamp_text(st)))
                        {
                            tracing::debug!(path = %m.display(), error = %e, "cannot write the shipped marker");
                        }
                    }
                    return true;
                }
                Err(e) => {
                    if self.replicas.len() == self.shared.dests.len()
                        && self.final_fallback(&e).await
                    {
                        return true;
                    }
                    let wait = crate::replicate::replica::backoff(attempt);
                    attempt += 1;
                    if Instant::now() + wait >= deadline {
                        tracing::debug!(db = %self.files.db.display(), error = %e, "final replication sync failed");
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The writer may already be gone (shutdown order): ship what the files hold.
    async fn final_fallback(&mut self, e: &ReplicateError) -> bool {
        match self.sync().await {
            Ok(_) => self.replicas.iter().all(Replica::shipped) && !self.status.is_unshipped(),
            Err(e2) => {
                tracing::debug!(db = %self.files.db.display(), error = %e, error2 = %e2, "final replication sync failed");
                false
            }
        }
    }

    fn report_unshipped(&self, bound: Duration) {
        let wal_bytes = self.files.wal_stamp().map_or(0, |s| s.0);
        let shipped: Vec<String> = self
            .replicas
            .iter()
            .map(|r| format!("{} at TXID {}", r.client.describe(), r.next_txid - 1))
            .collect();
        tracing::error!(db = %self.files.db.display(), wal_bytes,
            lag_secs = self.status.lag().as_secs_f64(),
            shipped = %if shipped.is_empty() { "replica position unknown".to_string() } else { shipped.join(", ") },
            timeout_ms = bound.as_millis() as u64,
            "closing with commits unshipped: the destination did not take them within replicate.shutdown_ship_timeout_ms; the WAL keeps them and the next start ships them");
    }
}
