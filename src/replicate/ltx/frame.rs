//! Legacy page encoding (ltx v0.5.0/v0.5.1, Litestream 0.5.0–0.5.15): one complete LZ4
//! frame per page with no length prefix. Its end is found by parsing the frame, so this
//! reads exactly the frame's bytes from the stream and no more.

use std::io::{Read, Write};

use super::lz4_bound;
use crate::replicate::error::{Error, Result};

const FRAME_MAGIC: u32 = 0x184D_2204;
const FLG_VERSION_MASK: u8 = 0b1100_0000;
const FLG_VERSION_01: u8 = 0b0100_0000;
const FLG_BLOCK_INDEPENDENT: u8 = 0x20;
const FLG_BLOCK_CHECKSUM: u8 = 0x10;
const FLG_CONTENT_SIZE: u8 = 0x08;
const FLG_CONTENT_CHECKSUM: u8 = 0x04;
const FLG_RESERVED: u8 = 0x02;
const FLG_DICT_ID: u8 = 0x01;

fn bad(pgno: u32, reason: &'static str) -> Error {
    Error::BadLz4Frame { pgno, reason }
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(Error::eof("LZ4 frame"))
}

/// Reads one LZ4 frame from `r` and decompresses it into `out`, which must come out
/// exactly full. `scratch` is reused for compressed blocks. Returns the frame's length.
///
/// Frame and block checksums (xxHash32) are skipped, not verified: the LTX file checksum
/// covers the uncompressed page, which is what matters.
pub(crate) fn read_frame<R: Read>(
    r: &mut R,
    pgno: u32,
    out: &mut [u8],
    scratch: &mut Vec<u8>,
) -> Result<u64> {
    let mut head = [0u8; 6];
    read_exact(r, &mut head)?;
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if magic != FRAME_MAGIC {
        return Err(bad(pgno, "bad magic"));
    }
    let (flg, bd) = (head[4], head[5]);
    if flg & FLG_VERSION_MASK != FLG_VERSION_01 {
        return Err(bad(pgno, "unsupported frame version"));
    }
    if flg & FLG_RESERVED != 0 || bd & 0b1000_1111 != 0 {
        return Err(bad(pgno, "reserved descriptor bits set"));
    }
    if flg & FLG_DICT_ID != 0 {
        return Err(bad(pgno, "dictionary frames are not supported"));
    }
    let block_max: usize = match (bd >> 4) & 0x7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(bad(pgno, "invalid block maximum size")),
    };
    let mut consumed = head.len() as u64;
    if flg & FLG_CONTENT_SIZE != 0 {
        let mut b = [0u8; 8];
        read_exact(r, &mut b)?;
        consumed += 8;
        if u64::from_le_bytes(b) != out.len() as u64 {
            return Err(Error::PageLength {
                pgno,
                expected: out.len(),
                actual: usize::try_from(u64::from_le_bytes(b)).unwrap_or(usize::MAX),
            });
        }
    }
    let mut hc = [0u8; 1];
    read_exact(r, &mut hc)?;
    consumed += 1;

    // A block can never need more bytes than the worst case for a whole page, whatever
    // maximum the descriptor claims; this caps the allocation.
    let cap = block_max.min(lz4_bound(out.len()));
    let mut pos = 0usize;
    loop {
        let mut b = [0u8; 4];
        read_exact(r, &mut b)?;
        consumed += 4;
        let word = u32::from_le_bytes(b);
        if word == 0 {
            break;
        }
        let stored = word & 0x8000_0000 != 0;
        let len = (word & 0x7fff_ffff) as usize;
        if len > cap {
            return Err(Error::CompressedTooLarge {
                pgno,
                len: len as u64,
                max: cap as u64,
            });
        }
        scratch.resize(len, 0);
        read_exact(r, scratch)?;
        consumed += len as u64;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            read_exact(r, &mut b)?;
            consumed += 4;
        }
        let total = out.len();
        let (done, rest) = out.split_at_mut(pos);
        let n = if stored {
            let dst = rest.get_mut(..len).ok_or(Error::PageLength {
                pgno,
                expected: total,
                actual: pos + len,
            })?;
            dst.copy_from_slice(scratch);
            len
        } else if flg & FLG_BLOCK_INDEPENDENT != 0 || pos == 0 {
            lz4_flex::block::decompress_into(scratch, rest)
                .map_err(|_| Error::Decompress { pgno })?
        } else {
            // Linked blocks may copy from everything decoded before them.
            lz4_flex::block::decompress_into_with_dict(scratch, rest, done)
                .map_err(|_| Error::Decompress { pgno })?
        };
        pos += n;
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        let mut b = [0u8; 4];
        read_exact(r, &mut b)?;
        consumed += 4;
    }
    if pos != out.len() {
        return Err(Error::PageLength {
            pgno,
            expected: out.len(),
            actual: pos,
        });
    }
    Ok(consumed)
}

/// Encodes `page` as the LZ4 frame Go's lz4 writer produced for ltx v0.5.0/v0.5.1:
/// 64 KiB blocks, independent, content checksum on, no content size.
pub(crate) fn write_frame(page: &[u8], out: &mut Vec<u8>) -> Result<()> {
    use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .content_checksum(true);
    let mut enc = FrameEncoder::with_frame_info(info, out);
    enc.write_all(page)?;
    enc.finish()
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| if i % 100 < 60 { 0 } else { (i * 7 % 256) as u8 })
            .collect()
    }

    #[test]
    fn round_trip_reads_exactly_the_frame() {
        for ps in [512usize, 4096, 65536] {
            let p = page(ps);
            let mut buf = Vec::new();
            write_frame(&p, &mut buf).unwrap();
            let frame_len = buf.len();
            buf.extend_from_slice(b"NEXT");
            let mut r = &buf[..];
            let mut out = vec![0u8; ps];
            let n = read_frame(&mut r, 1, &mut out, &mut Vec::new()).unwrap();
            assert_eq!(n as usize, frame_len);
            assert_eq!(out, p);
            assert_eq!(r, b"NEXT");
        }
    }

    #[test]
    fn stored_block_and_size_mismatch() {
        // Hand-made frame: FLG version 01 + independent, BD 64 KiB, HC, one stored block.
        let data = [9u8; 512];
        let mut f = vec![0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x00];
        f.extend_from_slice(&(0x8000_0000u32 | 512).to_le_bytes());
        f.extend_from_slice(&data);
        f.extend_from_slice(&0u32.to_le_bytes());
        let mut out = vec![0u8; 512];
        assert_eq!(
            read_frame(&mut &f[..], 3, &mut out, &mut Vec::new()).unwrap(),
            f.len() as u64
        );
        assert_eq!(out, data);
        let mut small = vec![0u8; 1024];
        assert!(matches!(
            read_frame(&mut &f[..], 3, &mut small, &mut Vec::new()),
            Err(Error::PageLength {
                pgno: 3,
                expected: 1024,
                actual: 512
            })
        ));
        let mut tiny = vec![0u8; 256];
        assert!(read_frame(&mut &f[..], 3, &mut tiny, &mut Vec::new()).is_err());
    }

    #[test]
    fn hostile_frames_are_errors() {
        let mut out = vec![0u8; 4096];
        let cases: [&[u8]; 6] = [
            &[],
            &[0x04, 0x22, 0x4d, 0x19, 0x60, 0x40, 0],
            &[0x04, 0x22, 0x4d, 0x18, 0x61, 0x40, 0],
            &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x30, 0],
            &[
                0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0, 0xff, 0xff, 0xff, 0x7f,
            ],
            &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0, 0x10, 0, 0, 0, 1, 2],
        ];
        for c in cases {
            assert!(
                read_frame(&mut &c[..], 1, &mut out, &mut Vec::new()).is_err(),
                "{c:?}"
            );
        }
    }
}
