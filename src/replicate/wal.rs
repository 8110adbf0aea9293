//! SQLite WAL reader: the 32-byte header, frames with their checksum chain, and the
//! "one sync" scan that turns the committed frames after an offset into the page set of
//! one L0 file (format doc §4.1–4.2). Works on any `Read + Seek`; which file to read and
//! when is the replicator's business.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use crate::replicate::error::{Error, Result};
use crate::replicate::ltx::valid_page_size;

/// Magic with checksum words read little-endian.
pub const MAGIC_LE: u32 = 0x377F_0682;
/// Magic with checksum words read big-endian.
pub const MAGIC_BE: u32 = 0x377F_0683;
pub const VERSION: u32 = 3_007_000;
pub const HEADER_SIZE: u64 = 32;
pub const FRAME_HEADER_SIZE: u64 = 24;

/// The WAL file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalHeader {
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salt1: u32,
    pub salt2: u32,
    pub checksum: (u32, u32),
}

impl WalHeader {
    /// Parses and verifies the header at the front of `b`. A header that fails any check
    /// means "no valid WAL", as SQLite treats it.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let b = b
            .get(..HEADER_SIZE as usize)
            .ok_or(Error::Truncated { what: "WAL header" })?;
        let h = WalHeader {
            magic: be32(b, 0),
            version: be32(b, 4),
            page_size: be32(b, 8),
            checkpoint_seq: be32(b, 12),
            salt1: be32(b, 16),
            salt2: be32(b, 20),
            checksum: (be32(b, 24), be32(b, 28)),
        };
        if h.magic != MAGIC_LE && h.magic != MAGIC_BE {
            return Err(Error::BadWalHeader("bad magic"));
        }
        if h.version != VERSION {
            return Err(Error::BadWalHeader("unsupported version"));
        }
        if !valid_page_size(h.page_size) {
            return Err(Error::BadWalHeader("invalid page size"));
        }
        if checksum(h.big_endian(), (0, 0), &b[..24]) != h.checksum {
            return Err(Error::BadWalHeader("checksum mismatch"));
        }
        Ok(h)
    }

    /// Whether checksum words are big-endian (the low bit of the magic).
    pub fn big_endian(&self) -> bool {
        self.magic & 1 == 1
    }

    /// Frame header plus one page.
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER_SIZE + u64::from(self.page_size)
    }

    /// Offset of 0-based frame `k`.
    pub fn frame_offset(&self, k: u64) -> u64 {
        HEADER_SIZE + k * self.frame_size()
    }
}

/// SQLite's WAL checksum: a running pair of wrapping u32 sums over 8-byte chunks.
/// `data.len()` must be a multiple of 8 (headers and pages always are); a tail is ignored.
pub fn checksum(big_endian: bool, seed: (u32, u32), data: &[u8]) -> (u32, u32) {
    let (mut s0, mut s1) = seed;
    let word = |c: &[u8]| {
        let a = [c[0], c[1], c[2], c[3]];
        if big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    for c in data.chunks_exact(8) {
        s0 = s0.wrapping_add(word(&c[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&c[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub pgno: u32,
    /// Database size in pages if this frame ends a transaction, else 0.
    pub commit: u32,
    pub salt1: u32,
    pub salt2: u32,
    pub checksum: (u32, u32),
}

impl FrameHeader {
    fn parse(b: &[u8]) -> Self {
        FrameHeader {
            pgno: be32(b, 0),
            commit: be32(b, 4),
            salt1: be32(b, 8),
            salt2: be32(b, 12),
            checksum: (be32(b, 16), be32(b, 20)),
        }
    }
}

/// One valid frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Offset of the frame header in the WAL.
    pub offset: u64,
    pub header: FrameHeader,
    pub page: &'a [u8],
}

/// Why frame iteration stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalEnd {
    /// The file ended at a frame boundary.
    Eof,
    /// The file ended inside a frame (a write in progress, or a torn tail).
    PartialFrame,
    /// A frame carries other salts: left over from before a WAL restart.
    SaltMismatch,
    /// A frame's checksum does not chain, or its page number is 0.
    InvalidFrame,
    /// [`scan`] reached its byte limit at a commit boundary.
    Limit,
}

/// Iterates the valid frames of a WAL from a frame boundary.
pub struct WalReader<R> {
    r: R,
    header: WalHeader,
    pos: u64,
    seed: (u32, u32),
    buf: Vec<u8>,
    end: Option<WalEnd>,
}

impl<R: Read + Seek> WalReader<R> {
    /// Reads the header and positions at the first frame.
    pub fn new(r: R) -> Result<Self> {
        Self::at(r, HEADER_SIZE)
    }

    /// Reads the header and positions at `offset`, which must be a frame boundary. The
    /// checksum chain is seeded from the frame just before `offset` (or the header at 32);
    /// that frame must carry the header's salts, else the WAL was restarted or rewritten
    /// since `offset` was recorded.
    pub fn at(mut r: R, offset: u64) -> Result<Self> {
        r.seek(SeekFrom::Start(0))?;
        let mut hb = [0u8; HEADER_SIZE as usize];
        r.read_exact(&mut hb).map_err(Error::eof("WAL header"))?;
        let header = WalHeader::parse(&hb)?;
        let fs = header.frame_size();
        if offset < HEADER_SIZE || !(offset - HEADER_SIZE).is_multiple_of(fs) {
            return Err(Error::WalOffset {
                offset,
                page_size: header.page_size,
            });
        }
        let seed = if offset == HEADER_SIZE {
            header.checksum
        } else {
            r.seek(SeekFrom::Start(offset - fs))?;
            let mut fb = [0u8; FRAME_HEADER_SIZE as usize];
            r.read_exact(&mut fb)
                .map_err(Error::eof("WAL frame before the start offset"))?;
            let prev = FrameHeader::parse(&fb);
            if (prev.salt1, prev.salt2) != (header.salt1, header.salt2) {
                return Err(Error::WalPrevFrame { offset });
            }
            prev.checksum
        };
        r.seek(SeekFrom::Start(offset))?;
        Ok(WalReader {
            r,
            header,
            pos: offset,
            seed,
            buf: vec![0u8; fs as usize],
            end: None,
        })
    }

    pub fn header(&self) -> &WalHeader {
        &self.header
    }

    /// Offset of the next frame to read.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Why iteration stopped, once it has.
    pub fn end(&self) -> Option<WalEnd> {
        self.end
    }

    /// The next valid frame, or `None` at the end of the valid WAL.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>> {
        if self.end.is_some() {
            return Ok(None);
        }
        let n = read_full(&mut self.r, &mut self.buf)?;
        if n < self.buf.len() {
            self.end = Some(if n == 0 {
                WalEnd::Eof
            } else {
                WalEnd::PartialFrame
            });
            return Ok(None);
        }
        let fh = FrameHeader::parse(&self.buf[..FRAME_HEADER_SIZE as usize]);
        if (fh.salt1, fh.salt2) != (self.header.salt1, self.header.salt2) {
            self.end = Some(WalEnd::SaltMismatch);
            return Ok(None);
        }
        let be = self.header.big_endian();
        let c = checksum(be, self.seed, &self.buf[..8]);
        let c = checksum(be, c, &self.buf[FRAME_HEADER_SIZE as usize..]);
        if c != fh.checksum || fh.pgno == 0 {
            self.end = Some(WalEnd::InvalidFrame);
            return Ok(None);
        }
        self.seed = c;
        let offset = self.pos;
        self.pos += self.buf.len() as u64;
        Ok(Some(Frame {
            offset,
            header: fh,
            page: &self.buf[FRAME_HEADER_SIZE as usize..],
        }))
    }
}

/// What one sync takes from the WAL: the newest committed version of every page changed
/// after the start offset, and the position to resume from next time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSync {
    pub header: WalHeader,
    /// Where reading started (the L0 header's WAL offset).
    pub offset: u64,
    /// Bytes from `offset` to the end of the last commit frame (the L0 header's WAL
    /// size); `offset + size` is the next resume offset.
    pub size: u64,
    /// Database size in pages after the last commit, if any frame committed.
    pub commit: Option<u32>,
    /// Page number → offset of that page's newest committed data (past its frame header).
    /// Pages above `commit` are dropped.
    pub pages: BTreeMap<u32, u64>,
    /// Committed frames read.
    pub frames: u64,
    /// Valid frames after the last commit (an open or abandoned transaction), left for a
    /// later sync.
    pub uncommitted_frames: u64,
    pub end: WalEnd,
}

impl WalSync {
    /// Copies page `pgno`'s committed data out of the WAL bytes it was scanned from.
    pub fn page<'a>(&self, wal: &'a [u8], pgno: u32) -> Option<&'a [u8]> {
        let at = usize::try_from(*self.pages.get(&pgno)?).ok()?;
        wal.get(at..at.checked_add(self.header.page_size as usize)?)
    }

    /// Reads page `pgno`'s committed data from the WAL into `buf` (one page long).
    pub fn read_page<R: Read + Seek>(&self, r: &mut R, pgno: u32, buf: &mut [u8]) -> Result<bool> {
        let Some(&at) = self.pages.get(&pgno) else {
            return Ok(false);
        };
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(buf).map_err(Error::eof("WAL page"))?;
        Ok(true)
    }
}

/// Scans committed frames from `offset` (a frame boundary). With `limit`, stops at the
/// first commit boundary at or past `limit` bytes, so one sync stays bounded.
pub fn scan<R: Read + Seek>(r: R, offset: u64, limit: Option<u64>) -> Result<WalSync> {
    let mut wr = WalReader::at(r, offset)?;
    let header = *wr.header();
    let mut pages = BTreeMap::new();
    let mut pending: Vec<(u32, u64)> = Vec::new();
    let (mut commit, mut size, mut frames) = (None, 0u64, 0u64);
    let mut hit_limit = false;
    while let Some(f) = wr.next_frame()? {
        pending.push((f.header.pgno, f.offset + FRAME_HEADER_SIZE));
        if f.header.commit != 0 {
            frames += pending.len() as u64;
            pages.extend(pending.drain(..));
            commit = Some(f.header.commit);
            size = f.offset + header.frame_size() - offset;
            if limit.is_some_and(|l| size >= l) {
                hit_limit = true;
                break;
            }
        }
    }
    if let Some(c) = commit {
        pages.retain(|&pgno, _| pgno <= c);
    }
    let end = if hit_limit {
        WalEnd::Limit
    } else {
        wr.end().unwrap_or(WalEnd::Eof)
    };
    Ok(WalSync {
        header,
        offset,
        size,
        commit,
        pages,
        frames,
        uncommitted_frames: pending.len() as u64,
        end,
    })
}

/// [`scan`] over WAL bytes in memory.
pub fn scan_slice(wal: &[u8], offset: u64, limit: Option<u64>) -> Result<WalSync> {
    scan(io::Cursor::new(wal), offset, limit)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a WAL the way SQLite does: header checksum, then a checksum chain over
    /// each frame's first 8 header bytes and page. Frames are (pgno, commit, page).
    pub(crate) fn build_wal(
        be: bool,
        ps: u32,
        salts: (u32, u32),
        frames: &[(u32, u32, Vec<u8>)],
    ) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(&(if be { MAGIC_BE } else { MAGIC_LE }).to_be_bytes());
        for v in [VERSION, ps, 7, salts.0, salts.1] {
            w.extend_from_slice(&v.to_be_bytes());
        }
        let c = checksum(be, (0, 0), &w);
        w.extend_from_slice(&c.0.to_be_bytes());
        w.extend_from_slice(&c.1.to_be_bytes());
        append_frames(&mut w, be, salts, c, frames);
        w
    }

    fn append_frames(
        w: &mut Vec<u8>,
        be: bool,
        salts: (u32, u32),
        mut seed: (u32, u32),
        frames: &[(u32, u32, Vec<u8>)],
    ) {
        for (pgno, commit, page) in frames {
            let mut fh = Vec::new();
            for v in [*pgno, *commit, salts.0, salts.1] {
                fh.extend_from_slice(&v.to_be_bytes());
            }
            seed = checksum(be, seed, &fh[..8]);
            seed = checksum(be, seed, page);
            fh.extend_from_slice(&seed.0.to_be_bytes());
            fh.extend_from_slice(&seed.1.to_be_bytes());
            w.extend_from_slice(&fh);
            w.extend_from_slice(page);
        }
    }

    fn pg(v: u8) -> Vec<u8> {
        let mut p = vec![v; 512];
        p[0] = v.wrapping_mul(3);
        p
    }

    const SALTS: (u32, u32) = (0x1111, 0x2222);

    fn sample(be: bool) -> Vec<u8> {
        build_wal(
            be,
            512,
            SALTS,
            &[
                (1, 0, pg(1)),
                (2, 3, pg(2)), // commit: db is 3 pages
                (2, 0, pg(3)),
                (4, 4, pg(4)), // commit: grows to 4
                (1, 0, pg(5)), // uncommitted tail
                (3, 0, pg(6)),
            ],
        )
    }

    #[test]
    fn header_both_magics() {
        for be in [false, true] {
            let w = sample(be);
            let h = WalHeader::parse(&w).unwrap();
            assert_eq!(h.big_endian(), be);
            assert_eq!(
                (h.page_size, h.checkpoint_seq, h.salt1, h.salt2),
                (512, 7, 0x1111, 0x2222)
            );
            assert_eq!(h.frame_size(), 536);
            assert_eq!(h.frame_offset(2), 32 + 2 * 536);
        }
    }

    #[test]
    fn header_errors() {
        let w = sample(false);
        assert!(matches!(
            WalHeader::parse(&w[..31]),
            Err(Error::Truncated { .. })
        ));
        let bad = |at: usize, v: u8| {
            let mut h = w[..32].to_vec();
            h[at] = v;
            WalHeader::parse(&h).unwrap_err().to_string()
        };
        assert!(bad(3, 0x84).contains("bad magic"));
        assert!(bad(7, 0).contains("version"));
        assert!(bad(10, 3).contains("page size"));
        assert!(bad(20, 9).contains("checksum mismatch"));
        assert!(bad(31, 9).contains("checksum mismatch"));
    }

    #[test]
    fn sqlite_checksum_known_value() {
        // Two LE words (1, 2): s0 = 1 + 0 = 1, s1 = 2 + 1 = 3.
        assert_eq!(checksum(false, (0, 0), &[1, 0, 0, 0, 2, 0, 0, 0]), (1, 3));
        assert_eq!(checksum(true, (0, 0), &[0, 0, 0, 1, 0, 0, 0, 2]), (1, 3));
        assert_eq!(
            checksum(false, (u32::MAX, 1), &[1, 0, 0, 0, 0, 0, 0, 0]),
            (1, 2)
        );
    }

    #[test]
    fn scan_keeps_newest_committed_pages() {
        for be in [false, true] {
            let w = sample(be);
            let s = scan_slice(&w, 32, None).unwrap();
            assert_eq!(s.commit, Some(4));
            assert_eq!(s.frames, 4);
            assert_eq!(s.uncommitted_frames, 2);
            assert_eq!(s.size, 4 * 536);
            assert_eq!((s.header.salt1, s.header.salt2), SALTS);
            assert_eq!(s.end, WalEnd::Eof);
            assert_eq!(s.pages.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
            assert_eq!(s.page(&w, 1).unwrap(), &pg(1)[..]);
            assert_eq!(s.page(&w, 2).unwrap(), &pg(3)[..]);
            assert_eq!(s.page(&w, 4).unwrap(), &pg(4)[..]);
            let mut buf = vec![0u8; 512];
            assert!(s.read_page(&mut io::Cursor::new(&w), 2, &mut buf).unwrap());
            assert_eq!(buf, pg(3));
            assert!(!s.read_page(&mut io::Cursor::new(&w), 3, &mut buf).unwrap());
        }
    }

    #[test]
    fn resume_from_an_offset() {
        let w = sample(false);
        let first = scan_slice(&w, 32, Some(1)).unwrap();
        assert_eq!(first.end, WalEnd::Limit);
        assert_eq!(
            (first.commit, first.size, first.frames),
            (Some(3), 2 * 536, 2)
        );
        let next = scan_slice(&w, 32 + first.size, None).unwrap();
        assert_eq!(next.offset, 32 + 2 * 536);
        assert_eq!(
            (next.commit, next.size, next.frames, next.uncommitted_frames),
            (Some(4), 2 * 536, 2, 2)
        );
        assert_eq!(next.pages.keys().copied().collect::<Vec<_>>(), vec![2, 4]);
        // Nothing committed after the last commit frame: an empty sync.
        let tail = scan_slice(&w, 32 + 4 * 536, None).unwrap();
        assert_eq!(
            (tail.commit, tail.size, tail.frames, tail.uncommitted_frames),
            (None, 0, 0, 2)
        );
        assert!(tail.pages.is_empty());
        let end = scan_slice(&w, w.len() as u64, None).unwrap();
        assert_eq!((end.commit, end.end), (None, WalEnd::Eof));
    }

    #[test]
    fn offset_errors() {
        let w = sample(false);
        assert!(matches!(
            scan_slice(&w, 33, None),
            Err(Error::WalOffset {
                offset: 33,
                page_size: 512
            })
        ));
        assert!(matches!(
            scan_slice(&w, 0, None),
            Err(Error::WalOffset { .. })
        ));
        let past = 32 + 10 * 536;
        assert!(matches!(
            scan_slice(&w, past, None),
            Err(Error::Truncated { .. })
        ));
        let mut other = w.clone();
        other[32 + 8] ^= 1; // salt-1 of frame 0
        assert!(matches!(
            scan_slice(&other, 32 + 536, None),
            Err(Error::WalPrevFrame { .. })
        ));
    }

    #[test]
    fn stops_at_salt_mismatch_and_broken_chain() {
        // A restarted WAL: new frames over old ones that carry the previous salts.
        let old = build_wal(
            false,
            512,
            (1, 1),
            &[(1, 1, pg(9)), (1, 1, pg(9)), (1, 1, pg(9))],
        );
        let mut w = build_wal(false, 512, SALTS, &[(1, 1, pg(1))]);
        w.extend_from_slice(&old[32 + 536..]);
        let s = scan_slice(&w, 32, None).unwrap();
        assert_eq!(
            (s.end, s.frames, s.commit),
            (WalEnd::SaltMismatch, 1, Some(1))
        );

        let mut w = sample(false);
        w[32 + 2 * 536 + 100] ^= 0x40; // page data of frame 2
        let s = scan_slice(&w, 32, None).unwrap();
        assert_eq!(
            (s.end, s.frames, s.commit, s.uncommitted_frames),
            (WalEnd::InvalidFrame, 2, Some(3), 0)
        );

        let mut w = sample(false);
        w.truncate(w.len() - 10);
        let s = scan_slice(&w, 32, None).unwrap();
        assert_eq!((s.end, s.uncommitted_frames), (WalEnd::PartialFrame, 1));
    }

    #[test]
    fn shrink_drops_pages_above_commit() {
        let w = build_wal(
            false,
            512,
            SALTS,
            &[(5, 0, pg(1)), (2, 5, pg(2)), (4, 0, pg(3)), (1, 2, pg(4))],
        );
        let s = scan_slice(&w, 32, None).unwrap();
        assert_eq!(s.commit, Some(2));
        assert_eq!(s.pages.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn page_number_zero_ends_the_wal() {
        let w = build_wal(false, 512, SALTS, &[(1, 1, pg(1)), (0, 1, pg(2))]);
        let s = scan_slice(&w, 32, None).unwrap();
        assert_eq!((s.end, s.frames), (WalEnd::InvalidFrame, 1));
    }

    proptest! {
        #[test]
        fn prop_scan_never_panics(mut edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
                                  cut in any::<prop::sample::Index>(), offset_frame in 0u64..8) {
            let mut w = sample(false);
            for (i, b) in edits.drain(..) {
                let at = i.index(w.len());
                w[at] = b;
            }
            w.truncate(cut.index(w.len() + 1));
            if let Ok(s) = scan_slice(&w, 32 + offset_frame * 536, None) {
                for &p in s.pages.keys() {
                    prop_assert!(s.page(&w, p).is_some());
                    prop_assert!(Some(p) <= s.commit);
                }
            }
        }
    }
}
