//! The fixed-size parts of an LTX file: the 100-byte header and the 16-byte trailer,
//! their byte layout and the validity rules Litestream's reader enforces (format doc §2.1).

use super::{valid_page_size, FLAG_NO_CHECKSUM, HEADER_SIZE, MAGIC, TRAILER_SIZE};
use crate::replicate::crc64::FLAG;
use crate::replicate::error::{Error, Result};

/// LTX file header. Field meanings are in the format doc §2.1; `timestamp_ms` is
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub flags: u32,
    pub page_size: u32,
    /// Database size in pages after applying this file.
    pub commit: u32,
    pub min_txid: u64,
    pub max_txid: u64,
    pub timestamp_ms: i64,
    pub pre_apply_checksum: u64,
    pub wal_offset: i64,
    pub wal_size: i64,
    pub wal_salt1: u32,
    pub wal_salt2: u32,
    pub node_id: u64,
}

impl Header {
    /// A header as Gleaner writes it: NoChecksum, zero checksums and node id, and the
    /// "no WAL frames" position 32/0 with zero salts, which lets a later
    /// `litestream replicate` take the replica over (format doc §4.4).
    pub fn new(
        page_size: u32,
        commit: u32,
        min_txid: u64,
        max_txid: u64,
        timestamp_ms: i64,
    ) -> Self {
        Header {
            flags: FLAG_NO_CHECKSUM,
            page_size,
            commit,
            min_txid,
            max_txid,
            timestamp_ms,
            pre_apply_checksum: 0,
            wal_offset: super::WAL_HEADER_SIZE as i64,
            wal_size: 0,
            wal_salt1: 0,
            wal_salt2: 0,
            node_id: 0,
        }
    }

    /// A file whose range starts at TXID 1 must hold the whole database.
    pub fn is_snapshot(&self) -> bool {
        self.min_txid == 1
    }

    pub fn no_checksum(&self) -> bool {
        self.flags & FLAG_NO_CHECKSUM != 0
    }

    /// Checks the rules Litestream's reader applies; a header failing them makes
    /// `litestream restore` fail.
    pub fn validate(&self) -> Result<()> {
        if self.flags & !FLAG_NO_CHECKSUM != 0 {
            return Err(Error::BadHeader("unknown flags"));
        }
        if !valid_page_size(self.page_size) {
            return Err(Error::PageSize(self.page_size));
        }
        if self.min_txid == 0 {
            return Err(Error::BadHeader("min TXID is zero"));
        }
        if self.max_txid == 0 {
            return Err(Error::BadHeader("max TXID is zero"));
        }
        if self.min_txid > self.max_txid {
            return Err(Error::BadHeader("min TXID above max TXID"));
        }
        if self.wal_offset < 0 {
            return Err(Error::BadHeader("negative WAL offset"));
        }
        if self.wal_size < 0 {
            return Err(Error::BadHeader("negative WAL size"));
        }
        if (self.wal_salt1 != 0 || self.wal_salt2 != 0) && self.wal_offset == 0 {
            return Err(Error::BadHeader("WAL salts without a WAL offset"));
        }
        if self.wal_offset == 0 && self.wal_size != 0 {
            return Err(Error::BadHeader("WAL size without a WAL offset"));
        }
        if self.is_snapshot() {
            if self.pre_apply_checksum != 0 {
                return Err(Error::BadHeader(
                    "pre-apply checksum not allowed on snapshot files",
                ));
            }
        } else if self.no_checksum() {
            if self.pre_apply_checksum != 0 {
                return Err(Error::BadHeader(
                    "pre-apply checksum not allowed with NoChecksum",
                ));
            }
        } else if self.pre_apply_checksum & FLAG == 0 {
            return Err(Error::BadHeader(
                "pre-apply checksum required on non-snapshot files",
            ));
        }
        Ok(())
    }

    /// The 100 header bytes; the 20 reserved bytes are zero.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&self.flags.to_be_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_be_bytes());
        b[12..16].copy_from_slice(&self.commit.to_be_bytes());
        b[16..24].copy_from_slice(&self.min_txid.to_be_bytes());
        b[24..32].copy_from_slice(&self.max_txid.to_be_bytes());
        b[32..40].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        b[40..48].copy_from_slice(&self.pre_apply_checksum.to_be_bytes());
        b[48..56].copy_from_slice(&self.wal_offset.to_be_bytes());
        b[56..64].copy_from_slice(&self.wal_size.to_be_bytes());
        b[64..68].copy_from_slice(&self.wal_salt1.to_be_bytes());
        b[68..72].copy_from_slice(&self.wal_salt2.to_be_bytes());
        b[72..80].copy_from_slice(&self.node_id.to_be_bytes());
        b
    }

    /// Parses the header bytes without validating the field rules (see [`Header::validate`]).
    /// Reserved bytes are ignored, as Litestream does; the file checksum still covers them.
    pub fn from_bytes(b: &[u8; HEADER_SIZE]) -> Result<Self> {
        if &b[0..4] != MAGIC {
            return Err(Error::BadHeader("bad magic"));
        }
        Ok(Header {
            flags: be_u32(b, 4),
            page_size: be_u32(b, 8),
            commit: be_u32(b, 12),
            min_txid: be_u64(b, 16),
            max_txid: be_u64(b, 24),
            timestamp_ms: be_u64(b, 32) as i64,
            pre_apply_checksum: be_u64(b, 40),
            wal_offset: be_u64(b, 48) as i64,
            wal_size: be_u64(b, 56) as i64,
            wal_salt1: be_u32(b, 64),
            wal_salt2: be_u32(b, 68),
            node_id: be_u64(b, 72),
        })
    }
}

/// LTX trailer: the post-apply database checksum and the file checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trailer {
    pub post_apply_checksum: u64,
    pub file_checksum: u64,
}

impl Trailer {
    pub fn to_bytes(&self) -> [u8; TRAILER_SIZE] {
        let mut b = [0u8; TRAILER_SIZE];
        b[0..8].copy_from_slice(&self.post_apply_checksum.to_be_bytes());
        b[8..16].copy_from_slice(&self.file_checksum.to_be_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; TRAILER_SIZE]) -> Self {
        Trailer {
            post_apply_checksum: be_u64(b, 0),
            file_checksum: be_u64(b, 8),
        }
    }

    /// The post-apply rules that depend on the header's NoChecksum flag.
    pub fn validate(&self, header: &Header) -> Result<()> {
        if header.no_checksum() {
            if self.post_apply_checksum != 0 {
                return Err(Error::BadTrailer("post-apply checksum not allowed"));
            }
        } else if self.post_apply_checksum & FLAG == 0 {
            return Err(Error::BadTrailer("post-apply checksum required"));
        }
        Ok(())
    }
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: 4096,
            commit: 7,
            min_txid: 3,
            max_txid: 5,
            timestamp_ms: 1_764_000_000_123,
            pre_apply_checksum: 0,
            wal_offset: 32,
            wal_size: 4120 * 2,
            wal_salt1: 0xdead_beef,
            wal_salt2: 0x0102_0304,
            node_id: 0,
        }
    }

    #[test]
    fn bytes_round_trip_and_layout() {
        let h = sample();
        let b = h.to_bytes();
        assert_eq!(&b[0..4], b"LTX1");
        assert_eq!(&b[4..8], &[0, 0, 0, 2]);
        assert_eq!(&b[8..12], &[0, 0, 0x10, 0]);
        assert_eq!(&b[12..16], &[0, 0, 0, 7]);
        assert_eq!(b[23], 3);
        assert_eq!(b[31], 5);
        assert_eq!(be_u64(&b, 32), 1_764_000_000_123);
        assert_eq!(&b[64..68], &[0xde, 0xad, 0xbe, 0xef]);
        assert!(b[80..].iter().all(|&x| x == 0));
        assert_eq!(Header::from_bytes(&b).unwrap(), h);
    }

    #[test]
    fn bad_magic() {
        let mut b = sample().to_bytes();
        b[3] = b'2';
        assert!(matches!(
            Header::from_bytes(&b),
            Err(Error::BadHeader("bad magic"))
        ));
    }

    #[test]
    fn new_header_is_valid_and_uses_32_0() {
        let h = Header::new(4096, 1, 1, 1, 5);
        h.validate().unwrap();
        assert_eq!(
            (h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2),
            (32, 0, 0, 0)
        );
        assert!(h.no_checksum() && h.is_snapshot());
    }

    fn rejects(mutate: impl FnOnce(&mut Header), want: &str) {
        let mut h = sample();
        mutate(&mut h);
        match h.validate() {
            Err(e) => assert!(
                e.to_string().contains(want),
                "{e} does not mention {want:?}"
            ),
            Ok(()) => panic!("accepted {h:?}, expected {want:?}"),
        }
    }

    #[test]
    fn validation_negatives() {
        sample().validate().unwrap();
        rejects(|h| h.flags = 0x3, "unknown flags");
        rejects(|h| h.flags = 0x8000_0002, "unknown flags");
        rejects(|h| h.page_size = 0, "page size 0");
        rejects(|h| h.page_size = 256, "page size 256");
        rejects(|h| h.page_size = 131_072, "page size 131072");
        rejects(|h| h.page_size = 4095, "page size 4095");
        rejects(|h| h.min_txid = 0, "min TXID is zero");
        rejects(|h| h.max_txid = 0, "max TXID is zero");
        rejects(|h| h.min_txid = 6, "min TXID above max");
        rejects(|h| h.wal_offset = -1, "negative WAL offset");
        rejects(|h| h.wal_size = -1, "negative WAL size");
        rejects(
            |h| {
                h.wal_offset = 0;
                h.wal_size = 0;
            },
            "salts without",
        );
        rejects(
            |h| {
                h.wal_offset = 0;
                h.wal_salt1 = 0;
                h.wal_salt2 = 0;
            },
            "size without",
        );
        rejects(
            |h| h.pre_apply_checksum = FLAG | 1,
            "not allowed with NoChecksum",
        );
        rejects(
            |h| {
                h.min_txid = 1;
                h.pre_apply_checksum = FLAG | 1;
            },
            "not allowed on snapshot",
        );
        rejects(|h| h.flags = 0, "pre-apply checksum required");
        rejects(
            |h| {
                h.flags = 0;
                h.pre_apply_checksum = 5;
            },
            "pre-apply checksum required",
        );
    }

    #[test]
    fn validation_positives() {
        for ps in [512, 1024, 4096, 8192, 16384, 32768, 65536] {
            let mut h = sample();
            h.page_size = ps;
            h.validate().unwrap();
        }
        let mut h = sample();
        h.flags = 0;
        h.pre_apply_checksum = FLAG | 42;
        h.validate().unwrap();
        let mut h = sample();
        h.wal_offset = 0;
        h.wal_size = 0;
        h.wal_salt1 = 0;
        h.wal_salt2 = 0;
        h.validate().unwrap();
    }

    #[test]
    fn trailer_rules() {
        let nock = sample();
        let mut ck = sample();
        ck.flags = 0;
        ck.pre_apply_checksum = FLAG | 1;
        let zero = Trailer {
            post_apply_checksum: 0,
            file_checksum: FLAG,
        };
        let set = Trailer {
            post_apply_checksum: FLAG | 9,
            file_checksum: FLAG,
        };
        zero.validate(&nock).unwrap();
        assert!(matches!(
            set.validate(&nock),
            Err(Error::BadTrailer("post-apply checksum not allowed"))
        ));
        set.validate(&ck).unwrap();
        assert!(matches!(zero.validate(&ck), Err(Error::BadTrailer(_))));
        assert_eq!(Trailer::from_bytes(&set.to_bytes()), set);
    }
}
