//! `gleaner restore`: a database from a replica (Gleaner's or Litestream's) to a file, to
//! the latest state, a TXID or a point in time; with Litestream's `-if-db-not-exists` and
//! `-if-replica-exists` so it can run before every start.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::cli;
use super::CommandError;
use crate::config::{Config, Overrides};
use crate::replicate::plan::RestoreTarget;
use crate::replicate::restore::{self, RestoreOptions};
use crate::replicate::url::open_client;
use crate::replicate::ReplicateError;

#[derive(Args)]
pub struct RestoreCli {
    /// Output database file (written as OUT.tmp, then renamed).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// Restore the last state before this time (RFC 3339, e.g. 2026-01-02T03:04:05Z).
    #[arg(long, conflicts_with = "txid", value_name = "RFC3339")]
    timestamp: Option<String>,
    /// Restore the state after this TXID (decimal, 0x-hex, or 16 hex digits as Litestream).
    #[arg(long, value_name = "N")]
    txid: Option<String>,
    /// Overwrite OUT if it exists.
    #[arg(long, conflicts_with = "if_db_not_exists")]
    force: bool,
    /// Exit 0 without restoring when OUT already exists and is not empty (Litestream's
    /// `-if-db-not-exists`): safe to run before every start.
    #[arg(long)]
    if_db_not_exists: bool,
    /// Exit 0 without restoring when the replica holds no files (Litestream's
    /// `-if-replica-exists`): a new installation starts empty instead of failing.
    #[arg(long)]
    if_replica_exists: bool,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    parallelism: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// `s3://bucket/path?endpoint=…&region=…&force_path_style=true` or `file:///dir`.
    #[arg(value_name = "REPLICA_URL")]
    url: String,
}

/// What `gleaner restore` was asked for, once the flags are parsed.
pub struct RestoreArgs {
    pub url: String,
    pub output: PathBuf,
    pub target: RestoreTarget,
    pub force: bool,
    /// Succeed without restoring when `output` exists and is not empty.
    pub if_db_not_exists: bool,
    /// Succeed without restoring when the replica holds no files.
    pub if_replica_exists: bool,
    pub parallelism: usize,
    pub progress: bool,
}

pub fn run(config: Option<&Path>, a: RestoreCli) -> ExitCode {
    let cfg = match cli::load(config, &Overrides::default()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let _tracing = crate::telemetry::init_tracing(&cfg.log);
    let target = match (&a.txid, &a.timestamp) {
        (Some(t), _) => match parse_txid(t) {
            Some(n) => RestoreTarget::Txid(n),
            None => {
                eprintln!(
                    "gleaner: --txid {t:?}: expected a decimal number, 0x-hex, or 16 hex digits"
                );
                return ExitCode::from(2);
            }
        },
        (None, Some(ts)) => match parse_time(ts) {
            Some(t) => RestoreTarget::Timestamp(t),
            None => {
                eprintln!(
                    "gleaner: --timestamp {ts:?}: expected RFC 3339, e.g. 2026-01-02T03:04:05Z"
                );
                return ExitCode::from(2);
            }
        },
        (None, None) => RestoreTarget::Latest,
    };
    let args = RestoreArgs {
        url: a.url,
        output: a.output,
        target,
        force: a.force,
        if_db_not_exists: a.if_db_not_exists,
        if_replica_exists: a.if_replica_exists,
        parallelism: a.parallelism.max(1),
        progress: !a.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    cli::finish(cli::runtime().block_on(restore_to(&cfg, args)))
}

/// Litestream prints TXIDs as 16 hex digits; people type decimal or 0x-hex.
fn parse_txid(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    if s.len() == 16 {
        return u64::from_str_radix(s, 16).ok();
    }
    s.parse().ok()
}

fn parse_time(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    (ns >= 0).then(|| UNIX_EPOCH + Duration::from_nanos(ns as u64))
}

/// Restores as asked and prints what it restored.
pub async fn restore_to(cfg: &Config, a: RestoreArgs) -> Result<(), CommandError> {
    if a.if_db_not_exists && std::fs::metadata(&a.output).is_ok_and(|m| !m.is_file() || m.len() > 0)
    {
        eprintln!(
            "{} already exists; nothing restored (--if-db-not-exists)",
            a.output.display()
        );
        return Ok(());
    }
    let client = open_client(&a.url, &cfg.replicate.s3)
        .await
        .map_err(ReplicateError::from)?;
    if a.if_replica_exists && restore::list_all(client.as_ref(), false).await?.is_empty() {
        eprintln!(
            "no replica at {}; nothing restored (--if-replica-exists)",
            client.describe()
        );
        return Ok(());
    }
    let started = std::time::Instant::now();
    let rep = restore::restore(
        client,
        &RestoreOptions {
            target: a.target,
            output: a.output.clone(),
            force: a.force,
            parallelism: a.parallelism,
            progress: a.progress,
        },
    )
    .await?;
    eprintln!(
        "restored {} (txid {:016x}, {} pages, {} bytes) from {} files in {:.2}s",
        a.output.display(),
        rep.applied.last.max_txid,
        rep.applied.last.commit,
        rep.applied.db_size,
        rep.files,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txids_in_every_spelling() {
        assert_eq!(parse_txid("42"), Some(42));
        assert_eq!(parse_txid("0x2a"), Some(42));
        assert_eq!(parse_txid("000000000000002a"), Some(42));
        assert_eq!(parse_txid("forty-two"), None);
        assert!(parse_time("2026-01-02T03:04:05Z").is_some());
        assert!(parse_time("1969-12-31T23:59:59Z").is_none());
        assert!(parse_time("yesterday").is_none());
    }
}
