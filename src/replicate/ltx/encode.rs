//! Streaming LTX writer: header, one frame per page in strictly ascending order, end
//! marker, page index and trailer, with the file checksum computed on the way.

use std::io::Write;

use super::frame::write_frame;
use super::header::{Header, Trailer};
use super::index::put_uvarint;
use super::{
    lock_page, FLAG_NO_CHECKSUM, HEADER_SIZE, PAGE_FLAG_SIZE_PREFIXED_BLOCK, PAGE_HEADER_SIZE,
};
use crate::replicate::crc64::Crc64;
use crate::replicate::error::{Error, Result};

/// How page frames are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageEncoding {
    /// Flag 0x1, u32 length, raw LZ4 block: what Litestream 0.5.16+ writes and reads.
    #[default]
    Block,
    /// Flag 0, one LZ4 frame per page: Litestream 0.5.0–0.5.15. Kept to test that old
    /// replicas still restore; new replicas should not use it.
    LegacyFrame,
}

/// Writes one LTX file to `W`. Wrap unbuffered writers in a `BufWriter`: each page is
/// one `write_all`, the fixed parts are small writes.
pub struct Encoder<W: Write> {
    w: W,
    header: Header,
    encoding: PageEncoding,
    hash: Crc64,
    offset: u64,
    index: Vec<u8>,
    prev_pgno: u32,
    lock_page: u32,
    frame: Vec<u8>,
}

impl<W: Write> Encoder<W> {
    /// Validates `header` and writes it. Only NoChecksum files with zero pre-apply
    /// checksum are written, because any file can end a restore plan and a non-zero
    /// post-apply checksum there makes Litestream's restore fail.
    pub fn new(w: W, header: Header) -> Result<Self> {
        Self::with_encoding(w, header, PageEncoding::Block)
    }

    pub fn with_encoding(mut w: W, header: Header, encoding: PageEncoding) -> Result<Self> {
        header.validate()?;
        if header.flags != FLAG_NO_CHECKSUM {
            return Err(Error::EncodeHeader("only NoChecksum files are written"));
        }
        let bytes = header.to_bytes();
        w.write_all(&bytes)?;
        let mut hash = Crc64::new();
        hash.update(&bytes);
        let ps = header.page_size as usize;
        Ok(Encoder {
            w,
            header,
            encoding,
            hash,
            offset: HEADER_SIZE as u64,
            index: Vec::new(),
            prev_pgno: 0,
            lock_page: lock_page(header.page_size),
            frame: Vec::with_capacity(
                PAGE_HEADER_SIZE + 4 + lz4_flex::block::get_maximum_output_size(ps),
            ),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Appends page `pgno`. Pages must ascend strictly and lie in `1..=commit`; a
    /// snapshot (min TXID 1) must get every page. The lock page is accepted and skipped,
    /// so callers can walk `1..=commit` without special-casing it.
    pub fn write_page(&mut self, pgno: u32, data: &[u8]) -> Result<()> {
        let err = |reason| Error::EncodePage { pgno, reason };
        if pgno == 0 {
            return Err(err("page number 0"));
        }
        if pgno <= self.prev_pgno {
            return Err(err("pages must be written in strictly ascending order"));
        }
        if pgno > self.header.commit {
            return Err(err("page number above the commit size"));
        }
        if data.len() != self.header.page_size as usize {
            return Err(err("data length differs from the page size"));
        }
        if self.header.is_snapshot() && !self.is_next_snapshot_page(pgno) {
            return Err(err("snapshot pages must be consecutive from 1"));
        }
        self.prev_pgno = pgno;
        if pgno == self.lock_page {
            return Ok(());
        }

        let flags = match self.encoding {
            PageEncoding::Block => PAGE_FLAG_SIZE_PREFIXED_BLOCK,
            PageEncoding::LegacyFrame => 0,
        };
        let mut ph = [0u8; PAGE_HEADER_SIZE];
        ph[..4].copy_from_slice(&pgno.to_be_bytes());
        ph[4..].copy_from_slice(&flags.to_be_bytes());
        let len = match self.encoding {
            PageEncoding::Block => {
                let start = PAGE_HEADER_SIZE + 4;
                // The buffer keeps its length between pages so it is not zero-filled per
                // page; lz4_flex wants more room than LZ4_COMPRESSBOUND, though it never
                // uses it.
                let need = start + lz4_flex::block::get_maximum_output_size(data.len());
                if self.frame.len() < need {
                    self.frame.resize(need, 0);
                }
                let n = lz4_flex::block::compress_into(data, &mut self.frame[start..])
                    .map_err(|_| err("LZ4 output buffer too small"))?;
                let size = u32::try_from(n).map_err(|_| err("compressed page too large"))?;
                self.frame[..PAGE_HEADER_SIZE].copy_from_slice(&ph);
                self.frame[PAGE_HEADER_SIZE..start].copy_from_slice(&size.to_be_bytes());
                // The checksum covers the page header, the size prefix and the
                // uncompressed page, never the compressed bytes.
                self.hash.update(&self.frame[..start]);
                start + n
            }
            PageEncoding::LegacyFrame => {
                self.frame.clear();
                self.frame.extend_from_slice(&ph);
                self.hash.update(&ph);
                write_frame(data, &mut self.frame)?;
                self.frame.len()
            }
        };
        self.hash.update(data);
        self.w.write_all(&self.frame[..len])?;

        let len = len as u64;
        put_uvarint(&mut self.index, u64::from(pgno));
        put_uvarint(&mut self.index, self.offset);
        put_uvarint(&mut self.index, len);
        self.offset += len;
        Ok(())
    }

    // The lock page may be passed or left out.
    fn is_next_snapshot_page(&self, pgno: u32) -> bool {
        let next = self.prev_pgno.saturating_add(1);
        pgno == next || (next == self.lock_page && pgno == next + 1)
    }

    /// Writes the end marker, page index and trailer; returns the writer and trailer.
    pub fn finish(mut self) -> Result<(W, Trailer)> {
        let commit = self.header.commit;
        let complete = self.prev_pgno == commit
            || (commit == self.lock_page && self.prev_pgno.checked_add(1) == Some(commit));
        if self.header.is_snapshot() && !complete {
            return Err(Error::EncodePage {
                pgno: self.prev_pgno.saturating_add(1),
                reason: "snapshot is missing pages up to the commit size",
            });
        }
        let end = [0u8; PAGE_HEADER_SIZE];
        self.w.write_all(&end)?;
        self.hash.update(&end);

        put_uvarint(&mut self.index, 0);
        let len = (self.index.len() as u64).to_be_bytes();
        self.w.write_all(&self.index)?;
        self.w.write_all(&len)?;
        self.hash.update(&self.index);
        self.hash.update(&len);

        let post_apply_checksum = 0u64;
        self.hash.update(&post_apply_checksum.to_be_bytes());
        let trailer = Trailer {
            post_apply_checksum,
            file_checksum: self.hash.flagged(),
        };
        self.w.write_all(&trailer.to_bytes())?;
        self.w.flush()?;
        Ok((self.w, trailer))
    }
}
