//! The anomaly guard's per-source bounds (`guard = { ... }`): how far a run's counts may
//! stray from the source's recent complete runs before the run is held as `anomalous`.
//!
//! On by default: a site that changes its layout makes the extractor find nothing, and
//! without the guard the next complete run marks every record removed. The defaults are
//! chosen so an ordinary source never needs the table: 3 earlier runs before there is a
//! baseline (fewer is noise, not a pattern), a window of the last 5 (recent enough to follow
//! a source that grows), a run removing more than 20% of what the baseline sees, or a run
//! that does not mark removals seeing less than half of it, and in both cases at least 5
//! robust deviations off the baseline (so a source whose runs always churn that much is
//! not flagged). Sources whose runs see fewer than 10 records are not judged: a few
//! records more or less there is normal, and the ratios would flag it.
//! The arithmetic lives in the harvest runtime (`runtime::anomaly`).

use serde::{Deserialize, Serialize};

use super::error::Checker;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Guard {
    /// Judge runs at all.
    pub enabled: bool,
    /// Complete runs needed before the guard judges (2–50, at most `window`).
    pub min_runs: u32,
    /// The baseline: the source's last this many complete, accepted runs (2–50).
    pub window: u32,
    /// A run is held when it would mark more than this share of the baseline's records
    /// seen removed (0 < x <= 1).
    pub max_removed_ratio: f64,
    /// A run that marks no removals is held when it sees less than (1 - this) of the
    /// baseline's records seen (0 < x <= 1).
    pub max_drop_ratio: f64,
    /// ... and, for either rule, when the count is more than this many scaled median
    /// absolute deviations off the baseline's median (0–1000).
    pub max_deviations: f64,
    /// Baselines whose median of records seen is below this are not judged (0–10000000).
    pub min_records: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            enabled: true,
            min_runs: 3,
            window: 5,
            max_removed_ratio: 0.2,
            max_drop_ratio: 0.5,
            max_deviations: 5.0,
            min_records: 10,
        }
    }
}

impl Guard {
    pub(crate) fn check(&self, c: &mut Checker) {
        c.range("window", Some(self.window), 2, 50);
        c.range("min_runs", Some(self.min_runs), 2, 50);
        c.check(
            self.min_runs <= self.window,
            "min_runs",
            format!("must not exceed window ({})", self.window),
        );
        for (field, v) in [
            ("max_removed_ratio", self.max_removed_ratio),
            ("max_drop_ratio", self.max_drop_ratio),
        ] {
            c.check(
                v.is_finite() && v > 0.0 && v <= 1.0,
                field,
                format!("{v} is out of range; use a share above 0 and at most 1 (0.2 is 20%)"),
            );
        }
        c.check(
            self.max_deviations.is_finite() && (0.0..=1000.0).contains(&self.max_deviations),
            "max_deviations",
            format!("{} is out of range; use 0 to 1000", self.max_deviations),
        );
        c.range("min_records", Some(self.min_records), 0, 10_000_000);
    }
}
