//! Compaction: merge contiguous LTX files into one, as Litestream's L1+ levels do. The
//! inputs are read once, side by side (a k-way merge on page number), so memory is one
//! page per input whatever the file sizes.

use std::io::{Read, Write};

use super::decode::Decoder;
use super::encode::Encoder;
use super::header::{Header, Trailer};
use super::FLAG_NO_CHECKSUM;
use crate::replicate::error::{Error, Result};

/// Merges `inputs` (in TXID order) into one file written to `out`: min TXID of the first,
/// max TXID and commit of the last, the newest timestamp, WAL fields 0/0/0/0. For each
/// page the version from the latest input wins; pages above the last commit are dropped.
/// Every input's checksum is verified; on error `out` holds garbage and must be discarded.
pub fn compact<R: Read, W: Write>(inputs: Vec<R>, out: W) -> Result<(W, Header, Trailer)> {
    let mut decoders = inputs
        .into_iter()
        .map(Decoder::new)
        .collect::<Result<Vec<_>>>()?;
    let (first, last) = match (decoders.first(), decoders.last()) {
        (Some(f), Some(l)) => (*f.header(), *l.header()),
        _ => return Err(Error::NoInput),
    };
    for pair in decoders.windows(2) {
        let (prev, next) = (pair[0].header(), pair[1].header());
        if next.page_size != prev.page_size {
            return Err(Error::PageSizeMismatch {
                expected: prev.page_size,
                actual: next.page_size,
            });
        }
        if next.min_txid > prev.max_txid.saturating_add(1) || next.max_txid <= prev.max_txid {
            return Err(Error::NonContiguous {
                have: prev.max_txid,
                next: next.min_txid,
            });
        }
    }
    let timestamp_ms = decoders
        .iter()
        .map(|d| d.header().timestamp_ms)
        .max()
        .unwrap_or(last.timestamp_ms);
    let header = Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: first.page_size,
        commit: last.commit,
        min_txid: first.min_txid,
        max_txid: last.max_txid,
        timestamp_ms,
        pre_apply_checksum: 0,
        wal_offset: 0,
        wal_size: 0,
        wal_salt1: 0,
        wal_salt2: 0,
        node_id: 0,
    };
    let mut enc = Encoder::new(out, header)?;

    let ps = header.page_size as usize;
    let mut bufs = vec![vec![0u8; ps]; decoders.len()];
    let mut heads = Vec::with_capacity(decoders.len());
    for (d, b) in decoders.iter_mut().zip(bufs.iter_mut()) {
        heads.push(d.read_page(b)?);
    }
    let mut next_snapshot_page = 1u64;
    while let Some(pgno) = heads.iter().flatten().min().copied() {
        // Later inputs are newer: the last one holding this page wins.
        let winner = heads.iter().rposition(|h| *h == Some(pgno)).unwrap_or(0);
        if pgno <= header.commit {
            if header.is_snapshot() {
                // A merged snapshot must be complete; a gap means an input lacked pages
                // (e.g. a growth without its new pages), which is input corruption.
                let lock = u64::from(super::lock_page(header.page_size));
                if next_snapshot_page == lock {
                    next_snapshot_page += 1;
                }
                if u64::from(pgno) != next_snapshot_page {
                    return Err(Error::MissingPage(next_snapshot_page as u32));
                }
                next_snapshot_page += 1;
            }
            enc.write_page(pgno, &bufs[winner])?;
        }
        for i in 0..heads.len() {
            if heads[i] == Some(pgno) {
                heads[i] = decoders[i].read_page(&mut bufs[i])?;
            }
        }
    }
    if header.is_snapshot() {
        let lock = u64::from(super::lock_page(header.page_size));
        if next_snapshot_page == lock {
            next_snapshot_page += 1;
        }
        if next_snapshot_page <= u64::from(header.commit) {
            return Err(Error::MissingPage(next_snapshot_page as u32));
        }
    }
    for d in decoders {
        d.finish()?;
    }
    let (w, trailer) = enc.finish()?;
    Ok((w, header, trailer))
}
