//! Scheduled verification of every backup: each `replicate.verify_interval_secs` the next
//! databases in rotation (control.db, then every tenant control.db lists, in id order,
//! then control.db again) are restored from the first destination into a temporary file
//! under `<data_dir>/.replicate/verify`, integrity-checked, and their restored TXID
//! compared with the live database; at most `verify_max_databases` databases or
//! `verify_max_bytes` downloaded per pass, so a node with 10,000 tenants spreads the work.
//!
//! The TXID rule, given that writes go on during the restore: the replicator publishes
//! the shipped TXID of an open database after each sync tick, so it never leads the
//! replica. Read it before the restore (`before`) and after (`after`):
//! `before <= restored` must hold (a replica behind what was already shipped lost data),
//! and `restored <= after` (a replica ahead of the live database has another writer);
//! since `after` may trail an upload by one tick, the upper bound is re-read once after
//! two sync intervals before it counts. Once the database is caught up, `before == after`
//! and the rule is equality. A closed database has no live position (its tail was
//! shipped at close): its restored TXID must not be below the one verified last time.
//!
//! Object-store and local I/O errors are not findings about the backup: they count as
//! `unavailable` and leave the database's state as it was (readiness never depends on
//! them). A finding (corrupt object, TXID gap, integrity or TXID rule) is re-checked once
//! at once — a compaction racing the listing is then gone — and only then recorded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ReplicateConfig};
use crate::replicate::restore::{self, VerifyReport};
use crate::replicate::runtime::{LivePosition, Replicator};
use crate::replicate::ReplicateError;
use crate::store::Store;
use crate::telemetry::metrics as m;

/// Why one database's replica did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Replicate(#[from] ReplicateError),
    #[error("restored TXID {restored:016x} is behind TXID {shipped:016x}, shipped before the restore began")]
    Behind { restored: u64, shipped: u64 },
    #[error("restored TXID {restored:016x} is ahead of the live database ({live:016x}): does another writer use this replica?")]
    Ahead { restored: u64, live: u64 },
    #[error("restored TXID {restored:016x} is behind TXID {verified:016x}, verified earlier: the replica went back")]
    Regressed { restored: u64, verified: u64 },
    #[error("no replica destination is configured")]
    NoDestination,
}

impl VerifyError {
    /// The object store or the local disk could not be used: no finding about the backup.
    fn transient(&self) -> bool {
        matches!(
            self,
            VerifyError::Replicate(
                ReplicateError::Client(_)
                    | ReplicateError::Io { .. }
                    | ReplicateError::Join(_)
                    | ReplicateError::Stopped
                    | ReplicateError::Store(_)
                    | ReplicateError::Cpu(_)
            )
        )
    }
}

/// Where the rotation goes next.
enum Next {
    Control,
    /// The tenant after this id (none: the first).
    Tenant(Option<String>),
}

struct Verifier {
    r: ReplicateConfig,
    store: Arc<Store>,
    rep: Replicator,
    tmp: PathBuf,
    next: Next,
}

/// Starts the schedule (the caller only does so when `verify_interval_secs > 0`).
pub fn spawn(cfg: &Config, store: Arc<Store>, rep: Replicator) -> tokio::task::JoinHandle<()> {
    let v = Verifier {
        r: cfg.replicate.clone(),
        store,
        rep,
        tmp: cfg.store.data_dir.join(".replicate").join("verify"),
        next: Next::Control,
    };
    tokio::spawn(v.run())
}

impl Verifier {
    async fn run(mut self) {
        // A killed process may have left a restored image behind.
        let _ = tokio::fs::remove_dir_all(&self.tmp).await;
        let mut tick = tokio::time::interval(Duration::from_secs(self.r.verify_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.pass().await;
        }
    }

    /// One interval's share of the rotation, within the budget.
    async fn pass(&mut self) {
        let (mut n, mut bytes) = (0usize, 0u64);
        while n < self.r.verify_max_databases && bytes < self.r.verify_max_bytes {
            let Some(path) = self.next_db(n == 0).await else {
                break;
            };
            bytes += self.check(&path).await;
            n += 1;
        }
        let _ = tokio::fs::remove_dir_all(&self.tmp).await;
        self.rep.verify_board().publish();
    }

    /// The next database of the rotation; `None` when control.db cannot be listed now, or
    /// when the rotation ends and this pass already verified something (a node with fewer
    /// databases than the budget verifies each once per pass, not repeatedly).
    async fn next_db(&mut self, first_in_pass: bool) -> Option<PathBuf> {
        loop {
            let after = match &self.next {
                Next::Control => {
                    self.next = Next::Tenant(None);
                    return Some(self.store.data_dir().join("control.db"));
                }
                Next::Tenant(after) => after.clone(),
            };
            let page = match self.store.list_tenants(after.as_deref(), 1).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "replica verification cannot list tenants; next interval");
                    return None;
                }
            };
            let Some(row) = page.into_iter().next() else {
                let board = self.rep.verify_board();
                board.end_cycle();
                let s = board.summary();
                tracing::info!(
                    verified = s.verified,
                    failed = s.failed_count,
                    oldest_age_secs = s.oldest_age_secs as u64,
                    "replica verification rotation complete"
                );
                self.next = Next::Control;
                if first_in_pass {
                    continue;
                }
                return None;
            };
            self.next = Next::Tenant(Some(row.id.clone()));
            if let Ok(id) = crate::tenant::TenantId::parse(&row.id) {
                return Some(self.store.tenant_db_path(&id));
            }
        }
    }

    /// Verifies one database and records the outcome; the bytes it downloaded.
    async fn check(&self, path: &Path) -> u64 {
        let sub = self.rep.replica_sub_path(path);
        let board = self.rep.verify_board();
        let before = self.rep.live_position(path);
        // Open but nothing shipped yet, or a tenant whose database was never created.
        if before.is_some_and(|p| p.shipped_txid == 0) || (before.is_none() && !path.exists()) {
            board.touch(&sub);
            return 0;
        }
        let mut res = self.attempt(&sub, path, before).await;
        if matches!(&res, Err(e) if !e.transient()) {
            let before = self.rep.live_position(path);
            res = self.attempt(&sub, path, before).await;
        }
        match res {
            Ok(rep) => {
                metrics::counter!(m::REPLICATION_VERIFY_TOTAL, "outcome" => "ok").increment(1);
                metrics::gauge!(m::REPLICATION_VERIFY_LAST_SUCCESS_SECONDS)
                    .set(crate::replicate::replica::now_secs());
                board.record_ok(&sub, rep.txid);
                // Debug: ten a minute by default; the rotation's end is logged at info.
                tracing::debug!(db = %sub, txid = rep.txid, pages = rep.page_count,
                    bytes = rep.downloaded_bytes, "replica verified");
                rep.downloaded_bytes
            }
            Err(e) if e.transient() => {
                metrics::counter!(m::REPLICATION_VERIFY_TOTAL, "outcome" => "unavailable")
                    .increment(1);
                tracing::warn!(db = %sub, error = %e, "replica verification could not run; next rotation");
                0
            }
            // The tenant was deleted (and its replica erased) meanwhile: nothing to report.
            Err(_) if sub != "control" && !path.exists() => 0,
            Err(e) => {
                metrics::counter!(m::REPLICATION_VERIFY_TOTAL, "outcome" => "failed").increment(1);
                tracing::error!(db = %sub, error = %e, "replica verification failed");
                board.record_failure(&sub, e.to_string());
                0
            }
        }
    }

    async fn attempt(
        &self,
        sub: &str,
        path: &Path,
        before: Option<LivePosition>,
    ) -> Result<VerifyReport, VerifyError> {
        let client = self
            .rep
            .primary_client(sub)
            .ok_or(VerifyError::NoDestination)?;
        // The restored image holds a tenant's data: private like the data directory.
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.tmp)
            .await
            .map_err(ReplicateError::io("create directory", &self.tmp))?;
        let rep = restore::verify(client, &self.tmp, self.r.upload_concurrency).await?;
        self.check_txid(sub, path, before, rep.txid).await?;
        Ok(rep)
    }

    /// The TXID rule of the module header.
    async fn check_txid(
        &self,
        sub: &str,
        path: &Path,
        before: Option<LivePosition>,
        restored: u64,
    ) -> Result<(), VerifyError> {
        let verified = self.rep.verify_board().last_txid(sub);
        let after = |v: &Self| v.rep.live_position(path).map(|p| p.shipped_txid);
        match txid_rule(
            restored,
            before.map(|p| p.shipped_txid),
            after(self),
            verified,
        ) {
            Err(VerifyError::Ahead { .. }) => {
                // The published position trails the last upload by up to one tick.
                tokio::time::sleep(Duration::from_millis(self.r.sync_interval_ms * 2)).await;
                txid_rule(restored, None, after(self), 0)
            }
            other => other,
        }
    }
}

/// `before`/`after`: the live shipped TXID around the restore (`None`: the database was
/// closed then); `verified`: the TXID verified good last time.
fn txid_rule(
    restored: u64,
    before: Option<u64>,
    after: Option<u64>,
    verified: u64,
) -> Result<(), VerifyError> {
    match before {
        None if after.is_none() && restored < verified => {
            return Err(VerifyError::Regressed { restored, verified })
        }
        Some(shipped) if restored < shipped => {
            return Err(VerifyError::Behind { restored, shipped })
        }
        _ => {}
    }
    match after {
        Some(live) if restored > live => Err(VerifyError::Ahead { restored, live }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txid_rule_between_the_live_positions() {
        // Caught up: equality.
        assert!(txid_rule(7, Some(7), Some(7), 0).is_ok());
        // Writes during the restore: anything between the two positions.
        assert!(txid_rule(8, Some(7), Some(9), 0).is_ok());
        // Behind what was shipped before the restore began: lost data.
        assert!(matches!(
            txid_rule(6, Some(7), Some(9), 0),
            Err(VerifyError::Behind { .. })
        ));
        // Ahead of the live database: another writer (re-read once by the caller).
        assert!(matches!(
            txid_rule(10, Some(7), Some(9), 0),
            Err(VerifyError::Ahead { .. })
        ));
        // Closed database: never below the last verified TXID.
        assert!(txid_rule(5, None, None, 5).is_ok());
        assert!(matches!(
            txid_rule(4, None, None, 5),
            Err(VerifyError::Regressed { .. })
        ));
        // Opened during the restore: only the upper bound applies.
        assert!(txid_rule(4, None, Some(4), 5).is_ok());
    }
}
