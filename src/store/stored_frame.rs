//! Stored zstd frames: content kept as it is, inside an ordinary checksummed zstd frame.
//!
//! A record that compression does not shrink by an eighth is kept uncompressed (see
//! [`super::codec`]), but still as a zstd frame, so there is one payload format and one
//! decoder, and the frame's checksum still catches a flipped bit on disk. zstd writes such
//! "raw" blocks itself only when compressing saves almost nothing (`ZSTD_minGain`: 1/64
//! of the block plus 2 bytes at our level), and offers no switch to ask for them, so this
//! module writes the frame: RFC 8878's frame header, raw blocks of at most 128 KiB, and
//! the low 32 bits of XXH64 as the content checksum. Decoding is zstd's own; the tests
//! check it on every header width a record can reach (the 8-byte size field, for content
//! over 4 GiB, cannot be).

/// zstd's frame magic number, little-endian on disk (RFC 8878 §3.1.1).
const MAGIC: u32 = 0xFD2F_B528;
/// Largest block (RFC 8878 §3.1.1.2.3: Block_Size is at most Block_Maximum_Size, 128 KiB).
const MAX_BLOCK: usize = 128 * 1024;
/// Frame_Header_Descriptor bits: Single_Segment (the window is the content, so no
/// Window_Descriptor) and Content_Checksum; no dictionary id. Bits 7-6 give the width of
/// Frame_Content_Size and are added per frame.
const SINGLE_SEGMENT_WITH_CHECKSUM: u8 = 0b0010_0100;

/// `content` as one zstd frame of raw blocks.
pub(crate) fn encode(content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let blocks = n.div_ceil(MAX_BLOCK).max(1);
    let mut f = Vec::with_capacity(4 + 9 + 3 * blocks + n + 4);
    f.extend_from_slice(&MAGIC.to_le_bytes());
    // Frame_Content_Size takes 1, 2 (offset by 256), 4 or 8 bytes (RFC 8878 §3.1.1.1.4).
    if n < 256 {
        f.push(SINGLE_SEGMENT_WITH_CHECKSUM);
        f.push(n as u8);
    } else if n < 256 + 65_536 {
        f.push(SINGLE_SEGMENT_WITH_CHECKSUM | 0b0100_0000);
        f.extend_from_slice(&((n - 256) as u16).to_le_bytes());
    } else if let Ok(n32) = u32::try_from(n) {
        f.push(SINGLE_SEGMENT_WITH_CHECKSUM | 0b1000_0000);
        f.extend_from_slice(&n32.to_le_bytes());
    } else {
        f.push(SINGLE_SEGMENT_WITH_CHECKSUM | 0b1100_0000);
        f.extend_from_slice(&(n as u64).to_le_bytes());
    }
    // Block_Header: 3 bytes little-endian; bit 0 Last_Block, bits 1-2 Block_Type (0: raw),
    // bits 3-23 Block_Size. Empty content is one empty last block.
    let mut rest = content;
    loop {
        let len = rest.len().min(MAX_BLOCK);
        let last = len == rest.len();
        let header = ((len as u32) << 3) | u32::from(last);
        f.extend_from_slice(&header.to_le_bytes()[..3]);
        f.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
        if last {
            break;
        }
    }
    let checksum = twox_hash::XxHash64::oneshot(0, content) as u32;
    f.extend_from_slice(&checksum.to_le_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zstd_decodes(frame: &[u8], content: &[u8]) {
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(frame).unwrap(),
            Some(content.len() as u64)
        );
        let out = zstd::bulk::decompress(frame, content.len().max(1)).unwrap();
        assert_eq!(out, content);
    }

    #[test]
    fn every_header_width_and_block_boundary_decodes_with_zstd() {
        for n in [
            0,
            1,
            255,
            256,
            257,
            65_791,
            65_792,
            MAX_BLOCK - 1,
            MAX_BLOCK,
            MAX_BLOCK + 1,
            3 * MAX_BLOCK,
        ] {
            let content: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            zstd_decodes(&encode(&content), &content);
        }
    }

    #[test]
    fn a_flipped_bit_never_decodes_to_other_content() {
        let content = br#"{"body":"alpha alpha text","n":1}"#;
        let good = encode(content);
        // Magic (4 bytes), Frame_Header_Descriptor, a 1-byte Frame_Content_Size.
        let header = 6;
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                match zstd::bulk::decompress(&bad, 1 << 16) {
                    Err(_) => {}
                    // A few header bits change only how the frame is described (the
                    // unused bit; single-segment versus a window that still fits).
                    Ok(out) if i < header => assert_eq!(out, content, "bit {bit} of byte {i}"),
                    Ok(out) => panic!("bit {bit} of byte {i} flipped, zstd decoded {out:?}"),
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_content_round_trips_through_zstd(content in proptest::collection::vec(any::<u8>(), 0..2000)) {
            zstd_decodes(&encode(&content), &content);
        }
    }
}
