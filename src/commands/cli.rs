//! What every command shares: the configuration overrides a few commands take on the
//! command line, loading the configuration, the async runtime, and printing an error with
//! the exit code of its kind (`ErrorKind::exit_code`, the one table of exit codes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::config::{self, Config, LogFormat, Overrides};
use crate::error::ErrorKind;

/// The options `serve`, `harvest` and `config check` take to override the configuration.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides http.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory (overrides store.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format (overrides log.format).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// Log filter, e.g. `info` or `debug` (overrides log.level).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Allow harvesting loopback, private and other non-public addresses (sets
    /// harvest.allow_private_targets); only for sites on the node itself or trusted tenants.
    #[arg(long)]
    pub allow_private_targets: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl ServeArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            log_format: self.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
            log_level: self.log_level.clone(),
            allow_private_targets: self.allow_private_targets,
        }
    }
}

/// Only the data directory overridden (the commands that work on a data directory offline).
pub fn data_dir_override(data_dir: Option<PathBuf>) -> Overrides {
    Overrides {
        data_dir,
        ..Overrides::default()
    }
}

/// Loads the configuration, or prints why it is wrong and returns the exit code.
pub fn load(config_file: Option<&Path>, o: &Overrides) -> Result<Config, ExitCode> {
    config::load(config_file, o).map_err(|e| {
        eprintln!("gleaner: configuration error: {e}");
        exit_code(e.kind())
    })
}

/// The exit code of an error kind.
pub fn exit_code(kind: ErrorKind) -> ExitCode {
    ExitCode::from(kind.exit_code() as u8)
}

/// Prints a command's error and maps it to the exit code of its kind.
pub fn fail(e: impl std::fmt::Display, kind: ErrorKind) -> ExitCode {
    eprintln!("gleaner: {e}");
    exit_code(kind)
}

/// Success, or the error printed with its kind's exit code.
pub fn finish(r: Result<(), super::CommandError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, e.kind()),
    }
}

/// The multi-threaded runtime every async command runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gleaner-io")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gleaner: cannot start the async runtime: {e}");
            std::process::exit(3);
        }
    }
}

/// The store as the one-shot commands open it: no replicator attached, so the store runs
/// its own checkpoints (`store.checkpoint_wal_bytes`).
pub async fn open_store(cfg: &Config) -> Result<crate::store::Store, crate::store::StoreError> {
    crate::store::Store::open(
        &cfg.store,
        crate::store::CheckpointPolicy::Store {
            wal_bytes: cfg.store.checkpoint_wal_bytes,
        },
    )
    .await
}
