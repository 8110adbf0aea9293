//! CRC-64/GO-ISO, the checksum of LTX files (Go's `hash/crc64` with the ISO table).
//!
//! Width 64, polynomial 0x1B, reflected, init and xorout all ones; the check value for
//! `b"123456789"` is `0xB90956C775A41001`. LTX stores every checksum with bit 63 forced
//! on ([`FLAG`]) so that a real checksum is never zero.

use crc::{Crc, Digest, Table, CRC_64_GO_ISO};

/// Bit 63, set on every checksum stored in an LTX file.
pub const FLAG: u64 = 1 << 63;

// Slice-by-16: the file checksum runs over every uncompressed page, so it is on the
// encode and decode hot path.
static ISO: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_GO_ISO);

/// One-shot CRC-64/GO-ISO of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    ISO.checksum(bytes)
}

/// Streaming CRC-64/GO-ISO: updates compose, so hashing pieces equals hashing their
/// concatenation.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest<'static, u64, Table<16>>,
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Self {
            digest: ISO.digest(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// CRC of everything hashed so far; the hasher can keep going.
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }

    /// CRC with bit 63 forced on, as stored in LTX headers and trailers.
    pub fn flagged(&self) -> u64 {
        FLAG | self.value()
    }
}

/// LTX page checksum `1<<63 | CRC64(u32_be(pgno) ‖ data)`, the term of the rolling
/// database checksum.
pub fn page_checksum(pgno: u32, data: &[u8]) -> u64 {
    let mut h = Crc64::new();
    h.update(&pgno.to_be_bytes());
    h.update(data);
    h.flagged()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(checksum(b"123456789"), 0xB909_56C7_75A4_1001);
    }

    #[test]
    fn empty_input() {
        assert_eq!(checksum(b""), 0);
        assert_eq!(Crc64::new().flagged(), FLAG);
    }

    #[test]
    fn streaming_composes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for split in [0, 1, 7, 8, 15, 16, 17, 4096, 9999, 10_000] {
            let mut h = Crc64::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.value(), checksum(&data), "split at {split}");
        }
    }

    #[test]
    fn value_does_not_consume() {
        let mut h = Crc64::new();
        h.update(b"1234");
        let _ = h.value();
        h.update(b"56789");
        assert_eq!(h.value(), 0xB909_56C7_75A4_1001);
    }

    #[test]
    fn page_checksum_has_flag_and_covers_pgno() {
        let page = [7u8; 512];
        let a = page_checksum(1, &page);
        let b = page_checksum(2, &page);
        assert_ne!(a, b);
        assert_eq!(a & FLAG, FLAG);
        let mut h = Crc64::new();
        h.update(&[0, 0, 0, 1]);
        h.update(&page);
        assert_eq!(a, FLAG | h.value());
    }
}
