//! Politeness shared by every run on the node: per-host concurrency and spacing, pauses
//! from Retry-After, adaptive slow-down on errors, and cached robots.txt rules.
//!
//! Concurrency is counted per host across every source and run of the process: a request
//! starts only while fewer than its limit are in flight to its host, where its limit is
//! `harvest.per_host_concurrency` or its source's lower `politeness.per_host_concurrency`.
//! So a source asking for 2 never finds more than 2 requests (its own or anyone's) in
//! flight to a host when it sends one, and two such sources together stay at 2.
//!
//! Host state lives in an LRU map bounded by `harvest.max_hosts`; a host evicted while
//! requests to it are in flight keeps its state alive through their `Arc`s, and a new
//! entry starts fresh (which at worst allows one more burst to a host not seen for long).
//! Request budgets are per source and live with the run ([`Budget`]).

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use lru::LruCache;
use rand::Rng;
use tokio::sync::Notify;
use url::Url;

use crate::harvest::robots::AgentRules;

/// Longest adaptive slow-down added between requests to a failing host.
const MAX_PENALTY: Duration = Duration::from_secs(30);
/// First slow-down step after an error.
const FIRST_PENALTY: Duration = Duration::from_millis(250);

struct Timing {
    next_at: Instant,
    paused_until: Instant,
    penalty: Duration,
}

/// What a host's robots.txt fetch gave.
#[derive(Clone)]
pub enum RobotsState {
    Rules(Arc<AgentRules>),
    /// 5xx or no answer: nothing may be fetched from the host until robots.txt can be.
    Unreachable(String),
}

/// One host's state.
pub struct Host {
    /// Requests in flight to this host, from every source and run.
    in_flight: Mutex<usize>,
    /// Signalled whenever a request to this host ends.
    freed: Notify,
    timing: Mutex<Timing>,
    /// robots.txt rules for our agent (or why robots.txt is unreachable) and when that
    /// expires; the async mutex makes one task fetch them while the others wait.
    pub robots: tokio::sync::Mutex<Option<(RobotsState, std::time::Instant)>>,
}

impl Host {
    /// Takes a slot if fewer than `limit` requests are in flight.
    fn try_take(&self, limit: usize) -> bool {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if *n < limit {
            *n += 1;
            true
        } else {
            false
        }
    }

    /// Waits until fewer than `limit` requests are in flight, then takes a slot.
    async fn take(&self, limit: usize) {
        loop {
            // Registered before checking, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(limit) {
                return;
            }
            freed.await;
        }
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Held while a request to a host is in flight; dropping it frees the slot.
pub struct HostPermit {
    host: Arc<Host>,
    /// Time spent waiting for the slot and the spacing.
    pub waited: Duration,
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        {
            let mut n = self
                .host
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *n = n.saturating_sub(1);
        }
        // Every waiter re-checks: they may have different limits, so waking one could
        // wake one that still cannot go while another could.
        self.host.freed.notify_waiters();
    }
}

pub struct Politeness {
    hosts: Mutex<LruCache<String, Arc<Host>>>,
    per_host: usize,
}

/// The key of a URL's host: scheme, host and port, as robots.txt scopes rules.
pub fn host_key(u: &Url) -> String {
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

impl Politeness {
    pub fn new(max_hosts: usize, per_host: usize) -> Politeness {
        Politeness {
            hosts: Mutex::new(LruCache::new(
                NonZeroUsize::new(max_hosts.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
            per_host: per_host.max(1),
        }
    }

    pub fn host(&self, key: &str) -> Arc<Host> {
        let mut map = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(key) {
            return Arc::clone(h);
        }
        let now = Instant::now();
        let h = Arc::new(Host {
            in_flight: Mutex::new(0),
            freed: Notify::new(),
            timing: Mutex::new(Timing {
                next_at: now,
                paused_until: now,
                penalty: Duration::ZERO,
            }),
            robots: tokio::sync::Mutex::new(None),
        });
        map.put(key.to_owned(), Arc::clone(&h));
        h
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.hosts.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Waits for a slot at `key` and for its spacing: `min_delay` (plus up to 20% jitter),
    /// the host's error penalty, and any Retry-After pause. `limit` is the source's own
    /// per-host concurrency, which can only lower the node's.
    pub async fn acquire(
        &self,
        key: &str,
        min_delay: Duration,
        limit: Option<usize>,
    ) -> HostPermit {
        let t0 = Instant::now();
        let host = self.host(key);
        let limit = limit.map_or(self.per_host, |n| n.min(self.per_host)).max(1);
        host.take(limit).await;
        let mut permit = HostPermit {
            host: Arc::clone(&host),
            waited: Duration::ZERO,
        };
        let start = {
            let mut t = host.timing.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = now.max(t.next_at).max(t.paused_until);
            let base = min_delay + t.penalty;
            let jitter = if base.is_zero() {
                Duration::ZERO
            } else {
                base.mul_f64(rand::rng().random_range(0.0..0.2))
            };
            t.next_at = start + base + jitter;
            start
        };
        tokio::time::sleep_until(start).await;
        permit.waited = t0.elapsed();
        permit
    }

    /// Pauses a host until `d` from now (429 / 503 with Retry-After).
    pub fn pause(&self, key: &str, d: Duration) {
        let h = self.host(key);
        let mut t = h.timing.lock().unwrap_or_else(|p| p.into_inner());
        t.paused_until = t.paused_until.max(Instant::now() + d);
    }

    /// Adaptive slow-down: errors double the host's extra delay, successes halve it.
    pub fn feedback(&self, key: &str, ok: bool) {
        let h = self.host(key);
        let mut t = h.timing.lock().unwrap_or_else(|p| p.into_inner());
        t.penalty = if ok {
            let half = t.penalty / 2;
            if half < Duration::from_millis(10) {
                Duration::ZERO
            } else {
                half
            }
        } else {
            (t.penalty * 2).clamp(FIRST_PENALTY, MAX_PENALTY)
        };
    }

    #[cfg(test)]
    fn penalty(&self, key: &str) -> Duration {
        let h = self.host(key);
        let t = h.timing.lock().unwrap_or_else(|p| p.into_inner());
        t.penalty
    }
}

/// A source's request budgets: per minute (a sliding window) and per day (a count that
/// started from what today's earlier runs used).
pub struct Budget {
    per_minute: Option<u32>,
    window: Mutex<VecDeque<Instant>>,
    day_left: Mutex<Option<u64>>,
}

/// The day budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExhausted;

impl Budget {
    pub fn new(per_minute: Option<u32>, per_day: Option<u32>, used_today: u64) -> Budget {
        Budget {
            per_minute,
            window: Mutex::new(VecDeque::new()),
            day_left: Mutex::new(per_day.map(|d| u64::from(d).saturating_sub(used_today))),
        }
    }

    /// Takes one request from the budgets, waiting for the minute window if needed.
    pub async fn take(&self) -> Result<(), BudgetExhausted> {
        {
            let mut d = self.day_left.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(left) = d.as_mut() {
                if *left == 0 {
                    return Err(BudgetExhausted);
                }
                *left -= 1;
            }
        }
        let Some(limit) = self.per_minute else {
            return Ok(());
        };
        loop {
            let wait = {
                let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while w
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
                {
                    w.pop_front();
                }
                if w.len() < limit as usize {
                    w.push_back(now);
                    None
                } else {
                    w.front()
                        .map(|t| Duration::from_secs(60).saturating_sub(now.duration_since(*t)))
                }
            };
            match wait {
                None => return Ok(()),
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(5))).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spacing_and_pause_delay_requests() {
        let p = Politeness::new(16, 4);
        let k = "http://a:80";
        let t0 = Instant::now();
        drop(p.acquire(k, Duration::from_secs(2), None).await);
        drop(p.acquire(k, Duration::from_secs(2), None).await);
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_secs(2) && el <= Duration::from_millis(2500),
            "{el:?}"
        );
        p.pause(k, Duration::from_secs(30));
        let t1 = Instant::now();
        drop(p.acquire(k, Duration::ZERO, None).await);
        assert!(
            t1.elapsed() >= Duration::from_secs(29),
            "{:?}",
            t1.elapsed()
        );
    }

    #[tokio::test]
    async fn penalty_grows_on_errors_and_decays() {
        let p = Politeness::new(16, 4);
        let k = "http://b:80";
        p.feedback(k, false);
        assert_eq!(p.penalty(k), FIRST_PENALTY);
        p.feedback(k, false);
        assert_eq!(p.penalty(k), FIRST_PENALTY * 2);
        for _ in 0..10 {
            p.feedback(k, true);
        }
        assert_eq!(p.penalty(k), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_source_limit_counts_every_request_to_the_host() {
        let p = Arc::new(Politeness::new(16, 4));
        let k = "http://c:80";
        // Two requests of an unlimited source are in flight.
        let a = p.acquire(k, Duration::ZERO, None).await;
        let b = p.acquire(k, Duration::ZERO, None).await;
        // A source limited to 2 waits: the host already has 2, whoever sent them.
        let p2 = Arc::clone(&p);
        let waiting = tokio::spawn(async move { p2.acquire(k, Duration::ZERO, Some(2)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // The unlimited source may still go up to the node's 4.
        let c = p.acquire(k, Duration::ZERO, None).await;
        assert_eq!(p.host(k).in_flight(), 3);
        drop((a, b));
        assert!(!waiting.is_finished() || p.host(k).in_flight() <= 2);
        drop(c);
        let d = waiting.await.unwrap();
        assert_eq!(p.host(k).in_flight(), 1);
        drop(d);
        assert_eq!(p.host(k).in_flight(), 0);
    }

    #[test]
    fn host_map_is_bounded() {
        let p = Politeness::new(16, 1);
        for i in 0..100 {
            p.host(&format!("http://h{i}:80"));
        }
        assert_eq!(p.len(), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_limit_per_minute_and_per_day() {
        let b = Budget::new(Some(2), Some(4), 1);
        let t0 = Instant::now();
        b.take().await.unwrap();
        b.take().await.unwrap();
        b.take().await.unwrap(); // waits for the minute window
        assert!(t0.elapsed() >= Duration::from_secs(60));
        assert_eq!(b.take().await, Err(BudgetExhausted)); // 4 per day, 1 used before
    }
}
