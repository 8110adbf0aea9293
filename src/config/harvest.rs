//! The `[harvest]` section: fetching limits, node-wide politeness defaults, pipeline sizes.
//!
//! Per-source politeness in a source definition overrides the defaults here; the caps here
//! (body size, decompressed size, redirects, timeouts) bound what any source can make the
//! node do.

use serde::{Deserialize, Serialize};

use super::{checker, Invalid};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HarvestConfig {
    /// User-Agent sent with every request and matched against robots.txt groups.
    pub user_agent: String,
    /// Allow fetching private, loopback, link-local and other non-public addresses (see
    /// `harvest::runtime::guard`). Off by default so a tenant's source cannot reach the
    /// node's internal network; tests and demos on 127.0.0.1 turn it on explicitly.
    pub allow_private_targets: bool,
    /// Time to establish a TCP (+TLS) connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Total time for one request, from sending to the last body byte, in milliseconds.
    pub request_timeout_ms: u64,
    /// A body arriving slower than this many bytes per second (after the first 5 seconds)
    /// is abandoned; 0 turns the trickle guard off (the total timeout still applies).
    pub min_bytes_per_sec: u64,
    /// Largest response body after decompression, in bytes (bodies are counted as they
    /// stream, so a compression bomb stops here).
    pub max_body_bytes: u64,
    /// Most redirects followed for one URL; a redirect back to a URL already visited is a
    /// loop and stops at once.
    pub max_redirects: u32,
    /// Attempts per URL for timeouts, connection errors, 5xx, 408 and 429 (1 = no retry).
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    pub retry_base_ms: u64,
    /// Longest retry delay (and longest Retry-After honoured), in milliseconds.
    pub retry_max_ms: u64,
    /// Requests in flight to one host (node-wide, all tenants), unless a source asks for fewer.
    pub per_host_concurrency: u32,
    /// Least time between two requests to one host, in milliseconds, unless a source or
    /// robots.txt Crawl-delay asks for more.
    pub min_delay_ms: u64,
    /// How long a fetched robots.txt is trusted, in seconds.
    pub robots_ttl_secs: u64,
    /// Hosts whose politeness state (and robots.txt) is kept; least recently used go first.
    pub max_hosts: usize,
    /// Requests in flight per run.
    pub fetch_concurrency: usize,
    /// Frontier URLs claimed from the database at once.
    pub claim_batch: usize,
    /// Capacity of the channels between fetch, extract and store stages.
    pub channel_capacity: usize,
    /// Runs at once on this node (scheduled and triggered).
    pub max_concurrent_runs: usize,
    /// Errors kept with each run (URL and reason); later ones are only counted.
    pub max_run_errors: usize,
    /// How often `serve` looks for due schedules, in seconds.
    pub scheduler_tick_secs: u64,
    /// Records of a source needed before a zstd dictionary is trained for it (0 = never).
    pub dictionary_min_records: u64,
}

impl Default for HarvestConfig {
    fn default() -> Self {
        HarvestConfig {
            user_agent: concat!("GleanerBot/", env!("CARGO_PKG_VERSION")).into(),
            allow_private_targets: false,
            connect_timeout_ms: 10_000,
            request_timeout_ms: 60_000,
            min_bytes_per_sec: 1024,
            max_body_bytes: 32 * 1024 * 1024,
            max_redirects: 10,
            max_attempts: 4,
            retry_base_ms: 500,
            retry_max_ms: 60_000,
            per_host_concurrency: 4,
            min_delay_ms: 0,
            robots_ttl_secs: 3600,
            max_hosts: 10_000,
            fetch_concurrency: 32,
            claim_batch: 256,
            channel_capacity: 64,
            max_concurrent_runs: 8,
            max_run_errors: 50,
            scheduler_tick_secs: 5,
            dictionary_min_records: 2000,
        }
    }
}

impl HarvestConfig {
    pub(super) fn validate(&self, bad: &mut Vec<Invalid>) {
        let mut check = checker(bad);
        check(
            !self.user_agent.trim().is_empty()
                && self.user_agent.len() <= 256
                && self
                    .user_agent
                    .chars()
                    .all(|c| c.is_ascii() && !c.is_ascii_control()),
            "harvest.user_agent",
            "printable ASCII, 1 to 256 characters",
        );
        check(
            (100..=600_000).contains(&self.connect_timeout_ms),
            "harvest.connect_timeout_ms",
            "milliseconds from 100 to 600000",
        );
        check(
            (100..=3_600_000).contains(&self.request_timeout_ms),
            "harvest.request_timeout_ms",
            "milliseconds from 100 to 3600000",
        );
        check(
            (1024..=1 << 32).contains(&self.max_body_bytes),
            "harvest.max_body_bytes",
            "bytes from 1024 to 4294967296",
        );
        check(self.max_redirects <= 50, "harvest.max_redirects", "0 to 50");
        check(
            (1..=20).contains(&self.max_attempts),
            "harvest.max_attempts",
            "1 to 20",
        );
        check(
            self.retry_base_ms >= 1 && self.retry_base_ms <= self.retry_max_ms,
            "harvest.retry_base_ms",
            "at least 1 and at most harvest.retry_max_ms",
        );
        check(
            self.retry_max_ms <= 3_600_000,
            "harvest.retry_max_ms",
            "milliseconds up to 3600000",
        );
        check(
            (1..=256).contains(&self.per_host_concurrency),
            "harvest.per_host_concurrency",
            "1 to 256",
        );
        check(
            self.min_delay_ms <= 3_600_000,
            "harvest.min_delay_ms",
            "milliseconds up to 3600000",
        );
        check(
            (60..=7 * 86_400).contains(&self.robots_ttl_secs),
            "harvest.robots_ttl_secs",
            "seconds from 60 to 604800",
        );
        check(
            (16..=1_000_000).contains(&self.max_hosts),
            "harvest.max_hosts",
            "16 to 1000000",
        );
        check(
            (1..=1024).contains(&self.fetch_concurrency),
            "harvest.fetch_concurrency",
            "1 to 1024",
        );
        check(
            (1..=100_000).contains(&self.claim_batch),
            "harvest.claim_batch",
            "1 to 100000",
        );
        check(
            (1..=100_000).contains(&self.channel_capacity),
            "harvest.channel_capacity",
            "1 to 100000",
        );
        check(
            (1..=1024).contains(&self.max_concurrent_runs),
            "harvest.max_concurrent_runs",
            "1 to 1024",
        );
        check(
            (1..=10_000).contains(&self.max_run_errors),
            "harvest.max_run_errors",
            "1 to 10000",
        );
        check(
            (1..=3600).contains(&self.scheduler_tick_secs),
            "harvest.scheduler_tick_secs",
            "seconds from 1 to 3600",
        );
    }
}
