//! One-shot commands that wire the library together outside `serve`, one file each:
//! `gleaner harvest` (one run in the foreground with a progress bar), `gleaner demo` (the
//! sample site, a demo tenant, its harvests and the API, all on loopback), `gleaner audit
//! verify` and `gleaner export`.

pub mod audit;
pub mod demo;
pub mod export;
pub mod harvest;

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
