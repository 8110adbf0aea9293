//! Errors of the replication runtime (sync loop, compaction, restore, verify), each naming
//! the file, object or replica it concerns. Codec and client errors are wrapped with that
//! context; `kind()` maps onto the crate-wide [`ErrorKind`].

use std::path::PathBuf;

use crate::cpu::CpuError;
use crate::error::ErrorKind;
use crate::replicate::client::ClientError;
use crate::replicate::error::{CodecErrorKind, Error as CodecError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what}: {source}")]
    Codec {
        what: String,
        #[source]
        source: CodecError,
    },
    #[error("cannot restore from {replica}: {reason}")]
    Plan {
        replica: String,
        reason: String,
        kind: ErrorKind,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error("{0} already exists and is not empty; pass --force to overwrite it")]
    OutputExists(PathBuf),
    #[error("integrity check of {path} failed: {detail}")]
    Integrity { path: PathBuf, detail: String },
    #[error("background task failed: {0}")]
    Join(String),
    #[error("replication is stopping")]
    Stopped,
    /// Stopped with commits that never reached the destination (named in the log).
    #[error("stopped with unshipped commits in {}", .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Unshipped(Vec<PathBuf>),
}

impl ReplicateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ReplicateError::Client(e) => e.kind(),
            ReplicateError::Codec { source, .. } => match source.kind() {
                CodecErrorKind::Io => ErrorKind::Unavailable,
                CodecErrorKind::NotFound => ErrorKind::NotFound,
                CodecErrorKind::Usage => ErrorKind::Internal,
                // A corrupt replica is bad input to restore, not our bug.
                CodecErrorKind::Corrupt => ErrorKind::InvalidInput,
            },
            ReplicateError::Plan { kind, .. } => *kind,
            ReplicateError::Io { .. } => ErrorKind::Environment,
            ReplicateError::Store(e) => e.kind(),
            ReplicateError::Cpu(e) => e.kind(),
            ReplicateError::OutputExists(_) => ErrorKind::Conflict,
            ReplicateError::Integrity { .. } => ErrorKind::InvalidInput,
            ReplicateError::Join(_) => ErrorKind::Internal,
            ReplicateError::Stopped => ErrorKind::ShuttingDown,
            ReplicateError::Unshipped(_) => ErrorKind::Unavailable,
        }
    }

    pub(crate) fn codec(what: impl Into<String>) -> impl FnOnce(CodecError) -> ReplicateError {
        let what = what.into();
        move |source| ReplicateError::Codec { what, source }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ReplicateError {
        let path = path.into();
        move |source| ReplicateError::Io { op, path, source }
    }
}
