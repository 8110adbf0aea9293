//! What a run counts, shared between its stages (atomics) and stored as JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

macro_rules! counts {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Live counters of a run; cheap to bump from any stage.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A snapshot of [`Counters`], as stored with the run and shown by the API.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct RunCounts {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> RunCounts {
                RunCounts { $($name: self.$name.load(Ordering::Relaxed),)* }
            }

            /// Counters continuing from a stored snapshot (a resumed run).
            pub fn from_snapshot(c: &RunCounts) -> Counters {
                Counters { $($name: AtomicU64::new(c.$name),)* }
            }
        }
    };
}

counts! {
    requests: "HTTP requests sent (including retries and redirects' first hops).",
    fetched: "Responses with a body (2xx).",
    not_modified: "304 Not Modified answers to conditional requests.",
    unchanged_bodies: "2xx bodies identical to the last fetch (treated like 304).",
    errors: "URLs that ended in an error.",
    robots_blocked: "URLs not fetched because robots.txt disallows them.",
    retries: "Requests repeated after a transient failure.",
    bytes: "Body bytes received (after decompression).",
    pages: "URLs finished (stored, failed or skipped).",
    records_new: "Records seen for the first time.",
    records_changed: "Records whose content changed (a new version).",
    records_unchanged: "Records seen again unchanged.",
    records_removed: "Records missing from a complete run, marked removed.",
    removals_held: "Records a run held as anomalous would have marked removed (applied when it is accepted).",
    links_dropped: "Links not followed because the source's page cap was reached.",
    warnings: "Per-record extraction warnings.",
    session_renewals: "Times the site's session was renewed after a page showed it lost.",
}

/// Adds `n` to a counter.
pub fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// One failed URL as kept with the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub url: String,
    /// Short class: `timeout`, `status`, `too_large`, `redirect`, `extract`,
    /// `required_missing`, `session_lost`, `encode`, ...
    pub kind: String,
    pub reason: String,
}

/// The first N errors of a run; later ones are only counted.
#[derive(Debug, Default)]
pub struct ErrorLog {
    max: usize,
    kept: Mutex<Vec<RunError>>,
}

impl ErrorLog {
    pub fn new(max: usize, initial: Vec<RunError>) -> ErrorLog {
        ErrorLog {
            max,
            kept: Mutex::new(initial),
        }
    }

    pub fn push(&self, e: RunError) {
        let mut k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if k.len() < self.max {
            k.push(e);
        }
    }

    pub fn snapshot(&self) -> Vec<RunError> {
        self.kept.lock().map(|k| k.clone()).unwrap_or_default()
    }
}
