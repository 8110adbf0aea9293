//! The replica storage contract: a small trait every backend (directory, S3) implements,
//! the object listing type, and the one error type backends convert their failures into
//! at the edge. Object paths come from `ltx::ltx_object_path` only.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use crate::error::ErrorKind;
use crate::replicate::plan::LtxFileInfo;

/// Boxed future returned by [`ReplicaClient`] methods (the trait is used as `dyn`).
pub type ClientFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send + 'a>>;

/// One LTX object in a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LtxObject {
    pub level: u8,
    pub min_txid: u64,
    pub max_txid: u64,
    pub size: u64,
    /// Creation time for point-in-time selection (file mtime; S3 `litestream-timestamp`).
    pub created_at: SystemTime,
    /// Creation time for the timestamp bounds check (file mtime; S3 LastModified).
    pub listed_at: SystemTime,
}

impl LtxObject {
    pub fn info(&self) -> LtxFileInfo {
        LtxFileInfo {
            level: self.level,
            min_txid: self.min_txid,
            max_txid: self.max_txid,
            created_at: self.created_at,
            listed_at: self.listed_at,
        }
    }
}

/// Storage for one database's replica (one root path or key prefix).
pub trait ReplicaClient: Send + Sync + 'static {
    /// URL-like description for messages, e.g. `s3://bucket/prefix/control`.
    fn describe(&self) -> String;
    /// Path or key of one object, for messages.
    fn object_name(&self, level: u8, min: u64, max: u64) -> String;
    /// Every LTX object of `level`, in (min, max) order. Foreign names are ignored.
    fn list(&self, level: u8) -> ClientFuture<'_, Vec<LtxObject>>;
    /// Like [`list`](Self::list), with `created_at` from object metadata where the
    /// backend keeps it apart from the listing time (S3). Only point-in-time restore needs it.
    fn list_detailed(&self, level: u8) -> ClientFuture<'_, Vec<LtxObject>> {
        self.list(level)
    }
    /// Downloads an object into `dest` (created or truncated); returns its size.
    fn get_to_file<'a>(
        &'a self,
        level: u8,
        min: u64,
        max: u64,
        dest: &'a Path,
    ) -> ClientFuture<'a, u64>;
    /// The first `len` bytes of an object (LTX headers).
    fn get_prefix(&self, level: u8, min: u64, max: u64, len: usize) -> ClientFuture<'_, Vec<u8>>;
    /// Uploads `src` as an object whose creation time is `timestamp_ms` (file mtime, or
    /// the `litestream-timestamp` metadata).
    fn put_file<'a>(
        &'a self,
        level: u8,
        min: u64,
        max: u64,
        src: &'a Path,
        timestamp_ms: i64,
    ) -> ClientFuture<'a, ()>;
    /// Deletes objects; missing ones are not an error.
    fn delete(&self, level: u8, files: Vec<(u64, u64)>) -> ClientFuture<'_, ()>;
}

/// What a replica backend failed at, converted once from SDK or OS errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{op} {target}: bucket {bucket:?} does not exist")]
    NoBucket {
        op: &'static str,
        target: String,
        bucket: String,
    },
    #[error("{op} {target}: access denied to bucket {bucket:?} ({detail}); check the access key, secret and the bucket policy")]
    AccessDenied {
        op: &'static str,
        target: String,
        bucket: String,
        detail: String,
    },
    #[error("{op} {target}: object does not exist")]
    NotFound { op: &'static str, target: String },
    #[error("{op} {target}: {detail}")]
    Unavailable {
        op: &'static str,
        target: String,
        detail: String,
    },
    #[error("{op} {target}: {detail}")]
    Rejected {
        op: &'static str,
        target: String,
        detail: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid replica URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::NoBucket { .. } => ErrorKind::Config,
            ClientError::AccessDenied { .. } => ErrorKind::Unauthenticated,
            ClientError::NotFound { .. } => ErrorKind::NotFound,
            ClientError::Unavailable { .. } | ClientError::Io { .. } => ErrorKind::Unavailable,
            ClientError::Rejected { .. } => ErrorKind::Internal,
            ClientError::BadUrl { .. } => ErrorKind::InvalidInput,
        }
    }

    /// Worth another attempt later (network, throttling, 5xx, local I/O).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}
