//! The anomaly guard: whether a complete run's counts stray so far from the source's
//! recent runs that its removals must wait for an operator.
//!
//! The baseline is the source's last `guard.window` complete runs that succeeded or were
//! accepted (a held run never joins it until accepted, so a site that stays broken stays
//! flagged). For each count it keeps the median and the median absolute deviation (MAD),
//! scaled by 1.4826 so it estimates a standard deviation for normal data. Median and MAD
//! rather than mean and standard deviation because the baseline is tiny (3 to 50 runs) and
//! is itself sometimes polluted — one earlier bad run moves a mean and inflates a standard
//! deviation enough to hide the next one, while the median and MAD ignore up to half the
//! window being odd (breakdown point 50%).
//!
//! Two rules, each needing both a relative bound (a share of the median of records seen,
//! so ordinary churn is never flagged on a steady source whose MAD is 0) and a deviation
//! bound (`max_deviations` scaled MADs, so a source whose runs always churn that much is
//! not flagged either):
//! - **removals**, for runs that mark them: the records the run would mark removed;
//! - **drop**, for full runs that do not mark removals (feeds): records seen falling away.
//!   Where removals are marked the removal rule already covers a drop — every record not
//!   seen would be removed — and judging the drop there too would keep flagging the runs
//!   after an accepted shrink until the window forgets the larger runs.

use serde_json::Value;

use super::counts::bump;
use super::run::Run;
use crate::harvest::source::Guard;
use crate::telemetry::metrics as m;

/// Judges the finished, complete, full `run` (`marks`: its source marks removals); when it
/// is held, counts what it holds back and returns the run's message. A baseline that
/// cannot be read judges nothing (logged): the store is failing, and marking removals
/// would fail with it.
pub(super) async fn check(run: &Run, marks: bool) -> Option<String> {
    let g = &run.def.common.guard;
    if !g.enabled {
        return None;
    }
    let baseline = match run.db.guard_baseline(&run.source, g.window).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(source = %run.source, error = %e, "cannot read the run baseline; the run is not judged");
            return None;
        }
    };
    let removals = if marks {
        match run.db.would_remove(&run.source, run.started_ms).await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(source = %run.source, error = %e, "cannot count the run's removals; the run is not judged");
                return None;
            }
        }
    } else {
        None
    };
    let snap = run.counters.snapshot();
    let seen_now = snap.records_new + snap.records_changed + snap.records_unchanged;
    let v = judge(g, &baseline, seen_now, removals)?;
    bump(&run.counters.removals_held, removals.unwrap_or(0));
    metrics::counter!(m::HARVEST_ANOMALOUS_RUNS_TOTAL, "rule" => v.rule).increment(1);
    tracing::warn!(tenant = %run.tenant, source = %run.source, run_id = run.run_id, rule = v.rule,
        "run held as anomalous: {}", v.why);
    let accept = format!(
        "POST /v1/tenants/{}/sources/{}/runs/{}/accept",
        run.tenant, run.source, run.run_id
    );
    Some(match removals {
        Some(_) => format!("{ANOMALOUS}: {}; nothing was marked removed: check the site and the definition, then accept the run ({accept}) to apply its removals", v.why),
        None => format!("{ANOMALOUS}: {}; check the site and the definition", v.why),
    })
}

/// How a held run's message starts.
pub const ANOMALOUS: &str = "anomalous";

/// Median and scaled MAD of one count over the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    pub median: f64,
    pub mad: f64,
}

/// Median of a non-empty slice (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The normal-consistency constant of the MAD (1 / Φ⁻¹(3/4)).
const MAD_SCALE: f64 = 1.4826;

pub(super) fn spread(values: &[f64]) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f64> = values.iter().map(|x| (x - m).abs()).collect();
    Some(Spread {
        median: m,
        mad: MAD_SCALE * median(&mut dev),
    })
}

fn count(c: &Value, name: &str) -> f64 {
    c.get(name).and_then(Value::as_u64).unwrap_or(0) as f64
}

/// Records a run saw (new, changed or unchanged).
pub(super) fn seen(c: &Value) -> f64 {
    count(c, "records_new") + count(c, "records_changed") + count(c, "records_unchanged")
}

/// Why a run is held, for its message and the metric's `rule` label.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Verdict {
    pub rule: &'static str,
    pub why: String,
}

/// Judges a run that saw `seen` records and would mark `removals` removed (`None`: the run
/// marks none) against the counts of the baseline runs.
pub(super) fn judge(
    g: &Guard,
    baseline: &[Value],
    seen_now: u64,
    removals: Option<u64>,
) -> Option<Verdict> {
    if !g.enabled || baseline.len() < g.min_runs as usize {
        return None;
    }
    let seen_b = spread(&baseline.iter().map(seen).collect::<Vec<_>>())?;
    if seen_b.median < g.min_records as f64 {
        return None;
    }
    let runs = baseline.len();
    match removals {
        Some(n) => {
            let rem_b = spread(
                &baseline
                    .iter()
                    .map(|c| count(c, "records_removed"))
                    .collect::<Vec<_>>(),
            )?;
            let n_f = n as f64;
            (n_f > g.max_removed_ratio * seen_b.median
                && n_f > rem_b.median + g.max_deviations * rem_b.mad)
                .then(|| Verdict {
                    rule: "removed",
                    why: format!(
                        "the run would mark {n} records removed, more than {:.0}% of the {} the last {runs} runs saw (median; they removed {} at the median)",
                        g.max_removed_ratio * 100.0,
                        seen_b.median,
                        rem_b.median
                    ),
                })
        }
        None => {
            let s = seen_now as f64;
            (s < (1.0 - g.max_drop_ratio) * seen_b.median
                && seen_b.median - s > g.max_deviations * seen_b.mad)
                .then(|| Verdict {
                    rule: "dropped",
                    why: format!(
                        "the run saw {seen_now} records, less than {:.0}% of the {} the last {runs} runs saw (median)",
                        (1.0 - g.max_drop_ratio) * 100.0,
                        seen_b.median
                    ),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(seen: u64, removed: u64) -> Value {
        json!({"records_unchanged": seen, "records_removed": removed})
    }

    #[test]
    fn median_and_mad_resist_one_odd_run() {
        let s = spread(&[100.0, 101.0, 99.0, 100.0, 0.0]).unwrap();
        assert_eq!(s.median, 100.0);
        assert!((s.mad - MAD_SCALE).abs() < 1e-9, "{s:?}");
        assert_eq!(spread(&[1.0, 2.0]).unwrap().median, 1.5);
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn a_run_finding_nothing_is_held_and_ordinary_churn_is_not() {
        let g = Guard::default();
        let base = vec![run(120, 0), run(120, 3), run(117, 0)];
        let v = judge(&g, &base, 0, Some(120)).expect("everything removed");
        assert_eq!(v.rule, "removed");
        assert!(v.why.contains("120 records removed"), "{}", v.why);
        assert_eq!(judge(&g, &base, 117, Some(3)), None, "3 of 120 is churn");
        // Too few runs, disabled, or a tiny source: not judged.
        assert_eq!(judge(&g, &base[..2], 0, Some(120)), None);
        let off = Guard {
            enabled: false,
            ..Guard::default()
        };
        assert_eq!(judge(&off, &base, 0, Some(120)), None);
        let tiny = vec![run(5, 0); 3];
        assert_eq!(judge(&g, &tiny, 0, Some(5)), None);
    }

    #[test]
    fn a_source_that_always_churns_is_judged_against_its_own_spread() {
        let g = Guard::default();
        // Removes about 30% every run: above the ratio, within its own deviations.
        let base = vec![run(100, 30), run(100, 20), run(100, 40), run(100, 30)];
        assert_eq!(judge(&g, &base, 100, Some(45)), None);
        assert!(judge(&g, &base, 0, Some(100)).is_some());
    }

    #[test]
    fn a_feed_that_empties_is_held_by_the_drop_rule() {
        let g = Guard::default();
        let base = vec![run(50, 0), run(48, 0), run(52, 0)];
        assert_eq!(judge(&g, &base, 0, None).map(|v| v.rule), Some("dropped"));
        assert_eq!(judge(&g, &base, 40, None), None);
    }
}
