//! `gleaner replicate`: replicates a SQLite database another program writes (WAL mode),
//! the way Litestream's `replicate` does, until SIGTERM/SIGINT; then ships the tail
//! (for up to `replicate.shutdown_ship_timeout_ms`), exiting 1 if some of it stayed
//! unshipped.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::cli;
use super::CommandError;
use crate::config::{Config, Overrides};
use crate::cpu::CpuPool;
use crate::replicate::runtime::{Replicator, RuntimeSettings};
use crate::replicate::url::open_destination;
use crate::replicate::ReplicateError;

#[derive(Args)]
pub struct ReplicateArgs {
    /// The database file.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Where to replicate it.
    #[arg(long, value_name = "URL")]
    replica: String,
}

pub fn run(config: Option<&Path>, a: ReplicateArgs) -> ExitCode {
    let cfg = match cli::load(config, &Overrides::default()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    cli::finish(cli::runtime().block_on(replicate(&cfg, &a.db, &a.replica)))
}

async fn replicate(cfg: &Config, db: &Path, url: &str) -> Result<(), CommandError> {
    let signal = crate::app::shutdown_signal()?;
    let cpu = CpuPool::new(&cfg.cpu)?;
    let dest = open_destination(url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    let data_dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
    let rep = Replicator::new(
        RuntimeSettings::from_config(&cfg.replicate),
        vec![dest],
        data_dir,
        cpu,
    );
    rep.attach_external(db, Duration::from_millis(cfg.store.busy_timeout_ms))
        .await?;
    tracing::info!(db = %db.display(), replica = url, "replicating");
    let which = signal.await;
    tracing::info!(
        signal = which,
        "shutdown requested; shipping the last frames"
    );
    rep.detach_all().await;
    tracing::info!("stopped");
    let left = rep.unshipped_at_close();
    if !left.is_empty() {
        return Err(ReplicateError::Unshipped(left).into());
    }
    Ok(())
}
