//! Request rate limits per credential and per tenant, and a limit on failed
//! authentications per source address (GCRA token buckets from `governor`).
//!
//! Each limiter is keyed (credential id, tenant id or address) and its state is bounded: a
//! background sweep drops entries indistinguishable from fresh ones, and if more than
//! `limits.rate_limit_entries` remain (which needs that many live credentials or
//! addresses) the limiter starts over empty rather than grow.
//!
//! A refusal's `Retry-After` and its `RateLimit-Reset` are the same number: the limiter's
//! wait until the next request is allowed, rounded up to whole seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::LimitsConfig;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// What to tell the client in `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again; on a refusal, until the next request is
    /// allowed (equal to `Retry-After`).
    pub reset_secs: u64,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// `credential`, `tenant` or `address`.
    pub scope: &'static str,
    /// At least 1; the same value as `info.reset_secs`.
    pub retry_after_secs: u64,
    pub info: RateInfo,
}

impl Limited {
    fn after(scope: &'static str, limit: u32, wait: Duration) -> Limited {
        let secs = ceil_secs(wait).max(1);
        Limited {
            scope,
            retry_after_secs: secs,
            info: RateInfo {
                limit,
                remaining: 0,
                reset_secs: secs,
            },
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

struct One {
    /// The quota and its burst, or `None` when this limit is off.
    quota: Option<(Quota, u32)>,
    limiter: RwLock<Arc<Keyed>>,
}

impl One {
    fn new(quota: Option<(Quota, u32)>) -> One {
        let q = quota.map_or(Quota::per_second(NonZeroU32::MIN), |q| q.0);
        One {
            quota,
            limiter: RwLock::new(Arc::new(
                RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>(),
            )),
        }
    }

    fn per_second(per_sec: u32, burst: u32) -> One {
        One::new(NonZeroU32::new(per_sec).map(|r| {
            let b = NonZeroU32::new(burst).unwrap_or(r);
            (Quota::per_second(r).allow_burst(b), b.get())
        }))
    }

    fn per_minute(per_min: u32) -> One {
        One::new(NonZeroU32::new(per_min).map(|r| (Quota::per_minute(r), r.get())))
    }

    fn limiter(&self) -> Arc<Keyed> {
        match self.limiter.read() {
            Ok(l) => Arc::clone(&l),
            Err(e) => Arc::clone(&e.into_inner()),
        }
    }

    fn check(&self, key: &str, scope: &'static str) -> Result<Option<RateInfo>, Limited> {
        let Some((quota, burst)) = self.quota else {
            return Ok(None);
        };
        let lim = self.limiter();
        match lim.check_key(&key.to_owned()) {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity();
                let empty = burst - remaining.min(burst);
                Ok(Some(RateInfo {
                    limit: burst,
                    remaining,
                    reset_secs: ceil_secs(quota.replenish_interval() * empty),
                }))
            }
            Err(not_until) => Err(Limited::after(
                scope,
                burst,
                not_until.wait_time_from(lim.clock().now()),
            )),
        }
    }

    fn sweep(&self, cap: usize) {
        let lim = self.limiter();
        lim.retain_recent();
        lim.shrink_to_fit();
        if lim.len() > cap {
            if let Some((q, _)) = self.quota {
                let fresh =
                    Arc::new(RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>());
                match self.limiter.write() {
                    Ok(mut w) => *w = fresh,
                    Err(e) => *e.into_inner() = fresh,
                }
            }
        }
    }
}

/// Failed authentications per source address. Each failure takes one request from the
/// address's bucket; once it is empty the address is refused *before* its credential is
/// looked at, until the bucket allows one more, so the limit is no guessing oracle.
struct Failures {
    bucket: One,
    /// Addresses refused until the instant given. Bounded by `rate_limit_entries`.
    blocked: RwLock<HashMap<IpAddr, Instant>>,
}

/// The key an address is limited under: IPv4 (also IPv4-mapped IPv6) as it is, IPv6 by
/// its /64, the smallest block one client is usually given, so one host cannot walk its
/// own prefix to start over.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl Failures {
    fn blocked(&self, ip: IpAddr) -> Result<(), Limited> {
        let ip = address_key(ip);
        let until = match self.blocked.read() {
            Ok(m) => m.get(&ip).copied(),
            Err(e) => e.into_inner().get(&ip).copied(),
        };
        let limit = self.bucket.quota.map_or(0, |q| q.1);
        match until {
            Some(t) => match t.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(Limited::after("address", limit, wait)),
                _ => {
                    self.with_map(|m| {
                        if m.get(&ip).is_some_and(|t| *t <= Instant::now()) {
                            m.remove(&ip);
                        }
                    });
                    Ok(())
                }
            },
            None => Ok(()),
        }
    }

    fn failed(&self, ip: IpAddr, cap: usize) -> Result<(), Limited> {
        let ip = address_key(ip);
        let Err(l) = self.bucket.check(&ip.to_string(), "address") else {
            return Ok(());
        };
        let until = Instant::now() + Duration::from_secs(l.retry_after_secs);
        self.with_map(|m| {
            if m.len() >= cap {
                let now = Instant::now();
                m.retain(|_, t| *t > now);
                if m.len() >= cap {
                    // As many blocked addresses as the limiters may track: start over
                    // rather than grow.
                    m.clear();
                }
            }
            m.insert(ip, until);
        });
        Err(l)
    }

    fn with_map(&self, f: impl FnOnce(&mut HashMap<IpAddr, Instant>)) {
        match self.blocked.write() {
            Ok(mut m) => f(&mut m),
            Err(e) => f(&mut e.into_inner()),
        }
    }

    fn sweep(&self, cap: usize) {
        self.bucket.sweep(cap);
        let now = Instant::now();
        self.with_map(|m| {
            m.retain(|_, t| *t > now);
            m.shrink_to_fit();
        });
    }
}

/// Both limiters.
pub struct RateLimits {
    credential: One,
    tenant: One,
    failures: Failures,
    cap: usize,
}

impl RateLimits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        RateLimits {
            credential: One::per_second(cfg.key_requests_per_second, cfg.key_burst),
            tenant: One::per_second(cfg.tenant_requests_per_second, cfg.tenant_burst),
            failures: Failures {
                bucket: One::per_minute(cfg.auth_failures_per_minute),
                blocked: RwLock::new(HashMap::new()),
            },
            cap: cfg.rate_limit_entries,
        }
    }

    /// Takes one request from the credential's and (if any) the tenant's bucket. Returns
    /// the tighter of the two states for the response headers.
    pub fn check(
        &self,
        credential: &str,
        tenant: Option<&str>,
    ) -> Result<Option<RateInfo>, Limited> {
        let a = self.credential.check(credential, "credential")?;
        let b = match tenant {
            Some(t) => self.tenant.check(t, "tenant")?,
            None => None,
        };
        Ok(match (a, b) {
            (Some(x), Some(y)) => Some(if y.remaining < x.remaining { y } else { x }),
            (x, y) => x.or(y),
        })
    }

    /// Refuses an address that has used up its failed authentications, before anything
    /// else is done for its request.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Limited> {
        self.failures.blocked(ip)
    }

    /// Counts one failed authentication from `ip`; refuses once the address is over
    /// `limits.auth_failures_per_minute` (and from then on, see [`Self::check_address`]).
    pub fn authentication_failed(&self, ip: IpAddr) -> Result<(), Limited> {
        self.failures.failed(ip, self.cap)
    }

    /// Drops idle state; run periodically.
    pub fn sweep(&self) {
        self.credential.sweep(self.cap);
        self.tenant.sweep(self.cap);
        self.failures.sweep(self.cap);
    }

    pub const SWEEP_EVERY: Duration = Duration::from_secs(30);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_retry_after() {
        let cfg = LimitsConfig {
            key_requests_per_second: 1,
            key_burst: 3,
            tenant_requests_per_second: 0,
            ..LimitsConfig::default()
        };
        let l = RateLimits::new(&cfg);
        for left in [2, 1, 0] {
            assert_eq!(l.check("k", Some("t")).unwrap().unwrap().remaining, left);
        }
        let e = l.check("k", Some("t")).unwrap_err();
        assert_eq!(e.scope, "credential");
        assert!(e.retry_after_secs >= 1);
        assert_eq!(e.retry_after_secs, e.info.reset_secs);
        // Another credential has its own bucket.
        assert!(l.check("other", Some("t")).is_ok());
        let off = RateLimits::new(&LimitsConfig {
            key_requests_per_second: 0,
            tenant_requests_per_second: 0,
            ..LimitsConfig::default()
        });
        assert_eq!(off.check("k", Some("t")), Ok(None));
    }

    #[test]
    fn failed_authentications_block_the_address_until_the_bucket_allows_one() {
        let l = RateLimits::new(&LimitsConfig {
            auth_failures_per_minute: 2,
            ..LimitsConfig::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check_address(a).is_ok());
        assert!(l.authentication_failed(a).is_ok());
        assert!(l.authentication_failed(a).is_ok());
        let e = l.authentication_failed(a).unwrap_err();
        assert_eq!(e.scope, "address");
        // One failure per 30 s is replenished.
        assert!((1..=30).contains(&e.retry_after_secs), "{e:?}");
        assert_eq!(e.retry_after_secs, e.info.reset_secs);
        let g = l.check_address(a).unwrap_err();
        assert!(g.retry_after_secs <= e.retry_after_secs);
        assert!(l.check_address(b).is_ok());
        // IPv6 counts per /64; IPv4-mapped addresses count as IPv4.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(l.authentication_failed(v6("2001:db8:1:2::1")).is_ok());
        assert!(l.authentication_failed(v6("2001:db8:1:2:ffff::9")).is_ok());
        assert!(l.authentication_failed(v6("2001:db8:1:2::77")).is_err());
        assert!(l.check_address(v6("2001:db8:1:2::5")).is_err());
        assert!(l.check_address(v6("2001:db8:1:3::1")).is_ok());
        assert!(l.check_address(v6("::ffff:192.0.2.1")).is_err());
        l.sweep();
        assert!(l.check_address(a).is_err(), "a sweep keeps live blocks");
        let off = RateLimits::new(&LimitsConfig {
            auth_failures_per_minute: 0,
            ..LimitsConfig::default()
        });
        for _ in 0..100 {
            assert!(off.authentication_failed(a).is_ok());
        }
        assert!(off.check_address(a).is_ok());
    }
}
