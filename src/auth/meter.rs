//! Counters gathered in memory and written in batches: API keys' last-used times and API
//! requests per tenant per day.
//!
//! A request only touches a map under a mutex; a flusher writes everything gathered every
//! `auth.last_used_flush_secs` (and at shutdown) in one write per table. The maps are
//! bounded: past [`MAX_PENDING`] entries the request wakes the flusher early.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::store::{Store, StoreError};

/// Entries per map before an early flush is asked for.
pub const MAX_PENDING: usize = 50_000;

#[derive(Default)]
pub struct Meter {
    last_used: Mutex<HashMap<String, i64>>,
    requests: Mutex<HashMap<(String, String), i64>>,
    pub wake: Notify,
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the epoch.
pub fn day_of(ms: i64) -> String {
    let d = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl Meter {
    pub fn key_used(&self, id: &str, at_ms: i64) {
        let mut m = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        let full = m.len() >= MAX_PENDING;
        m.entry(id.to_owned())
            .and_modify(|t| *t = (*t).max(at_ms))
            .or_insert(at_ms);
        drop(m);
        if full {
            self.wake.notify_one();
        }
    }

    pub fn request(&self, tenant: &str, at_ms: i64) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let full = m.len() >= MAX_PENDING;
        *m.entry((tenant.to_owned(), day_of(at_ms))).or_insert(0) += 1;
        drop(m);
        if full {
            self.wake.notify_one();
        }
    }

    /// Writes everything gathered so far. On failure the counts are put back.
    pub async fn flush(&self, store: &Store) -> Result<(), StoreError> {
        let used: Vec<(String, i64)> =
            std::mem::take(&mut *self.last_used.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        if let Err(e) = store.touch_api_keys(used.clone()).await {
            let mut m = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            for (k, t) in used {
                m.entry(k).and_modify(|x| *x = (*x).max(t)).or_insert(t);
            }
            return Err(e);
        }
        let reqs: Vec<(String, String, i64, i64)> =
            std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|((t, d), n)| (t, d, n, 0))
                .collect();
        if let Err(e) = store.add_usage(reqs.clone()).await {
            let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for (t, d, n, _) in reqs {
                *m.entry((t, d)).or_insert(0) += n;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Requests counted but not yet written, for a tenant's day.
    pub fn pending_requests(&self, tenant: &str, day: &str) -> i64 {
        self.requests
            .lock()
            .map(|m| {
                m.get(&(tenant.to_owned(), day.to_owned()))
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_700_000_000_000), "2023-11-14");
        assert_eq!(day_of(-1), "1969-12-31");
    }
}
