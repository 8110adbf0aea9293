//! The LTX page index: per page (pgno, frame offset, frame length) as Go uvarints, a zero
//! terminator and a u64 byte length, between the end-of-pages marker and the trailer.
//! Restore walks past it; Litestream's VFS and ranged page fetches use it.

use super::header::be_u64;
use super::{HEADER_SIZE, PAGE_HEADER_SIZE, TRAILER_SIZE};
use crate::replicate::error::{Error, Result};

/// Where one page's frame sits in an LTX file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub pgno: u32,
    /// Offset of the 6-byte page header from the start of the file.
    pub offset: u64,
    /// Whole frame length: page header, size prefix and compressed data.
    pub size: u64,
}

/// Appends `v` as an unsigned LEB128 varint (Go `binary.PutUvarint`).
pub(crate) fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads one uvarint from the front of `b`: the value and the bytes used.
pub(crate) fn read_uvarint(b: &[u8]) -> Result<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        // The tenth byte may only carry the top bit of a u64.
        if i == 9 && byte > 1 {
            return Err(Error::BadIndex("varint overflows 64 bits"));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok((v, i + 1));
        }
    }
    if b.len() >= 10 {
        Err(Error::BadIndex("varint overflows 64 bits"))
    } else {
        Err(Error::Truncated {
            what: "page index varint",
        })
    }
}

/// Reads the page index of a complete LTX file from its tail, without decoding pages.
/// Checks that the entries ascend, lie between the header and the end marker, and do not
/// overlap; the file checksum is not verified here (use the decoder for that).
pub fn read_page_index(file: &[u8]) -> Result<Vec<IndexEntry>> {
    let min_len = HEADER_SIZE + PAGE_HEADER_SIZE + 1 + 8 + TRAILER_SIZE;
    if file.len() < min_len {
        return Err(Error::Truncated { what: "LTX file" });
    }
    let len_at = file.len() - TRAILER_SIZE - 8;
    let index_len = be_u64(file, len_at);
    let room = (len_at - HEADER_SIZE - PAGE_HEADER_SIZE) as u64;
    if index_len == 0 || index_len > room {
        return Err(Error::BadIndex("index length out of range"));
    }
    let start = len_at - index_len as usize;
    let mut rest = &file[start..len_at];
    let pages_end = (start - PAGE_HEADER_SIZE) as u64;
    // Every entry takes at least three bytes, so the input bounds the allocation.
    let mut out = Vec::with_capacity(rest.len() / 3);
    let mut next_free = HEADER_SIZE as u64;
    loop {
        let (pgno, n) = read_uvarint(rest)?;
        rest = &rest[n..];
        if pgno == 0 {
            break;
        }
        let (offset, n) = read_uvarint(rest)?;
        rest = &rest[n..];
        let (size, n) = read_uvarint(rest)?;
        rest = &rest[n..];
        let pgno = u32::try_from(pgno).map_err(|_| Error::BadIndex("page number above u32"))?;
        if out.last().is_some_and(|e: &IndexEntry| e.pgno >= pgno) {
            return Err(Error::BadIndex("page numbers not ascending"));
        }
        if offset < next_free || size < PAGE_HEADER_SIZE as u64 {
            return Err(Error::BadIndex("frames overlap"));
        }
        next_free = offset
            .checked_add(size)
            .filter(|&end| end <= pages_end)
            .ok_or(Error::BadIndex("frame past the end of pages"))?;
        out.push(IndexEntry { pgno, offset, size });
    }
    if !rest.is_empty() {
        return Err(Error::BadIndex("bytes after the terminator"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_matches_go_encoding() {
        let cases: [(u64, &[u8]); 6] = [
            (0, &[0x00]),
            (2, &[0x02]),
            (100, &[0x64]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
        ];
        for (v, want) in cases {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b, want, "{v}");
            assert_eq!(read_uvarint(&b).unwrap(), (v, want.len()));
        }
        let mut b = Vec::new();
        put_uvarint(&mut b, u64::MAX);
        assert_eq!(b.len(), 10);
        assert_eq!(read_uvarint(&b).unwrap(), (u64::MAX, 10));
    }

    #[test]
    fn uvarint_errors() {
        assert!(matches!(read_uvarint(&[]), Err(Error::Truncated { .. })));
        assert!(matches!(
            read_uvarint(&[0x80, 0x80]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(read_uvarint(&[0xff; 10]), Err(Error::BadIndex(_))));
        let mut eleven = vec![0x80; 10];
        eleven.push(0);
        assert!(matches!(read_uvarint(&eleven), Err(Error::BadIndex(_))));
    }
}
