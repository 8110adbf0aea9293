//! Errors of the pure replication codecs (CRC, LTX, WAL, restore plan, apply).
//!
//! One enum for the whole `replicate` codec layer, each variant named by what failed.
//! [`Error::kind`] groups them so callers can decide without matching every variant:
//! corrupt input is never worth a retry, I/O may be, a missing transaction is a
//! "not found" for the HTTP layer, and misuse is a bug in the caller.

use std::io;

/// Result alias for the codec layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Coarse class of an [`Error`], for retry decisions and status mapping. Named apart from
/// the crate-wide [`crate::error::ErrorKind`], which `ReplicateError::kind` maps it onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecErrorKind {
    /// The underlying reader or writer failed; may be transient.
    Io,
    /// The input bytes are malformed, truncated or fail a checksum.
    Corrupt,
    /// The replica does not hold what was asked for (TXID, timestamp, contiguous chain).
    NotFound,
    /// The caller broke an API contract (page order, page length, header for writing).
    Usage,
}

/// What went wrong while encoding, decoding, planning or applying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),

    #[error("truncated input: {what}")]
    Truncated { what: &'static str },

    #[error("invalid LTX header: {0}")]
    BadHeader(&'static str),

    #[error("invalid page size {0}: must be a power of two in 512..=65536")]
    PageSize(u32),

    #[error("invalid LTX trailer: {0}")]
    BadTrailer(&'static str),

    #[error("file checksum mismatch: stored {expected:#018x}, computed {actual:#018x}")]
    ChecksumMismatch { expected: u64, actual: u64 },

    #[error("database checksum mismatch: stored {expected:#018x}, computed {actual:#018x}")]
    DatabaseChecksumMismatch { expected: u64, actual: u64 },

    #[error("invalid page header for page {pgno}: {reason}")]
    BadPageHeader { pgno: u32, reason: &'static str },

    #[error("page {pgno} out of order: previous page was {prev}")]
    PageOrder { prev: u32, pgno: u32 },

    #[error("page {pgno} is above the commit size {commit}")]
    PageBeyondCommit { pgno: u32, commit: u32 },

    #[error("page {0} is the lock page and is never stored")]
    LockPage(u32),

    #[error("page {pgno}: compressed length {len} exceeds the bound {max}")]
    CompressedTooLarge { pgno: u32, len: u64, max: u64 },

    #[error("page {pgno}: LZ4 data is invalid")]
    Decompress { pgno: u32 },

    #[error("page {pgno}: legacy LZ4 frame is invalid: {reason}")]
    BadLz4Frame { pgno: u32, reason: &'static str },

    #[error("page {pgno}: {actual} bytes where the page size is {expected}")]
    PageLength {
        pgno: u32,
        expected: usize,
        actual: usize,
    },

    #[error("snapshot is missing page {0}")]
    MissingPage(u32),

    #[error("page index does not match the page frames: {0}")]
    BadIndex(&'static str),

    #[error("unexpected data after the LTX trailer")]
    TrailingData,

    #[error("invalid LTX file name {0:?}")]
    BadFileName(String),

    #[error("invalid WAL header: {0}")]
    BadWalHeader(&'static str),

    #[error("WAL offset {offset} is not a frame boundary (page size {page_size})")]
    WalOffset { offset: u64, page_size: u32 },

    #[error("WAL frame before offset {offset} does not belong to the current WAL (salt mismatch)")]
    WalPrevFrame { offset: u64 },

    #[error("page size changed between files: {expected} then {actual}")]
    PageSizeMismatch { expected: u32, actual: u32 },

    #[error(
        "non-contiguous ltx files: have up to {have:016x} but next file starts at {next:016x}"
    )]
    NonContiguous { have: u64, next: u64 },

    #[error("transaction not available")]
    TxnNotAvailable,

    #[error("timestamp does not exist")]
    TimestampNotFound,

    #[error("database of {pages} pages of {page_size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        pages: u64,
        page_size: u32,
        limit: u64,
    },

    #[error("nothing to apply or compact: no input files")]
    NoInput,

    #[error("cannot encode page {pgno}: {reason}")]
    EncodePage { pgno: u32, reason: &'static str },

    #[error("page buffer of {actual} bytes where the page size is {expected}")]
    BufferSize { expected: usize, actual: usize },

    #[error("cannot encode LTX file: {0}")]
    EncodeHeader(&'static str),

    #[error("restore must start with a snapshot (min TXID 1), first file starts at {min:016x}")]
    NoSnapshot { min: u64 },
}

impl Error {
    /// Class of this error.
    pub fn kind(&self) -> CodecErrorKind {
        use Error::*;
        match self {
            Io(_) => CodecErrorKind::Io,
            NonContiguous { .. } | TxnNotAvailable | TimestampNotFound | NoSnapshot { .. } => {
                CodecErrorKind::NotFound
            }
            NoInput | EncodePage { .. } | EncodeHeader(_) | BufferSize { .. } => {
                CodecErrorKind::Usage
            }
            Truncated { .. }
            | BadHeader(_)
            | PageSize(_)
            | BadTrailer(_)
            | ChecksumMismatch { .. }
            | DatabaseChecksumMismatch { .. }
            | BadPageHeader { .. }
            | PageOrder { .. }
            | PageBeyondCommit { .. }
            | LockPage(_)
            | CompressedTooLarge { .. }
            | Decompress { .. }
            | BadLz4Frame { .. }
            | PageLength { .. }
            | MissingPage(_)
            | BadIndex(_)
            | TrailingData
            | BadFileName(_)
            | BadWalHeader(_)
            | WalOffset { .. }
            | WalPrevFrame { .. }
            | PageSizeMismatch { .. }
            | TooLarge { .. } => CodecErrorKind::Corrupt,
        }
    }

    /// Maps an unexpected end of input to [`Error::Truncated`] naming what was being read.
    pub(crate) fn eof(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Truncated { what }
            } else {
                Error::Io(e)
            }
        }
    }
}
