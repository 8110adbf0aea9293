//! `gleaner verify`: restores a replica's latest state to a temporary file, checks its
//! integrity and prints the state (TXID, time, size).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::cli;
use super::CommandError;
use crate::config::{Config, Overrides};
use crate::replicate::restore;
use crate::replicate::url::open_client;
use crate::replicate::ReplicateError;

#[derive(Args)]
pub struct VerifyArgs {
    /// `s3://bucket/path?endpoint=…&region=…&force_path_style=true` or `file:///dir`.
    #[arg(value_name = "REPLICA_URL")]
    url: String,
}

pub fn run(config: Option<&Path>, a: VerifyArgs) -> ExitCode {
    let cfg = match cli::load(config, &Overrides::default()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    cli::finish(cli::runtime().block_on(verify(&cfg, &a.url)))
}

async fn verify(cfg: &Config, url: &str) -> Result<(), CommandError> {
    let client = open_client(url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    let dir = std::env::temp_dir();
    let rep = restore::verify(client, &dir, cfg.replicate.upload_concurrency).await?;
    println!("replica:    {url}");
    println!("txid:       {:016x}", rep.txid);
    println!(
        "timestamp:  {}",
        restore::fmt_time(
            std::time::UNIX_EPOCH + Duration::from_millis(rep.timestamp_ms.max(0) as u64)
        )
    );
    println!("pages:      {} of {} bytes", rep.page_count, rep.page_size);
    println!("size:       {} bytes", rep.size);
    println!("files:      {}", rep.files);
    println!("integrity:  ok");
    Ok(())
}
