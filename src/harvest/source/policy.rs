//! Per-source politeness overrides and history retention.
//!
//! `None` means "use the node's default" (from the harvest config, a later stage), so a
//! source only states what differs. The ranges checked here bound what a tenant can ask of
//! the node and of the sites it harvests.

use serde::{Deserialize, Serialize};

use super::error::Checker;
use super::values::HumanDuration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Politeness {
    /// Obey robots.txt. Turning it off is for sites the tenant owns.
    pub obey_robots: bool,
    /// Most requests in flight to one host, from any source, when this source sends one
    /// (1–16; never above the node's `harvest.per_host_concurrency`).
    pub per_host_concurrency: Option<u32>,
    /// Least time between two requests to one host (at most 1h; `250ms` and other
    /// sub-second values are kept to the millisecond).
    pub min_delay: Option<HumanDuration>,
    /// Request budget per minute across the whole source (1–6000).
    pub requests_per_minute: Option<u32>,
    /// Request budget per day across the whole source (1–10000000).
    pub requests_per_day: Option<u32>,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            obey_robots: true,
            per_host_concurrency: None,
            min_delay: None,
            requests_per_minute: None,
            requests_per_day: None,
        }
    }
}

impl Politeness {
    pub(crate) fn check(&self, c: &mut Checker) {
        c.range("per_host_concurrency", self.per_host_concurrency, 1, 16);
        c.duration_range(
            "min_delay",
            self.min_delay,
            std::time::Duration::ZERO,
            Some(std::time::Duration::from_secs(3600)),
        );
        c.range("requests_per_minute", self.requests_per_minute, 1, 6000);
        c.range("requests_per_day", self.requests_per_day, 1, 10_000_000);
        if let (Some(m), Some(d)) = (self.requests_per_minute, self.requests_per_day) {
            c.check(
                u64::from(m) <= u64::from(d),
                "requests_per_minute",
                "must not exceed requests_per_day",
            );
        }
    }
}

/// How much history of each record is kept. Both limits apply when both are set; the
/// current version is always kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct History {
    /// Most versions kept per record, including the current one (1–10000).
    pub keep_versions: Option<u32>,
    /// Versions older than this are dropped (1h to 10y).
    pub keep_for: Option<HumanDuration>,
}

impl History {
    pub(crate) fn check(&self, c: &mut Checker) {
        c.range("keep_versions", self.keep_versions, 1, 10_000);
        c.range(
            "keep_for",
            self.keep_for.map(|d| d.secs()),
            3600,
            10 * 366 * 86_400,
        );
    }
}
