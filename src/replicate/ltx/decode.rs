//! Streaming LTX reader: validates the header, yields pages in order (both page
//! encodings), then checks the page index, the trailer rules and the file checksum.
//! Every malformed input is an error, never a panic; allocations are bounded by the
//! page size the header declares.

use std::io::Read;

use super::frame::read_frame;
use super::header::{Header, Trailer};
use super::index::put_uvarint;
use super::{
    lock_page, lz4_bound, HEADER_SIZE, PAGE_FLAG_SIZE_PREFIXED_BLOCK, PAGE_HEADER_SIZE,
    TRAILER_SIZE,
};
use crate::replicate::crc64::{page_checksum, Crc64, FLAG};
use crate::replicate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pages,
    EndOfPages,
}

/// Reads one LTX file from `R`. Pages come out before the file checksum can be checked,
/// so a caller must treat them as provisional until [`Decoder::finish`] succeeds. Reads
/// are small (6-byte page headers); wrap files and sockets in a `BufReader`.
pub struct Decoder<R: Read> {
    r: R,
    header: Header,
    state: State,
    hash: Crc64,
    offset: u64,
    /// The index the frames imply, compared byte for byte with the stored one.
    index: Vec<u8>,
    prev_pgno: u32,
    lock_page: u32,
    scratch: Vec<u8>,
    /// XOR of page checksums, kept only for snapshots with checksums enabled.
    db_checksum: Option<u64>,
}

impl<R: Read> Decoder<R> {
    /// Reads and validates the header.
    pub fn new(mut r: R) -> Result<Self> {
        let mut b = [0u8; HEADER_SIZE];
        r.read_exact(&mut b).map_err(Error::eof("LTX header"))?;
        let header = Header::from_bytes(&b)?;
        header.validate()?;
        let mut hash = Crc64::new();
        hash.update(&b);
        let db_checksum = (header.is_snapshot() && !header.no_checksum()).then_some(0);
        Ok(Decoder {
            r,
            header,
            state: State::Pages,
            hash,
            offset: HEADER_SIZE as u64,
            index: Vec::new(),
            prev_pgno: 0,
            lock_page: lock_page(header.page_size),
            scratch: Vec::new(),
            db_checksum,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Decodes the next page into `buf` (exactly one page long) and returns its number,
    /// or `None` after the last page.
    pub fn read_page(&mut self, buf: &mut [u8]) -> Result<Option<u32>> {
        if self.state != State::Pages {
            return Ok(None);
        }
        let ps = self.header.page_size as usize;
        if buf.len() != ps {
            return Err(Error::BufferSize {
                expected: ps,
                actual: buf.len(),
            });
        }
        let mut ph = [0u8; PAGE_HEADER_SIZE];
        self.r
            .read_exact(&mut ph)
            .map_err(Error::eof("page header"))?;
        let pgno = u32::from_be_bytes([ph[0], ph[1], ph[2], ph[3]]);
        let flags = u16::from_be_bytes([ph[4], ph[5]]);
        if pgno == 0 {
            return self.end_of_pages(&ph, flags).map(|()| None);
        }
        if flags & !PAGE_FLAG_SIZE_PREFIXED_BLOCK != 0 {
            return Err(Error::BadPageHeader {
                pgno,
                reason: "unknown page flags",
            });
        }
        if pgno <= self.prev_pgno {
            return Err(Error::PageOrder {
                prev: self.prev_pgno,
                pgno,
            });
        }
        if pgno > self.header.commit {
            return Err(Error::PageBeyondCommit {
                pgno,
                commit: self.header.commit,
            });
        }
        if pgno == self.lock_page {
            return Err(Error::LockPage(pgno));
        }
        if self.header.is_snapshot() {
            let next = self.next_snapshot_page();
            if u64::from(pgno) != next {
                return Err(Error::MissingPage(next as u32));
            }
        }
        self.hash.update(&ph);

        let frame_len = if flags & PAGE_FLAG_SIZE_PREFIXED_BLOCK != 0 {
            let mut sz = [0u8; 4];
            self.r
                .read_exact(&mut sz)
                .map_err(Error::eof("page size prefix"))?;
            let len = u32::from_be_bytes(sz) as usize;
            let max = lz4_bound(ps);
            if len > max {
                return Err(Error::CompressedTooLarge {
                    pgno,
                    len: len as u64,
                    max: max as u64,
                });
            }
            self.scratch.resize(len, 0);
            self.r
                .read_exact(&mut self.scratch)
                .map_err(Error::eof("compressed page"))?;
            let n = lz4_flex::block::decompress_into(&self.scratch, buf)
                .map_err(|_| Error::Decompress { pgno })?;
            if n != ps {
                return Err(Error::PageLength {
                    pgno,
                    expected: ps,
                    actual: n,
                });
            }
            self.hash.update(&sz);
            (PAGE_HEADER_SIZE + 4 + len) as u64
        } else {
            PAGE_HEADER_SIZE as u64 + read_frame(&mut self.r, pgno, buf, &mut self.scratch)?
        };
        self.hash.update(buf);
        if let Some(acc) = self.db_checksum.as_mut() {
            *acc ^= page_checksum(pgno, buf);
        }

        put_uvarint(&mut self.index, u64::from(pgno));
        put_uvarint(&mut self.index, self.offset);
        put_uvarint(&mut self.index, frame_len);
        self.offset += frame_len;
        self.prev_pgno = pgno;
        Ok(Some(pgno))
    }

    /// The page a snapshot must hold next: snapshots hold every page from 1 to commit
    /// except the lock page.
    fn next_snapshot_page(&self) -> u64 {
        let next = u64::from(self.prev_pgno) + 1;
        if next == u64::from(self.lock_page) {
            next + 1
        } else {
            next
        }
    }

    fn end_of_pages(&mut self, ph: &[u8; PAGE_HEADER_SIZE], flags: u16) -> Result<()> {
        if flags != 0 {
            return Err(Error::BadPageHeader {
                pgno: 0,
                reason: "end marker with flags",
            });
        }
        if self.header.is_snapshot() {
            let next = self.next_snapshot_page();
            if next <= u64::from(self.header.commit) {
                return Err(Error::MissingPage(next as u32));
            }
        }
        self.hash.update(ph);
        self.state = State::EndOfPages;
        Ok(())
    }

    /// Reads any pages left, then the page index and trailer, and verifies the index,
    /// the trailer rules, the file checksum and that nothing follows the trailer.
    pub fn finish(mut self) -> Result<Trailer> {
        if self.state == State::Pages {
            let mut page = vec![0u8; self.header.page_size as usize];
            while self.read_page(&mut page)?.is_some() {}
        }
        put_uvarint(&mut self.index, 0);
        let mut stored = vec![0u8; self.index.len()];
        self.r
            .read_exact(&mut stored)
            .map_err(Error::eof("page index"))?;
        if stored != self.index {
            return Err(Error::BadIndex("entries differ from the page frames"));
        }
        let mut len = [0u8; 8];
        self.r
            .read_exact(&mut len)
            .map_err(Error::eof("page index length"))?;
        if u64::from_be_bytes(len) != self.index.len() as u64 {
            return Err(Error::BadIndex("stored length differs"));
        }
        self.hash.update(&stored);
        self.hash.update(&len);

        let mut tb = [0u8; TRAILER_SIZE];
        self.r.read_exact(&mut tb).map_err(Error::eof("trailer"))?;
        let trailer = Trailer::from_bytes(&tb);
        self.hash.update(&tb[..8]);
        let actual = self.hash.flagged();
        if trailer.file_checksum != actual {
            return Err(Error::ChecksumMismatch {
                expected: trailer.file_checksum,
                actual,
            });
        }
        trailer.validate(&self.header)?;
        if let Some(acc) = self.db_checksum {
            let actual = FLAG | acc;
            if trailer.post_apply_checksum != actual {
                return Err(Error::DatabaseChecksumMismatch {
                    expected: trailer.post_apply_checksum,
                    actual,
                });
            }
        }
        let mut extra = [0u8; 1];
        loop {
            match self.r.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => return Err(Error::TrailingData),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Ok(trailer)
    }
}

/// A fully decoded and verified LTX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFile {
    pub header: Header,
    /// Pages in ascending order.
    pub pages: Vec<(u32, Vec<u8>)>,
    pub trailer: Trailer,
}

/// Decodes and verifies a whole in-memory LTX file.
pub fn decode_file(bytes: &[u8]) -> Result<DecodedFile> {
    let mut d = Decoder::new(bytes)?;
    let ps = d.header().page_size as usize;
    // Pages ascend and stay at or below the header's commit, which bounds the count.
    let mut pages = Vec::new();
    loop {
        let mut page = vec![0u8; ps];
        match d.read_page(&mut page)? {
            Some(pgno) => pages.push((pgno, page)),
            None => break,
        }
    }
    let header = *d.header();
    let trailer = d.finish()?;
    Ok(DecodedFile {
        header,
        pages,
        trailer,
    })
}

/// Reads a whole LTX file and verifies it without keeping its pages.
pub fn verify<R: Read>(r: R) -> Result<(Header, Trailer)> {
    let d = Decoder::new(r)?;
    let header = *d.header();
    Ok((header, d.finish()?))
}
