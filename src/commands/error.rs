//! The error of a command: what the library parts it calls can fail with, plus what the
//! command line itself gets wrong. Its kind decides the exit code (see `cli::fail`).

use crate::error::ErrorKind;
use crate::harvest::runtime::HarvestError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Harvest(#[from] HarvestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Io(String),
}

impl CommandError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::App(e) => e.kind(),
            CommandError::Harvest(e) => e.kind(),
            CommandError::Store(e) => e.kind(),
            CommandError::Usage(_) => ErrorKind::InvalidInput,
            CommandError::File { .. } => ErrorKind::InvalidInput,
            CommandError::Io(_) => ErrorKind::Environment,
        }
    }
}

impl From<crate::replicate::ReplicateError> for CommandError {
    fn from(e: crate::replicate::ReplicateError) -> Self {
        CommandError::App(e.into())
    }
}

impl From<crate::cpu::CpuError> for CommandError {
    fn from(e: crate::cpu::CpuError) -> Self {
        CommandError::App(e.into())
    }
}

impl From<crate::config::ConfigError> for CommandError {
    fn from(e: crate::config::ConfigError) -> Self {
        CommandError::App(e.into())
    }
}
