//! Request rate limits per credential and per tenant (GCRA token buckets from `governor`).
//!
//! Each limiter is keyed (credential id or tenant id) and its state is bounded: a
//! background sweep drops entries indistinguishable from fresh ones, and if more than
//! `limits.rate_limit_entries` remain (which needs that many live credentials) the limiter
//! starts over empty rather than grow.

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

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
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// `credential` or `tenant`.
    pub scope: &'static str,
    pub retry_after_secs: u64,
    pub info: RateInfo,
}

struct One {
    quota: Option<(Quota, u32, u32)>,
    limiter: RwLock<Arc<Keyed>>,
}

impl One {
    fn new(per_sec: u32, burst: u32) -> One {
        let quota = NonZeroU32::new(per_sec).map(|r| {
            let b = NonZeroU32::new(burst).unwrap_or(r);
            (Quota::per_second(r).allow_burst(b), per_sec, b.get())
        });
        let q = quota.map_or(Quota::per_second(NonZeroU32::MIN), |q| q.0);
        One {
            quota,
            limiter: RwLock::new(Arc::new(
                RateLimiter::keyed(q).with_middleware::<StateInformationMiddleware>(),
            )),
        }
    }

    fn check(&self, key: &str, scope: &'static str) -> Result<Option<RateInfo>, Limited> {
        let Some((_, per_sec, burst)) = self.quota else {
            return Ok(None);
        };
        let lim = match self.limiter.read() {
            Ok(l) => Arc::clone(&l),
            Err(e) => Arc::clone(&e.into_inner()),
        };
        let reset =
            |remaining: u32| u64::from(burst - remaining.min(burst)).div_ceil(u64::from(per_sec));
        match lim.check_key(&key.to_owned()) {
            Ok(snap) => {
                let remaining = snap.remaining_burst_capacity();
                Ok(Some(RateInfo {
                    limit: burst,
                    remaining,
                    reset_secs: reset(remaining),
                }))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(lim.clock().now());
                Err(Limited {
                    scope,
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                    info: RateInfo {
                        limit: burst,
                        remaining: 0,
                        reset_secs: reset(0),
                    },
                })
            }
        }
    }

    fn sweep(&self, cap: usize) {
        let lim = match self.limiter.read() {
            Ok(l) => Arc::clone(&l),
            Err(e) => Arc::clone(&e.into_inner()),
        };
        lim.retain_recent();
        lim.shrink_to_fit();
        if lim.len() > cap {
            if let Some((q, _, _)) = self.quota {
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

/// Both limiters.
pub struct RateLimits {
    credential: One,
    tenant: One,
    cap: usize,
}

impl RateLimits {
    pub fn new(cfg: &LimitsConfig) -> Self {
        RateLimits {
            credential: One::new(cfg.key_requests_per_second, cfg.key_burst),
            tenant: One::new(cfg.tenant_requests_per_second, cfg.tenant_burst),
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

    /// Drops idle state; run periodically.
    pub fn sweep(&self) {
        self.credential.sweep(self.cap);
        self.tenant.sweep(self.cap);
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
        // Another credential has its own bucket.
        assert!(l.check("other", Some("t")).is_ok());
        let off = RateLimits::new(&LimitsConfig {
            key_requests_per_second: 0,
            tenant_requests_per_second: 0,
            ..LimitsConfig::default()
        });
        assert_eq!(off.check("k", Some("t")), Ok(None));
    }
}
