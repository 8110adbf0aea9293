//! LTX v3 (Litestream 0.5) files: constants shared by the codec parts, the lock page,
//! and re-exports. Layout: header, page frames, end marker, page index, trailer
//! (see `shared/docs/ltx-replica-format.md` §2).

mod compact;
mod decode;
mod encode;
mod frame;
mod header;
mod index;
mod name;

pub use compact::compact;
pub use decode::{decode_file, verify, DecodedFile, Decoder};
pub use encode::{Encoder, PageEncoding};
pub use header::{Header, Trailer};
pub use index::{read_page_index, IndexEntry};
pub use name::{
    format_file_name, level_prefix, ltx_object_path, parse_file_name, Backend, SNAPSHOT_LEVEL,
};

/// `LTX1`: the format version (3) is implied by the magic.
pub const MAGIC: &[u8; 4] = b"LTX1";
pub const HEADER_SIZE: usize = 100;
pub const TRAILER_SIZE: usize = 16;
/// Page number (u32) and page flags (u16); six zero bytes end the pages.
pub const PAGE_HEADER_SIZE: usize = 6;
/// Header flag: database checksums are off. Every file Gleaner writes sets it, because a
/// non-zero post-apply checksum on the last file of a plan makes Litestream's restore fail.
pub const FLAG_NO_CHECKSUM: u32 = 0x2;
/// Page flag: a u32 length and one raw LZ4 block follow (ltx v0.5.2+). Without it a
/// complete LZ4 frame follows (ltx v0.5.0/v0.5.1).
pub const PAGE_FLAG_SIZE_PREFIXED_BLOCK: u16 = 0x1;
pub const MIN_PAGE_SIZE: u32 = 512;
pub const MAX_PAGE_SIZE: u32 = 65536;
/// Size of a SQLite WAL header, the "no frames yet" WAL offset.
pub const WAL_HEADER_SIZE: u64 = 32;

/// SQLite page sizes: powers of two from 512 to 65536.
pub fn valid_page_size(page_size: u32) -> bool {
    (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) && page_size.is_power_of_two()
}

/// The page holding byte offset 1 GiB, which SQLite never uses for data and LTX never
/// stores. `page_size` must be non-zero.
pub fn lock_page(page_size: u32) -> u32 {
    (0x4000_0000 / page_size.max(1)) + 1
}

/// Worst-case LZ4 block length for `len` input bytes (LZ4_COMPRESSBOUND). A valid block
/// holding one page is never longer, so a larger claimed length is corrupt input.
pub(crate) fn lz4_bound(len: usize) -> usize {
    len + len / 255 + 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_pages_match_the_doc() {
        let want = [
            (512, 2_097_153),
            (1024, 1_048_577),
            (4096, 262_145),
            (8192, 131_073),
            (16384, 65_537),
            (32768, 32_769),
            (65536, 16_385),
        ];
        for (ps, lp) in want {
            assert_eq!(lock_page(ps), lp, "page size {ps}");
        }
    }

    #[test]
    fn page_sizes() {
        assert!(valid_page_size(512) && valid_page_size(65536) && valid_page_size(4096));
        for bad in [0, 1, 256, 511, 513, 3000, 131_072, u32::MAX] {
            assert!(!valid_page_size(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod codec_tests;
