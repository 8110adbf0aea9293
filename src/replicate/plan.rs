//! Restore plan selection: which LTX files, in which order, rebuild the database at the
//! latest state, a TXID or a point in time. Mirrors Litestream 0.5's `CalcRestorePlan`
//! (format doc §5.2) so both tools pick the same files.

use std::time::SystemTime;

use crate::replicate::error::{Error, Result};
use crate::replicate::ltx::SNAPSHOT_LEVEL;

/// One LTX file in a replica listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LtxFileInfo {
    pub level: u8,
    pub min_txid: u64,
    pub max_txid: u64,
    /// Creation time used to select files for a point-in-time restore (file mtime, or
    /// the `litestream-timestamp` metadata on S3).
    pub created_at: SystemTime,
    /// Creation time used for the timestamp bounds check (file mtime; LastModified on S3).
    pub listed_at: SystemTime,
}

impl LtxFileInfo {
    /// A file whose backend reports one creation time for both purposes.
    pub fn new(level: u8, min_txid: u64, max_txid: u64, created_at: SystemTime) -> Self {
        LtxFileInfo {
            level,
            min_txid,
            max_txid,
            created_at,
            listed_at: created_at,
        }
    }
}

/// What state to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTarget {
    /// The newest state; gaps in the TXID sequence are an error.
    Latest,
    /// The state after this TXID (inclusive upper bound). `Txid(0)` means latest, as in
    /// Litestream.
    Txid(u64),
    /// The last state reachable with files created strictly before this time.
    Timestamp(SystemTime),
}

/// Chooses the files to apply, in order. The first always has min TXID 1.
pub fn restore_plan(files: &[LtxFileInfo], target: RestoreTarget) -> Result<Vec<LtxFileInfo>> {
    let (txid, ts) = match target {
        RestoreTarget::Latest | RestoreTarget::Txid(0) => (None, None),
        RestoreTarget::Txid(t) => (Some(t), None),
        RestoreTarget::Timestamp(t) => {
            check_timestamp_bounds(files, t)?;
            (None, Some(t))
        }
    };
    let eligible = |f: &LtxFileInfo| {
        txid.is_none_or(|t| f.max_txid <= t) && ts.is_none_or(|t| f.created_at < t)
    };
    let reached = |cur: u64| txid.is_some_and(|t| cur >= t);

    let mut plan = Vec::new();
    let snapshot = files
        .iter()
        .filter(|f| f.level == SNAPSHOT_LEVEL && eligible(f))
        .max_by_key(|f| (f.min_txid, f.max_txid));
    let mut cur = 0u64;
    if let Some(s) = snapshot {
        plan.push(*s);
        cur = s.max_txid;
        if reached(cur) {
            return Ok(plan);
        }
    }

    while !reached(cur) {
        let best = files
            .iter()
            .filter(|f| f.level < SNAPSHOT_LEVEL && eligible(f))
            .filter(|f| f.min_txid <= cur.saturating_add(1) && f.max_txid > cur)
            .reduce(|best, f| if better(best, f) { f } else { best });
        match best {
            Some(f) => {
                plan.push(*f);
                cur = f.max_txid;
            }
            None => break,
        }
    }

    if !plan.is_empty() && target_is_latest(target) {
        // Litestream reports the first level, from 8 down to 0, whose next file in name
        // order starts past the chain.
        for level in (0..SNAPSHOT_LEVEL).rev() {
            let next = files
                .iter()
                .filter(|f| f.level == level && f.min_txid > cur.saturating_add(1))
                .map(|f| f.min_txid)
                .min();
            if let Some(next) = next {
                return Err(Error::NonContiguous { have: cur, next });
            }
        }
    }
    if plan.is_empty() || txid.is_some_and(|t| cur < t) {
        return Err(Error::TxnNotAvailable);
    }
    Ok(plan)
}

fn target_is_latest(t: RestoreTarget) -> bool {
    matches!(t, RestoreTarget::Latest | RestoreTarget::Txid(0))
}

/// Litestream's tie-break: larger max, then smaller min, then higher level, then older.
fn better(cur: &LtxFileInfo, next: &LtxFileInfo) -> bool {
    if next.max_txid != cur.max_txid {
        return next.max_txid > cur.max_txid;
    }
    if next.min_txid != cur.min_txid {
        return next.min_txid < cur.min_txid;
    }
    if next.level != cur.level {
        return next.level > cur.level;
    }
    next.created_at < cur.created_at
}

/// Earliest and latest listing time over all files, if any.
pub fn time_bounds(files: &[LtxFileInfo]) -> Option<(SystemTime, SystemTime)> {
    let min = files.iter().map(|f| f.listed_at).min()?;
    let max = files.iter().map(|f| f.listed_at).max()?;
    Some((min, max))
}

/// A point-in-time restore must name a time within the replica's listing bounds
/// (inclusive); later times are refused, not clamped.
pub fn check_timestamp_bounds(files: &[LtxFileInfo], t: SystemTime) -> Result<()> {
    match time_bounds(files) {
        Some((lo, hi)) if lo <= t && t <= hi => Ok(()),
        _ => Err(Error::TimestampNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    /// (level, min, max, created second)
    fn files(spec: &[(u8, u64, u64, u64)]) -> Vec<LtxFileInfo> {
        spec.iter()
            .map(|&(l, a, b, t)| LtxFileInfo::new(l, a, b, at(t)))
            .collect()
    }

    fn ranges(plan: &[LtxFileInfo]) -> Vec<(u8, u64, u64)> {
        plan.iter()
            .map(|f| (f.level, f.min_txid, f.max_txid))
            .collect()
    }

    fn l0_chain(n: u64) -> Vec<(u8, u64, u64, u64)> {
        (1..=n).map(|i| (0, i, i, i * 10)).collect()
    }

    #[test]
    fn latest_over_l0_only() {
        let f = files(&l0_chain(4));
        let p = restore_plan(&f, RestoreTarget::Latest).unwrap();
        assert_eq!(ranges(&p), vec![(0, 1, 1), (0, 2, 2), (0, 3, 3), (0, 4, 4)]);
        assert_eq!(restore_plan(&f, RestoreTarget::Txid(0)).unwrap(), p);
    }

    #[test]
    fn snapshot_then_compactions_then_l0() {
        let f = files(&[
            (9, 1, 5, 50),
            (9, 1, 3, 30),
            (1, 1, 4, 40),
            (1, 5, 8, 80),
            (2, 1, 8, 80),
            (0, 6, 6, 60),
            (0, 7, 7, 70),
            (0, 8, 8, 80),
            (0, 9, 9, 90),
            (0, 10, 10, 100),
        ]);
        let p = restore_plan(&f, RestoreTarget::Latest).unwrap();
        // L9 1-5, then the largest max reachable, 8: L2 1-8 beats L1 5-8 on the smaller
        // min; then L0 9, 10.
        assert_eq!(
            ranges(&p),
            vec![(9, 1, 5), (2, 1, 8), (0, 9, 9), (0, 10, 10)]
        );
        let p = restore_plan(&f, RestoreTarget::Txid(7)).unwrap();
        assert_eq!(ranges(&p), vec![(9, 1, 5), (0, 6, 6), (0, 7, 7)]);
        let p = restore_plan(&f, RestoreTarget::Txid(5)).unwrap();
        assert_eq!(ranges(&p), vec![(9, 1, 5)]);
        let p = restore_plan(&f, RestoreTarget::Txid(4)).unwrap();
        assert_eq!(ranges(&p), vec![(9, 1, 3), (1, 1, 4)]);
    }

    #[test]
    fn tie_break_order() {
        // Same max: smaller min wins.
        let f = files(&[(0, 1, 1, 1), (0, 2, 4, 5), (1, 1, 4, 5)]);
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Latest).unwrap()),
            vec![(1, 1, 4)]
        );
        // Same max and min: higher level wins.
        let f = files(&[(0, 1, 1, 1), (1, 2, 4, 5), (2, 2, 4, 5)]);
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Latest).unwrap()),
            vec![(0, 1, 1), (2, 2, 4)]
        );
        // Same range and level: older wins.
        let mut f = files(&[(0, 1, 1, 1), (1, 2, 4, 9), (1, 2, 4, 5)]);
        let p = restore_plan(&f, RestoreTarget::Latest).unwrap();
        assert_eq!(p[1].created_at, at(5));
        f.swap(1, 2);
        assert_eq!(
            restore_plan(&f, RestoreTarget::Latest).unwrap()[1].created_at,
            at(5)
        );
    }

    #[test]
    fn overlapping_files_extend_the_chain() {
        let f = files(&[(0, 1, 2, 1), (1, 2, 5, 2), (0, 4, 7, 3)]);
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Latest).unwrap()),
            vec![(0, 1, 2), (1, 2, 5), (0, 4, 7)]
        );
    }

    #[test]
    fn gap_fails_latest_but_not_targets() {
        let f = files(&[(0, 1, 1, 10), (0, 2, 2, 20), (0, 3, 3, 30), (0, 5, 5, 50)]);
        let e = restore_plan(&f, RestoreTarget::Latest).unwrap_err();
        assert!(matches!(e, Error::NonContiguous { have: 3, next: 5 }));
        assert_eq!(
            e.to_string(),
            "non-contiguous ltx files: have up to 0000000000000003 but next file starts at 0000000000000005"
        );
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Txid(3)).unwrap()).len(),
            3
        );
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Txid(5)),
            Err(Error::TxnNotAvailable)
        ));
        let p = restore_plan(&f, RestoreTarget::Timestamp(at(50))).unwrap();
        assert_eq!(ranges(&p).last(), Some(&(0, 3, 3)));
        // The higher level is reported first.
        let f = files(&[(0, 1, 1, 10), (0, 3, 3, 30), (1, 7, 9, 90)]);
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Latest),
            Err(Error::NonContiguous { have: 1, next: 7 })
        ));
    }

    #[test]
    fn nothing_to_start_from() {
        assert!(matches!(
            restore_plan(&[], RestoreTarget::Latest),
            Err(Error::TxnNotAvailable)
        ));
        let f = files(&[(0, 2, 2, 1), (0, 3, 3, 2)]);
        // No file with min 1: no plan, and no gap error either (it needs a plan).
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Latest),
            Err(Error::TxnNotAvailable)
        ));
        assert!(matches!(
            restore_plan(&files(&l0_chain(3)), RestoreTarget::Txid(4)),
            Err(Error::TxnNotAvailable)
        ));
    }

    #[test]
    fn txid_inside_a_compacted_file_is_not_available() {
        let f = files(&[(9, 1, 1, 1), (1, 2, 4, 4), (0, 5, 5, 5)]);
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Txid(3)),
            Err(Error::TxnNotAvailable)
        ));
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Txid(4)).unwrap()),
            vec![(9, 1, 1), (1, 2, 4)]
        );
    }

    #[test]
    fn timestamps_are_strictly_before_and_bounded() {
        let f = files(&l0_chain(4)); // created at 10, 20, 30, 40
        assert_eq!(
            restore_plan(&f, RestoreTarget::Timestamp(at(30)))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            restore_plan(&f, RestoreTarget::Timestamp(at(31)))
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            restore_plan(&f, RestoreTarget::Timestamp(at(40)))
                .unwrap()
                .len(),
            3
        );
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Timestamp(at(41))),
            Err(Error::TimestampNotFound)
        ));
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Timestamp(at(9))),
            Err(Error::TimestampNotFound)
        ));
        // In bounds but no file strictly before it.
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Timestamp(at(10))),
            Err(Error::TxnNotAvailable)
        ));
        assert_eq!(time_bounds(&f), Some((at(10), at(40))));
    }

    #[test]
    fn s3_bounds_use_listing_time() {
        // Back-filled upload: metadata says 10..40, LastModified says 500..530.
        let mut f = files(&l0_chain(4));
        for (i, x) in f.iter_mut().enumerate() {
            x.listed_at = at(500 + 10 * i as u64);
        }
        assert!(matches!(
            restore_plan(&f, RestoreTarget::Timestamp(at(35))),
            Err(Error::TimestampNotFound)
        ));
        assert_eq!(
            restore_plan(&f, RestoreTarget::Timestamp(at(510)))
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn snapshots_respect_the_target() {
        let f = files(&[
            (9, 1, 2, 20),
            (9, 1, 4, 40),
            (0, 1, 1, 10),
            (0, 2, 2, 20),
            (0, 3, 3, 30),
            (0, 4, 4, 40),
        ]);
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Txid(3)).unwrap()),
            vec![(9, 1, 2), (0, 3, 3)]
        );
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Timestamp(at(35))).unwrap()),
            vec![(9, 1, 2), (0, 3, 3)]
        );
        assert_eq!(
            ranges(&restore_plan(&f, RestoreTarget::Latest).unwrap()),
            vec![(9, 1, 4)]
        );
        // Levels above 9 are not part of the format and are ignored.
        let mut g = f.clone();
        g.push(LtxFileInfo::new(10, 1, 99, at(1)));
        assert_eq!(
            ranges(&restore_plan(&g, RestoreTarget::Latest).unwrap()),
            vec![(9, 1, 4)]
        );
    }
}
