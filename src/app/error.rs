//! The error of start-up, serving and shutdown: what each part `app` wires together can
//! fail with. Its kind decides the exit code of `gleaner serve` (see `crate::error`).

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::cpu::CpuError;
use crate::error::ErrorKind;
use crate::http::TlsError;
use crate::replicate::ReplicateError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cpu(#[from] CpuError),
    #[error(transparent)]
    Replicate(#[from] ReplicateError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("harvester: {0}")]
    Harvest(String),
    #[error("health check of {url} failed: {reason}")]
    Unhealthy { url: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The stop left commits unshipped: a typed outcome, not a failure to start.
    #[error("{0}")]
    Unshipped(ReplicateError),
    #[error("OIDC configuration: {0}")]
    Oidc(#[from] crate::auth::oidc::OidcError),
}

impl AppError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Config(e) => e.kind(),
            AppError::Store(e) => e.kind(),
            AppError::Cpu(e) => e.kind(),
            AppError::Replicate(e) | AppError::Unshipped(e) => e.kind(),
            AppError::Bind { .. } | AppError::Signals(_) => ErrorKind::Environment,
            AppError::Unhealthy { .. } => ErrorKind::Unavailable,
            AppError::Tls(e) => e.kind(),
            AppError::Oidc(_) => ErrorKind::Config,
            AppError::Harvest(_) => ErrorKind::Environment,
        }
    }
}
