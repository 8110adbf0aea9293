//! Applying a restore plan: decode each LTX file in order and write its pages into a
//! database image, newest version winning, then cut the image to the last file's commit
//! size. Produces the same bytes as `litestream restore` (format doc §5.3).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use crate::replicate::error::{Error, Result};
use crate::replicate::ltx::{lock_page, Decoder, Header};

/// A database image being rebuilt: a writable, seekable byte store that can be resized.
pub trait DbImage: Write + Seek {
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl DbImage for File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl DbImage for Cursor<Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.get_mut().resize(len, 0);
        Ok(())
    }
}

impl<T: DbImage + ?Sized> DbImage for &mut T {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
}

/// Outcome of a finished apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Header of the last file applied: its max TXID, commit and timestamp describe the
    /// restored state.
    pub last: Header,
    /// Bytes in the image: commit × page size.
    pub db_size: u64,
    pub files: usize,
}

/// Applies LTX files one at a time, in plan order. Pages are written as they are decoded,
/// so if any call fails the image is garbage and must be discarded.
pub struct Applier<W: DbImage> {
    out: W,
    prev: Option<Header>,
    present: PageSet,
    buf: Vec<u8>,
    pos: Option<u64>,
    max_db_size: u64,
    files: usize,
}

impl<W: DbImage> Applier<W> {
    /// `out` should be empty: pages below the final commit that no file provides are an
    /// error, not left as whatever `out` held.
    pub fn new(out: W) -> Self {
        Applier {
            out,
            prev: None,
            present: PageSet::default(),
            buf: Vec::new(),
            pos: None,
            max_db_size: u64::MAX,
            files: 0,
        }
    }

    /// Refuses files whose commit size would make the image larger than `bytes`, so a
    /// hostile header cannot make an in-memory image allocate without bound.
    pub fn max_db_size(mut self, bytes: u64) -> Self {
        self.max_db_size = bytes;
        self
    }

    /// Decodes, verifies and applies one file; returns its header.
    pub fn apply<R: Read>(&mut self, r: R) -> Result<Header> {
        let mut d = Decoder::new(r)?;
        let h = *d.header();
        match &self.prev {
            None if !h.is_snapshot() => return Err(Error::NoSnapshot { min: h.min_txid }),
            None => {}
            Some(p) => {
                if h.page_size != p.page_size {
                    return Err(Error::PageSizeMismatch {
                        expected: p.page_size,
                        actual: h.page_size,
                    });
                }
                if h.min_txid > p.max_txid.saturating_add(1) || h.max_txid <= p.max_txid {
                    return Err(Error::NonContiguous {
                        have: p.max_txid,
                        next: h.min_txid,
                    });
                }
            }
        }
        let ps = u64::from(h.page_size);
        let size = u64::from(h.commit) * ps;
        if size > self.max_db_size {
            return Err(Error::TooLarge {
                pages: u64::from(h.commit),
                page_size: h.page_size,
                limit: self.max_db_size,
            });
        }
        self.buf.resize(h.page_size as usize, 0);
        while let Some(pgno) = d.read_page(&mut self.buf)? {
            let at = u64::from(pgno - 1) * ps;
            if self.pos != Some(at) {
                self.out.seek(SeekFrom::Start(at))?;
            }
            self.out.write_all(&self.buf)?;
            self.pos = Some(at + ps);
            self.present.insert(pgno);
        }
        d.finish()?;
        self.prev = Some(h);
        self.files += 1;
        Ok(h)
    }

    /// Cuts the image to the last commit, zeroes the lock page if it lies below, checks
    /// that every page is present, and returns the image.
    pub fn finish(mut self) -> Result<(W, Applied)> {
        let last = self.prev.ok_or(Error::NoInput)?;
        let lock = lock_page(last.page_size);
        if let Some(missing) = self.present.first_missing(last.commit, lock) {
            return Err(Error::MissingPage(missing));
        }
        let ps = u64::from(last.page_size);
        let db_size = u64::from(last.commit) * ps;
        self.out.set_len(db_size)?;
        if lock <= last.commit {
            self.out.seek(SeekFrom::Start(u64::from(lock - 1) * ps))?;
            self.out.write_all(&vec![0u8; last.page_size as usize])?;
        }
        self.out.flush()?;
        Ok((
            self.out,
            Applied {
                last,
                db_size,
                files: self.files,
            },
        ))
    }
}

/// Applies every file of a plan, in order, to `out`.
pub fn apply_files<R: Read, W: DbImage>(
    files: impl IntoIterator<Item = R>,
    out: W,
) -> Result<(W, Applied)> {
    let mut a = Applier::new(out);
    for f in files {
        a.apply(f)?;
    }
    a.finish()
}

/// Page numbers seen so far, as merged inclusive ranges: a restore normally leaves one
/// range, so this stays tiny whatever the database size.
#[derive(Debug, Default)]
struct PageSet {
    ranges: BTreeMap<u32, u32>,
}

impl PageSet {
    fn insert(&mut self, p: u32) {
        let before = self.ranges.range(..=p).next_back().map(|(&s, &e)| (s, e));
        let mut start = p;
        let mut end = p;
        if let Some((s, e)) = before {
            if e >= p {
                return;
            }
            if e.checked_add(1) == Some(p) {
                start = s;
            }
        }
        if let Some(after) = p.checked_add(1) {
            if let Some(e) = self.ranges.remove(&after) {
                end = e;
            }
        }
        self.ranges.insert(start, end);
    }

    /// The first page in `1..=commit`, other than `lock`, not in the set.
    fn first_missing(&self, commit: u32, lock: u32) -> Option<u32> {
        let mut expect: u64 = 1;
        let commit = u64::from(commit);
        let skip_lock = |e: u64| if e == u64::from(lock) { e + 1 } else { e };
        for (&s, &e) in &self.ranges {
            expect = skip_lock(expect);
            if expect > commit {
                return None;
            }
            if u64::from(s) > expect {
                return Some(expect as u32);
            }
            expect = expect.max(u64::from(e) + 1);
        }
        expect = skip_lock(expect);
        (expect <= commit).then_some(expect as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicate::ltx::{Encoder, PageEncoding};

    const PS: u32 = 512;

    fn page(n: u32, gen: u32) -> Vec<u8> {
        let mut p = vec![(n * 7 + gen) as u8; PS as usize];
        p[..4].copy_from_slice(&n.to_be_bytes());
        p[4..8].copy_from_slice(&gen.to_be_bytes());
        p
    }

    fn file(min: u64, max: u64, commit: u32, pages: &[(u32, u32)]) -> Vec<u8> {
        let mut e = Encoder::with_encoding(
            Vec::new(),
            Header::new(PS, commit, min, max, 1000 + max as i64),
            PageEncoding::Block,
        )
        .unwrap();
        for &(n, gen) in pages {
            e.write_page(n, &page(n, gen)).unwrap();
        }
        e.finish().unwrap().0
    }

    fn image(pages: &[(u32, u32)]) -> Vec<u8> {
        pages.iter().flat_map(|&(n, g)| page(n, g)).collect()
    }

    fn run(files: &[&Vec<u8>]) -> Result<(Vec<u8>, Applied)> {
        let (c, a) = apply_files(files.iter().map(|f| &f[..]), Cursor::new(Vec::new()))?;
        Ok((c.into_inner(), a))
    }

    #[test]
    fn snapshot_growth_update_shrink() {
        let snap = file(1, 1, 3, &[(1, 1), (2, 1), (3, 1)]);
        let grow = file(2, 2, 5, &[(2, 2), (4, 2), (5, 2)]);
        let upd = file(3, 3, 5, &[(5, 3)]);
        let shrink = file(4, 4, 2, &[(1, 4)]);
        let (img, a) = run(&[&snap, &grow, &upd]).unwrap();
        assert_eq!(img, image(&[(1, 1), (2, 2), (3, 1), (4, 2), (5, 3)]));
        assert_eq!(
            (a.last.max_txid, a.last.commit, a.db_size, a.files),
            (3, 5, 5 * 512, 3)
        );
        let (img, a) = run(&[&snap, &grow, &upd, &shrink]).unwrap();
        assert_eq!(img, image(&[(1, 4), (2, 2)]));
        assert_eq!(a.db_size, 1024);
    }

    #[test]
    fn compacted_equals_applied() {
        let snap = file(1, 1, 3, &[(1, 1), (2, 1), (3, 1)]);
        let a = file(2, 2, 4, &[(1, 2), (4, 2)]);
        let b = file(3, 3, 4, &[(4, 3)]);
        let (merged, _, _) =
            crate::replicate::ltx::compact(vec![&a[..], &b[..]], Vec::new()).unwrap();
        assert_eq!(
            run(&[&snap, &merged]).unwrap().0,
            run(&[&snap, &a, &b]).unwrap().0
        );
        let (full, _, _) =
            crate::replicate::ltx::compact(vec![&snap[..], &a[..], &b[..]], Vec::new()).unwrap();
        assert_eq!(run(&[&full]).unwrap().0, run(&[&snap, &a, &b]).unwrap().0);
    }

    #[test]
    fn growth_without_new_pages_is_missing_page() {
        let snap = file(1, 1, 2, &[(1, 1), (2, 1)]);
        let grow = file(2, 2, 4, &[(4, 2)]);
        assert!(matches!(run(&[&snap, &grow]), Err(Error::MissingPage(3))));
    }

    #[test]
    fn chain_errors() {
        let snap = file(1, 1, 2, &[(1, 1), (2, 1)]);
        let two = file(2, 2, 2, &[(1, 2)]);
        let four = file(4, 4, 2, &[(1, 2)]);
        assert!(matches!(run(&[&two]), Err(Error::NoSnapshot { min: 2 })));
        assert!(matches!(
            run(&[&snap, &four]),
            Err(Error::NonContiguous { have: 1, next: 4 })
        ));
        assert!(matches!(
            run(&[&snap, &two, &two]),
            Err(Error::NonContiguous { have: 2, next: 2 })
        ));
        assert!(matches!(run(&[]), Err(Error::NoInput)));
        let mut e = Encoder::new(Vec::new(), Header::new(1024, 1, 2, 2, 5)).unwrap();
        e.write_page(1, &[0u8; 1024]).unwrap();
        let other = e.finish().unwrap().0;
        assert!(matches!(
            run(&[&snap, &other]),
            Err(Error::PageSizeMismatch {
                expected: 512,
                actual: 1024
            })
        ));
        let mut bad = two.clone();
        bad[40] ^= 1;
        assert!(run(&[&snap, &bad]).is_err());
    }

    #[test]
    fn size_limit() {
        let snap = file(1, 1, 2, &[(1, 1), (2, 1)]);
        let grow = file(2, 2, 1000, &[]);
        let a = Applier::new(Cursor::new(Vec::new())).max_db_size(10 * 512);
        let mut a = a;
        a.apply(&snap[..]).unwrap();
        assert!(matches!(
            a.apply(&grow[..]),
            Err(Error::TooLarge { pages: 1000, .. })
        ));
    }

    #[test]
    fn applies_to_a_file() {
        let snap = file(1, 1, 3, &[(1, 1), (2, 1), (3, 1)]);
        let shrink = file(2, 2, 1, &[]);
        let mut f = tempfile::tempfile().unwrap();
        let (_, a) = apply_files([&snap[..], &shrink[..]], &mut f).unwrap();
        assert_eq!(a.db_size, 512);
        assert_eq!(f.metadata().unwrap().len(), 512);
        let mut got = Vec::new();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        assert_eq!(got, page(1, 1));
    }

    #[test]
    fn page_set_merges_and_finds_gaps() {
        let mut s = PageSet::default();
        for p in [1, 2, 3, 5, 6, 4, 10] {
            s.insert(p);
        }
        assert_eq!(s.ranges.len(), 2);
        assert_eq!(s.ranges.get(&1), Some(&6));
        assert_eq!(s.first_missing(6, 1000), None);
        assert_eq!(s.first_missing(10, 1000), Some(7));
        assert_eq!(s.first_missing(7, 7), None);
        assert_eq!(s.first_missing(8, 7), Some(8));
        for p in 7..=9 {
            s.insert(p);
        }
        assert_eq!(s.ranges.len(), 1);
        assert_eq!(s.first_missing(10, 1000), None);
        assert_eq!(s.first_missing(11, 11), None);
        assert_eq!(s.first_missing(12, 11), Some(12));
        assert_eq!(PageSet::default().first_missing(0, 5), None);
        assert_eq!(PageSet::default().first_missing(1, 5), Some(1));
        let mut t = PageSet::default();
        t.insert(u32::MAX);
        t.insert(u32::MAX - 1);
        assert_eq!(t.ranges.get(&(u32::MAX - 1)), Some(&u32::MAX));
    }

    #[test]
    fn lock_page_gap_is_not_missing() {
        let mut s = PageSet::default();
        for p in (1..=4).chain(6..=8) {
            s.insert(p);
        }
        assert_eq!(s.first_missing(8, 5), None);
        assert_eq!(s.first_missing(8, 6), Some(5));
    }
}
