//! Replication to object storage in Litestream 0.5's LTX format.
//!
//! Pure codecs (no async runtime, SQLite or object store types): CRC-64, the LTX file
//! format, the SQLite WAL reader, restore plans and applying LTX files. On top of them the
//! runtime: WAL capture ([`capture`]), one replica per destination ([`replica`]) behind
//! the storage trait ([`client`]) with `file://` and `s3://` backends, the per-database
//! sync loop driven by store hooks ([`runtime`]), restore/verify ([`restore`]) and the
//! erasure of a deleted tenant's replica ([`erase`]).

pub mod apply;
pub mod capture;
pub mod client;
pub mod crc64;
pub mod erase;
pub mod error;
pub mod file_client;
pub mod ltx;
pub mod plan;
pub mod replica;
pub mod restore;
pub mod resume_mark;
pub mod runtime;
pub mod runtime_error;
pub mod s3_client;
pub mod status;
pub mod url;
pub mod verify_board;
pub mod wal;

pub use error::{CodecErrorKind, Error, Result};
pub use runtime_error::ReplicateError;

/// The shortest final ship a closing database gets, even past the shutdown deadline: an
/// up-to-date database needs no request to confirm it, only a moment.
pub(crate) const FINAL_MIN_TRY: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod wal_sqlite_tests;
