//! The outcome of the scheduled replica verification per database (control.db and every
//! tenant database), shared between the verifier that writes it and `/readyz`/metrics
//! that read it: when each database's replica was last proven restorable, what the last
//! failure was, and the low-cardinality summary (oldest age, failed count) exported as
//! gauges instead of one series per tenant.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::replicate::replica::now_secs;
use crate::telemetry::metrics as m;

/// Failures named in `/readyz`'s detail at most (the count is always complete).
pub const MAX_LISTED_FAILURES: usize = 10;

#[derive(Debug, Clone)]
struct Entry {
    last_ok_secs: Option<f64>,
    last_txid: u64,
    failure: Option<(f64, String)>,
    /// Rotation in which the database was last checked; entries older than the rotation
    /// just finished belong to deleted tenants and are dropped, so the map stays bounded by
    /// the number of databases.
    cycle: u64,
}

#[derive(Debug, Default)]
struct Inner {
    dbs: HashMap<String, Entry>,
    cycle: u64,
    completed_cycles: u64,
}

/// Per-database verification state of one node.
#[derive(Debug)]
pub struct VerifyBoard {
    started_secs: f64,
    inner: Mutex<Inner>,
}

impl Default for VerifyBoard {
    fn default() -> Self {
        VerifyBoard {
            started_secs: now_secs(),
            inner: Mutex::new(Inner::default()),
        }
    }
}

/// A failed database, for `/readyz`'s detail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailedDb {
    pub db: String,
    pub at: f64,
    pub error: String,
}

/// What the board says over every database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifySummary {
    /// Seconds since the least recently verified database was last verified good. Until a
    /// full rotation has been done since start-up, some database has not been verified in
    /// this process yet, so it is the time since start.
    pub oldest_age_secs: f64,
    pub verified: usize,
    pub failed_count: usize,
    pub failed: Vec<FailedDb>,
}

impl VerifyBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The last TXID verified good for `db` (0 when never).
    pub fn last_txid(&self, db: &str) -> u64 {
        self.lock().dbs.get(db).map_or(0, |e| e.last_txid)
    }

    fn entry<'a>(inner: &'a mut Inner, db: &str) -> &'a mut Entry {
        let cycle = inner.cycle;
        let e = inner.dbs.entry(db.to_owned()).or_insert(Entry {
            last_ok_secs: None,
            last_txid: 0,
            failure: None,
            cycle,
        });
        e.cycle = cycle;
        e
    }

    pub fn record_ok(&self, db: &str, txid: u64) {
        let mut g = self.lock();
        let e = Self::entry(&mut g, db);
        e.last_ok_secs = Some(now_secs());
        e.last_txid = txid;
        e.failure = None;
    }

    pub fn record_failure(&self, db: &str, error: String) {
        let mut g = self.lock();
        Self::entry(&mut g, db).failure = Some((now_secs(), error));
    }

    /// A database checked but skipped (nothing shipped yet): still part of this rotation.
    pub fn touch(&self, db: &str) {
        let mut g = self.lock();
        Self::entry(&mut g, db);
    }

    /// The rotation reached its end: forget databases not seen in it (deleted tenants).
    pub fn end_cycle(&self) {
        let mut g = self.lock();
        let cycle = g.cycle;
        g.dbs.retain(|_, e| e.cycle == cycle);
        g.cycle += 1;
        g.completed_cycles += 1;
    }

    pub fn summary(&self) -> VerifySummary {
        let g = self.lock();
        let now = now_secs();
        let since_start = (now - self.started_secs).max(0.0);
        let mut oldest = if g.completed_cycles == 0 {
            since_start
        } else {
            0.0
        };
        let mut failed = Vec::new();
        let mut failed_count = 0;
        let mut verified = 0;
        for (db, e) in &g.dbs {
            let age = now - e.last_ok_secs.unwrap_or(self.started_secs);
            oldest = f64::max(oldest, age.max(0.0));
            if e.last_ok_secs.is_some() {
                verified += 1;
            }
            if let Some((at, err)) = &e.failure {
                failed_count += 1;
                if failed.len() < MAX_LISTED_FAILURES {
                    failed.push(FailedDb {
                        db: db.clone(),
                        at: *at,
                        error: err.clone(),
                    });
                }
            }
        }
        failed.sort_by(|a, b| a.db.cmp(&b.db));
        VerifySummary {
            oldest_age_secs: oldest,
            verified,
            failed_count,
            failed,
        }
    }

    /// Sets the summary gauges; called after each verification and on the health watch's
    /// tick, so the age keeps growing even while a verification hangs.
    pub fn publish(&self) -> VerifySummary {
        let s = self.summary();
        metrics::gauge!(m::REPLICATION_VERIFY_OLDEST_AGE).set(s.oldest_age_secs);
        metrics::gauge!(m::REPLICATION_VERIFY_FAILED_DATABASES).set(s.failed_count as f64);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_per_database_and_deleted_ones_drop_out() {
        let b = VerifyBoard::default();
        b.record_ok("control", 7);
        b.record_failure("tenants/a", "bad page".into());
        b.record_ok("tenants/b", 3);
        let s = b.summary();
        assert_eq!((s.verified, s.failed_count), (2, 1));
        assert_eq!(s.failed[0].db, "tenants/a");
        b.end_cycle();
        b.record_ok("control", 8);
        b.end_cycle();
        let s = b.summary();
        assert_eq!((s.verified, s.failed_count), (1, 0));
        assert_eq!(b.last_txid("control"), 8);
        assert_eq!(b.last_txid("tenants/b"), 0);
    }
}
